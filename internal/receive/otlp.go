package receive

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
)

// OTLP metrics are translated by Prometheus' own OTLP handler, exactly as Prometheus
// translates them. Its appender here only collects the translated series; on Commit they
// go through the same limits, hashring and replication as a remote-write request, and
// the outcome is answered with the receiver's status codes.

type otlpCtxKey struct{}

// otlpCall carries one request's tenant into the appender and its outcome back.
type otlpCall struct {
	tenant string
	err    error
}

func newOTLPHandler(logger *slog.Logger, reg prometheus.Registerer, h *Handler) http.Handler {
	return remote.NewOTLPWriteHandler(logger, prometheus.WrapRegistererWithPrefix("vigil_receive_", reg), otlpAppendable{h},
		func() config.Config { return config.DefaultConfig }, remote.OTLPOptions{})
}

func (h *Handler) serveOTLP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "OTLP takes POST", http.StatusMethodNotAllowed)
		return
	}
	tenant, err := h.tenant(r)
	if err != nil {
		h.httpError(w, "otlp", &WriteError{Cause: CauseBadRequest, Err: err})
		return
	}
	sizeLimit, _, _ := h.opts.Limits.Request(tenant)
	if sizeLimit <= 0 {
		sizeLimit = maxDecodedBytes
	}
	r.Body = http.MaxBytesReader(w, r.Body, sizeLimit)
	call := &otlpCall{tenant: tenant}
	rec := &bufferedResponse{header: http.Header{}}
	h.otlp.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), otlpCtxKey{}, call)))
	if call.err != nil {
		h.httpError(w, "otlp", call.err)
		return
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	h.requests.WithLabelValues("otlp", http.StatusText(rec.code)).Inc()
	w.WriteHeader(rec.code)
	_, _ = w.Write(rec.body.Bytes())
}

// bufferedResponse holds the OTLP handler's answer until the receiver knows whether the
// write itself succeeded.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }

type otlpAppendable struct{ h *Handler }

func (a otlpAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	call, _ := ctx.Value(otlpCtxKey{}).(*otlpCall)
	return &otlpAppender{h: a.h, ctx: ctx, call: call, index: map[string]int{}}
}

// otlpAppender collects the translated samples as remote-write series.
type otlpAppender struct {
	h      *Handler
	ctx    context.Context
	call   *otlpCall
	series []prompb.TimeSeries
	index  map[string]int // labels → position in series
	buf    []byte
}

func (a *otlpAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	a.buf = ls.Bytes(a.buf)
	i, ok := a.index[string(a.buf)]
	if !ok {
		i = len(a.series)
		a.index[string(a.buf)] = i
		a.series = append(a.series, prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil)})
	}
	ts := &a.series[i]
	switch {
	case fh != nil:
		ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(t, fh))
	case h != nil:
		ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(t, h))
	default:
		ts.Samples = append(ts.Samples, prompb.Sample{Value: v, Timestamp: t})
	}
	return storage.SeriesRef(i + 1), nil
}

// Commit writes the collected series. The outcome goes to the request's call, so that
// serveOTLP answers with the receiver's status for it.
func (a *otlpAppender) Commit() error {
	if a.call == nil {
		return nil
	}
	a.call.err = a.h.store(a.ctx, a.call.tenant, a.series, nil)
	return a.call.err
}

func (a *otlpAppender) Rollback() error {
	a.series = nil
	return nil
}

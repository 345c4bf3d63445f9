package receive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

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
	body := &limitedBody{r: r.Body, left: sizeLimit}
	r.Body = body
	call := &otlpCall{tenant: tenant}
	rec := &bufferedResponse{header: http.Header{}}
	h.otlp.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), otlpCtxKey{}, call)))
	switch {
	case body.over:
		h.httpError(w, "otlp", writeErr(CauseTooLarge, "request body is over the limit of %d bytes", sizeLimit))
		return
	case call.err != nil:
		h.httpError(w, "otlp", call.err)
		return
	case rec.code >= 500:
		// The write itself did not fail (call.err is nil): the translation did, on what
		// the request carries (a metric without a type or a name, a delta counter).
		// Retrying would fail the same way.
		h.httpError(w, "otlp", writeErr(CauseBadRequest, "translate OTLP metrics: %s", strings.TrimSpace(rec.body.String())))
		return
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	h.requests.WithLabelValues("otlp", strconv.Itoa(rec.code)).Inc()
	w.WriteHeader(rec.code)
	_, _ = w.Write(rec.body.Bytes())
}

// limitedBody reads at most left bytes and remembers whether the body had more.
type limitedBody struct {
	r    io.ReadCloser
	left int64
	over bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n > 0 {
			b.over = true
			return 0, errors.New("request body too large")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.r.Close() }

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

func (a *otlpAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
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
	for _, e := range opts.Exemplars {
		ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: prompb.FromLabels(e.Labels, nil), Value: e.Value, Timestamp: e.Ts})
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

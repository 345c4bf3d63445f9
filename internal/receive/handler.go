package receive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/vigilhq/vigil/internal/storeapi/writepb"
)

// DefaultTenantHeader is the header Thanos receivers take the tenant from.
const DefaultTenantHeader = "THANOS-TENANT"

// maxDecodedBytes bounds a decompressed request body whatever the limits say: snappy
// states the decoded length up front, so a small body cannot make the receiver allocate
// gigabytes.
const maxDecodedBytes = 64 << 20

// Message types of the Content-Type's proto parameter.
const (
	protoV1 = "prometheus.WriteRequest"
	protoV2 = "io.prometheus.write.v2.Request"
)

// HandlerOptions configure the remote-write HTTP handler.
type HandlerOptions struct {
	// TenantHeader is --receive.tenant-header; DefaultTenantHeader is also read.
	TenantHeader string
	// DefaultTenant is --receive.default-tenant-id.
	DefaultTenant string
	// Limits are the request limits; nil imposes none.
	Limits *Limits
	// Ready reports whether writes are accepted (503 otherwise); nil means always.
	Ready func() bool
}

// Handler serves POST /api/v1/receive (remote write 1.0 and 2.0) and /api/v1/otlp.
type Handler struct {
	logger *slog.Logger
	opts   HandlerOptions
	dist   *Distributor
	gate   chan struct{}
	otlp   http.Handler

	bufs     bufPool
	requests *prometheus.CounterVec
	samples  prometheus.Counter
}

// NewHandler returns the handler writing through dist.
func NewHandler(logger *slog.Logger, reg prometheus.Registerer, dist *Distributor, opts HandlerOptions) *Handler {
	if opts.TenantHeader == "" {
		opts.TenantHeader = DefaultTenantHeader
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	h := &Handler{
		logger: logger, opts: opts, dist: dist,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_receive_requests_total", Help: "Remote-write requests, by protocol and HTTP status code.",
		}, []string{"protocol", "code"}),
		samples: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "vigil_receive_samples_total", Help: "Samples and histogram samples received in accepted requests.",
		}),
	}
	if n := opts.Limits.MaxConcurrency(); n > 0 {
		h.gate = make(chan struct{}, n)
	}
	h.otlp = newOTLPHandler(logger, reg, h)
	return h
}

// Register mounts the endpoints on mux.
func (h *Handler) Register(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle("/api/v1/receive", http.HandlerFunc(h.serveRemoteWrite))
	mux.Handle("/api/v1/otlp", http.HandlerFunc(h.serveOTLP))
	mux.Handle("/api/v1/otlp/v1/metrics", http.HandlerFunc(h.serveOTLP))
}

// tenant returns the request's tenant: the configured header, then THANOS-TENANT, then
// the default.
func (h *Handler) tenant(r *http.Request) (string, error) {
	t := r.Header.Get(h.opts.TenantHeader)
	if t == "" {
		t = r.Header.Get(DefaultTenantHeader)
	}
	if t == "" {
		t = h.opts.DefaultTenant
	}
	return t, ValidateTenant(t)
}

// httpError answers err with the status of its cause.
func (h *Handler) httpError(w http.ResponseWriter, protocol string, err error) {
	c := CauseOf(err)
	if c == CauseInternal {
		h.logger.Error("remote write failed", "protocol", protocol, "err", err)
	} else {
		h.logger.Debug("remote write refused", "protocol", protocol, "status", c.HTTPStatus(), "err", err)
	}
	h.requests.WithLabelValues(protocol, fmt.Sprint(c.HTTPStatus())).Inc()
	http.Error(w, err.Error(), c.HTTPStatus())
}

// protoOf negotiates the message type from Content-Type as Prometheus does: no proto
// parameter means 1.0.
func protoOf(contentType string) (string, error) {
	if contentType == "" {
		return protoV1, nil
	}
	parts := strings.Split(contentType, ";")
	if strings.TrimSpace(parts[0]) != "application/x-protobuf" {
		return "", fmt.Errorf("unsupported content type %q: want application/x-protobuf", contentType)
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if k == "proto" {
			if v != protoV1 && v != protoV2 {
				return "", fmt.Errorf("unsupported remote-write message %q: want %s or %s", v, protoV1, protoV2)
			}
			return v, nil
		}
	}
	return protoV1, nil
}

func (h *Handler) serveRemoteWrite(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "remote write takes POST", http.StatusMethodNotAllowed)
		return
	}
	msg, err := protoOf(r.Header.Get("Content-Type"))
	if err != nil {
		h.requests.WithLabelValues("unknown", "415").Inc()
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	protocol := map[string]string{protoV1: "rw1", protoV2: "rw2"}[msg]
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "snappy" {
		h.requests.WithLabelValues(protocol, "415").Inc()
		http.Error(w, fmt.Sprintf("unsupported content encoding %q: want snappy", enc), http.StatusUnsupportedMediaType)
		return
	}
	bufs := h.bufs.get()
	tenant, series, stats, err := h.decode(r, msg, bufs)
	if err == nil {
		// The pool gets the buffers back once nothing reads the series any more, which
		// may be after this answer (replicas still writing in the background).
		err = h.store(r.Context(), tenant, series, func() { h.bufs.put(bufs) })
	} else {
		h.bufs.put(bufs)
	}
	if msg == protoV2 {
		stats.writeHeaders(w, err == nil)
	}
	if err != nil {
		h.httpError(w, protocol, err)
		return
	}
	h.requests.WithLabelValues(protocol, "200").Inc()
	if msg == protoV2 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// decode reads, decompresses and decodes the body into 1.0 series, within the
// tenant's size limit. The series of a 1.0 request alias bufs.raw.
func (h *Handler) decode(r *http.Request, msg string, bufs *requestBufs) (string, []prompb.TimeSeries, v2Stats, error) {
	tenant, err := h.tenant(r)
	if err != nil {
		return "", nil, v2Stats{}, &WriteError{Cause: CauseBadRequest, Err: err}
	}
	sizeLimit, _, _ := h.opts.Limits.Request(tenant)
	body, err := readBody(r, sizeLimit, &bufs.body)
	if err != nil {
		return tenant, nil, v2Stats{}, err
	}
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return tenant, nil, v2Stats{}, writeErr(CauseBadRequest, "snappy-decode request body: %w", err)
	}
	if n > maxDecodedBytes {
		return tenant, nil, v2Stats{}, writeErr(CauseTooLarge, "decompressed request body of %d bytes is over the %d-byte bound", n, maxDecodedBytes)
	}
	if cap(bufs.raw) < n {
		bufs.raw = make([]byte, n)
	}
	dec, err := snappy.Decode(bufs.raw[:n], body)
	if err != nil {
		return tenant, nil, v2Stats{}, writeErr(CauseBadRequest, "snappy-decode request body: %w", err)
	}
	if msg == protoV2 {
		series, stats, err := decodeV2(dec)
		return tenant, series, stats, err
	}
	bufs.series, err = writepb.DecodeSeries(dec, bufs.series)
	if err != nil {
		return tenant, nil, v2Stats{}, writeErr(CauseBadRequest, "decode remote-write 1.0 request: %w", err)
	}
	return tenant, bufs.series, v2Stats{}, nil
}

// readBody reads the compressed body into buf, refusing more than limit bytes (0 = the
// decoded bound) with 413.
func readBody(r *http.Request, limit int64, buf *[]byte) ([]byte, error) {
	if limit <= 0 {
		limit = maxDecodedBytes
	}
	if r.ContentLength > limit {
		return nil, writeErr(CauseTooLarge, "request body of %d bytes is over the limit of %d bytes", r.ContentLength, limit)
	}
	b := (*buf)[:0]
	if r.ContentLength > 0 && int64(cap(b)) < r.ContentLength {
		b = make([]byte, 0, r.ContentLength+512) // room to see EOF without growing
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return nil, writeErr(CauseTooLarge, "request body is over the limit of %d bytes", limit)
		}
		if errors.Is(err, io.EOF) {
			*buf = b
			return b, nil
		}
		if err != nil {
			return nil, writeErr(CauseBadRequest, "read request body: %w", err)
		}
	}
}

// store checks the request limits and writes the series. release, if not nil, is called
// once nothing reads series any more.
func (h *Handler) store(ctx context.Context, tenant string, series []prompb.TimeSeries, release func()) error {
	done := false
	if release != nil {
		defer func() {
			if !done {
				release()
			}
		}()
	}
	if !h.opts.Ready() {
		return writeErr(CauseUnavailable, "receiver is not ready")
	}
	if len(series) == 0 {
		return nil // empty or metadata-only requests are accepted and ignored
	}
	_, seriesLimit, samplesLimit := h.opts.Limits.Request(tenant)
	samples := 0
	for i := range series {
		samples += len(series[i].Samples) + len(series[i].Histograms)
	}
	if seriesLimit > 0 && int64(len(series)) > seriesLimit {
		return writeErr(CauseTooLarge, "request of %d series is over tenant %q's limit of %d series", len(series), tenant, seriesLimit)
	}
	if samplesLimit > 0 && int64(samples) > samplesLimit {
		return writeErr(CauseTooLarge, "request of %d samples is over tenant %q's limit of %d samples", samples, tenant, samplesLimit)
	}
	if h.gate != nil {
		select {
		case h.gate <- struct{}{}:
			defer func() { <-h.gate }()
		case <-ctx.Done():
			return writeErr(CauseUnavailable, "waiting for a write slot (max_concurrency): %w", ctx.Err())
		}
	}
	done = true // the distributor releases from here on
	if err := h.dist.write(ctx, tenant, series, 0, release); err != nil {
		return err
	}
	h.samples.Add(float64(samples))
	return nil
}

// decodeV2 decodes a remote-write 2.0 request into 1.0 series, resolving its symbols.
func decodeV2(b []byte) ([]prompb.TimeSeries, v2Stats, error) {
	var req writev2.Request
	if err := req.Unmarshal(b); err != nil {
		return nil, v2Stats{}, writeErr(CauseBadRequest, "decode remote-write 2.0 request: %w", err)
	}
	out := make([]prompb.TimeSeries, 0, len(req.Timeseries))
	var st v2Stats
	for i := range req.Timeseries {
		ts, err := fromV2(&req.Timeseries[i], req.Symbols)
		if err != nil {
			return nil, v2Stats{}, &WriteError{Cause: CauseBadRequest, Err: fmt.Errorf("remote-write 2.0 series %d: %w", i, err)}
		}
		st.samples += len(ts.Samples)
		st.histograms += len(ts.Histograms)
		st.exemplars += len(ts.Exemplars)
		out = append(out, ts)
	}
	return out, st, nil
}

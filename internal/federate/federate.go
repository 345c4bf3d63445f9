// Package federate serves Prometheus's /federate endpoint on the querier: for every
// series that matches one of the match[] selectors, its latest sample within the lookback
// delta, read from the querier's global view (the storage its PromQL engine reads, with
// replicas deduplicated unless dedup=false), in the exposition format the client asks
// for. An upper-level Prometheus scraping it federates every Prometheus behind the
// querier as one deduplicated source.
//
// Series stream through: the querier sends them sorted by labels, so the series of one
// metric name arrive together and each metric family is written as soon as the next name
// begins. At most one family (plus the rare series whose labels sort before __name__) is
// held in memory, bounded by --query.max-samples.
package federate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/queryapi"
)

// defaultLookback is the lookback delta when Config.LookbackDelta is not set, the PromQL
// engine's default.
const defaultLookback = 5 * time.Minute

// checkContextEvery is how many series are read between checks of the deadline.
const checkContextEvery = 128

// holdBytes is how much of the response is held back before the status line is sent:
// a request that fails within it (an endpoint timing out before the first series, a
// limit) gets an error status instead of a truncated 200. Past it, a failure aborts the
// connection, so the client still sees a failed scrape and never a short answer.
const holdBytes = 256 << 10

// formats are the exposition formats offered, in Prometheus's order of preference.
var formats = []expfmt.Format{
	expfmt.NewFormat(expfmt.TypeProtoDelim),
	expfmt.NewFormat(expfmt.TypeProtoText),
	expfmt.NewFormat(expfmt.TypeProtoCompact),
	expfmt.NewFormat(expfmt.TypeTextPlain),
}

// Config configures the handler.
type Config struct {
	// API parses match[], dedup, replicaLabels[], partial_response, storeMatch[],
	// max_source_resolution and timeout (capped by --query.timeout) as the query API does.
	API *queryapi.API
	// Queryable is the querier's storage, the factory the query API's engine reads.
	Queryable query.QueryableFactory
	// LookbackDelta is --query.lookback-delta: a series is federated when it has a sample
	// in (now-LookbackDelta, now]. 0 means 5m.
	LookbackDelta time.Duration
	// MaxSamples is --query.max-samples: the most samples a request may hold in memory at
	// once (the metric family being read). 0 means no limit.
	MaxSamples int
	// Logger receives warnings from the endpoints and failures; nil discards.
	Logger *slog.Logger
	// Registerer, when set, registers the handler's counters.
	Registerer prometheus.Registerer
}

// Handler serves /federate. Create it with New and mount it with Register.
type Handler struct {
	cfg      Config
	logger   *slog.Logger
	now      func() time.Time
	errors   prometheus.Counter
	warnings prometheus.Counter
}

// New returns the handler for cfg.
func New(cfg Config) *Handler {
	h := &Handler{
		cfg: cfg, logger: cfg.Logger, now: time.Now,
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_federation_errors_total",
			Help: "Federation requests that failed after their parameters were accepted.",
		}),
		warnings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_federation_warnings_total",
			Help: "Warnings (such as unavailable endpoints) met while answering federation requests.",
		}),
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.cfg.LookbackDelta <= 0 {
		h.cfg.LookbackDelta = defaultLookback
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(h.errors, h.warnings)
	}
	return h
}

// Register mounts the handler on mux at prefix+"/federate" for GET (and HEAD) and POST
// with a form-encoded body.
func (h *Handler) Register(mux *http.ServeMux, prefix string) {
	p := strings.TrimRight(prefix, "/") + "/federate"
	mux.Handle(http.MethodGet+" "+p, h)
	mux.Handle(http.MethodPost+" "+p, h)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params, err := h.cfg.API.ParseSelect(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if params.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, params.Timeout)
	}
	defer cancel()

	maxt := timestamp.FromTime(h.now())
	mint := maxt - h.cfg.LookbackDelta.Milliseconds() // exclusive, as in PromQL
	format := expfmt.NegotiateAccept(r.Header, formats...)
	out := newResponse(w, r, string(format), h.cfg.API)
	err = h.federate(ctx, out, format, params, mint, maxt)
	if err == nil {
		err = out.finish()
	}
	if err == nil {
		return
	}
	h.errors.Inc()
	switch {
	case out.fail(err, queryapi.ErrorStatus(err)):
		h.logger.Debug("federation failed", "err", err)
	case out.err != nil || errors.Is(err, context.Canceled):
		// The client went away: there is no one to tell.
		h.logger.Debug("federation failed", "err", err)
	default:
		// The status line is out: cut the connection so that the client sees a failed
		// scrape and not a complete-looking, short answer.
		h.logger.Warn("federation failed after the answer began; aborting the connection", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// federate selects the series, finds each one's latest sample and writes the families.
func (h *Handler) federate(ctx context.Context, w io.Writer, format expfmt.Format, params queryapi.SelectParams, mint, maxt int64) error {
	q, err := h.cfg.Queryable(params.Options).Querier(mint+1, maxt)
	if err != nil {
		return err
	}
	defer q.Close()

	// No hints: the querier then neither decodes series ahead (which would keep every
	// series until the set is read to its end) nor expects a PromQL function.
	var set storage.SeriesSet
	if len(params.Matchers) == 1 {
		set = q.Select(ctx, true, nil, params.Matchers[0]...)
	} else {
		sets := make([]storage.SeriesSet, 0, len(params.Matchers))
		for _, ms := range params.Matchers {
			sets = append(sets, q.Select(ctx, true, nil, ms...))
		}
		set = storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	}

	ft := format.FormatType()
	proto := ft == expfmt.TypeProtoDelim || ft == expfmt.TypeProtoText || ft == expfmt.TypeProtoCompact
	b := newBuilder(expfmt.NewEncoder(w, format), proto, h.cfg.MaxSamples)
	var (
		it chunkenc.Iterator
		fh *histogram.FloatHistogram
	)
	for n := 1; set.Next(); n++ {
		if n%checkContextEvery == 0 {
			if err := ctx.Err(); err != nil {
				return requestError(err)
			}
		}
		s := set.At()
		it = s.Iterator(it)
		var smp sample
		smp, fh, err = latest(it, mint, maxt, fh)
		if err != nil {
			if ctx.Err() != nil {
				return requestError(ctx.Err())
			}
			return fmt.Errorf("reading %s: %w", s.Labels(), err)
		}
		if smp.t == noSample {
			continue
		}
		if err := b.add(s.Labels(), smp); err != nil {
			return err
		}
	}
	if err := set.Err(); err != nil {
		if ctx.Err() != nil {
			return requestError(ctx.Err())
		}
		return err
	}
	// Endpoints cut short by the deadline may have left only warnings behind: not an
	// answer.
	if err := ctx.Err(); err != nil {
		return requestError(err)
	}
	if ws := set.Warnings(); len(ws) > 0 {
		h.warnings.Add(float64(len(ws)))
		h.logger.Debug("federation select returned warnings", "warnings", ws.AsErrors())
	}
	if b.nameless > 0 {
		h.logger.Debug("federation left out series without a metric name", "series", b.nameless)
	}
	return b.finish()
}

// requestError describes the end of the request's context.
func requestError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("federation timed out (timeout parameter or --query.timeout): %w", err)
	}
	return fmt.Errorf("federation canceled: %w", err)
}

// noSample marks a series without a sample in range.
const noSample = int64(-1) << 63

// sample is the latest sample of a series; h is set for histograms.
type sample struct {
	t int64
	f float64
	h *histogram.FloatHistogram
}

// latest returns the last sample of it in (mint, maxt], or t == noSample when there is
// none or it is a stale marker, which the exposition formats cannot carry. Histograms are
// decoded into fh (reused; the returned buffer is the one to pass next time).
func latest(it chunkenc.Iterator, mint, maxt int64, fh *histogram.FloatHistogram) (sample, *histogram.FloatHistogram, error) {
	last := sample{t: noSample}
	for vt := it.Seek(mint + 1); vt != chunkenc.ValNone; vt = it.Next() {
		t := it.AtT()
		if t > maxt {
			break
		}
		if t <= mint { // an iterator may stand on an earlier sample when Seek is a no-op
			continue
		}
		switch vt {
		case chunkenc.ValFloat:
			_, f := it.At()
			last = sample{t: t, f: f}
		case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
			_, fh = it.AtFloatHistogram(fh)
			last = sample{t: t, h: fh}
		}
	}
	if err := it.Err(); err != nil {
		return sample{t: noSample}, fh, err
	}
	if last.t != noSample {
		if (last.h == nil && value.IsStaleNaN(last.f)) || (last.h != nil && value.IsStaleNaN(last.h.Sum)) {
			last.t = noSample
		}
	}
	return last, fh, nil
}

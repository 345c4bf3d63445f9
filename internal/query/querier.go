package query

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/downsample"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// responseBatchSize is how many series the querier asks stores to pack per frame.
const responseBatchSize = 64

// Queryable is the storage.Queryable over all endpoints for one request's options.
type Queryable struct {
	proxy     *Proxy
	opts      Options
	dedupFunc dedup.Func
	pool      chunkenc.Pool
	// decodeAhead is how many series a second goroutine decodes ahead of the engine
	// (see prefetcher); 0 turns it off.
	decodeAhead int
}

// defaultDecodeAhead decodes up to eight series ahead when there is a core to do it on:
// the worker wakes for four at a time (prefetcher.wakeWorker).
func defaultDecodeAhead() int {
	if runtime.GOMAXPROCS(0) > 1 {
		return 8
	}
	return 0
}

// NewQueryableFactory returns the factory the HTTP API calls per request.
func NewQueryableFactory(proxy *Proxy, dedupFunc dedup.Func) QueryableFactory {
	return newQueryableFactory(proxy, dedupFunc, defaultDecodeAhead())
}

func newQueryableFactory(proxy *Proxy, dedupFunc dedup.Func, decodeAhead int) QueryableFactory {
	pool := chunkenc.NewPool()
	return func(opts Options) storage.Queryable {
		return &Queryable{proxy: proxy, opts: opts, dedupFunc: dedupFunc, pool: pool, decodeAhead: decodeAhead}
	}
}

// Querier implements storage.Queryable.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{Queryable: q, mint: mint, maxt: maxt}, nil
}

type querier struct {
	*Queryable
	mint, maxt int64

	mu          sync.Mutex
	prefetchers []*prefetcher
}

func (q *querier) dedupEnabled() bool { return q.opts.Dedup && len(q.opts.ReplicaLabels) > 0 }

func (q *querier) strategy() storepb.PartialResponseStrategy {
	if q.opts.PartialResponse {
		return storepb.PartialResponseStrategy_WARN
	}
	return storepb.PartialResponseStrategy_ABORT
}

// seriesRequest translates PromQL select hints into a StoreAPI request.
func (q *querier) seriesRequest(hints *storage.SelectHints, ms []*labels.Matcher) *storepb.SeriesRequest {
	mint, maxt := q.mint, q.maxt
	req := &storepb.SeriesRequest{
		Matchers:                storeapi.MatchersToProto(ms),
		MaxResolutionWindow:     q.opts.MaxSourceResolution,
		PartialResponseStrategy: q.strategy(),
		// Batched frames (Thanos v0.41+, every Vigil store) cut per-message gRPC cost;
		// older stores ignore the field and send one series per frame.
		ResponseBatchSize: responseBatchSize,
		Aggregates:        []storepb.Aggr{storepb.Aggr_COUNT, storepb.Aggr_SUM},
	}
	if hints != nil {
		mint, maxt = hints.Start, hints.End
		req.SkipChunks = hints.Func == "series"
		req.Aggregates = aggregatesFor(hints.Func)
		if twoSampleFuncs[hints.Func] && hints.Range > 0 {
			// Functions needing two samples must find them in their range.
			req.MaxResolutionWindow = min(req.MaxResolutionWindow, hints.Range/2)
		}
		req.QueryHints = &storepb.QueryHints{
			StepMillis: hints.Step,
			Func:       &storepb.Func{Name: hints.Func},
			Grouping:   &storepb.Grouping{By: hints.By, Labels: hints.Grouping},
			Range:      &storepb.Range{Millis: hints.Range},
		}
	}
	req.MinTime, req.MaxTime = mint, maxt
	if q.dedupEnabled() {
		req.WithoutReplicaLabels = q.opts.ReplicaLabels
	}
	return req
}

// twoSampleFuncs need at least two samples in their range: max_source_resolution is
// capped at half the range for them, as Thanos does.
var twoSampleFuncs = map[string]bool{
	"rate": true, "irate": true, "increase": true, "delta": true, "idelta": true, "deriv": true,
	"predict_linear": true, "holt_winters": true, "double_exponential_smoothing": true,
}

// aggregatesFor picks the downsampled aggregates a PromQL function needs: those
// downsample.AggrsForFunc names, which are also the ones newAggrListIterator reads.
func aggregatesFor(fn string) []storepb.Aggr {
	ts := downsample.AggrsForFunc(fn)
	out := make([]storepb.Aggr, len(ts))
	for i, t := range ts {
		out[i] = aggrProto[t]
	}
	return out
}

var aggrProto = map[downsample.AggrType]storepb.Aggr{
	downsample.AggrCount: storepb.Aggr_COUNT, downsample.AggrSum: storepb.Aggr_SUM, downsample.AggrMin: storepb.Aggr_MIN,
	downsample.AggrMax: storepb.Aggr_MAX, downsample.AggrCounter: storepb.Aggr_COUNTER,
}

// Select streams the merged (and, when enabled, deduplicated) series.
func (q *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	ms, mode := readMode(ms)
	switch mode {
	case "":
	case readCount:
		// Read as counts (see readmode.go): COUNT from downsampled windows, 1 per raw sample.
		h := storage.SelectHints{}
		if hints != nil {
			h = *hints
		}
		h.Func = "count_over_time"
		hints = &h
	default:
		return storage.ErrSeriesSet(fmt.Errorf("unknown %s %q", readModeLabel, mode))
	}
	req := q.seriesRequest(hints, ms)
	stream, err := q.proxy.Series(ctx, req, q.opts.StoreMatchers)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	fn := ""
	if hints != nil {
		fn = hints.Func
	}
	set := &seriesSet{
		stream: stream, mint: req.MinTime, maxt: req.MaxTime, pool: q.pool, fn: fn, counts: mode == readCount,
		dedup: q.dedupEnabled(), opts: dedup.Options{Func: q.dedupFunc, Counter: dedup.IsCounterFunc(fn)},
	}
	if q.decodeAhead > 0 && readsDensely(hints) {
		set.pf = newPrefetcher(q.decodeAhead)
		q.mu.Lock()
		q.prefetchers = append(q.prefetchers, set.pf)
		q.mu.Unlock()
	}
	return set
}

// readsDensely reports whether the engine will read about every sample of the selected
// series, so that decoding them ahead (see prefetcher) wastes nothing: instant queries
// (the selected window is what they read), range selectors at least as long as the step,
// and plain selectors with steps shorter than a chunk usually spans (a seek within a
// chunk decodes the samples before it anyway). Sparse reads seek over whole chunks
// without decoding them, which decoding ahead would undo.
func readsDensely(h *storage.SelectHints) bool {
	if h == nil || h.Func == "series" {
		return false
	}
	const denseStep = 10 * 60 * 1000
	return h.Step == 0 || h.Range >= h.Step || (h.Range == 0 && h.Step <= denseStep)
}

// seriesSet adapts a MergeStream to storage.SeriesSet.
type seriesSet struct {
	stream     *MergeStream
	mint, maxt int64
	pool       chunkenc.Pool
	fn         string // the select hint's PromQL function: picks the aggregates of downsampled chunks
	dedup      bool
	opts       dedup.Options
	cur        *series
	closed     bool
	pf         *prefetcher // nil: series are decoded as the engine reads them
	counts     bool        // read mode count: raw samples read as 1 (see readmode.go)
}

func (s *seriesSet) Next() bool {
	if !s.stream.Next() {
		if !s.closed {
			s.closed = true
			s.stream.Close()
			if s.pf != nil && s.stream.Err() == nil {
				s.pf.start()
			}
		}
		return false
	}
	m := s.stream.At()
	var (
		replicas [][]*storepb.AggrChunk
		aggr     []bool
	)
	for _, src := range m.Sources {
		src, downsampled := trimRawUnderAggregates(src)
		runs := splitOverlapping(src)
		replicas = append(replicas, runs...)
		for range runs {
			aggr = append(aggr, downsampled)
		}
	}
	s.cur = &series{lset: storeapi.LabelsFromProto(m.Labels), replicas: replicas, aggr: aggr, set: s}
	if s.pf != nil {
		s.pf.add(s.cur)
	}
	return true
}

func (s *seriesSet) At() storage.Series { return s.cur }
func (s *seriesSet) Err() error         { return s.stream.Err() }
func (s *seriesSet) Warnings() annotations.Annotations {
	var a annotations.Annotations
	for _, w := range s.stream.Warnings() {
		a.Add(errors.New(w))
	}
	return a
}

type series struct {
	lset     labels.Labels
	replicas [][]*storepb.AggrChunk
	aggr     []bool // the replica's source sent downsampled chunks: read with newAggrListIterator
	set      *seriesSet

	// Decode-ahead state, guarded by set.pf.mu.
	idx   int
	state uint8
	ahead *decoded
}

func (s *series) Labels() labels.Labels { return s.lset }

// Iterator returns the series' samples: decoded ahead when the prefetcher has them,
// else decoded as they are read.
func (s *series) Iterator(reuse chunkenc.Iterator) chunkenc.Iterator {
	pf := s.set.pf
	if pf == nil {
		return s.directIterator()
	}
	b, _ := reuse.(*bufferedIterator)
	if b != nil {
		b.releaseBuffer() // the engine passes the iterator it is done with
	}
	d := pf.take(s)
	if d == nil {
		return s.directIterator()
	}
	if b == nil {
		b = &bufferedIterator{}
	}
	b.reset(pf, d)
	return b
}

// directIterator decodes and merges the series' chunks as the samples are read.
func (s *series) directIterator() chunkenc.Iterator {
	its := make([]chunkenc.Iterator, len(s.replicas))
	for i, r := range s.replicas {
		if i < len(s.aggr) && s.aggr[i] {
			its[i] = newAggrListIterator(r, s.set.mint, s.set.maxt, s.set.fn, s.set.counts)
			continue
		}
		its[i] = newChunkListIterator(r, s.set.mint, s.set.maxt, s.set.pool)
		if s.set.counts {
			its[i] = &countingIterator{Iterator: its[i]}
		}
	}
	switch {
	case len(its) == 1:
		return its[0]
	case s.set.dedup:
		return dedup.NewIterator(its, s.set.opts)
	default:
		// Same labels without dedup: the same data reached us twice (for example from a
		// sidecar and a store gateway); a chain merge drops the duplicates.
		return storage.ChainSampleIteratorFromIterators(nil, its)
	}
}

// LabelNames fans out to the matching endpoints and merges the names.
func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.fanOutLabels(ctx, ms, func(ctx context.Context, ep Endpoint) ([]string, []string, error) {
		r, err := ep.Client.LabelNames(ctx, &storepb.LabelNamesRequest{
			Start: q.mint, End: q.maxt, Matchers: storeapi.MatchersToProto(ms), Limit: limitOf(hints),
			PartialResponseStrategy: q.strategy(), WithoutReplicaLabels: q.replicaLabelsToStrip(),
		})
		names := r.GetNames()
		if q.dedupEnabled() && !ep.WithoutReplicaLabels {
			names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(q.opts.ReplicaLabels, n) })
		}
		return names, r.GetWarnings(), err
	}, limitOf(hints))
}

// LabelValues fans out to the matching endpoints and merges the values.
func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if q.dedupEnabled() && slices.Contains(q.opts.ReplicaLabels, name) {
		return nil, nil, nil
	}
	return q.fanOutLabels(ctx, ms, func(ctx context.Context, ep Endpoint) ([]string, []string, error) {
		r, err := ep.Client.LabelValues(ctx, &storepb.LabelValuesRequest{
			Label: name, Start: q.mint, End: q.maxt, Matchers: storeapi.MatchersToProto(ms), Limit: limitOf(hints),
			PartialResponseStrategy: q.strategy(), WithoutReplicaLabels: q.replicaLabelsToStrip(),
		})
		return r.GetValues(), r.GetWarnings(), err
	}, limitOf(hints))
}

func (q *querier) replicaLabelsToStrip() []string {
	if q.dedupEnabled() {
		return q.opts.ReplicaLabels
	}
	return nil
}

func limitOf(h *storage.LabelHints) int64 {
	if h == nil {
		return 0
	}
	return int64(h.Limit)
}

type labelCall func(ctx context.Context, ep Endpoint) (values, warnings []string, err error)

func (q *querier) fanOutLabels(ctx context.Context, ms []*labels.Matcher, call labelCall, limit int64) ([]string, annotations.Annotations, error) {
	eps, problems := q.proxy.Select(q.mint, q.maxt, ms, q.opts.StoreMatchers)
	var (
		mu       sync.Mutex
		all      []string
		warnings annotations.Annotations
		firstErr error
		wg       sync.WaitGroup
	)
	for _, p := range problems {
		warnings.Add(errors.New(p))
	}
	for _, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := q.proxy.callContext(ctx)
			defer cancel()
			vals, ws, err := call(cctx, ep)
			mu.Lock()
			defer mu.Unlock()
			for _, w := range ws {
				warnings.Add(errors.New(w))
			}
			if err != nil {
				err = fmt.Errorf("endpoint %s: %w", ep.Addr, err)
				if !q.opts.PartialResponse && firstErr == nil {
					firstErr = err
				}
				warnings.Add(err)
				return
			}
			all = append(all, vals...)
		}()
	}
	wg.Wait()
	if err := requestDone(ctx, "looking up labels"); err != nil {
		return nil, warnings, err
	}
	if firstErr != nil {
		return nil, warnings, firstErr
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if limit > 0 && int64(len(all)) > limit {
		all = all[:limit]
	}
	return all, warnings, nil
}

// Close implements storage.Querier: it stops the decode-ahead workers.
func (q *querier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range q.prefetchers {
		p.close()
	}
	q.prefetchers = nil
	return nil
}

func warningStrings(a annotations.Annotations) []string {
	out := make([]string, 0, len(a))
	for _, err := range a {
		out = append(out, err.Error())
	}
	slices.Sort(out)
	return out
}

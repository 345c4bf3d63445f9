package query

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Proxy fans a Series request out to every matching endpoint and merges their sorted
// streams into one sorted stream, keeping track of which endpoint sent which chunks.
type Proxy struct {
	endpoints       *EndpointSet
	responseTimeout time.Duration
	logger          *slog.Logger
	limits          storeapi.RequestLimits
	hedge           HedgeOptions
}

// NewProxy returns a proxy over the endpoint set. responseTimeout bounds the wait for
// each frame from an endpoint (0 = no bound beyond the request's own deadline).
func NewProxy(endpoints *EndpointSet, responseTimeout time.Duration, logger *slog.Logger) *Proxy {
	return &Proxy{endpoints: endpoints, responseTimeout: responseTimeout, logger: logger}
}

// WithLimits bounds each Series request: the series, samples and label and chunk bytes
// received from all endpoints together. Over a bound the request fails with
// ResourceExhausted, with partial response too: the bounds keep the querier's memory
// from growing with the size of a query.
func (p *Proxy) WithLimits(l storeapi.RequestLimits) *Proxy {
	p.limits = l
	return p
}

// WithHedging drops a replica that answers too long after its siblings (see hedge.go).
func (p *Proxy) WithHedging(o HedgeOptions) *Proxy {
	p.hedge = o
	return p
}

// MergedSeries is one label set and, per endpoint that sent it, that endpoint's chunks.
type MergedSeries struct {
	Labels  []*storepb.Label
	Sources [][]*storepb.AggrChunk
}

// frameBuffer is how many series each endpoint may have in flight: it hides network
// latency while bounding memory per request.
const frameBuffer = 64

type frame struct {
	series *storepb.Series
}

// endpointStream receives one endpoint's Series stream on its own goroutine.
type endpointStream struct {
	addr     string
	ch       chan frame
	cur      *storepb.Series
	done     bool
	err      error // set before ch is closed
	warnings []string
	// hedged says why the stream was cut short by hedging (set before ch is closed);
	// answered tells the hedger the endpoint answered.
	hedged   string
	answered func()
	told     bool // answered was called (pump goroutine only)
	idx      int  // position in MergeStream.streams
}

// markAnswered tells the hedger, once, that the endpoint answered.
func (es *endpointStream) markAnswered() {
	if !es.told && es.answered != nil {
		es.told = true
		es.answered()
	}
}

// Select returns the endpoints a request must go to, and warnings for endpoints that are
// down.
func (p *Proxy) Select(mint, maxt int64, ms []*labels.Matcher, storeMatchers [][]*labels.Matcher) ([]Endpoint, []string) {
	eps, problems := p.endpoints.Healthy()
	out := eps[:0]
	for _, ep := range eps {
		if ep.Matches(mint, maxt, ms) && addressMatches(ep.Addr, storeMatchers) {
			out = append(out, ep)
		}
	}
	return out, problems
}

func addressMatches(addr string, sets [][]*labels.Matcher) bool {
	if len(sets) == 0 {
		return true
	}
	for _, set := range sets {
		ok := true
		for _, m := range set {
			if m.Name == "__address__" && !m.Matches(addr) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Series starts the fan-out. The returned stream must be closed.
func (p *Proxy) Series(ctx context.Context, req *storepb.SeriesRequest, storeMatchers [][]*labels.Matcher) (*MergeStream, error) {
	ms, err := storeapi.MatchersFromProto(req.GetMatchers())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	eps, problems := p.Select(req.GetMinTime(), req.GetMaxTime(), ms, storeMatchers)
	m := &MergeStream{reqCtx: ctx, abort: req.GetPartialResponseStrategy() == storepb.PartialResponseStrategy_ABORT}
	ctx, m.cancel = context.WithCancel(ctx)
	m.warnings = append(m.warnings, problems...)
	lim := storeapi.NewLimiter(p.limits)
	ctxs := make([]context.Context, len(eps))
	cancels := make([]context.CancelCauseFunc, len(eps))
	for i := range eps {
		ctxs[i], cancels[i] = context.WithCancelCause(ctx)
	}
	if p.hedge.Min > 0 && len(req.GetWithoutReplicaLabels()) > 0 {
		if groups := replicaGroups(eps, req.GetWithoutReplicaLabels()); slices.ContainsFunc(groups, func(g int) bool { return g >= 0 }) {
			m.hedger = newHedger(p.hedge, groups, coverage(eps, groups, req.GetMinTime(), req.GetMaxTime()), cancels)
		}
	}
	for i, ep := range eps {
		es := &endpointStream{addr: ep.Addr, ch: make(chan frame, frameBuffer), answered: func() { m.hedger.answer(i) }, idx: i}
		m.streams = append(m.streams, es)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer cancels[i](nil)
			p.pump(ctxs[i], ep, req, es, lim)
		}()
	}
	return m, nil
}

// pump copies one endpoint's stream into its channel, enforcing the response timeout.
func (p *Proxy) pump(ctx context.Context, ep Endpoint, req *storepb.SeriesRequest, es *endpointStream, lim *storeapi.Limiter) {
	defer close(es.ch)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut atomic.Bool
	progress, pause := func() {}, func() {}
	if p.responseTimeout > 0 {
		t := time.AfterFunc(p.responseTimeout, func() { timedOut.Store(true); cancel() })
		defer t.Stop()
		progress = func() { t.Reset(p.responseTimeout) }
		pause = func() { t.Stop() }
	}
	es.err = p.recv(ctx, ep, req, es, lim, progress, pause)
	if es.err == nil {
		es.markAnswered()
	}
	if cause := context.Cause(ctx); es.err != nil && errors.Is(cause, errHedged) {
		// A sibling replica answered; its data stands in for this one's.
		es.hedged, es.err = cause.Error(), nil
		return
	}
	if es.err != nil && timedOut.Load() {
		es.err = fmt.Errorf("no response within --store.response-timeout=%s", p.responseTimeout)
	}
	if es.err != nil {
		es.err = fmt.Errorf("endpoint %s: %w", ep.Addr, es.err)
	}
}

// recv forwards the endpoint's series. The response timeout only runs while waiting on
// the endpoint: pause stops it while the merge is slow to take a series, progress
// restarts it.
func (p *Proxy) recv(ctx context.Context, ep Endpoint, req *storepb.SeriesRequest, es *endpointStream, lim *storeapi.Limiter, progress, pause func()) error {
	st, err := ep.Client.Series(ctx, req)
	if err != nil {
		return err
	}
	defer st.Close()
	if len(req.GetWithoutReplicaLabels()) > 0 && !ep.WithoutReplicaLabels {
		return p.recvStripping(ctx, st, req.GetWithoutReplicaLabels(), es, lim, progress, pause)
	}
	for st.Next() {
		es.markAnswered()
		if err := lim.Add(st.At()); err != nil {
			return err
		}
		pause()
		select {
		case es.ch <- frame{series: st.At()}:
		case <-ctx.Done():
			return ctx.Err()
		}
		progress()
	}
	es.warnings = st.Warnings()
	return st.Err()
}

// MergeStream is the k-way merge of endpoint streams, sorted by labels. Series with equal
// labels from several endpoints (replicas once replica labels are stripped, or the same
// data from a sidecar and a store gateway) become one MergedSeries.
type MergeStream struct {
	streams []*endpointStream
	// reqCtx is the request's context: once it is done, an endpoint that failed is a
	// failed request, never a partial answer.
	reqCtx   context.Context
	cancel   context.CancelFunc
	hedger   *hedger
	wg       sync.WaitGroup
	abort    bool
	started  bool
	cur      MergedSeries
	heap     streamHeap        // the streams with a current series
	same     []*endpointStream // scratch: the streams of the current merged series
	warnings []string
	err      error
}

// Next advances to the next merged series.
func (m *MergeStream) Next() bool {
	if m.err != nil {
		return false
	}
	if !m.started {
		m.started = true
		for _, s := range m.streams {
			if m.advance(s) {
				m.heap = append(m.heap, s)
			}
		}
		heap.Init(&m.heap)
	}
	if m.err != nil || !m.nextFromHeap() {
		return false
	}
	return m.err == nil
}

// advance reads the endpoint's next series; false when it is exhausted.
func (m *MergeStream) advance(s *endpointStream) bool {
	f, ok := <-s.ch
	if ok {
		if s.cur != nil && storeapi.CompareLabels(f.series.Labels, s.cur.Labels) < 0 {
			// The merge relies on sorted input; a misbehaving endpoint must not corrupt results.
			// s.err belongs to the pump goroutine until the channel closes: set m.err only.
			m.err = fmt.Errorf("endpoint %s sent series out of order: %v after %v", s.addr,
				storeapi.LabelsFromProto(f.series.Labels), storeapi.LabelsFromProto(s.cur.Labels))
			return false
		}
		s.cur = f.series
		return true
	}
	s.done, s.cur = true, nil
	m.warnings = append(m.warnings, s.warnings...)
	if s.hedged != "" { // never an error: the replica's siblings answered for it
		m.warnings = append(m.warnings, fmt.Sprintf("endpoint %s: %s; its replicas' data is used", s.addr, s.hedged))
	}
	if s.err != nil {
		if err := requestDone(m.reqCtx, "waiting for endpoint "+s.addr); err != nil && m.err == nil {
			m.err = err
			m.Close()
			return false
		}
		if m.abort || status.Code(s.err) == codes.ResourceExhausted {
			if m.err == nil { // the first failure is the cause; later ones follow from Close
				m.err = s.err
			}
			m.Close()
		} else {
			m.warnings = append(m.warnings, s.err.Error())
		}
	}
	if m.abort && len(s.warnings) > 0 && m.err == nil {
		m.err = fmt.Errorf("endpoint %s: %s", s.addr, s.warnings[0])
	}
	return false
}

// At returns the current merged series; it is valid until the next call to Next.
func (m *MergeStream) At() *MergedSeries { return &m.cur }

// Warnings returns the warnings collected so far (endpoint failures with partial
// response, endpoint warnings, unhealthy endpoints).
func (m *MergeStream) Warnings() []string {
	out := make([]string, 0, len(m.warnings))
	seen := make(map[string]struct{}, len(m.warnings))
	for _, w := range m.warnings {
		if _, dup := seen[w]; !dup {
			seen[w] = struct{}{}
			out = append(out, w)
		}
	}
	return out
}

// Err returns the error that ended the stream.
func (m *MergeStream) Err() error { return m.err }

// Close cancels every endpoint stream and waits for their goroutines.
func (m *MergeStream) Close() {
	m.hedger.stop()
	m.cancel()
	for _, s := range m.streams {
		for range s.ch { // drain so pumps can exit
		}
	}
	m.wg.Wait()
}

// callContext bounds a unary call to an endpoint by the response timeout.
func (p *Proxy) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.responseTimeout > 0 {
		return context.WithTimeout(ctx, p.responseTimeout)
	}
	return context.WithCancel(ctx)
}

// recvStripping serves an endpoint that cannot strip replica labels itself (older
// Thanos): the labels are removed here, which changes the order, so the whole response is
// collected and re-sorted before it is forwarded, as Thanos does for such endpoints.
func (p *Proxy) recvStripping(ctx context.Context, st *storeapi.SeriesStream, replicas []string, es *endpointStream, lim *storeapi.Limiter, progress, pause func()) error {
	var all []*storepb.Series
	for st.Next() {
		es.markAnswered()
		progress()
		sr := st.At()
		if err := lim.Add(sr); err != nil {
			return err
		}
		sr.Labels = slices.DeleteFunc(sr.Labels, func(l *storepb.Label) bool { return slices.Contains(replicas, l.Name) })
		all = append(all, sr)
	}
	es.warnings = st.Warnings()
	if err := st.Err(); err != nil {
		return err
	}
	slices.SortStableFunc(all, func(a, b *storepb.Series) int { return storeapi.CompareLabels(a.Labels, b.Labels) })
	pause()
	for _, sr := range all {
		select {
		case es.ch <- frame{series: sr}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

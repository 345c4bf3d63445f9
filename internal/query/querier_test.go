package query

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

var testEngine = promql.NewEngine(promql.EngineOpts{
	Logger: discard, MaxSamples: 1_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
})

const (
	hour    = int64(time.Hour / time.Millisecond)
	gapFrom = 20 * 60_000 // r0 has no samples in [20m, 30m)
	gapTo   = 30 * 60_000
)

// haPair starts two replicas of one Prometheus (external labels cluster=c1,
// replica=r0|r1) scraping up{job="node"} every 15s for an hour; r0 is 1 and misses
// [20m, 30m), r1 is 2 and scrapes 5s later. r1 also has only_r1{job="node"}.
func haPair(t testing.TB, noWRL bool) (r0, r1 *fakeStore, addrs []string, qf QueryableFactory) {
	up := labels.FromStrings("__name__", "up", "job", "node")
	inGap := func(t int64) bool { return t >= gapFrom && t < gapTo }
	s0 := genSamples(0, hour, 15_000, func(int64) float64 { return 1 }, inGap)
	s1 := genSamples(5_000, hour, 15_000, func(int64) float64 { return 2 }, nil)
	r0 = newFakeStore(labels.FromStrings("cluster", "c1", "replica", "r0"), fakeSeries{lset: up, chunks: chunked(t, s0, 120)})
	r1 = newFakeStore(labels.FromStrings("cluster", "c1", "replica", "r1"), fakeSeries{lset: up, chunks: chunked(t, s1, 120)},
		fakeSeries{lset: labels.FromStrings("__name__", "only_r1", "job", "node"), chunks: chunked(t, s1, 120)})
	r0.noWRL, r1.noWRL = noWRL, noWRL
	addrs = []string{serveFake(t, r0), serveFake(t, r1)}
	set := newSet(t, addrs...)
	mustHealthy(t, set, 2)
	return r0, r1, addrs, NewQueryableFactory(NewProxy(set, 0, discard), dedup.GapFill)
}

var dedupOn = Options{Dedup: true, ReplicaLabels: []string{"replica"}}

func instant(t *testing.T, qf QueryableFactory, opts Options, q string, ts int64) promql.Vector {
	t.Helper()
	qry, err := testEngine.NewInstantQuery(context.Background(), qf(opts), nil, q, time.UnixMilli(ts))
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	v, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(v) // Close recycles the result's memory
}

func rangeQuery(t *testing.T, qf QueryableFactory, opts Options, q string, start, end, step int64) promql.Matrix {
	t.Helper()
	qry, err := testEngine.NewRangeQuery(context.Background(), qf(opts), promql.NewPrometheusQueryOpts(false, 30*time.Second, nil),
		q, time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	m, err := res.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	out := make(promql.Matrix, len(m)) // Close recycles the result's memory
	for i, s := range m {
		out[i] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats), Histograms: slices.Clone(s.Histograms)}
	}
	return out
}

func TestQueryDedupInstant(t *testing.T) {
	_, _, _, qf := haPair(t, false)
	v := instant(t, qf, dedupOn, "up", 10*60_000)
	if len(v) != 1 || !labels.Equal(v[0].Metric, labels.FromStrings("__name__", "up", "cluster", "c1", "job", "node")) {
		t.Fatalf("dedup: %v", v)
	}
	v = instant(t, qf, Options{ReplicaLabels: []string{"replica"}}, "up", 10*60_000)
	if len(v) != 2 || v[0].Metric.Get("replica") != "r0" || v[1].Metric.Get("replica") != "r1" {
		t.Fatalf("no dedup: %v", v)
	}
	// Dedup without replica labels is no dedup.
	if v = instant(t, qf, Options{Dedup: true}, "up", 10*60_000); len(v) != 2 {
		t.Fatalf("dedup without replica labels: %v", v)
	}
}

func TestQueryDedupFillsGap(t *testing.T) {
	_, _, _, qf := haPair(t, false)
	const step = 60_000
	m := rangeQuery(t, qf, dedupOn, "up", 0, hour, step)
	if len(m) != 1 || len(m[0].Floats) != int(hour/step)+1 {
		t.Fatalf("dedup range: %d series, %v", len(m), m)
	}
	for _, p := range m[0].Floats {
		switch {
		case p.T < gapFrom && p.F != 1:
			t.Fatalf("before the gap at %d: %v, want r0's 1", p.T, p.F)
		case p.T >= gapFrom+step && p.T < gapTo && p.F != 2:
			t.Fatalf("in the gap at %d: %v, want r1's 2", p.T, p.F)
		}
	}
	// Without dedup r0's series really has the gap.
	m = rangeQuery(t, qf, Options{}, `up{replica="r0"}`, 0, hour, step)
	if len(m) != 1 || len(m[0].Floats) >= int(hour/step)+1-8 {
		t.Fatalf("r0 alone: %d points", len(m[0].Floats))
	}
}

func TestQueryLabelNamesAndValues(t *testing.T) {
	_, _, addrs, qf := haPair(t, false)
	ctx := context.Background()
	check := func(opts Options, wantNames, wantReplicas, wantMetrics []string) {
		t.Helper()
		q, err := qf(opts).Querier(0, hour)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		names, ws, err := q.LabelNames(ctx, nil)
		if err != nil || len(ws) != 0 || !slices.Equal(names, wantNames) {
			t.Fatalf("names = %v (%v, %v), want %v", names, ws, err, wantNames)
		}
		reps, _, err := q.LabelValues(ctx, "replica", nil)
		if err != nil || !slices.Equal(reps, wantReplicas) {
			t.Fatalf("replica values = %v (%v), want %v", reps, err, wantReplicas)
		}
		metrics, _, err := q.LabelValues(ctx, "__name__", nil)
		if err != nil || !slices.Equal(metrics, wantMetrics) {
			t.Fatalf("metric names = %v (%v), want %v", metrics, err, wantMetrics)
		}
	}
	check(dedupOn, []string{"__name__", "cluster", "job"}, nil, []string{"only_r1", "up"})
	check(Options{ReplicaLabels: []string{"replica"}}, []string{"__name__", "cluster", "job", "replica"}, []string{"r0", "r1"}, []string{"only_r1", "up"})
	// storeMatch[] restricts label calls too.
	check(Options{StoreMatchers: [][]*labels.Matcher{{eq("__address__", addrs[0])}}},
		[]string{"__name__", "cluster", "job", "replica"}, []string{"r0"}, []string{"up"})
}

func TestQueryStoreMatchers(t *testing.T) {
	r0, r1, addrs, qf := haPair(t, false)
	opts := Options{StoreMatchers: [][]*labels.Matcher{{eq("__address__", addrs[1])}}}
	v := instant(t, qf, opts, `{job="node"}`, 10*60_000)
	if len(v) != 2 || v[0].Metric.Get("replica") != "r1" || v[1].Metric.Get("replica") != "r1" {
		t.Fatalf("storeMatch r1: %v", v)
	}
	if len(r0.seriesReqs()) != 0 || len(r1.seriesReqs()) != 1 {
		t.Fatalf("requests r0 %d, r1 %d", len(r0.seriesReqs()), len(r1.seriesReqs()))
	}
	// OR across storeMatch[] sets.
	opts.StoreMatchers = append(opts.StoreMatchers, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__address__", addrs[0])})
	if v = instant(t, qf, opts, "up", 10*60_000); len(v) != 2 {
		t.Fatalf("storeMatch r0 or r1: %v", v)
	}
}

func lastReq(t *testing.T, f *fakeStore) *storepb.SeriesRequest {
	t.Helper()
	reqs := f.seriesReqs()
	if len(reqs) == 0 {
		t.Fatal("no request")
	}
	return reqs[len(reqs)-1]
}

func TestQuerySeriesRequestHints(t *testing.T) {
	r0, _, _, qf := haPair(t, false)
	ctx := context.Background()
	sel := func(opts Options, hints *storage.SelectHints) *storepb.SeriesRequest {
		t.Helper()
		q, err := qf(opts).Querier(100, 200)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		ss := q.Select(ctx, false, hints, eq("__name__", "up"))
		for ss.Next() {
		}
		if ss.Err() != nil {
			t.Fatal(ss.Err())
		}
		return lastReq(t, r0)
	}

	opts := dedupOn
	opts.MaxSourceResolution = 300_000
	req := sel(opts, &storage.SelectHints{Start: 1000, End: 2000, Step: 15_000, Func: "max_over_time", Range: 60_000, By: true, Grouping: []string{"job"}})
	h := req.GetQueryHints()
	if req.MinTime != 1000 || req.MaxTime != 2000 || req.SkipChunks || req.MaxResolutionWindow != 300_000 ||
		!slices.Equal(req.WithoutReplicaLabels, []string{"replica"}) || !slices.Equal(req.Aggregates, []storepb.Aggr{storepb.Aggr_MAX}) ||
		req.PartialResponseStrategy != storepb.PartialResponseStrategy_ABORT ||
		h.GetStepMillis() != 15_000 || h.GetFunc().GetName() != "max_over_time" || h.GetRange().GetMillis() != 60_000 ||
		!h.GetGrouping().GetBy() || !slices.Equal(h.GetGrouping().GetLabels(), []string{"job"}) {
		t.Fatalf("request = %v", req)
	}
	if len(req.Matchers) != 1 || req.Matchers[0].Name != "__name__" || req.Matchers[0].Value != "up" {
		t.Fatalf("matchers = %v", req.Matchers)
	}

	req = sel(Options{PartialResponse: true}, &storage.SelectHints{Start: 1000, End: 2000, Func: "series"})
	if !req.SkipChunks || req.WithoutReplicaLabels != nil || req.PartialResponseStrategy != storepb.PartialResponseStrategy_WARN {
		t.Fatalf("series request = %v", req)
	}
	req = sel(Options{}, nil)
	if req.MinTime != 100 || req.MaxTime != 200 || req.QueryHints != nil ||
		!slices.Equal(req.Aggregates, []storepb.Aggr{storepb.Aggr_COUNT, storepb.Aggr_SUM}) {
		t.Fatalf("request without hints = %v", req)
	}

	// Through PromQL: the function, step and range reach the store.
	start, end := int64(10*60_000), int64(40*60_000)
	m := rangeQuery(t, qf, dedupOn, "rate(up[5m])", start, end, 60_000)
	if len(m) != 1 {
		t.Fatalf("rate: %v", m)
	}
	req = lastReq(t, r0)
	h = req.GetQueryHints()
	if h.GetFunc().GetName() != "rate" || h.GetStepMillis() != 60_000 || h.GetRange().GetMillis() != 300_000 ||
		!slices.Equal(req.Aggregates, []storepb.Aggr{storepb.Aggr_COUNTER}) || req.MaxTime != end ||
		req.MinTime < start-300_000 || req.MinTime > start-300_000+1 || !slices.Equal(req.WithoutReplicaLabels, []string{"replica"}) {
		t.Fatalf("rate request = %v", req)
	}
}

// Without dedup, one series arriving from two endpoints (a sidecar and a store gateway
// holding the same data) is merged, not counted twice.
func TestQuerySameSeriesFromTwoEndpoints(t *testing.T) {
	ext := labels.FromStrings("cluster", "c1")
	up := labels.FromStrings("__name__", "up")
	ss := genSamples(0, hour, 15_000, tenth, nil)
	a := newFakeStore(ext, fakeSeries{lset: up, chunks: chunked(t, ss, 120)})
	b := newFakeStore(ext, fakeSeries{lset: up, chunks: chunked(t, ss[:100], 50)}) // different chunking
	set := newSet(t, serveFake(t, a), serveFake(t, b))
	qf := NewQueryableFactory(NewProxy(set, 0, discard), dedup.GapFill)
	v := instant(t, qf, Options{}, "count_over_time(up[2h])", hour)
	if len(v) != 1 || v[0].F != float64(len(ss)) {
		t.Fatalf("count_over_time = %v, want %d", v, len(ss))
	}
}

// An endpoint that does not support without_replica_labels (older Thanos) returns series
// with replica labels; the proxy strips and re-sorts them itself, as Thanos does
// (thanos-compat.md §1.1), so dedup still works.
func TestQueryDedupEndpointWithoutReplicaLabelSupport(t *testing.T) {
	r0, _, _, qf := haPair(t, true)
	if v := instant(t, qf, dedupOn, "up", 10*60_000); len(v) != 1 || v[0].Metric.Has("replica") {
		t.Fatalf("dedup over endpoints without without_replica_labels support: %v", v)
	}
	if got := r0.seriesReqs()[0].WithoutReplicaLabels; !slices.Equal(got, []string{"replica"}) {
		t.Fatalf("request without_replica_labels = %v", got)
	}
	m := rangeQuery(t, qf, dedupOn, `{job="node"}`, 0, hour, 60_000)
	if len(m) != 2 || m[0].Metric.Get("__name__") != "only_r1" || len(m[1].Floats) != int(hour/60_000)+1 {
		t.Fatalf("dedup range over endpoints without support:\n%s", summary(m))
	}
}

// BUG (querier.go, querier.LabelNames): with dedup, label names from an endpoint that does
// not support without_replica_labels still include the replica label, although Select now
// strips it for such endpoints and LabelValues(replica) is empty.
func TestQueryLabelNamesEndpointWithoutReplicaLabelSupport(t *testing.T) {
	_, _, _, qf := haPair(t, true)
	q, err := qf(dedupOn).Querier(0, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	names, _, err := q.LabelNames(context.Background(), nil)
	if err != nil || !slices.Equal(names, []string{"__name__", "cluster", "job"}) {
		t.Fatalf("label names with dedup = %v, %v", names, err)
	}
}

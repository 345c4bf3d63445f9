package query

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi"
)

const unreachable = "127.0.0.1:1"

func TestEndpointSetHealthAndStores(t *testing.T) {
	ext := labels.FromStrings("cluster", "a", "replica", "r0")
	good := newFakeStore(ext, fakeSeries{lset: labels.FromStrings("__name__", "up")})
	good.minT, good.maxT = 1000, 5000
	noStore := newFakeStore(labels.FromStrings("cluster", "b"), fakeSeries{lset: labels.FromStrings("__name__", "up")})
	noStore.noStore, noStore.component = true, "query-frontend"
	goodAddr, noStoreAddr := serveFake(t, good), serveFake(t, noStore)

	set := newSet(t, goodAddr, unreachable, noStoreAddr)
	eps, problems := set.Healthy()
	if len(eps) != 1 {
		t.Fatalf("healthy = %v, want only %s", eps, goodAddr)
	}
	ep := eps[0]
	if ep.Addr != goodAddr || ep.MinTime != 1000 || ep.MaxTime != 5000 || ep.ComponentType != "sidecar" ||
		!ep.WithoutReplicaLabels || len(ep.LabelSets) != 1 || !labels.Equal(ep.LabelSets[0], ext) {
		t.Fatalf("endpoint = %+v", ep)
	}
	if len(problems) != 2 || !strings.Contains(problems[0]+problems[1], unreachable) ||
		!strings.Contains(problems[0]+problems[1], noStoreAddr) || !strings.Contains(problems[0]+problems[1], "does not serve the StoreAPI") {
		t.Fatalf("problems = %q", problems)
	}

	stores := set.Stores()
	if sc := stores["sidecar"]; len(sc) != 1 || sc[0].Name != goodAddr || sc[0].LastError != nil || sc[0].LastCheck.IsZero() ||
		len(sc[0].LabelSets) != 1 || sc[0].LabelSets[0]["replica"] != "r0" || sc[0].MinTime != 1000 {
		t.Fatalf("sidecar stores = %+v", sc)
	}
	var names []string
	for _, s := range stores["unknown"] {
		if s.LastError == nil {
			t.Fatalf("%s: no last error", s.Name)
		}
		names = append(names, s.Name)
	}
	if want := []string{unreachable, noStoreAddr}; !sameSet(names, want) {
		t.Fatalf("unknown stores = %v, want %v", names, want)
	}

	// The endpoint without StoreAPI is never asked for series.
	p := NewProxy(set, 0, discard)
	ms, err := p.Series(context.Background(), seriesReq(eq("__name__", "up")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(ms); len(got) != 1 || !labels.Equal(got[0].lset, labels.FromStrings("__name__", "up", "cluster", "a", "replica", "r0")) {
		t.Fatalf("series = %v", got)
	}
	if len(noStore.seriesReqs()) != 0 || len(good.seriesReqs()) != 1 {
		t.Fatalf("requests: no-store %d, good %d", len(noStore.seriesReqs()), len(good.seriesReqs()))
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestEndpointSetTurnsUnhealthyAndBack(t *testing.T) {
	f := newFakeStore(labels.FromStrings("replica", "r0"))
	set := newSet(t, serveFake(t, f))
	mustHealthy(t, set, 1)

	f.infoFail.Store(true)
	set.Update(context.Background())
	_, problems := set.Healthy()
	mustHealthy(t, set, 0)
	if len(problems) != 1 || !strings.Contains(problems[0], "not ready") {
		t.Fatalf("problems = %q", problems)
	}
	if st := set.Stores()["sidecar"]; len(st) != 1 || st[0].LastError == nil || len(st[0].LabelSets) != 1 {
		t.Fatalf("stores while unhealthy = %+v", st)
	}

	f.infoFail.Store(false)
	set.Update(context.Background())
	mustHealthy(t, set, 1)
}

// clock is a settable time source for the endpoint set.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestEndpointSetDropsUnhealthyAfterTimeout(t *testing.T) {
	f := newFakeStore(labels.FromStrings("replica", "r0"))
	goodAddr := serveFake(t, f)
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	set := NewEndpointSet(EndpointSetConfig{
		Addresses: func() []string { return []string{goodAddr, unreachable} }, DialOptions: storeapi.DialOptions(nil, ""),
		InfoTimeout: 5 * time.Second, UnhealthyTimeout: time.Minute,
	}, discard, nil)
	set.now = clk.Now
	t.Cleanup(set.Close)
	known := func() []string {
		var out []string
		for _, l := range set.Stores() {
			for _, s := range l {
				out = append(out, s.Name)
			}
		}
		return out
	}
	ctx := context.Background()

	set.Update(ctx)
	if got := known(); !sameSet(got, []string{goodAddr, unreachable}) {
		t.Fatalf("known = %v", got)
	}
	clk.Add(30 * time.Second)
	set.Update(ctx) // good is last healthy at +30s
	if got := known(); !sameSet(got, []string{goodAddr, unreachable}) {
		t.Fatalf("after 30s known = %v", got)
	}
	f.infoFail.Store(true)
	clk.Add(31 * time.Second) // unreachable: 61s since added; good: 31s since last healthy
	set.Update(ctx)
	if got := known(); !sameSet(got, []string{goodAddr}) {
		t.Fatalf("after 61s known = %v, want only %s", got, goodAddr)
	}
	if _, problems := set.Healthy(); len(problems) != 1 || strings.Contains(problems[0], unreachable) {
		t.Fatalf("problems = %q", problems)
	}
	clk.Add(30 * time.Second) // good: unhealthy 61s since it was last healthy
	set.Update(ctx)
	// The unreachable address is still discovered, so it came back as a new endpoint.
	if got := known(); !sameSet(got, []string{unreachable}) {
		t.Fatalf("after 91s known = %v, want only the re-added %s", got, unreachable)
	}
}

func TestEndpointSetDropsUndiscovered(t *testing.T) {
	a := serveFake(t, newFakeStore(labels.FromStrings("replica", "r0")))
	b := serveFake(t, newFakeStore(labels.FromStrings("replica", "r1")))
	var mu sync.Mutex
	addrs := []string{a, b}
	set := NewEndpointSet(EndpointSetConfig{Addresses: func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(addrs)
	}, DialOptions: storeapi.DialOptions(nil, "")}, discard, nil)
	t.Cleanup(set.Close)
	set.Update(context.Background())
	mustHealthy(t, set, 2)

	mu.Lock()
	addrs = []string{b}
	mu.Unlock()
	set.Update(context.Background())
	eps, _ := set.Healthy()
	if len(eps) != 1 || eps[0].Addr != b {
		t.Fatalf("healthy = %+v, want only %s", eps, b)
	}
	if st := set.Stores()["sidecar"]; len(st) != 1 || st[0].Name != b {
		t.Fatalf("stores = %+v", st)
	}
}

func TestEndpointMatches(t *testing.T) {
	re := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchRegexp, n, v) }
	ne := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchNotEqual, n, v) }
	ls := labels.FromStrings
	for _, tc := range []struct {
		name       string
		sets       []labels.Labels
		mint, maxt int64
		ms         []*labels.Matcher
		want       bool
	}{
		{"time before", nil, 0, 999, nil, false},
		{"time after", nil, 2001, 3000, nil, false},
		{"time touches min", nil, 0, 1000, nil, true},
		{"time touches max", nil, 2000, 3000, nil, true},
		{"time inside", nil, 1500, 1600, nil, true},
		{"time covers", nil, 0, 3000, nil, true},
		{"ext equal", []labels.Labels{ls("cluster", "a", "replica", "r0")}, 0, 3000, []*labels.Matcher{eq("cluster", "a")}, true},
		{"ext mismatch", []labels.Labels{ls("cluster", "a", "replica", "r0")}, 0, 3000, []*labels.Matcher{eq("cluster", "b")}, false},
		{"ext regexp", []labels.Labels{ls("cluster", "a")}, 0, 3000, []*labels.Matcher{re("cluster", "a|b")}, true},
		{"ext regexp anchored", []labels.Labels{ls("cluster", "ab")}, 0, 3000, []*labels.Matcher{re("cluster", "a")}, false},
		{"ext not equal", []labels.Labels{ls("cluster", "a")}, 0, 3000, []*labels.Matcher{ne("cluster", "a")}, false},
		{"label absent from set", []labels.Labels{ls("cluster", "a")}, 0, 3000, []*labels.Matcher{eq("job", "x")}, true},
		{"absent and matching", []labels.Labels{ls("cluster", "a")}, 0, 3000, []*labels.Matcher{eq("job", "x"), eq("cluster", "a")}, true},
		{"absent and mismatching", []labels.Labels{ls("cluster", "a")}, 0, 3000, []*labels.Matcher{eq("job", "x"), eq("cluster", "c")}, false},
		{"empty set never prunes", []labels.Labels{labels.EmptyLabels()}, 0, 3000, []*labels.Matcher{eq("cluster", "b")}, true},
		{"OR across sets: second", []labels.Labels{ls("cluster", "a"), ls("cluster", "b")}, 0, 3000, []*labels.Matcher{eq("cluster", "b")}, true},
		{"OR across sets: none", []labels.Labels{ls("cluster", "a"), ls("cluster", "b")}, 0, 3000, []*labels.Matcher{eq("cluster", "c")}, false},
		{"OR with empty set", []labels.Labels{ls("cluster", "a"), labels.EmptyLabels()}, 0, 3000, []*labels.Matcher{eq("cluster", "c")}, true},
		{"labels ok, time not", []labels.Labels{ls("cluster", "a")}, 3000, 4000, []*labels.Matcher{eq("cluster", "a")}, false},
	} {
		ep := Endpoint{MinTime: 1000, MaxTime: 2000, LabelSets: tc.sets}
		if got := ep.Matches(tc.mint, tc.maxt, tc.ms); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}

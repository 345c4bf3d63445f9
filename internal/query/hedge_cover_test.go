package query

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// hedgeRequest is a deduplicated request with partial response off: hedging must never
// drop data that no sibling holds, since a hedged endpoint is only a warning.
func hedgeRequest(mint, maxt int64, ms ...*labels.Matcher) *storepb.SeriesRequest {
	req := seriesReq(ms...)
	req.MinTime, req.MaxTime = mint, maxt
	req.WithoutReplicaLabels = []string{"replica"}
	req.PartialResponseStrategy = storepb.PartialResponseStrategy_ABORT
	return req
}

func mergedNames(got []merged) []string {
	var out []string
	for _, m := range got {
		out = append(out, m.lset.Get("__name__")+"/"+m.lset.Get("i"))
	}
	slices.Sort(out)
	return out
}

// A store gateway serving the history of an HA pair carries the pair's external labels,
// but it is not a replica of the pair's sidecars: a slow store gateway must not be
// dropped when the sidecars answer first, or the history is silently missing.
func TestHedgingSparesStoreGatewayWithReplicaLabels(t *testing.T) {
	recent := int64(1_000_000)
	sideA := newFakeStore(labels.FromStrings("cluster", "c", "replica", "a"), numbered(t, "up", 3, 1, 0)...)
	sideB := newFakeStore(labels.FromStrings("cluster", "c", "replica", "b"), numbered(t, "up", 3, 1, 0)...)
	sideA.minT, sideB.minT = recent, recent
	store := newFakeStore(labels.FromStrings("cluster", "c", "replica", "a"), numbered(t, "hist", 2, 1, 0)...)
	store.component, store.minT, store.maxT = "store", 0, recent-1
	store.frameDelay = 400 * time.Millisecond // well past the 100ms hedge
	p := hedgedProxy(t, sideA, sideB, store)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := p.Series(ctx, hedgeRequest(0, math.MaxInt64, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "up|hist")), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := drainWithin(t, m, 5*time.Second)
	if m.Err() != nil {
		t.Fatalf("err %v", m.Err())
	}
	want := []string{"hist/00000", "hist/00001", "up/00000", "up/00001", "up/00002"}
	if names := mergedNames(got); !slices.Equal(names, want) {
		t.Fatalf("series %v, want %v (warnings %q)", names, want, m.Warnings())
	}
	if ws := m.Warnings(); len(ws) != 0 {
		t.Fatalf("warnings %q, want none", ws)
	}
}

// Store gateways that split a bucket by time have equal labels but hold different
// ranges: the slower one is waited for.
func TestHedgingSparesTimeShardedStores(t *testing.T) {
	old := newFakeStore(labels.FromStrings("cluster", "c"), numbered(t, "old", 2, 1, 0)...)
	old.component, old.minT, old.maxT = "store", 0, 999_999
	old.frameDelay = 400 * time.Millisecond
	fresh := newFakeStore(labels.FromStrings("cluster", "c"), numbered(t, "new", 2, 1, 0)...)
	fresh.component, fresh.minT, fresh.maxT = "store", 1_000_000, 2_000_000
	p := hedgedProxy(t, old, fresh)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := p.Series(ctx, hedgeRequest(0, 2_000_000, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "old|new")), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := drainWithin(t, m, 5*time.Second)
	if m.Err() != nil || len(m.Warnings()) != 0 {
		t.Fatalf("err %v, warnings %q", m.Err(), m.Warnings())
	}
	if names := mergedNames(got); !slices.Equal(names, []string{"new/00000", "new/00001", "old/00000", "old/00001"}) {
		t.Fatalf("series %v, want both shards", names)
	}
}

func TestStandsIn(t *testing.T) {
	const minute = int64(time.Minute / time.Millisecond)
	ep := func(mint, maxt int64) Endpoint { return Endpoint{MinTime: mint, MaxTime: maxt} }
	for _, tc := range []struct {
		name       string
		a, b       Endpoint
		mint, maxt int64
		want       bool
	}{
		{"sidecars, query after both starts", ep(100*minute, math.MaxInt64), ep(90*minute, math.MaxInt64), 200 * minute, 300 * minute, true},
		{"sidecar started seconds later", ep(100*minute+5000, math.MaxInt64), ep(100*minute, math.MaxInt64), 0, 300 * minute, true},
		{"sidecar started an hour later", ep(160*minute, math.MaxInt64), ep(100*minute, math.MaxInt64), 0, 300 * minute, false},
		{"later replica covered by earlier", ep(100*minute, math.MaxInt64), ep(160*minute, math.MaxInt64), 0, 300 * minute, true},
		{"history ends before the range", ep(0, 50*minute), ep(100*minute, math.MaxInt64), 200 * minute, 300 * minute, false},
		{"b holds nothing in range", ep(0, 50*minute), ep(0, 50*minute), 200 * minute, 300 * minute, true},
		{"time shards", ep(0, 99*minute), ep(100*minute, 200*minute), 0, 200 * minute, false},
	} {
		if got := standsIn(tc.a, tc.b, tc.mint, tc.maxt); got != tc.want {
			t.Errorf("%s: standsIn = %v, want %v", tc.name, got, tc.want)
		}
	}
}

package query

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func hedgedProxy(t *testing.T, fakes ...*fakeStore) *Proxy {
	p, _ := proxyOver(t, 0, fakes...)
	return p.WithHedging(HedgeOptions{Min: 100 * time.Millisecond, Factor: 2})
}

// A frozen replica is dropped shortly after its sibling answered; the answer is complete
// and only warns, with partial response off too.
func TestHedgingDropsFrozenReplica(t *testing.T) {
	for _, strategy := range []storepb.PartialResponseStrategy{storepb.PartialResponseStrategy_WARN, storepb.PartialResponseStrategy_ABORT} {
		t.Run(strategy.String(), func(t *testing.T) {
			frozen := newFakeStore(labels.FromStrings("cluster", "c", "replica", "a"), numbered(t, "up", 5, 1, 0)...)
			frozen.block, frozen.blockAfter = true, 0
			good := newFakeStore(labels.FromStrings("cluster", "c", "replica", "b"), numbered(t, "up", 5, 1, 0)...)
			p := hedgedProxy(t, frozen, good)
			req := seriesReq(eq("__name__", "up"))
			req.WithoutReplicaLabels = []string{"replica"}
			req.PartialResponseStrategy = strategy
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			m, err := p.Series(ctx, req, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := drainWithin(t, m, 5*time.Second)
			took := time.Since(start)
			if m.Err() != nil || len(got) != 5 {
				t.Fatalf("err %v, %d series; want the 5 of the replica that answered", m.Err(), len(got))
			}
			if ws := m.Warnings(); len(ws) != 1 || !strings.Contains(ws[0], "hedging") {
				t.Fatalf("warnings %q, want one saying the replica was dropped by hedging", ws)
			}
			if took > time.Second {
				t.Fatalf("took %s with a frozen replica, want about the 100ms hedge", took)
			}
		})
	}
}

// An endpoint without a replica sibling is never cut short: the request waits for it up
// to its own deadline.
func TestHedgingSparesEndpointsWithoutSiblings(t *testing.T) {
	frozen := newFakeStore(labels.FromStrings("cluster", "other", "replica", "a"), numbered(t, "up", 5, 1, 0)...)
	frozen.block, frozen.blockAfter = true, 0
	good := newFakeStore(labels.FromStrings("cluster", "c", "replica", "b"), numbered(t, "up", 5, 1, 0)...)
	p := hedgedProxy(t, frozen, good)
	req := seriesReq(eq("__name__", "up"))
	req.WithoutReplicaLabels = []string{"replica"}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	m, err := p.Series(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	drainWithin(t, m, 5*time.Second)
	if !errors.Is(m.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v, want the request's deadline: a lone endpoint is waited for", m.Err())
	}
}

// Without deduplication replicas are not interchangeable: no hedging.
func TestHedgingNeedsDeduplication(t *testing.T) {
	frozen := newFakeStore(labels.FromStrings("cluster", "c", "replica", "a"), numbered(t, "up", 5, 1, 0)...)
	frozen.block, frozen.blockAfter = true, 0
	good := newFakeStore(labels.FromStrings("cluster", "c", "replica", "b"), numbered(t, "up", 5, 1, 0)...)
	p := hedgedProxy(t, frozen, good)
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	m, err := p.Series(ctx, seriesReq(eq("__name__", "up")), nil)
	if err != nil {
		t.Fatal(err)
	}
	drainWithin(t, m, 5*time.Second)
	if !errors.Is(m.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline: no hedging without replica labels", m.Err())
	}
}

func TestReplicaGroups(t *testing.T) {
	ep := func(sets ...labels.Labels) Endpoint { return Endpoint{LabelSets: sets} }
	eps := []Endpoint{
		ep(labels.FromStrings("cluster", "c", "replica", "a")),
		ep(labels.FromStrings("cluster", "c", "replica", "b")),
		ep(labels.FromStrings("cluster", "d", "replica", "a")),
		ep(), // advertises nothing: never grouped
		ep(),
	}
	got := replicaGroups(eps, []string{"replica"})
	if got[0] != got[1] || got[0] < 0 || got[2] != -1 || got[3] != -1 || got[4] != -1 {
		t.Fatalf("groups %v", got)
	}
}

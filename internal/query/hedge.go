package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Hedging bounds what a stalled replica costs a query. Endpoints of the same kind whose
// label sets are equal once the replica labels are removed hold the same data: they are
// replicas of one another, over the part of the request's time range that both
// advertise. As soon as one of them answers (its first series, or the end of an empty
// answer), each sibling whose data it covers gets a bounded extra time, max(Min, Factor
// × the time the first took); one that has still not answered then is dropped with a
// warning, and deduplication fills from the replica that did. An endpoint without a
// replica sibling is never cut short this way (a store gateway is no replica of the
// sidecars whose history it serves), nor is any endpoint when the query does not
// deduplicate.

// HedgeOptions configure replica hedging; a zero Min disables it.
type HedgeOptions struct {
	Min    time.Duration // --query.replica-hedge.min-delay
	Factor float64       // --query.replica-hedge.factor
}

// errHedged is the cause with which a hedged replica's stream is cancelled.
var errHedged = errors.New("replica dropped by hedging")

// replicaGroups gives each endpoint the index of its replica group, or -1 when it has
// no sibling. replicaLabels are the request's without_replica_labels. Siblings are the
// same kind of component: a sidecar and a store gateway with the same external labels
// hold different data (the recent data and the history of the same Prometheus pair), so
// neither can stand in for the other.
func replicaGroups(eps []Endpoint, replicaLabels []string) []int {
	out := make([]int, len(eps))
	keys := make([]string, len(eps))
	count := map[string]int{}
	for i, ep := range eps {
		if k := groupKey(ep.LabelSets, replicaLabels); k != "" {
			keys[i] = ep.ComponentType + "\x00" + k
		}
		count[keys[i]]++
	}
	ids := map[string]int{}
	for i, k := range keys {
		if k == "" || count[k] < 2 {
			out[i] = -1
			continue
		}
		if _, ok := ids[k]; !ok {
			ids[k] = len(ids)
		}
		out[i] = ids[k]
	}
	return out
}

// groupKey is an endpoint's label sets without the replica labels, sorted; "" when the
// endpoint advertises none (nothing says what it holds).
func groupKey(sets []labels.Labels, replicaLabels []string) string {
	if len(sets) == 0 {
		return ""
	}
	keys := make([]string, 0, len(sets))
	for _, ls := range sets {
		keys = append(keys, labels.NewBuilder(ls).Del(replicaLabels...).Labels().String())
	}
	slices.Sort(keys)
	return strings.Join(slices.Compact(keys), ";")
}

// replicaStartSlack is how much earlier than its sibling's a replica's data may begin
// and still count as covered by the sibling: the replicas of an HA pair started a few
// seconds apart stand in for each other over the start of their history too.
const replicaStartSlack = int64(time.Minute / time.Millisecond)

// standsIn reports whether a's answer can stand in for b's over the request's [mint,
// maxt]: a advertises every moment of that range that b does, but for up to
// replicaStartSlack at b's start. Store gateways that split a bucket by time (--min-time,
// --max-time) have equal labels but hold different ranges: neither stands in for the
// other.
func standsIn(a, b Endpoint, mint, maxt int64) bool {
	lo, hi := max(b.MinTime, mint), min(b.MaxTime, maxt)
	if lo > hi {
		return true // b holds nothing in range
	}
	return a.MinTime <= lo+replicaStartSlack && a.MaxTime >= hi
}

// coverage returns, for the endpoints of one request, covers[i][j]: endpoint i's answer
// can stand in for sibling j's.
func coverage(eps []Endpoint, groups []int, mint, maxt int64) [][]bool {
	covers := make([][]bool, len(eps))
	for i := range eps {
		covers[i] = make([]bool, len(eps))
		for j := range eps {
			covers[i][j] = i != j && groups[i] >= 0 && groups[i] == groups[j] && standsIn(eps[i], eps[j], mint, maxt)
		}
	}
	return covers
}

// hedger watches the endpoints of one request and cancels the replicas that lag too far
// behind a sibling that answered.
type hedger struct {
	opts   HedgeOptions
	start  time.Time
	groups []int
	covers [][]bool
	mu     sync.Mutex
	timers []*time.Timer
	// answered[i] is set once endpoint i answered; armed[j] once a sibling's answer
	// started the clock for j.
	answered []bool
	armed    []bool
	cancels  []context.CancelCauseFunc
	closed   bool
}

func newHedger(opts HedgeOptions, groups []int, covers [][]bool, cancels []context.CancelCauseFunc) *hedger {
	return &hedger{opts: opts, start: time.Now(), groups: groups, covers: covers, answered: make([]bool, len(groups)),
		armed: make([]bool, len(groups)), cancels: cancels}
}

// answer records that endpoint i answered and gives each sibling whose data i's answer
// covers, and whose clock no earlier answer started, its extra time.
func (h *hedger) answer(i int) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answered[i] = true
	if h.groups[i] < 0 || h.closed {
		return
	}
	took := time.Since(h.start)
	wait := max(h.opts.Min, time.Duration(h.opts.Factor*float64(took)))
	for j := range h.groups {
		if !h.covers[i][j] || h.answered[j] || h.armed[j] {
			continue
		}
		h.armed[j] = true
		h.timers = append(h.timers, time.AfterFunc(wait, func() { h.expire(j, wait, took) }))
	}
}

func (h *hedger) expire(j int, wait, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.answered[j] || h.closed {
		return
	}
	h.cancels[j](fmt.Errorf("%w: no answer %s after a replica answered in %s", errHedged, wait.Round(time.Millisecond), took.Round(time.Millisecond)))
}

// stop ends hedging for the request.
func (h *hedger) stop() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, t := range h.timers {
		t.Stop()
	}
}

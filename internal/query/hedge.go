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

// Hedging bounds what a stalled replica costs a query. Endpoints whose label sets are
// equal once the replica labels are removed hold the same data: they are replicas of
// one another. As soon as one of them answers (its first series, or the end of an empty
// answer), the others get a bounded extra time, max(Min, Factor × the time the first
// took); one that has still not answered then is dropped with a warning, and
// deduplication fills from the replica that did. An endpoint without a replica sibling
// is never cut short this way, nor is any endpoint when the query does not deduplicate.

// HedgeOptions configure replica hedging; a zero Min disables it.
type HedgeOptions struct {
	Min    time.Duration // --query.replica-hedge.min-delay
	Factor float64       // --query.replica-hedge.factor
}

// errHedged is the cause with which a hedged replica's stream is cancelled.
var errHedged = errors.New("replica dropped by hedging")

// replicaGroups gives each endpoint the index of its replica group, or -1 when it has
// no sibling. replicaLabels are the request's without_replica_labels.
func replicaGroups(eps []Endpoint, replicaLabels []string) []int {
	out := make([]int, len(eps))
	keys := make([]string, len(eps))
	count := map[string]int{}
	for i, ep := range eps {
		keys[i] = groupKey(ep.LabelSets, replicaLabels)
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

// hedger watches the endpoints of one request and cancels the replicas that lag too far
// behind a sibling that answered.
type hedger struct {
	opts   HedgeOptions
	start  time.Time
	groups []int
	mu     sync.Mutex
	timers []*time.Timer
	// answered[i] is set once endpoint i answered; armed[g] once group g's first
	// answer started the clock for the others.
	answered []bool
	armed    map[int]bool
	cancels  []context.CancelCauseFunc
	closed   bool
}

func newHedger(opts HedgeOptions, groups []int, cancels []context.CancelCauseFunc) *hedger {
	return &hedger{opts: opts, start: time.Now(), groups: groups, answered: make([]bool, len(groups)),
		armed: map[int]bool{}, cancels: cancels}
}

// answer records that endpoint i answered, and the first time one of its group does,
// gives its siblings their extra time.
func (h *hedger) answer(i int) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answered[i] = true
	g := h.groups[i]
	if g < 0 || h.armed[g] || h.closed {
		return
	}
	h.armed[g] = true
	took := time.Since(h.start)
	wait := max(h.opts.Min, time.Duration(h.opts.Factor*float64(took)))
	for j, gj := range h.groups {
		if gj != g || j == i {
			continue
		}
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

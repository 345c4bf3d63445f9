package storeapi

import (
	"container/heap"
	"fmt"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Resorter restores the StoreAPI sort order of a series stream whose labels were rewritten
// (external labels merged in, replica labels removed) after it was sorted by the stored
// labels. Thanos buffers and re-sorts the whole response; the Resorter holds back only the
// series a later one could still sort before, which for typical data is one series.
//
// Why that works: let f(s) be the rewritten labels of stored series s and T(s) the prefix
// of f(s) that ends with the last label s contributed itself (external labels after it
// dropped). For every series y after s in stored order, f(y) >= T(s) in label order, so
// any held series x with f(x) < T(s) can be sent as soon as s arrives. The property test
// checks this against a full sort, including series labels overridden by external ones.
type Resorter struct {
	held  seriesHeap
	limit int
	emit  func(*storepb.Series) error
}

// NewResorter returns a Resorter that sends series through emit in order and fails when
// more than limit series must be held at once (0 means no limit).
func NewResorter(limit int, emit func(*storepb.Series) error) *Resorter {
	return &Resorter{limit: limit, emit: emit}
}

// ErrResortLimit is returned when the re-sort would hold more series than allowed.
type ErrResortLimit struct{ Limit int }

func (e ErrResortLimit) Error() string {
	return fmt.Sprintf("re-sorting series after adding external labels would hold more than %d series in memory", e.Limit)
}

// Push adds the next series in stored order. bound is the length of T(s): the number of
// leading labels of s.Labels up to and including the last label the series contributed.
func (r *Resorter) Push(s *storepb.Series, bound int) error {
	for len(r.held) > 0 && comparePrefix(r.held[0].Labels, s.Labels, bound) < 0 {
		if err := r.emit(heap.Pop(&r.held).(*storepb.Series)); err != nil {
			return err
		}
	}
	if r.limit > 0 && len(r.held) >= r.limit {
		return ErrResortLimit{Limit: r.limit}
	}
	heap.Push(&r.held, s)
	return nil
}

// Held is the number of series currently held back.
func (r *Resorter) Held() int { return len(r.held) }

// Flush sends every held series, in order.
func (r *Resorter) Flush() error {
	for len(r.held) > 0 {
		if err := r.emit(heap.Pop(&r.held).(*storepb.Series)); err != nil {
			return err
		}
	}
	return nil
}

// seriesHeap is a min-heap by labels; ties keep arrival order irrelevant since equal label
// sets are merged downstream.
type seriesHeap []*storepb.Series

func (h seriesHeap) Len() int           { return len(h) }
func (h seriesHeap) Less(i, j int) bool { return CompareLabels(h[i].Labels, h[j].Labels) < 0 }
func (h seriesHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seriesHeap) Push(x any)        { *h = append(*h, x.(*storepb.Series)) }
func (h *seriesHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}

package query

import (
	"container/heap"

	"github.com/vigilhq/vigil/internal/storeapi"
)

// streamHeap orders the endpoint streams that still have a series by that series'
// labels (then by their position in MergeStream.streams, so equal series are merged in
// endpoint order). The merge takes the smallest series in O(log k) label comparisons
// for k endpoints instead of comparing every endpoint's series twice per merged
// series, which dominated the querier's CPU when fanning out to tens of store gateways.
type streamHeap []*endpointStream

func (h streamHeap) Len() int { return len(h) }
func (h streamHeap) Less(i, j int) bool {
	if c := storeapi.CompareLabels(h[i].cur.Labels, h[j].cur.Labels); c != 0 {
		return c < 0
	}
	return h[i].idx < h[j].idx
}
func (h streamHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)   { *h = append(*h, x.(*endpointStream)) }
func (h *streamHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

// nextFromHeap fills m.cur with the smallest series and every other endpoint's series
// with the same labels, advancing those streams. It reports false when no stream has a
// series left.
func (m *MergeStream) nextFromHeap() bool {
	if len(m.heap) == 0 {
		return false
	}
	minLabels := m.heap[0].cur.Labels
	m.cur.Labels = minLabels
	m.cur.Sources = m.cur.Sources[:0]
	m.same = m.same[:0]
	for len(m.heap) > 0 && storeapi.CompareLabels(m.heap[0].cur.Labels, minLabels) == 0 {
		m.same = append(m.same, heap.Pop(&m.heap).(*endpointStream))
	}
	// Popped in endpoint order (ties break on idx), as the sources were always listed.
	for _, s := range m.same {
		chunks := s.cur.Chunks
		// A series may be split over consecutive frames of one endpoint.
		more := m.advance(s)
		for more && storeapi.CompareLabels(s.cur.Labels, minLabels) == 0 {
			chunks = append(chunks, s.cur.Chunks...)
			more = m.advance(s)
		}
		m.cur.Sources = append(m.cur.Sources, chunks)
		if more {
			heap.Push(&m.heap, s)
		}
	}
	return true
}

package tsdbstore

import (
	"cmp"
	"container/heap"
	"slices"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// streamFailed decides what a stream that ended with err means for the request: a
// non-nil result ends it, nil carries on with the other streams.
type streamFailed func(st *seriesStream, err error) error

// sendMerged k-way merges the sorted streams into one sorted stream on srv, joining
// series with equal labels (stored series that differ only in labels the external labels
// replace or strip, or stores sharing a label set), within the request's limits. It
// holds one series per stream; the streams stay open until it returns, after the last
// frame is sent.
func sendMerged(srv storepb.Store_SeriesServer, req *storepb.SeriesRequest, streams []*seriesStream, limits storeapi.RequestLimits, failed streamFailed) error {
	sender := storeapi.NewSeriesSender(srv, req.GetResponseBatchSize())
	lim := storeapi.NewLimiter(limits)
	h := &streamHeap{}
	for _, st := range streams {
		if err := h.add(st, failed); err != nil {
			return err
		}
	}
	for h.Len() > 0 {
		out, err := h.next(failed)
		if err != nil {
			return err
		}
		if err := lim.Add(out); err != nil {
			return err
		}
		if err := sender.Send(out); err != nil {
			return err
		}
		// The request's own limit ends the answer quietly: it is not an error.
		if req.GetLimit() > 0 && int64(sender.Sent()) >= req.GetLimit() {
			break
		}
	}
	if err := sender.Flush(); err != nil {
		return err
	}
	return sendWarnings(sender, streams)
}

// sendWarnings passes on what the TSDBs reported about their selections.
func sendWarnings(sender *storeapi.SeriesSender, streams []*seriesStream) error {
	for _, st := range streams {
		for _, w := range st.Warnings().AsErrors() {
			if err := sender.Warning(w.Error()); err != nil {
				return err
			}
		}
	}
	return nil
}

// streamHeap orders streams by their current series' labels.
type streamHeap []*seriesStream

func (h streamHeap) Len() int { return len(h) }
func (h streamHeap) Less(i, j int) bool {
	return storeapi.CompareLabels(h[i].At().Labels, h[j].At().Labels) < 0
}
func (h streamHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)   { *h = append(*h, x.(*seriesStream)) }
func (h *streamHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

// add moves st to its first series and into the heap, unless it is empty.
func (h *streamHeap) add(st *seriesStream, failed streamFailed) error {
	if st.Next() {
		heap.Push(h, st)
		return nil
	}
	if err := st.Err(); err != nil {
		return failed(st, err)
	}
	return nil
}

// advance moves the top stream to its next series, dropping it from the heap when it
// ends.
func (h *streamHeap) advance(failed streamFailed) error {
	st := (*h)[0]
	if st.Next() {
		heap.Fix(h, 0)
		return nil
	}
	heap.Pop(h)
	if err := st.Err(); err != nil {
		return failed(st, err)
	}
	return nil
}

// next takes the smallest series off the heap, with the chunks of every series of equal
// labels joined to it in time order.
func (h *streamHeap) next(failed streamFailed) (*storepb.Series, error) {
	out := (*h)[0].At()
	if err := h.advance(failed); err != nil {
		return nil, err
	}
	joined := false
	for h.Len() > 0 && storeapi.CompareLabels((*h)[0].At().Labels, out.Labels) == 0 {
		out.Chunks = append(out.Chunks, (*h)[0].At().Chunks...)
		joined = true
		if err := h.advance(failed); err != nil {
			return nil, err
		}
	}
	if joined {
		slices.SortStableFunc(out.Chunks, func(a, b *storepb.AggrChunk) int {
			return cmp.Compare(a.MinTime, b.MinTime)
		})
	}
	return out, nil
}

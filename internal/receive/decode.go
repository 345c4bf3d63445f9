package receive

import (
	"sync"

	"github.com/prometheus/prometheus/prompb"
)

// The remote-write 1.0 hot path decodes without allocating per label: label names and
// values are strings that alias the decompressed body, and the series, label and sample
// slices are reused from request to request. The body therefore lives as long as
// anything may read the series: until the local append and every forward are done (see
// requestBufs.release). Only what outlives the request is copied: the label sets of new
// series (labels.ScratchBuilder copies), forwarded bytes (marshalled anew), and
// exemplars and histograms, which go through Prometheus' own decoder.

// requestBufs are the buffers of one remote-write request.
type requestBufs struct {
	body   []byte // the compressed body
	raw    []byte // the decompressed body; the series' strings point into it
	series []prompb.TimeSeries
}

// Buffers larger than these are not kept for the next request, so that one huge
// request does not pin its memory for good.
const (
	maxPooledBytes  = 16 << 20
	maxPooledSeries = 1 << 16
)

type bufPool struct{ p sync.Pool }

func (p *bufPool) get() *requestBufs {
	if b, ok := p.p.Get().(*requestBufs); ok {
		return b
	}
	return &requestBufs{}
}

// put keeps b for another request; nothing may read its series afterwards.
func (p *bufPool) put(b *requestBufs) {
	if cap(b.raw) > maxPooledBytes || cap(b.body) > maxPooledBytes || cap(b.series) > maxPooledSeries {
		return
	}
	p.p.Put(b)
}

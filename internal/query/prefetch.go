package query

import (
	"fmt"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/vigilhq/vigil/internal/seek"
)

// Decode-ahead.
//
// The PromQL engine first expands a selector's whole series set and then evaluates the
// series one after another, reading each through its iterator on the query's single
// goroutine. In the querier that iterator does real work per sample: it decodes the
// chunks of every replica and deduplicates them, about a third of the evaluation's CPU
// time. The stores are done sending by then, so other cores are idle.
//
// A prefetcher moves that work to a second goroutine: while the engine evaluates series
// i, it decodes and deduplicates series i+1 .. i+ahead into plain sample buffers, and
// the engine reads those with a few instructions per sample. Memory stays bounded: at
// most ahead+1 buffers are held at once, each at most decodeAheadMaxSamples samples; a
// longer series continues from the live iterator where the buffer ends. Series the
// engine reads out of order, or reads again, are decoded directly as before, so the
// samples seen are always exactly those of the direct iterator.

// decodeAheadMaxSamples caps one buffer: 16Ki samples are 256 KiB, so a query holds at
// most (ahead+1) × 256 KiB of decoded samples (2.25 MiB with the default window of 8).
const decodeAheadMaxSamples = 1 << 14

// fpoint is one float sample of a buffer.
type fpoint struct {
	t int64
	f float64
}

// decoded is a series' prefix decoded ahead, and the live iterator for the rest.
type decoded struct {
	samples []fpoint
	// tail is the series' own iterator. When positioned, it sits on a sample not in
	// samples (of type pending; ValNone if it ended or failed); otherwise it sits on the
	// last buffered sample and continues with Next.
	tail       chunkenc.Iterator
	positioned bool
	pending    chunkenc.ValueType
}

// Series states, guarded by prefetcher.mu.
const (
	seriesIdle     uint8 = iota // not looked at yet
	seriesDecoding              // the worker is decoding it
	seriesReady                 // decoded, waiting for the engine
	seriesTaken                 // the engine has it, or reads it directly
)

// prefetcher decodes the series of one series set ahead of the engine.
type prefetcher struct {
	ahead      int
	maxSamples int           // per buffer: decodeAheadMaxSamples, smaller in tests
	done       chan struct{} // closed when the worker has returned

	mu      sync.Mutex
	cond    sync.Cond
	series  []*series // every series the set returned, in order
	next    int       // the next series the worker looks at
	want    int       // the worker decodes series with an index below want
	held    int       // buffers decoded and not released yet
	idle    bool      // the worker is waiting for work
	free    [][]fpoint
	started bool
	closed  bool
}

func newPrefetcher(ahead int) *prefetcher {
	p := &prefetcher{ahead: ahead, maxSamples: decodeAheadMaxSamples, done: make(chan struct{})}
	p.cond.L = &p.mu
	return p
}

// add registers the series the set returns next.
func (p *prefetcher) add(s *series) {
	p.mu.Lock()
	s.idx = len(p.series)
	p.series = append(p.series, s)
	p.mu.Unlock()
}

// start starts the worker on the first series, when the set has been read to its end:
// the engine asks for the series only after that, and then finds the first ones ready.
func (p *prefetcher) start() {
	p.mu.Lock()
	p.want = max(p.want, p.ahead)
	p.startLocked()
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *prefetcher) startLocked() {
	if !p.started && !p.closed {
		p.started = true
		go p.work()
	}
}

// close stops the worker and waits for it, which takes at most the rest of the one
// series it may be decoding: no goroutine outlives the query.
func (p *prefetcher) close() {
	p.mu.Lock()
	p.closed = true
	started := p.started
	p.cond.Broadcast()
	p.mu.Unlock()
	if started {
		<-p.done
	}
}

// take returns s decoded ahead, waiting if the worker is on it, or nil when s is to be
// read directly. It also moves the worker's window to the series after s.
func (p *prefetcher) take(s *series) *decoded {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.want = max(p.want, s.idx+1+p.ahead)
	p.startLocked()
	p.wakeWorker()
	for s.state == seriesDecoding {
		p.cond.Wait()
	}
	if s.state == seriesReady {
		s.state = seriesTaken
		d := s.ahead
		s.ahead = nil
		return d
	}
	// Idle: the engine got here first (or went back); the worker moves past it.
	s.state = seriesTaken
	p.next = max(p.next, s.idx+1)
	return nil
}

// release returns a buffer the engine has finished with.
func (p *prefetcher) release(buf []fpoint) {
	p.mu.Lock()
	p.held--
	p.free = append(p.free, buf[:0])
	p.wakeWorker()
	p.mu.Unlock()
}

// canWork reports whether the worker has a series to decode and a buffer to decode it
// into. p.mu must be held.
func (p *prefetcher) canWork() bool {
	return p.next < len(p.series) && p.next < p.want && p.held <= p.ahead
}

// wakeWorker wakes the idle worker once it can decode a batch of series (half the
// window) without stopping: it then sleeps and wakes once per batch instead of once per
// series, which with many small series (a fan-out to tens of stores) cost more in
// futex calls than the decoding it moved. p.mu must be held.
func (p *prefetcher) wakeWorker() {
	if !p.idle || !p.canWork() {
		return
	}
	batch := max(1, p.ahead/2)
	if min(p.want, len(p.series))-p.next >= batch && p.ahead+1-p.held >= batch {
		p.cond.Broadcast()
	}
}

// work is the worker goroutine.
func (p *prefetcher) work() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for !p.closed && !p.canWork() {
			p.idle = true
			p.cond.Wait()
		}
		p.idle = false
		if p.closed {
			p.mu.Unlock()
			return
		}
		s := p.series[p.next]
		p.next++
		if s.state != seriesIdle {
			p.mu.Unlock()
			continue
		}
		s.state = seriesDecoding
		p.held++
		var buf []fpoint
		if n := len(p.free); n > 0 {
			buf, p.free = p.free[n-1], p.free[:n-1]
		}
		p.mu.Unlock()

		d := decodeAhead(s, buf, p.maxSamples)

		p.mu.Lock()
		s.ahead, s.state = d, seriesReady
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// decodeAhead reads s's samples into buf until maxSamples of them, the first sample
// that is not a plain float, or the end. A panic in the iterators becomes the series'
// error rather than a crash of the process.
func decodeAhead(s *series, buf []fpoint, maxSamples int) (d *decoded) {
	d = &decoded{samples: buf[:0]}
	defer func() {
		if r := recover(); r != nil {
			d.samples = d.samples[:0]
			d.tail = &errIterator{err: fmt.Errorf("decoding series %s: panic: %v", s.lset, r)}
			d.positioned, d.pending = true, chunkenc.ValNone
		}
	}()
	it := s.directIterator()
	d.tail = it
	for len(d.samples) < maxSamples {
		vt := it.Next()
		// A start timestamp (none of the StoreAPI's encodings has one) is left to the tail.
		if vt != chunkenc.ValFloat || it.AtST() != 0 {
			d.positioned, d.pending = true, vt
			return d
		}
		t, f := it.At()
		d.samples = append(d.samples, fpoint{t, f})
	}
	return d
}

// bufferedIterator reads a decoded series: the buffer first, then the tail.
type bufferedIterator struct {
	p       *prefetcher
	samples []fpoint // nil once released
	i       int      // the current sample in samples; -1 before the first
	inTail  bool
	d       *decoded
	vt      chunkenc.ValueType // type of the current tail sample
}

// reset points b at d, releasing the buffer b held before.
func (b *bufferedIterator) reset(p *prefetcher, d *decoded) {
	b.releaseBuffer()
	*b = bufferedIterator{p: p, samples: d.samples, i: -1, d: d}
}

func (b *bufferedIterator) releaseBuffer() {
	if b.samples != nil {
		b.p.release(b.samples)
		b.samples = nil
	}
}

// enterTail leaves the buffer for the live iterator. It reports the type of the tail's
// current sample when the tail is already positioned on one, and false otherwise.
func (b *bufferedIterator) enterTail() (chunkenc.ValueType, bool) {
	b.inTail = true
	b.releaseBuffer()
	if b.d.positioned {
		b.vt = b.d.pending
		return b.vt, true
	}
	return chunkenc.ValNone, false
}

func (b *bufferedIterator) Next() chunkenc.ValueType {
	if !b.inTail {
		b.i++
		if b.i < len(b.samples) {
			return chunkenc.ValFloat
		}
		if vt, ok := b.enterTail(); ok {
			return vt
		}
	}
	b.vt = b.d.tail.Next()
	return b.vt
}

func (b *bufferedIterator) Seek(t seek.Millis) chunkenc.ValueType {
	if !b.inTail {
		// Forward-only linear search: the engine seeks a few samples at a time, so over
		// a series this is linear in its length, and cheaper than bisecting every time.
		i := max(b.i, 0)
		for i < len(b.samples) && b.samples[i].t < t {
			i++
		}
		if i < len(b.samples) {
			b.i = i
			return chunkenc.ValFloat
		}
		if vt, ok := b.enterTail(); ok && (vt == chunkenc.ValNone || b.d.tail.AtT() >= t) {
			return vt
		}
	} else if b.vt != chunkenc.ValNone && b.d.tail.AtT() >= t {
		return b.vt
	}
	b.vt = b.d.tail.Seek(t)
	return b.vt
}

func (b *bufferedIterator) At() (int64, float64) {
	if !b.inTail {
		s := b.samples[b.i]
		return s.t, s.f
	}
	return b.d.tail.At()
}

func (b *bufferedIterator) AtT() int64 {
	if !b.inTail {
		return b.samples[b.i].t
	}
	return b.d.tail.AtT()
}

// AtST: buffered samples have no start timestamp (decodeAhead stops before one that has).
func (b *bufferedIterator) AtST() int64 {
	if !b.inTail {
		return 0
	}
	return b.d.tail.AtST()
}

// AtHistogram and AtFloatHistogram are only valid in the tail: the buffer holds floats.
func (b *bufferedIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return b.d.tail.AtHistogram(h)
}

func (b *bufferedIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return b.d.tail.AtFloatHistogram(fh)
}

func (b *bufferedIterator) Err() error { return b.d.tail.Err() }

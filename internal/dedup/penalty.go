package dedup

import (
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/vigilhq/vigil/internal/seek"
)

// initialPenalty is the penalty of the replica not picked for the very first sample,
// when there is no previous timestamp to scale it from (Thanos uses 5s).
const initialPenalty = 5000

// adjuster is an input that can raise its later float values so they do not fall below
// a value already emitted (Thanos's counter adjustment).
type adjuster interface {
	adjust(last float64)
}

// counterInput wraps a replica in counter mode: a permanent offset, only ever raised,
// added to its float values.
type counterInput struct {
	chunkenc.Iterator
	vt     chunkenc.ValueType
	offset float64
}

func (c *counterInput) Next() chunkenc.ValueType {
	c.vt = c.Iterator.Next()
	return c.vt
}

func (c *counterInput) Seek(t seek.Millis) chunkenc.ValueType {
	c.vt = c.Iterator.Seek(t)
	return c.vt
}

func (c *counterInput) At() (int64, float64) {
	t, f := c.Iterator.At()
	return t, f + c.offset
}

// adjust raises the offset so the current value is not below last.
func (c *counterInput) adjust(last float64) {
	if c.vt != chunkenc.ValFloat {
		return
	}
	if _, f := c.At(); f < last {
		c.offset += last - f
	}
}

// penalty is Thanos's pairwise penalty dedup of two inputs a and b. After emitting from
// one input, the other is only consulted for samples later than twice the last step, so
// it takes over only when the current one misses about two scrapes.
type penalty struct {
	a, b       chunkenc.Iterator
	va, vb     chunkenc.ValueType // current types; ValNone = exhausted
	penA, penB int64
	lastT      int64
	useA       bool
	started    bool
	counter    bool
	vt         chunkenc.ValueType // type of the emitted sample
	hasLast    bool               // last emitted sample was a float (counter mode)
	lastF      float64
}

// newPenaltyChain chains the replicas pairwise like Thanos: dedup(dedup(r0,r1),r2)...
func newPenaltyChain(its []chunkenc.Iterator, counter bool) chunkenc.Iterator {
	wrap := func(it chunkenc.Iterator) chunkenc.Iterator {
		if counter {
			return &counterInput{Iterator: it}
		}
		return it
	}
	out := wrap(its[0])
	for _, it := range its[1:] {
		out = newPenalty(out, wrap(it), counter)
	}
	return out
}

func newPenalty(a, b chunkenc.Iterator, counter bool) *penalty {
	p := &penalty{a: a, b: b, lastT: math.MinInt64, useA: true, counter: counter}
	p.va, p.vb = a.Next(), b.Next()
	return p
}

// Next implements chunkenc.Iterator.
func (p *penalty) Next() chunkenc.ValueType {
	if p.va != chunkenc.ValNone {
		p.va = p.a.Seek(p.lastT + 1 + p.penA)
	}
	if p.vb != chunkenc.ValNone {
		p.vb = p.b.Seek(p.lastT + 1 + p.penB)
	}
	prevUseA := p.useA
	switch {
	case p.va == chunkenc.ValNone && p.vb == chunkenc.ValNone:
		p.vt = chunkenc.ValNone
		return p.vt
	case p.va == chunkenc.ValNone:
		p.useA, p.lastT, p.penB = false, p.b.AtT(), 0
	case p.vb == chunkenc.ValNone:
		p.useA, p.lastT, p.penA = true, p.a.AtT(), 0
	default:
		ta, tb := p.a.AtT(), p.b.AtT()
		if ta <= tb {
			p.useA, p.penA, p.penB = true, 0, p.penaltyFor(ta)
			p.lastT = ta
		} else {
			p.useA, p.penB, p.penA = false, 0, p.penaltyFor(tb)
			p.lastT = tb
		}
	}
	if p.counter && p.started && p.useA != prevUseA && p.hasLast {
		p.adjust(p.lastF)
	}
	p.started = true
	p.vt = p.va
	if !p.useA {
		p.vt = p.vb
	}
	if p.counter {
		p.hasLast = p.vt == chunkenc.ValFloat
		if p.hasLast {
			_, p.lastF = p.At()
		}
	}
	return p.vt
}

// penaltyFor is the penalty of the input not picked when the picked one is at t.
func (p *penalty) penaltyFor(t int64) int64 {
	if p.lastT == math.MinInt64 {
		return initialPenalty
	}
	return 2 * (t - p.lastT)
}

// adjust forwards a counter adjustment to both inputs, so chained pairs reach every
// replica.
func (p *penalty) adjust(last float64) {
	if a, ok := p.a.(adjuster); ok && p.va != chunkenc.ValNone {
		a.adjust(last)
	}
	if b, ok := p.b.(adjuster); ok && p.vb != chunkenc.ValNone {
		b.adjust(last)
	}
}

func (p *penalty) sel() chunkenc.Iterator {
	if p.useA {
		return p.a
	}
	return p.b
}

// Seek implements chunkenc.Iterator by advancing with Next, so gaps are not skipped.
func (p *penalty) Seek(t seek.Millis) chunkenc.ValueType {
	if p.vt == chunkenc.ValNone && p.started {
		return chunkenc.ValNone
	}
	if p.started && p.lastT >= t {
		return p.vt
	}
	for {
		if vt := p.Next(); vt == chunkenc.ValNone || p.lastT >= t {
			return vt
		}
	}
}

// At implements chunkenc.Iterator.
func (p *penalty) At() (int64, float64) { return p.sel().At() }

// AtHistogram implements chunkenc.Iterator.
func (p *penalty) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return p.sel().AtHistogram(h)
}

// AtFloatHistogram implements chunkenc.Iterator.
func (p *penalty) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return p.sel().AtFloatHistogram(fh)
}

// AtT implements chunkenc.Iterator.
func (p *penalty) AtT() int64 { return p.lastT }

// AtST implements chunkenc.Iterator.
func (p *penalty) AtST() int64 { return p.sel().AtST() }

// Err implements chunkenc.Iterator.
func (p *penalty) Err() error {
	if err := p.a.Err(); err != nil {
		return err
	}
	return p.b.Err()
}

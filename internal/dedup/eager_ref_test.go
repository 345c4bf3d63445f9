package dedup

// This file keeps, for the differential test only, GapFill as it was before the merge
// became lazy: every replica is read sample by sample in lockstep with the emitted
// stream. It is the reference the lazy implementation in gapfill.go is compared with
// (TestLazyMatchesEager); it is not used by the package.

import (
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/vigilhq/vigil/internal/seek"
)

// eagerReplica is one input of the gap-fill merge. Its iterator sits on the head: the
// earliest sample not yet consumed (for the followed eagerReplica, the sample last emitted).
// Everything else is what gap-fill must remember about the samples already consumed,
// because a eagerReplica's past is needed at the moment the merge switches to it.
type eagerReplica struct {
	it chunkenc.Iterator
	vt chunkenc.ValueType // type of the head; ValNone once exhausted
	t  int64              // timestamp of the head

	hasPrev bool
	prevT   int64 // timestamp of the last consumed sample, for the spacing estimate

	// Last finite float consumed (only tracked in counter mode): what this eagerReplica read
	// at or before the last emitted timestamp. At a switch to this eagerReplica it tells a
	// true reset (its next value is lower) from the replicas' read skew.
	hasVal bool
	valT   int64
	valF   float64

	interval int64 // most recent on-time spacing: the scrape interval estimate; 0 = unknown
	lastLong int64 // previous spacing that exceeded 2*interval, to learn a longer interval

	offset float64 // added to float values while this eagerReplica is followed (counter mode)
}

// eagerGapFill implements GapFill for any number of replicas at once. It never allocates
// after construction: the emitted sample is read from the followed eagerReplica's iterator.
type eagerGapFill struct {
	reps    []eagerReplica
	cur     int // followed eagerReplica
	counter bool
	anchor  anchor

	started, done bool
	err           error
	vt            chunkenc.ValueType // type of the emitted sample
	lastT         int64              // timestamp of the emitted sample
	hasLast       bool               // lastF holds the last emitted finite float (counter mode)
	lastF         float64
	minInterval   int64 // smallest spacing seen in any eagerReplica, until one is known for cur
}

func newEagerGapFill(its []chunkenc.Iterator, counter bool, a anchor) *eagerGapFill {
	g := &eagerGapFill{reps: make([]eagerReplica, len(its)), counter: counter, anchor: a}
	for i, it := range its {
		g.reps[i].it = it
	}
	return g
}

// advance moves r's iterator to its next sample, recording the first error seen.
func (g *eagerGapFill) advance(r *eagerReplica) {
	r.vt = r.it.Next()
	if r.vt == chunkenc.ValNone {
		if err := r.it.Err(); err != nil && g.err == nil {
			g.err = err
		}
		return
	}
	r.t = r.it.AtT()
}

// consume moves r's head into its remembered past and advances it.
func (g *eagerGapFill) consume(r *eagerReplica) {
	if r.hasPrev {
		g.observeSpacing(r, r.t-r.prevT)
	}
	r.hasPrev, r.prevT = true, r.t
	if g.counter {
		switch r.vt {
		case chunkenc.ValFloat:
			if _, f := r.it.At(); !math.IsNaN(f) { // a stale marker must not become an anchor
				r.hasVal, r.valT, r.valF = true, r.t, f
			}
		default:
			r.hasVal = false // a histogram: the float history no longer applies
		}
	}
	g.advance(r)
}

// observeSpacing updates the scrape interval estimate of r. A spacing more than twice
// the estimate is a gap, not a new interval, unless two such spacings of similar length
// follow each other (the scrape interval was raised).
func (g *eagerGapFill) observeSpacing(r *eagerReplica, sp int64) {
	if sp <= 0 {
		return
	}
	if g.minInterval == 0 || sp < g.minInterval {
		g.minInterval = sp
	}
	switch {
	case r.interval == 0 || sp <= 2*r.interval:
		r.interval, r.lastLong = sp, 0
	case r.lastLong != 0 && sp <= 2*r.lastLong && r.lastLong <= 2*sp:
		r.interval, r.lastLong = sp, 0
	default:
		r.lastLong = sp
	}
}

// Next implements chunkenc.Iterator.
func (g *eagerGapFill) Next() chunkenc.ValueType {
	if g.done {
		return chunkenc.ValNone
	}
	if !g.started {
		g.started = true
		g.cur = -1
		for i := range g.reps {
			g.advance(&g.reps[i])
			r := &g.reps[i]
			if r.vt != chunkenc.ValNone && (g.cur < 0 || r.t < g.reps[g.cur].t) {
				g.cur = i // earliest first sample; ties keep the lowest index
			}
		}
		if g.err != nil || g.cur < 0 {
			return g.finish()
		}
		return g.emit()
	}

	g.consume(&g.reps[g.cur])
	// Samples of other replicas at or before the emitted instant are covered by it.
	for i := range g.reps {
		r := &g.reps[i]
		for i != g.cur && r.vt != chunkenc.ValNone && r.t <= g.lastT {
			g.consume(r)
		}
	}
	if g.err != nil {
		return g.finish() // a partial merge would be silently wrong; stop and report
	}

	c := &g.reps[g.cur]
	if c.interval == 0 && g.minInterval == 0 && c.vt != chunkenc.ValNone {
		g.probe(c)
	}
	if g.onTime(c) {
		g.followReset(c)
		return g.emit()
	}
	// cur is late or exhausted: fill from the eagerReplica with the earliest sample in between.
	best := -1
	for i := range g.reps {
		r := &g.reps[i]
		if i == g.cur || r.vt == chunkenc.ValNone || (c.vt != chunkenc.ValNone && r.t >= c.t) {
			continue
		}
		if best < 0 || r.t < g.reps[best].t {
			best = i
		}
	}
	switch {
	case best >= 0:
		g.switchTo(best)
	case c.vt == chunkenc.ValNone:
		return g.finish()
	default:
		g.followReset(c) // nobody has data in the gap: it stays a gap
	}
	return g.emit()
}

func (g *eagerGapFill) finish() chunkenc.ValueType {
	g.done, g.vt = true, chunkenc.ValNone
	return chunkenc.ValNone
}

// probe runs at the start, while no spacing is known at all. Treating c's next sample
// as on time would then follow c across a gap right after its first sample, so other
// replicas are read up to c's next sample until one shows two samples there: then c's
// next sample is known to be later than that eagerReplica's spacing. The sample consumed to
// learn this is lost, which only happens in this cold-start case.
func (g *eagerGapFill) probe(c *eagerReplica) {
	for i := range g.reps {
		r := &g.reps[i]
		for r != c && g.minInterval == 0 && r.vt != chunkenc.ValNone && r.t < c.t {
			if r.hasPrev {
				g.minInterval = r.t - r.prevT // two samples before c's next: spacing known
				break
			}
			g.consume(r)
		}
	}
}

// onTime reports whether the head of c follows the emitted sample within two scrape
// intervals. Two, not one, so that jitter and one missed scrape do not cause a switch.
func (g *eagerGapFill) onTime(c *eagerReplica) bool {
	if c.vt == chunkenc.ValNone {
		return false
	}
	iv := c.interval
	if iv == 0 {
		iv = g.minInterval
	}
	return iv == 0 || c.t-g.lastT <= 2*iv
}

// followReset handles a drop in the followed eagerReplica's own values: a true counter
// reset. Its offset is dropped so the reset shows with the eagerReplica's own magnitude
// (PromQL then counts exactly what this eagerReplica alone would), unless dropping it would
// hide the reset.
func (g *eagerGapFill) followReset(c *eagerReplica) {
	if !g.counter || c.offset == 0 || c.vt != chunkenc.ValFloat || !c.hasVal {
		return
	}
	if _, f := c.it.At(); f < c.valF && f < g.lastF {
		c.offset = 0
	}
}

// switchTo makes eagerReplica i the followed one and, in counter mode, sets its offset.
func (g *eagerGapFill) switchTo(i int) {
	g.cur = i
	y := &g.reps[i]
	y.offset = 0
	if !g.counter || !g.hasLast || y.vt != chunkenc.ValFloat {
		return
	}
	_, next := y.it.At()
	switch {
	case math.IsNaN(next):
	case y.hasVal && next < y.valF:
		// y itself reset between its last sample and this one: a true reset. Offset 0
		// shows it as y alone would (or, if the stream already showed it, continues).
	case g.anchor == anchorSame || !y.hasVal:
		// Replicas read the same counter, so next - lastF is the counter's real increase
		// between the two reads. It is only negative when y read the counter a moment
		// before the eagerReplica we leave did: then stay level instead of stepping down.
		y.offset = math.Max(0, g.lastF-next)
	case g.anchor == anchorPrev:
		y.offset = g.lastF - y.valF
	default: // anchorInterp
		frac := float64(g.lastT-y.valT) / float64(y.t-y.valT)
		y.offset = g.lastF - (y.valF + (next-y.valF)*frac)
	}
}

// emit records the head of the followed eagerReplica as the emitted sample.
func (g *eagerGapFill) emit() chunkenc.ValueType {
	c := &g.reps[g.cur]
	g.vt, g.lastT = c.vt, c.t
	if g.counter {
		switch c.vt {
		case chunkenc.ValFloat:
			if _, f := c.it.At(); !math.IsNaN(f) {
				g.hasLast, g.lastF = true, f+c.offset
			}
		default:
			g.hasLast = false
		}
	}
	return c.vt
}

// Seek implements chunkenc.Iterator. It advances with Next so that the selection sees
// every sample on the way: seeking the inputs directly could jump over the gap that
// should have caused a switch, or land on a eagerReplica the merge would not follow.
func (g *eagerGapFill) Seek(t seek.Millis) chunkenc.ValueType {
	if g.done {
		return chunkenc.ValNone
	}
	if g.started && g.lastT >= t {
		return g.vt
	}
	for {
		if vt := g.Next(); vt == chunkenc.ValNone || g.lastT >= t {
			return vt
		}
	}
}

// At implements chunkenc.Iterator; the offset only ever applies to floats.
func (g *eagerGapFill) At() (int64, float64) {
	c := &g.reps[g.cur]
	t, f := c.it.At()
	return t, f + c.offset
}

// AtHistogram implements chunkenc.Iterator.
func (g *eagerGapFill) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return g.reps[g.cur].it.AtHistogram(h)
}

// AtFloatHistogram implements chunkenc.Iterator.
func (g *eagerGapFill) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return g.reps[g.cur].it.AtFloatHistogram(fh)
}

// AtT implements chunkenc.Iterator.
func (g *eagerGapFill) AtT() int64 { return g.lastT }

// AtST implements chunkenc.Iterator.
func (g *eagerGapFill) AtST() int64 { return g.reps[g.cur].it.AtST() }

// Err implements chunkenc.Iterator: the first error of any eagerReplica.
func (g *eagerGapFill) Err() error { return g.err }

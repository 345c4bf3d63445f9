package dedup

import (
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/vigilhq/vigil/internal/seek"
)

// replica is one input of the gap-fill merge. Its iterator sits on the head: the
// earliest sample not yet consumed (for the followed replica, the sample last emitted).
// The head's timestamp and float value are read once when the iterator moves and kept
// here, so the merge and its caller never go through the iterator interface for them.
// Everything else is what gap-fill must remember about the samples already consumed,
// because a replica's past is needed at the moment the merge switches to it.
//
// Only the followed replica is consumed sample by sample. The others are left where
// they are and caught up (see catchUp) only when their state is needed: when the
// followed replica is late or has ended, and while the followed replica has no
// interval estimate of its own (the cold start), when they are consumed in lockstep as
// the rule describes.
type replica struct {
	it   chunkenc.Iterator
	skip ChunkSkipper       // it, if it can skip whole chunks; else nil
	vt   chunkenc.ValueType // type of the head; ValNone once exhausted
	t    int64              // timestamp of the head
	f    float64            // value of the head when vt is ValFloat

	hasPrev bool
	prevT   int64 // timestamp of the last consumed sample, for the spacing estimate

	// Last finite float consumed (only tracked in counter mode): what this replica read
	// at or before the last emitted timestamp. At a switch to this replica it tells a
	// true reset (its next value is lower) from the replicas' read skew.
	hasVal bool
	valT   int64
	valF   float64

	interval int64 // most recent on-time spacing: the scrape interval estimate; 0 = unknown
	lastLong int64 // previous spacing that exceeded 2*interval, to learn a longer interval

	offset float64 // added to float values while this replica is followed (counter mode)
}

// gapFill implements GapFill for any number of replicas at once. It never allocates
// after construction: the emitted sample is the followed replica's head.
type gapFill struct {
	reps    []replica
	cur     int      // followed replica
	c       *replica // &reps[cur] once a sample was emitted
	counter bool
	anchor  anchor

	started, done bool
	err           error
	vt            chunkenc.ValueType // type of the emitted sample
	lastT         int64              // timestamp of the emitted sample
	hasLast       bool               // lastF holds the last emitted finite float (counter mode)
	lastF         float64
	minInterval   int64 // smallest spacing seen in any replica, until one is known for cur
}

// anchor selects how a counter-mode switch computes the offset of the new replica.
// NewIterator always uses anchorSame; the others exist only so the property test can
// show, with numbers, why (see the package documentation).
type anchor int

const (
	// anchorSame: replicas read the same counter, so the new replica's value is used as
	// read (offset 0) unless it would step down; then it is held level.
	anchorSame anchor = iota
	// anchorInterp: offset = last emitted − the new replica's value interpolated at the
	// last emitted timestamp.
	anchorInterp
	// anchorPrev: offset = last emitted − the new replica's last value at or before it.
	anchorPrev
)

// ChunkSkipper is implemented by merge inputs that hold their samples in chunks and can
// skip whole chunks without decoding them, like the querier's chunk list iterator. The
// merge uses it to catch up a replica it has not read for a while (see catchUp); other
// inputs are caught up by reading every sample.
type ChunkSkipper interface {
	// SkipChunks moves forward to the first sample of the chunk that holds the last
	// sample at or before t, without decoding the chunks before that one, and returns
	// the new sample's type (ValNone and Err set if the chunk cannot be read) and true.
	// It does not move and returns false when the iterator is already in that chunk or
	// past it, or cannot skip (before its first sample, for example); the caller then
	// reads on with Next. Samples after the new position are read with Next as usual, so
	// the last sample at or before t is never skipped.
	SkipChunks(t int64) (chunkenc.ValueType, bool)
}

// A replica that was not followed is caught up (see catchUp) in units of the scrape
// interval estimate.
const (
	// skipAfter: a replica more than this many intervals behind the emitted instant
	// skips whole chunks if its input can (ChunkSkipper).
	skipAfter = 32
	// catchUpWindow: the chunks skipped are those before the one holding the replica's
	// last sample at least this many intervals before the emitted instant, so its own
	// recent samples are read again: they give its interval estimate, its last value
	// and the timestamp its next spacing starts from.
	catchUpWindow = 8
)

func newGapFill(its []chunkenc.Iterator, counter bool, a anchor) *gapFill {
	g := &gapFill{reps: make([]replica, len(its)), counter: counter, anchor: a}
	for i, it := range its {
		g.reps[i].it = it
		g.reps[i].skip, _ = it.(ChunkSkipper)
	}
	return g
}

// advance moves r's iterator to its next sample, recording the first error seen.
func (g *gapFill) advance(r *replica) {
	r.vt = r.it.Next()
	g.load(r)
}

// load reads the head r's iterator has just moved to (by Next or Seek).
func (g *gapFill) load(r *replica) {
	switch r.vt {
	case chunkenc.ValNone:
		if err := r.it.Err(); err != nil && g.err == nil {
			g.err = err
		}
	case chunkenc.ValFloat:
		r.t, r.f = r.it.At()
	default:
		r.t = r.it.AtT()
	}
}

// consume moves r's head into its remembered past and advances it.
func (g *gapFill) consume(r *replica) {
	if r.hasPrev {
		g.observeSpacing(r, r.t-r.prevT)
	}
	r.hasPrev, r.prevT = true, r.t
	if g.counter {
		remember(r)
	}
	g.advance(r)
}

// remember records r's head as its last value (counter mode).
func remember(r *replica) {
	if r.vt != chunkenc.ValFloat {
		r.hasVal = false // a histogram: the float history no longer applies
	} else if !math.IsNaN(r.f) { // a stale marker must not become an anchor
		r.hasVal, r.valT, r.valF = true, r.t, r.f
	}
}

// observeSpacing updates the scrape interval estimate of r. A spacing more than twice
// the estimate is a gap, not a new interval, unless two such spacings of similar length
// follow each other (the scrape interval was raised).
func (g *gapFill) observeSpacing(r *replica, sp int64) {
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

// catchUp consumes r's samples up to the emitted instant, so that r is where reading
// every replica in lockstep with the output would have left it: its head is its first
// sample after lastT and its past (last value, spacing, interval estimate) is that of
// its samples up to lastT.
//
// When r is far behind and its input can skip chunks, the chunks before the one holding
// r's last sample catchUpWindow intervals before lastT are skipped, and r is read from
// the start of that chunk. Its last sample at or before lastT, so its last value and the
// start of its next spacing, are then exactly what reading every sample gives. Its
// interval estimate is too whenever the samples read hold two similar spacings in a
// row, which set it whatever it was before (see observeSpacing); only a replica whose
// samples read are fewer or irregular (a chunk of one or two samples right before a gap
// of its own) keeps its estimate from before the skip. Two other things are not seen in
// skipped chunks: spacings smaller than the minimum spacing seen so far (which only
// matters right after a switch to a replica whose first sample it is, with three or
// more replicas), and read errors of chunks no longer needed.
func (g *gapFill) catchUp(r *replica) {
	if r.vt == chunkenc.ValNone || r.t > g.lastT {
		return
	}
	if iv := g.catchUpInterval(r); r.skip != nil && iv > 0 && g.lastT-r.t > skipAfter*iv {
		if vt, moved := r.skip.SkipChunks(g.lastT - catchUpWindow*iv); moved {
			r.vt = vt
			g.load(r)
			// The spacing across the skipped samples is unknown; the last value is set
			// again by the samples read from the new head on.
			r.hasPrev, r.hasVal = false, false
		}
	}
	for r.vt != chunkenc.ValNone && r.t <= g.lastT {
		g.consume(r)
	}
}

// catchUpInterval is the interval catchUp measures r's distance in: the largest
// estimate known, so that it rather reads too many samples than too few; 0 when none is
// known, and then catchUp reads every sample.
func (g *gapFill) catchUpInterval(r *replica) int64 {
	return max(r.interval, g.reps[g.cur].interval, g.minInterval)
}

// catchUpOthers catches every replica but the followed one up to the emitted instant.
func (g *gapFill) catchUpOthers() {
	for i := range g.reps {
		if i != g.cur {
			g.catchUp(&g.reps[i])
		}
	}
}

// Next implements chunkenc.Iterator.
//
// While the followed replica is on time, only it is read: the other replicas' samples
// at or before the emitted instant are covered by it (the rule consumes them without
// emitting them) and are only caught up when the followed replica is late or has ended,
// which is when the rule looks at them.
func (g *gapFill) Next() chunkenc.ValueType {
	if g.done {
		return chunkenc.ValNone
	}
	if !g.started {
		return g.start()
	}
	// Consume the emitted sample, the head of the followed replica c, and advance c:
	// consume and advance written out, as this runs for every sample.
	c := g.c
	if c.hasPrev {
		g.observeSpacing(c, c.t-c.prevT)
	}
	c.hasPrev, c.prevT = true, c.t
	if g.counter {
		remember(c)
	}
	if c.vt = c.it.Next(); c.vt == chunkenc.ValFloat {
		c.t, c.f = c.it.At()
		// The hot path: a float on time (see onTime) after c's own interval estimate. (An
		// error can be pending: probe does not stop the merge at once.)
		if c.interval != 0 && c.t-g.lastT <= 2*c.interval && g.err == nil {
			if c.offset != 0 {
				g.followReset(c)
			}
			return g.emit(c)
		}
	} else {
		g.load(c)
	}
	if c.interval == 0 {
		// No interval estimate of c's own yet (at the start, or right after a switch to a
		// replica that had a single sample): the smallest spacing of any replica stands in,
		// so the others are read up to the emitted instant at every sample, as the rule
		// describes, and probed at the very start.
		g.catchUpOthers()
		if g.err != nil {
			return g.finish()
		}
		if g.minInterval == 0 && c.vt != chunkenc.ValNone {
			g.probe(c)
		}
	} else if g.err != nil {
		return g.finish() // a partial merge would be silently wrong; stop and report
	}
	if g.onTime(c) {
		g.followReset(c)
		return g.emit(c)
	}
	return g.fill(c)
}

// start reads every replica's first sample and emits the earliest (ties: lowest index).
func (g *gapFill) start() chunkenc.ValueType {
	g.started = true
	g.cur = -1
	for i := range g.reps {
		r := &g.reps[i]
		g.advance(r)
		if r.vt != chunkenc.ValNone && (g.cur < 0 || r.t < g.reps[g.cur].t) {
			g.cur = i
		}
	}
	if g.err != nil || g.cur < 0 {
		return g.finish()
	}
	return g.emit(&g.reps[g.cur])
}

// fill runs when the followed replica c is late or exhausted: it fills from the replica
// with the earliest sample in between, or leaves the gap.
func (g *gapFill) fill(c *replica) chunkenc.ValueType {
	g.catchUpOthers()
	if g.err != nil {
		return g.finish()
	}
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
	return g.emit(&g.reps[g.cur])
}

func (g *gapFill) finish() chunkenc.ValueType {
	g.done, g.vt = true, chunkenc.ValNone
	return chunkenc.ValNone
}

// probe runs at the start, while no spacing is known at all. Treating c's next sample
// as on time would then follow c across a gap right after its first sample, so other
// replicas are read up to c's next sample until one shows two samples there: then c's
// next sample is known to be later than that replica's spacing. The sample consumed to
// learn this is lost, which only happens in this cold-start case.
func (g *gapFill) probe(c *replica) {
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
func (g *gapFill) onTime(c *replica) bool {
	if c.vt == chunkenc.ValNone {
		return false
	}
	iv := c.interval
	if iv == 0 {
		iv = g.minInterval
	}
	return iv == 0 || c.t-g.lastT <= 2*iv
}

// followReset handles a drop in the followed replica's own values: a true counter
// reset. Its offset is dropped so the reset shows with the replica's own magnitude
// (PromQL then counts exactly what this replica alone would), unless dropping it would
// hide the reset.
func (g *gapFill) followReset(c *replica) {
	if !g.counter || c.offset == 0 || c.vt != chunkenc.ValFloat || !c.hasVal {
		return
	}
	if c.f < c.valF && c.f < g.lastF {
		c.offset = 0
	}
}

// switchTo makes replica i the followed one and, in counter mode, sets its offset.
func (g *gapFill) switchTo(i int) {
	g.cur = i
	y := &g.reps[i]
	y.offset = 0
	if !g.counter || !g.hasLast || y.vt != chunkenc.ValFloat {
		return
	}
	next := y.f
	switch {
	case math.IsNaN(next):
	case y.hasVal && next < y.valF:
		// y itself reset between its last sample and this one: a true reset. Offset 0
		// shows it as y alone would (or, if the stream already showed it, continues).
	case g.anchor == anchorSame || !y.hasVal:
		// Replicas read the same counter, so next - lastF is the counter's real increase
		// between the two reads. It is only negative when y read the counter a moment
		// before the replica we leave did: then stay level instead of stepping down.
		y.offset = math.Max(0, g.lastF-next)
	case g.anchor == anchorPrev:
		y.offset = g.lastF - y.valF
	default: // anchorInterp
		frac := float64(g.lastT-y.valT) / float64(y.t-y.valT)
		y.offset = g.lastF - (y.valF + (next-y.valF)*frac)
	}
}

// emit records the head of the followed replica c as the emitted sample.
func (g *gapFill) emit(c *replica) chunkenc.ValueType {
	g.c, g.vt, g.lastT = c, c.vt, c.t
	if g.counter {
		if c.vt == chunkenc.ValFloat {
			if !math.IsNaN(c.f) {
				g.hasLast, g.lastF = true, c.f+c.offset
			}
		} else {
			g.hasLast = false
		}
	}
	return c.vt
}

// Seek implements chunkenc.Iterator. It advances with Next so that the selection sees
// every sample of the followed replica on the way: seeking it directly could jump over
// the gap that should have caused a switch (after which the rule stays on the other
// replica), or over a reset that clears its counter offset, and the stream would no
// longer be the one Next gives. Only the followed replica is decoded on the way; the
// others skip the chunks in between at the next gap or at the end (see catchUp), so a
// Seek costs about what reading one replica over the same span does.
func (g *gapFill) Seek(t seek.Millis) chunkenc.ValueType {
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
func (g *gapFill) At() (int64, float64) {
	c := g.c
	return c.t, c.f + c.offset
}

// AtHistogram implements chunkenc.Iterator.
func (g *gapFill) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return g.c.it.AtHistogram(h)
}

// AtFloatHistogram implements chunkenc.Iterator.
func (g *gapFill) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return g.c.it.AtFloatHistogram(fh)
}

// AtT implements chunkenc.Iterator.
func (g *gapFill) AtT() int64 { return g.lastT }

// AtST implements chunkenc.Iterator.
func (g *gapFill) AtST() int64 { return g.c.it.AtST() }

// Err implements chunkenc.Iterator: the first error of any replica that was read.
func (g *gapFill) Err() error { return g.err }

package dedup

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// counterProc is a true counter: piecewise-constant rates, resets to 0 at given times.
type counterProc struct {
	segT   []int64   // segment start times (ms), segT[0] == 0
	rate   []float64 // per second, per segment
	cum    []float64 // integral of the rate from 0 to segT[i]
	resets []int64
	base   float64
}

func newCounterProc(rng *rand.Rand, end int64) *counterProc {
	c := &counterProc{base: math.Floor(rng.Float64() * 1e6)}
	for t := int64(0); t < end; t += (5 + rng.Int64N(56)) * 60_000 {
		r := math.Exp(math.Log(0.1) + rng.Float64()*math.Log(100)) // 0.1..10 per second
		if rng.IntN(10) == 0 {
			r = 0
		}
		c.segT, c.rate = append(c.segT, t), append(c.rate, r)
	}
	c.cum = make([]float64, len(c.segT))
	for i := 1; i < len(c.segT); i++ {
		c.cum[i] = c.cum[i-1] + c.rate[i-1]*float64(c.segT[i]-c.segT[i-1])/1000
	}
	for n := rng.IntN(3); n > 0; n-- { // 0-2 true resets
		c.resets = append(c.resets, 1_800_000+rng.Int64N(end-3_600_000))
	}
	slices.Sort(c.resets)
	return c
}

func (c *counterProc) integral(t int64) float64 {
	i := sort.Search(len(c.segT), func(i int) bool { return c.segT[i] > t }) - 1
	return c.cum[i] + c.rate[i]*float64(t-c.segT[i])/1000
}

func (c *counterProc) value(t int64) float64 {
	from, v := int64(0), c.base
	for _, r := range c.resets {
		if r <= t {
			from, v = r, 0
		}
	}
	return v + c.integral(t) - c.integral(from)
}

// resetIn reports whether a true reset lies in (from, to].
func (c *counterProc) resetIn(from, to int64) bool {
	for _, r := range c.resets {
		if r > from && r <= to {
			return true
		}
	}
	return false
}

// scrape samples c every 15s from a random phase with ±500ms timestamp jitter; each
// value is read 0-500ms after its timestamp, as a target answers after the scrape starts.
func scrape(rng *rand.Rand, c *counterProc, end int64) []sample {
	var out []sample
	for t := rng.Int64N(15_000); t < end; t += 15_000 {
		ts := t + rng.Int64N(1001) - 500
		if ts < 0 {
			continue
		}
		out = append(out, sample{t: ts, f: c.value(ts + rng.Int64N(501))})
	}
	return out
}

func without(s []sample, gaps [][2]int64) []sample {
	var out []sample
next:
	for _, x := range s {
		for _, g := range gaps {
			if x.t >= g[0] && x.t < g[1] {
				continue next
			}
		}
		out = append(out, x)
	}
	return out
}

// randomGaps gives 2-6 gaps of 1-10 minutes, each in one replica, never overlapping a
// gap of the other (at least a minute apart).
func randomGaps(rng *rand.Rand, end int64) (ga, gb [][2]int64) {
	var all [][2]int64
	for n := 2 + rng.IntN(5); n > 0; {
		l := (60 + rng.Int64N(541)) * 1000
		g := [2]int64{rng.Int64N(end - l), 0}
		g[1] = g[0] + l
		if slices.ContainsFunc(all, func(o [2]int64) bool { return g[0] < o[1]+60_000 && o[0] < g[1]+60_000 }) {
			continue
		}
		all = append(all, g)
		if rng.IntN(2) == 0 {
			ga = append(ga, g)
		} else {
			gb = append(gb, g)
		}
		n--
	}
	return ga, gb
}

// skew is the most a sample's value can differ from the true counter at its timestamp,
// because it is read up to 500ms later (across a reset that is the whole value).
func (c *counterProc) skew(ts int64) float64 { return math.Abs(c.value(ts+500) - c.value(ts)) }

// sched is the sampling schedule of a series: timestamps, and whether each sample came
// from another replica than the one before (a switch).
type sched struct {
	ts []int64
	sw []bool
}

func schedOf(out []sample, fromA map[int64]bool) sched {
	s := sched{ts: make([]int64, len(out)), sw: make([]bool, len(out))}
	for i, x := range out {
		s.ts[i] = x.t
		s.sw[i] = i > 0 && fromA[x.t] != fromA[out[i-1].t]
	}
	return s
}

// allowance bounds how far rate/increase over (t-w, t] on schedule s may be from the same
// query over exact counter values at the same timestamps, given read skew: PromQL's result
// depends on the first and last values, on both values around each drop (reset), and in a
// merged series on both values around each switch (where an offset may be set); each can
// be off by its skew, scaled by the extrapolation (at most 1.25 here). Increase units.
func (c *counterProc) allowance(s sched, t, w int64) float64 {
	lo := sort.Search(len(s.ts), func(i int) bool { return s.ts[i] > t-w })
	hi := sort.Search(len(s.ts), func(i int) bool { return s.ts[i] > t })
	if hi-lo < 2 {
		return 0
	}
	sum := c.skew(s.ts[lo]) + c.skew(s.ts[hi-1])
	for i := lo + 1; i < hi; i++ {
		if s.sw[i] || c.resetIn(s.ts[i-1], s.ts[i]) {
			sum += c.skew(s.ts[i-1]) + c.skew(s.ts[i])
		}
	}
	return 1.25 * sum
}

// exact returns the true counter values at the timestamps of s.
func (c *counterProc) exact(s sched) []sample {
	out := make([]sample, len(s.ts))
	for i, ts := range s.ts {
		out[i] = sample{t: ts, f: c.value(ts)}
	}
	return out
}

type errStats struct{ v []float64 }

func (e *errStats) add(x float64) { e.v = append(e.v, x) }
func (e *errStats) q(p float64) float64 {
	s := slices.Clone(e.v)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (e *errStats) beyond(x float64) float64 {
	n := 0
	for _, v := range e.v {
		if v > x {
			n++
		}
	}
	return float64(n) / float64(len(e.v))
}

func (e *errStats) String() string {
	return fmt.Sprintf("p50 %.3f%%  p99 %.3f%%  p99.9 %.3f%%  max %.3f%%  >1%% at %.3f%% of points",
		100*e.q(.5), 100*e.q(.99), 100*e.q(.999), 100*e.q(1), 100*e.beyond(0.01))
}

// TestPropertyAgainstCompleteReplicas is the acceptance test of GapFill.
//
// 400 pairs of replicas sample a random true counter (4h; piecewise-constant rates of
// 0.1-10/s, 10% of segments flat; 0-2 true resets to 0; 15s scrape, own phase, ±500ms
// timestamp jitter, value read 0-500ms after the timestamp) and get 2-6 gaps of 1-10
// minutes, each in one replica only. rate(x[5m]) and increase(x[1h]) are evaluated by
// the PromQL engine every minute over the last 3h for the complete replicas A and B (the
// same samples without gaps) and for the merges of the gapped ones, with counter mode
// from the query hint as in the querier.
//
// A strict "within 1% of complete replica A at every point" cannot hold, for reasons
// that are not dedup errors (numbers from this test): complete B differs from complete A
// by p99 7.1% and max 656% on rate[5m] (p99 2.3% on increase[1h]), because the replicas
// read at different instants and PromQL extrapolates from different first/last samples,
// which matters around rate steps and resets; GapFill starts on the earlier replica and,
// after a gap, stays on the other one, so vs A it inherits that. Even "within 1% of the
// closer of A and B" fails at ~0.1% of points, because a merged window has its own
// sampling schedule: it can start with A's first sample and end with B's last, combining
// A's start-edge and B's end-edge extrapolation (outside [A, B] near rate steps, up to
// 4.4% off here), and the sample taken just after a switch can be close to the previous
// one, which shortens PromQL's average interval and so flips its extrapolation decision
// at a window edge that lies near 1.1 intervals (2.8% off). So the criterion has two
// parts:
//
//  1. Values, at every point: the merge's result is within 1% (floor 0.001/s, 1) of the
//     same query over the exact counter values at the merge's own timestamps, plus an
//     allowance for read skew at the samples PromQL depends on (see allowance). The
//     complete replicas are held to the same bound, which shows it is not tighter than
//     a correct series needs; the other anchors and Penalty breaking it show it is not
//     loose enough to pass anything.
//  2. Schedule, in aggregate: against the closer complete replica, p99 ≤ 0.5% and at
//     most 0.25% of points beyond 1%.
//
// Penalty must fail part 1 (its worst case is logged). "interp" and "prev" anchors are
// the other offset rules (see anchor); prev is the originally specified one.
func TestPropertyAgainstCompleteReplicas(t *testing.T) {
	const (
		end   = 4 * 3600_000
		start = 3600_000
		step  = 60_000
		pairs = 400
	)
	type query struct {
		q     string
		w     int64
		floor float64
	}
	queries := []query{{"rate(x[5m])", 300_000, 0.001}, {"increase(x[1h])", 3600_000, 1}}
	rel := func(x, ref, floor float64) float64 {
		if math.IsNaN(x) || math.IsNaN(ref) {
			if math.IsNaN(x) == math.IsNaN(ref) {
				return 0
			}
			return math.Inf(1)
		}
		return math.Abs(x-ref) / math.Max(math.Abs(ref), floor)
	}
	cands := []string{"gapfill", "gapfill interp anchor", "gapfill prev anchor", "penalty", "complete A", "complete B"}
	closer := make([][]errStats, len(queries)) // per query: the 4 merges, then B vs A
	for i := range closer {
		closer[i] = make([]errStats, 5)
	}
	valueFails := make([]int, len(cands))
	type failure struct {
		ratio     float64
		msg       string
		out, repA []sample
	}
	worst := make([]failure, len(cands))

	for pair := range pairs {
		rng := rand.New(rand.NewPCG(uint64(pair), 7623))
		proc := newCounterProc(rng, end)
		a, b := scrape(rng, proc, end), scrape(rng, proc, end)
		ga, gb := randomGaps(rng, end)
		ag, bg := without(a, ga), without(b, gb)
		fromA := make(map[int64]bool, len(a))
		for _, x := range a {
			fromA[x.t] = true
		}
		newIt := func(c int, counter bool) chunkenc.Iterator {
			switch c {
			case 3:
				return NewIterator(iters(ag, bg), Options{Func: Penalty, Counter: counter})
			case 4:
				return newSliceIter(a)
			case 5:
				return newSliceIter(b)
			}
			return newGapFill(iters(ag, bg), counter, []anchor{anchorSame, anchorInterp, anchorPrev}[c])
		}
		outs := make([][]sample, len(cands))
		scheds := make([]sched, len(cands))
		for c := range cands {
			outs[c] = collect(t, newIt(c, true))
			scheds[c] = schedOf(outs[c], fromA)
		}
		// Counter-mode output may only step down across a true reset.
		for i, out := 1, outs[0]; i < len(out); i++ {
			if out[i].f < out[i-1].f && !proc.resetIn(out[i-1].t-500, out[i].t+500) {
				t.Fatalf("pair %d: gapfill steps down without a reset: %+v -> %+v", pair, out[i-1], out[i])
			}
		}

		for qi, q := range queries {
			unit := 1.0
			if q.q[:4] == "rate" {
				unit = float64(q.w) / 1000
			}
			eval := func(f func(bool) chunkenc.Iterator) []float64 {
				return evalRange(t, f, q.q, start, end, step)
			}
			vals := make([][]float64, len(cands))
			refs := make([][]float64, len(cands))
			for c := range cands {
				vals[c] = eval(func(counter bool) chunkenc.Iterator { return newIt(c, counter) })
				ex := proc.exact(scheds[c])
				refs[c] = eval(func(bool) chunkenc.Iterator { return newSliceIter(ex) })
			}
			va, vb := vals[4], vals[5]
			for i := range va {
				ts := int64(start + i*step)
				closer[qi][4].add(rel(vb[i], va[i], q.floor))
				for c := range cands {
					x := vals[c][i]
					if c < 4 {
						closer[qi][c].add(min(rel(x, va[i], q.floor), rel(x, vb[i], q.floor)))
					}
					bound := 0.01*math.Max(math.Abs(refs[c][i]), q.floor) + proc.allowance(scheds[c], ts, q.w)/unit
					d := math.Abs(x - refs[c][i])
					if math.IsNaN(x) != math.IsNaN(refs[c][i]) {
						d = math.Inf(1)
					}
					if !(d > bound) {
						continue
					}
					valueFails[c]++
					msg := fmt.Sprintf("pair %d %s at %ds: %s %v, exact on its schedule %v (allowed ±%.4g); complete A %v, B %v",
						pair, q.q, ts/1000, cands[c], x, refs[c][i], bound, va[i], vb[i])
					if c == 0 || c >= 4 { // the other anchors and penalty only report
						t.Error(msg)
					}
					if r := d / bound; r > worst[c].ratio {
						worst[c] = failure{ratio: r, msg: msg, out: window(outs[c], ts), repA: window(a, ts)}
					}
				}
			}
		}
	}
	for qi, q := range queries {
		t.Logf("%-16s complete B vs complete A: %v", q.q, &closer[qi][4])
		for c := range 4 {
			t.Logf("%-16s %-22s from the closer complete replica: %v", q.q, cands[c], &closer[qi][c])
		}
		if st := &closer[qi][0]; st.q(.99) > 0.005 || st.beyond(0.01) > 0.0025 {
			t.Errorf("%s: gapfill schedule criterion failed: %v", q.q, st)
		}
		if st := &closer[qi][3]; st.q(.99) > 0.005 || st.beyond(0.01) > 0.0025 {
			t.Logf("%s: penalty fails the schedule criterion too", q.q)
		}
	}
	for c, n := range cands {
		t.Logf("%-22s value bound broken at %d points", n, valueFails[c])
	}
	if valueFails[3] == 0 {
		t.Fatal("penalty met the value criterion everywhere: the test no longer shows the difference")
	}
	for _, c := range []int{2, 3} {
		t.Logf("worst %s", worst[c].msg)
		t.Logf("  output samples in the 5m before: %v", worst[c].out)
		t.Logf("  replica A samples in the 5m before: %v", worst[c].repA)
	}
}

// window returns the samples in the 5m window ending at ts.
func window(s []sample, ts int64) []sample {
	var out []sample
	for _, x := range s {
		if x.t > ts-300_000 && x.t <= ts {
			out = append(out, x)
		}
	}
	return out
}

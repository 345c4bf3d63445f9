package main

import (
	"fmt"
	"math"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// diff compares a result (got, from the querier) with the answers of both replicas
// queried directly (r0 is the reference; r1 gives the spread between the replicas).
type diff struct {
	missing, extra int     // series only in r0's answer / only in got
	tsMismatch     int     // series present in both whose timestamps differ
	maxRel         float64 // largest relative difference from r0 at the same timestamp
	spread         float64 // largest relative difference between r1 and r0
	settledRel     float64 // maxRel over the points at or after settle
	settledSpread  float64 // spread over the points at or after settle
	differing      int     // points whose relative difference from r0 exceeds 1e-9
	outside        int     // points outside [min(r0,r1), max(r0,r1)] widened by the tolerance
	edgeOutside    int     // of those, points before settle (windows reaching before the data)
	compared       int     // points compared
	worst          string  // series and time of maxRel
	worstOutside   string  // series and time of the settled point farthest outside the envelope
	outsideBy      float64 // how far (relative) that point lies outside
}

// At points before settle the range selectors' windows reach before the first sample, so
// each series' rate is extrapolated from a few samples and the replicas disagree a lot;
// an aggregation of per-series values each taken from one replica can then fall outside
// the envelope of the replicas' aggregates. Those points are counted apart.
func compare(got, r0, r1 benchkit.Matrix, tol float64, settle int64) diff {
	var d diff
	for k, wp := range r0 {
		gp, ok := got[k]
		if !ok {
			d.missing++
			continue
		}
		alt := pointsByTime(r1[k])
		gi := 0
		mismatch := len(gp) != len(wp)
		for _, w := range wp {
			for gi < len(gp) && gp[gi].T < w.T {
				gi++
			}
			if gi == len(gp) || gp[gi].T != w.T {
				mismatch = true
				continue
			}
			g := gp[gi].V
			r := relDiff(g, w.V)
			d.compared++
			if r > 1e-9 {
				d.differing++
			}
			if r > d.maxRel {
				d.maxRel = r
				d.worst = fmt.Sprintf("%s @%s: %g, r0 %g", k, time.UnixMilli(w.T).UTC().Format("15:04:05"), g, w.V)
				if a, ok := alt[w.T]; ok {
					d.worst += fmt.Sprintf(", r1 %g", a)
				}
			}
			a, ok := alt[w.T]
			if !ok {
				a = w.V
			}
			d.spread = math.Max(d.spread, relDiff(a, w.V))
			if w.T >= settle {
				d.settledRel = math.Max(d.settledRel, r)
				d.settledSpread = math.Max(d.settledSpread, relDiff(a, w.V))
			}
			if r > tol && !within(g, w.V, a, tol) {
				d.outside++
				if w.T < settle {
					d.edgeOutside++
				} else if by := outsideBy(g, w.V, a); by > d.outsideBy {
					d.outsideBy = by
					d.worstOutside = fmt.Sprintf("%s @%s: %g, r0 %g, r1 %g", k, time.UnixMilli(w.T).UTC().Format("15:04:05"), g, w.V, a)
				}
			}
		}
		if mismatch {
			d.tsMismatch++
		}
	}
	for k := range got {
		if _, ok := r0[k]; !ok {
			d.extra++
		}
	}
	return d
}

// within reports whether v lies between a and b, widened by tol relative to the larger.
func within(v, a, b, tol float64) bool {
	if math.IsNaN(v) || math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(v) && (math.IsNaN(a) || math.IsNaN(b))
	}
	slack := tol * math.Max(math.Abs(a), math.Abs(b))
	return v >= math.Min(a, b)-slack && v <= math.Max(a, b)+slack
}

// outsideBy returns how far v lies outside [min(a,b), max(a,b)], relative to the larger.
func outsideBy(v, a, b float64) float64 {
	if math.IsNaN(v) || math.IsNaN(a) || math.IsNaN(b) {
		return math.Inf(1)
	}
	lo, hi := math.Min(a, b), math.Max(a, b)
	return math.Max(lo-v, v-hi) / math.Max(math.Max(math.Abs(a), math.Abs(b)), 1e-300)
}

func pointsByTime(ps []benchkit.Point) map[int64]float64 {
	m := make(map[int64]float64, len(ps))
	for _, p := range ps {
		m[p.T] = p.V
	}
	return m
}

func relDiff(a, b float64) float64 {
	switch {
	case math.IsNaN(a) && math.IsNaN(b), a == b:
		return 0
	case math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0):
		return math.Inf(1)
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

// ok reports whether the querier returned the same series and timestamps as r0 and every
// value within the replicas' envelope (see within).
func (d diff) ok() bool {
	return d.missing == 0 && d.extra == 0 && d.tsMismatch == 0 && d.outside == d.edgeOutside
}

func (d diff) String() string {
	s := fmt.Sprintf("max rel diff from r0 %.3g, after the first hour %.3g (r1 vs r0: %.3g, %.3g); %d/%d points differ from r0; %d outside the replicas' envelope (%d in the first hour)",
		d.maxRel, d.settledRel, d.spread, d.settledSpread, d.differing, d.compared, d.outside, d.edgeOutside)
	if d.missing+d.extra+d.tsMismatch > 0 {
		s += fmt.Sprintf("; %d series missing, %d extra, %d with other timestamps", d.missing, d.extra, d.tsMismatch)
	}
	return s
}

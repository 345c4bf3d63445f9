package dedup

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// TestIssue7623 replays Thanos issue #7623: three replicas scrape a counter growing by 6
// every 20s (0.3/s) and read it at slightly different instants, so around 787s they
// report 78988 @786.6 (r0), 78989 @787.413 (r2) and 78988 @787.488 (r1). Thanos's
// dedup emitted exactly that sequence and rate() saw a reset: 790/s. Here r0 and then r2
// go down right after those samples, so the merge does switch r0 -> r2 -> r1 there.
func TestIssue7623(t *testing.T) {
	const step = 20_000
	end := int64(2 * 3600_000)
	// Replica r's counter value at its own timestamp ts: the anchor sample plus 6 per 20s.
	rep := func(anchorT int64, anchorV float64, gaps ...[2]int64) []sample {
		return series(every(anchorT%step, end, step, gaps...), func(ts int64) float64 {
			return anchorV + 6*float64(ts-anchorT)/step
		})
	}
	r0 := rep(786_600, 78988, [2]int64{786_601, 786_601 + 600_000})
	r1 := rep(787_488, 78988, [2]int64{2_400_000, 2_700_000})
	r2 := rep(787_413, 78989, [2]int64{787_414, 787_414 + 600_000})
	newIt := func(opts Options) chunkenc.Iterator { return NewIterator(iters(r0, r1, r2), opts) }

	// The raw merge (non-counter mode never alters values) reproduces the issue's
	// sequence, with its step down.
	raw := collect(t, newIt(Options{}))
	i := 0
	for i < len(raw) && raw[i].t != 786_600 {
		i++
	}
	if i+2 >= len(raw) || raw[i+1].t != 787_413 || raw[i+2].t != 787_488 || raw[i+2].f >= raw[i+1].f {
		t.Fatalf("scenario does not reproduce the issue's samples around %d: %+v", i, raw[max(0, i-1):min(len(raw), i+4)])
	}

	// Counter mode: never a step down, so never a fake reset.
	got := collect(t, newIt(Options{Counter: true}))
	for j := 1; j < len(got); j++ {
		if got[j].f < got[j-1].f {
			t.Fatalf("counter output decreases: %+v -> %+v", got[j-1], got[j])
		}
	}
	t.Logf("gapfill around the switch: %+v", got[i:i+3])

	// rate() through the real PromQL engine stays at the replicas' 0.3/s.
	start := int64(600_000)
	for _, f := range []Func{GapFill, Penalty} {
		rates := evalRange(t, func(counter bool) chunkenc.Iterator {
			return newIt(Options{Func: f, Counter: counter})
		}, "rate(x[5m])", start, end, 60_000)
		worst, worstT := 0.0, int64(0)
		for k, r := range rates {
			if d := math.Abs(r - 0.3); math.IsNaN(r) || d > worst {
				worst, worstT = d, start+int64(k)*60_000
				if math.IsNaN(r) {
					worst = math.Inf(1)
				}
			}
		}
		t.Logf("%v: worst |rate-0.3| = %.4f at %ds", f, worst, worstT/1000)
		if f == GapFill && worst > 0.3*0.02 {
			t.Errorf("gapfill rate off by %.4f/s (more than 2%%) at %ds", worst, worstT/1000)
		}
	}
}

package dedup

import (
	"errors"
	"reflect"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

const s15 = 15_000

func times(s []sample) []int64 {
	out := make([]int64, len(s))
	for i, x := range s {
		out[i] = x.t
	}
	return out
}

func ident(t int64) float64 { return float64(t) }

func TestSingleReplicaPassthrough(t *testing.T) {
	it := newSliceIter(series(every(0, 10*s15, s15), ident))
	if got := NewIterator([]chunkenc.Iterator{it}, Options{}); got != it {
		t.Fatalf("one replica must be returned unchanged, got %T", got)
	}
	if vt := NewIterator(nil, Options{}).Next(); vt != chunkenc.ValNone {
		t.Fatalf("no replica: Next = %v, want none", vt)
	}
}

// Two complete replicas offset in time: the output is one replica, never interleaved.
func TestFollowsOneReplica(t *testing.T) {
	a := series(every(0, 100*s15, s15), ident)
	// b ends before a: after a's end the merge would rightly continue with b's later samples.
	b := series(every(4000, 99*s15, s15), func(t int64) float64 { return float64(t) - 7 })
	for _, opts := range []Options{{Func: GapFill}, {Func: GapFill, Counter: true}, {Func: Penalty}, {Func: Penalty, Counter: true}} {
		got := collect(t, NewIterator(iters(a, b), opts))
		if !reflect.DeepEqual(got, a) {
			t.Errorf("%+v: got %d samples %v..., want replica a (%d samples)", opts, len(got), times(got)[:5], len(a))
		}
		// Starting on whichever replica is earliest, even if it is not the first.
		got = collect(t, NewIterator(iters(b, a), opts))
		if !reflect.DeepEqual(got, a) {
			t.Errorf("%+v reversed: got %v..., want replica a", opts, times(got)[:5])
		}
	}
}

// A gap in a is filled from b; the merge stays on b until b has a gap, then returns.
func TestGapFilledAndSwitchBackOnlyOnGap(t *testing.T) {
	a := series(every(0, 60*s15, s15, [2]int64{10 * s15, 20 * s15}), ident)
	b := series(every(5000, 60*s15, s15, [2]int64{40 * s15, 50 * s15}), ident)
	got := times(collect(t, NewIterator(iters(a, b), Options{})))
	var want []int64
	want = append(want, every(0, 10*s15, s15)...)          // a up to its gap
	want = append(want, every(9*s15+5000, 40*s15, s15)...) // b from its first sample after a's last
	want = append(want, every(40*s15, 60*s15, s15)...)     // back to a only when b gaps
	want = append(want, 59*s15+5000)                       // a ended: b's last sample continues it
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestCommonGapStays(t *testing.T) {
	gap := [2]int64{10 * s15, 20 * s15}
	a := series(every(0, 40*s15, s15, gap), ident)
	b := series(every(5000, 40*s15, s15, gap), ident)
	for _, f := range []Func{GapFill, Penalty} {
		got := collect(t, NewIterator(iters(a, b), Options{Func: f}))
		for _, s := range got {
			if s.t > gap[0] && s.t < gap[1]-s15 {
				t.Errorf("%v: sample at %d inside the common gap", f, s.t)
			}
		}
		if n := len(got); n < len(a) {
			t.Errorf("%v: %d samples, want at least replica a's %d", f, n, len(a))
		}
	}
}

func TestSeek(t *testing.T) {
	a := series(every(0, 60*s15, s15, [2]int64{10 * s15, 20 * s15}), ident)
	b := series(every(5000, 60*s15, s15), ident)
	for _, f := range []Func{GapFill, Penalty} {
		it := NewIterator(iters(a, b), Options{Func: f})
		// Into a's gap: the first sample at or after t, which only b has.
		if vt := it.Seek(12 * s15); vt != chunkenc.ValFloat {
			t.Fatalf("%v: Seek = %v", f, vt)
		}
		want := int64(12*s15 + 5000) // both switched to b well before 12*s15
		if ts, v := it.At(); ts != want || v != float64(want) || it.AtT() != want {
			t.Fatalf("%v: after Seek at %d (%v), want %d", f, ts, v, want)
		}
		// Backwards is a no-op.
		if vt := it.Seek(0); vt != chunkenc.ValFloat || it.AtT() != want {
			t.Fatalf("%v: Seek backwards moved to %d", f, it.AtT())
		}
		// Same position again is a no-op too; Next continues on b.
		if it.Seek(want); it.AtT() != want {
			t.Fatalf("%v: Seek to current moved", f)
		}
		if it.Next(); it.AtT() != want+s15 {
			t.Fatalf("%v: Next after Seek at %d, want %d", f, it.AtT(), want+s15)
		}
		if vt := it.Seek(1 << 40); vt != chunkenc.ValNone {
			t.Fatalf("%v: Seek past the end = %v", f, vt)
		}
		if vt := it.Seek(0); vt != chunkenc.ValNone {
			t.Fatalf("%v: Seek after exhaustion = %v", f, vt)
		}
	}
	// Seek before any Next must not skip the selection: same as Next from the start.
	it := NewIterator(iters(a, b), Options{})
	if it.Seek(0); it.AtT() != 0 {
		t.Fatalf("first Seek landed on %d", it.AtT())
	}
}

func TestHistogramsPassThrough(t *testing.T) {
	hist := func(ts []int64) []sample {
		out := make([]sample, len(ts))
		for i, x := range ts {
			out[i] = sample{t: x, h: &histogram.Histogram{Count: uint64(x), Sum: float64(x), Schema: 0}}
		}
		return out
	}
	a := hist(every(0, 30*s15, s15, [2]int64{10 * s15, 15 * s15}))
	b := hist(every(5000, 30*s15, s15))
	for _, opts := range []Options{{}, {Counter: true}, {Func: Penalty, Counter: true}} {
		got := collect(t, NewIterator(iters(a, b), opts))
		if len(got) < 25 {
			t.Fatalf("%+v: %d samples", opts, len(got))
		}
		for _, s := range got {
			if s.h == nil || s.h.Count != uint64(s.t) || s.h.Sum != float64(s.t) {
				t.Fatalf("%+v: sample at %d is %+v, want the input histogram", opts, s.t, s.h)
			}
		}
		fit := NewIterator(iters(a, b), opts)
		fit.Next()
		if ts, fh := fit.AtFloatHistogram(nil); ts != 0 || fh == nil || fh.Count != 0 {
			t.Fatalf("%+v: AtFloatHistogram = %d %+v", opts, ts, fh)
		}
	}
}

func TestErrPropagates(t *testing.T) {
	boom := errors.New("boom")
	for _, f := range []Func{GapFill, Penalty} {
		a := newSliceIter(series(every(0, 30*s15, s15), ident))
		b := &sliceIter{s: series(every(5000, 30*s15, s15), ident), i: -1, err: boom, failAfter: 5}
		it := NewIterator([]chunkenc.Iterator{a, b}, Options{Func: f})
		n := 0
		for it.Next() != chunkenc.ValNone {
			n++
		}
		if !errors.Is(it.Err(), boom) {
			t.Fatalf("%v: Err = %v after %d samples, want boom", f, it.Err(), n)
		}
	}
}

func TestThreeReplicas(t *testing.T) {
	a := series(every(0, 60*s15, s15, [2]int64{10 * s15, 30 * s15}), ident)
	b := series(every(9000, 60*s15, s15, [2]int64{5 * s15, 25 * s15}), ident) // down too
	c := series(every(3000, 60*s15, s15, [2]int64{40 * s15, 50 * s15}), ident)
	got := times(collect(t, NewIterator(iters(a, b, c), Options{})))
	var want []int64
	want = append(want, every(0, 10*s15, s15)...)           // a
	want = append(want, every(9*s15+3000, 40*s15, s15)...)  // c: b has no sample in a's gap
	want = append(want, every(39*s15+9000, 60*s15, s15)...) // c gaps: b is earlier than a
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	// Penalty chains pairs and must also produce time-ordered, gap-filled output.
	pen := times(collect(t, NewIterator(iters(a, b, c), Options{Func: Penalty})))
	for i := 1; i < len(pen); i++ {
		if pen[i] <= pen[i-1] || pen[i]-pen[i-1] > 4*s15 {
			t.Fatalf("penalty output not ordered or gappy at %d: %v", i, pen[i-1:i+1])
		}
	}
}

// Counter mode at a switch: a's gap is filled from b. The value continues as b read it
// when that does not step down, is held level when b read a lower value (b read the
// counter a moment earlier), and a true reset in b after the switch still shows with
// b's own value.
func TestCounterOffsets(t *testing.T) {
	const rate = 0.01 // per ms
	a := series(every(0, 40*s15, s15, [2]int64{10 * s15, 40 * s15}), func(t int64) float64 { return 1000 + rate*float64(t) })
	last := a[9] // a's last sample, 2350 @135000; b's first later sample is @140000
	bWith := func(lag float64) []sample {
		return series(every(5000, 40*s15, s15), func(t int64) float64 {
			if t >= 30*s15 {
				return rate * float64(t-30*s15) // true reset at 30*s15
			}
			return 1000 + rate*float64(t) - lag
		})
	}
	for _, tc := range []struct {
		lag, wantSwitch float64
	}{
		{lag: 1, wantSwitch: 2399},      // b reads 1 lower: still above 2350, kept as read
		{lag: 60, wantSwitch: last.f},   // b reads 2340 < 2350: held level, not a reset
		{lag: -5, wantSwitch: 2400 + 5}, // b reads higher: kept as read
	} {
		b := bWith(tc.lag)
		got := collect(t, NewIterator(iters(a, b), Options{Counter: true}))
		if got[10].t != 9*s15+5000 || got[10].f != tc.wantSwitch {
			t.Fatalf("lag %v: after the switch %+v, want %v @%d", tc.lag, got[10], tc.wantSwitch, 9*s15+5000)
		}
		off := got[10].f - b[9].f
		for i := 11; i < len(got); i++ {
			bi := b[i-1]
			isReset := got[i].t >= 30*s15 && got[i-1].t < 30*s15
			switch {
			case got[i].t != bi.t:
				t.Fatalf("lag %v: sample %d at %d, want b's %d", tc.lag, i, got[i].t, bi.t)
			case isReset && got[i].f != bi.f:
				t.Fatalf("lag %v: after the reset %v, want b's own %v", tc.lag, got[i].f, bi.f)
			case !isReset && got[i].t < 30*s15 && got[i].f != bi.f+off:
				t.Fatalf("lag %v: %v at %d, want b + %v = %v", tc.lag, got[i].f, bi.t, off, bi.f+off)
			case isReset != (got[i].f < got[i-1].f):
				t.Fatalf("lag %v: step %v -> %v at %d (reset %v)", tc.lag, got[i-1].f, got[i].f, bi.t, isReset)
			}
		}
		// Without Counter values are never altered.
		if raw := collect(t, NewIterator(iters(a, b), Options{})); raw[10].f != b[9].f {
			t.Fatalf("lag %v: non-counter value %v, want b's raw %v", tc.lag, raw[10].f, b[9].f)
		}
	}
	// The anchor first specified, b's last value at or before the switch, counts the
	// 10s between that sample (125000) and the switch (135000) twice.
	b := bWith(1)
	prev := collect(t, newGapFill(iters(a, b), true, anchorPrev))
	if want := last.f + rate*float64(9*s15+5000-b[8].t); prev[10].f != want {
		t.Fatalf("prev anchor %v, want %v", prev[10].f, want)
	}
}

// XOR chunk inputs give the same output as slices.
func TestXORChunkInputs(t *testing.T) {
	a := series(every(0, 1000*s15, s15, [2]int64{300 * s15, 340 * s15}), ident)
	b := series(every(7000, 1000*s15, s15, [2]int64{600 * s15, 660 * s15}), ident)
	ca, cb := &chunksIter{}, &chunksIter{}
	ca.reset(xorChunks(t, a))
	cb.reset(xorChunks(t, b))
	got := collect(t, NewIterator([]chunkenc.Iterator{ca, cb}, Options{Counter: true}))
	want := collect(t, NewIterator(iters(a, b), Options{Counter: true}))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("chunk inputs differ from slice inputs: %d vs %d samples", len(got), len(want))
	}
}

func TestParseFuncAndCounterFuncs(t *testing.T) {
	for in, want := range map[string]Func{"": GapFill, "gapfill": GapFill, "penalty": Penalty} {
		if got, err := ParseFunc(in); err != nil || got != want {
			t.Errorf("ParseFunc(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"chain", "Penalty", "x"} {
		if _, err := ParseFunc(in); err == nil {
			t.Errorf("ParseFunc(%q) did not fail", in)
		}
	}
	for _, fn := range []string{"rate", "increase", "irate", "resets", "xrate", "xincrease"} {
		if !IsCounterFunc(fn) {
			t.Errorf("IsCounterFunc(%q) = false", fn)
		}
	}
	for _, fn := range []string{"", "delta", "sum", "max_over_time", "deriv"} {
		if IsCounterFunc(fn) {
			t.Errorf("IsCounterFunc(%q) = true", fn)
		}
	}
	if GapFill.String() != "gapfill" || Penalty.String() != "penalty" {
		t.Errorf("String: %v %v", GapFill, Penalty)
	}
}

package query

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func tenth(t int64) float64 { return float64(t) / 10 }

func sameRuns(t *testing.T, got, want [][]*storepb.AggrChunk) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("runs = %d, want %d", len(got), len(want))
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("run %d = %v, want %v", i, spans(got[i]), spans(want[i]))
		}
	}
}

func spans(cs []*storepb.AggrChunk) [][2]int64 {
	var out [][2]int64
	for _, c := range cs {
		out = append(out, [2]int64{c.MinTime, c.MaxTime})
	}
	return out
}

func TestSplitOverlappingPassthrough(t *testing.T) {
	cs := chunked(t, genSamples(0, 2990, 10, tenth, nil), 100)
	if len(cs) != 3 {
		t.Fatalf("setup: %d chunks", len(cs))
	}
	sameRuns(t, splitOverlapping(cs), [][]*storepb.AggrChunk{cs})
	sameRuns(t, splitOverlapping(cs[:1]), [][]*storepb.AggrChunk{cs[:1]})
	if got := splitOverlapping(nil); len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("nil input: %v", got)
	}
}

func TestSplitOverlappingInterleavedReplicas(t *testing.T) {
	r0 := chunked(t, genSamples(0, 1190, 10, tenth, nil), 40) // [0,390] [400,790] [800,1190]
	r1 := chunked(t, genSamples(5, 1195, 10, tenth, nil), 40) // [5,395] [405,795] [805,1195]
	// As a store gateway holding both replicas' blocks sends them: one after the other,
	// and interleaved by min time.
	for name, in := range map[string][]*storepb.AggrChunk{
		"concatenated": slices.Concat(r0, r1),
		"interleaved":  {r0[0], r1[0], r0[1], r1[1], r0[2], r1[2]},
	} {
		t.Run(name, func(t *testing.T) {
			orig := slices.Clone(in)
			sameRuns(t, splitOverlapping(in), [][]*storepb.AggrChunk{r0, r1})
			if !slices.Equal(in, orig) {
				t.Fatal("input slice was reordered")
			}
		})
	}
}

func TestSplitOverlappingDropsExactDuplicates(t *testing.T) {
	a := chunked(t, genSamples(0, 790, 10, tenth, nil), 40) // [0,390] [400,790]
	dup := func(c *storepb.AggrChunk, hash bool) *storepb.AggrChunk {
		raw := &storepb.Chunk{Type: c.Raw.Type, Data: slices.Clone(c.Raw.Data)}
		if hash {
			raw.Hash = c.Raw.Hash
		}
		return &storepb.AggrChunk{MinTime: c.MinTime, MaxTime: c.MaxTime, Raw: raw}
	}
	// Same data with hash, and same data without hash (compared by bytes).
	in := []*storepb.AggrChunk{a[0], dup(a[0], true), a[1], dup(a[1], false)}
	sameRuns(t, splitOverlapping(in), [][]*storepb.AggrChunk{{a[0], a[1]}})

	// Same time range, different values: both kept, as two runs.
	other := xorChunk(t, genSamples(0, 390, 10, func(int64) float64 { return 7 }, nil))
	got := splitOverlapping([]*storepb.AggrChunk{a[0], other})
	sameRuns(t, got, [][]*storepb.AggrChunk{{a[0]}, {other}})
}

func TestSplitOverlappingUnsortedInput(t *testing.T) {
	cs := chunked(t, genSamples(0, 1190, 10, tenth, nil), 40)
	sameRuns(t, splitOverlapping([]*storepb.AggrChunk{cs[2], cs[0], cs[1]}), [][]*storepb.AggrChunk{cs})

	r1 := chunked(t, genSamples(5, 1195, 10, tenth, nil), 40)
	in := []*storepb.AggrChunk{r1[2], cs[1], r1[0], cs[2], cs[0], r1[1]}
	runs := splitOverlapping(in)
	sameRuns(t, runs, [][]*storepb.AggrChunk{cs, r1})
}

func newIter(chks []*storepb.AggrChunk, mint, maxt int64) *chunkListIterator {
	return newChunkListIterator(chks, mint, maxt, chunkenc.NewPool())
}

func TestChunkListIteratorBounds(t *testing.T) {
	all := genSamples(0, 2990, 10, tenth, nil)
	cs := chunked(t, all, 120) // [0,1190] [1200,2390] [2400,2990]
	for _, tc := range []struct{ mint, maxt int64 }{
		{-1000, 5000}, {455, 2005}, {1200, 1200}, {1195, 1205}, {3000, 4000}, {2991, 2999},
	} {
		var want []sample
		for _, s := range all {
			if s.t >= tc.mint && s.t <= tc.maxt {
				want = append(want, s)
			}
		}
		got := decodeAll(t, newIter(cs, tc.mint, tc.maxt))
		if !slices.Equal(got, want) {
			t.Fatalf("[%d,%d]: got %d samples %v, want %d", tc.mint, tc.maxt, len(got), got, len(want))
		}
	}
}

func TestChunkListIteratorSeek(t *testing.T) {
	cs := chunked(t, genSamples(0, 2990, 10, tenth, nil), 120)
	it := newIter(cs, 0, 2990)
	expect := func(vt chunkenc.ValueType, wantT int64) {
		t.Helper()
		if vt != chunkenc.ValFloat {
			t.Fatalf("value type %v, want float at %d", vt, wantT)
		}
		if ts, v := it.At(); ts != wantT || v != tenth(wantT) || it.AtT() != wantT {
			t.Fatalf("at (%d, %v), want (%d, %v)", ts, v, wantT, tenth(wantT))
		}
	}
	expect(it.Seek(55), 60) // before any Next
	expect(it.Seek(60), 60) // at the current sample
	expect(it.Seek(30), 60) // backwards: no-op
	expect(it.Next(), 70)
	expect(it.Seek(1000), 1000) // forward within the first chunk
	expect(it.Seek(2405), 2410) // across a whole chunk
	expect(it.Seek(1500), 2410) // backwards again
	expect(it.Next(), 2420)
	if vt := it.Seek(5000); vt != chunkenc.ValNone {
		t.Fatalf("seek past end: %v", vt)
	}
	if vt := it.Next(); vt != chunkenc.ValNone {
		t.Fatalf("next after end: %v", vt)
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
}

func corrupt(mint, maxt int64) *storepb.AggrChunk {
	// Header says 5 samples; the first timestamp varint is cut short.
	return &storepb.AggrChunk{MinTime: mint, MaxTime: maxt, Raw: &storepb.Chunk{Type: storepb.Chunk_XOR, Data: []byte{0x00, 0x05, 0xff}}}
}

func TestChunkListIteratorSkipsChunksOutsideRange(t *testing.T) {
	good := xorChunk(t, genSamples(1200, 2390, 10, tenth, nil))
	// The corrupt chunks would fail the iteration if they were decoded at all.
	chks := []*storepb.AggrChunk{corrupt(0, 1190), good, corrupt(2400, 2990)}
	got := decodeAll(t, newIter(chks, 1195, 2395))
	if len(got) != 120 || got[0].t != 1200 || got[119].t != 2390 {
		t.Fatalf("got %d samples, first %v", len(got), got[:min(1, len(got))])
	}
	// Aggregate-only chunks (no raw) are skipped.
	noRaw := &storepb.AggrChunk{MinTime: 0, MaxTime: 1190, Count: &storepb.Chunk{}}
	if got := decodeAll(t, newIter([]*storepb.AggrChunk{noRaw, good}, 0, 5000)); len(got) != 120 {
		t.Fatalf("with aggregate-only chunk: %d samples", len(got))
	}
}

func TestChunkListIteratorCorruptChunk(t *testing.T) {
	good := xorChunk(t, genSamples(0, 90, 10, tenth, nil))
	for name, bad := range map[string]*storepb.AggrChunk{
		"truncated":        corrupt(100, 200),
		"unknown encoding": {MinTime: 100, MaxTime: 200, Raw: &storepb.Chunk{Type: 42, Data: []byte{0, 1, 2}}},
	} {
		t.Run(name, func(t *testing.T) {
			it := newIter([]*storepb.AggrChunk{good, bad}, 0, 1000)
			n := 0
			for it.Next() != chunkenc.ValNone {
				n++
			}
			if it.Err() == nil {
				t.Fatal("no error from a corrupt chunk")
			}
			if n != 10 {
				t.Fatalf("read %d samples before the error, want the good chunk's 10", n)
			}
			if it.Next() != chunkenc.ValNone || it.Seek(150) != chunkenc.ValNone {
				t.Fatal("iterator continued after an error")
			}
		})
	}
}

package query

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/seek"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// chunkUse is what a countingPool saw of one chunk: opened (decoding can only start by
// opening a chunk), and how its iterator was driven.
type chunkUse struct {
	opened, nexts, seeks int
}

// countingPool is a chunkenc.Pool that records, per chunk of chks, how it is used.
type countingPool struct {
	chunkenc.Pool
	chks []*storepb.AggrChunk
	use  []chunkUse
}

func newCountingPool(chks []*storepb.AggrChunk) *countingPool {
	return &countingPool{Pool: chunkenc.NewPool(), chks: chks, use: make([]chunkUse, len(chks))}
}

func (p *countingPool) Get(e chunkenc.Encoding, b []byte) (chunkenc.Chunk, error) {
	c, err := p.Pool.Get(e, b)
	if err != nil {
		return nil, err
	}
	for i, ch := range p.chks {
		if len(b) > 0 && len(ch.Raw.Data) > 0 && &ch.Raw.Data[0] == &b[0] {
			p.use[i].opened++
			return &countingChunk{Chunk: c, use: &p.use[i]}, nil
		}
	}
	return c, nil
}

func (p *countingPool) Put(c chunkenc.Chunk) error {
	if cc, ok := c.(*countingChunk); ok {
		c = cc.Chunk
	}
	return p.Pool.Put(c)
}

// opened lists the indexes of the chunks that were opened.
func (p *countingPool) opened() []int {
	var out []int
	for i, u := range p.use {
		if u.opened > 0 {
			out = append(out, i)
		}
	}
	return out
}

type countingChunk struct {
	chunkenc.Chunk
	use *chunkUse
}

func (c *countingChunk) Iterator(reuse chunkenc.Iterator) chunkenc.Iterator {
	if ci, ok := reuse.(*countingIter); ok {
		reuse = ci.Iterator
	}
	return &countingIter{Iterator: c.Chunk.Iterator(reuse), use: c.use}
}

type countingIter struct {
	chunkenc.Iterator
	use *chunkUse
}

func (it *countingIter) Next() chunkenc.ValueType {
	it.use.nexts++
	return it.Iterator.Next()
}

func (it *countingIter) Seek(t seek.Millis) chunkenc.ValueType {
	it.use.seeks++
	return it.Iterator.Seek(t)
}

// tailCorrupt is a chunk of 120 samples whose data is cut after the first few: they
// decode, the rest fails. Its metadata (time range) is that of all 120.
func tailCorrupt(tb testing.TB, ss []sample) *storepb.AggrChunk {
	c := xorChunk(tb, ss)
	c.Raw.Data = c.Raw.Data[:len(c.Raw.Data)/8]
	c.Raw.Hash = 0
	return c
}

func TestChunkListIteratorSeekSkipsWholeChunks(t *testing.T) {
	cs := chunked(t, genSamples(0, 11990, 10, tenth, nil), 120) // chunk i: [1200i, 1200i+1190]
	pool := newCountingPool(cs)
	it := newChunkListIterator(cs, 0, 1<<40, pool)
	expect := func(vt chunkenc.ValueType, want int64) {
		t.Helper()
		if vt != chunkenc.ValFloat || it.AtT() != want {
			t.Fatalf("at %v %d, want a float at %d (err %v)", vt, it.AtT(), want, it.Err())
		}
		if _, v := it.At(); v != tenth(want) {
			t.Fatalf("value %v at %d", v, want)
		}
	}
	expect(it.Next(), 0)
	expect(it.Seek(7705), 7710) // chunk 6, sample 43
	if got := pool.opened(); !slices.Equal(got, []int{0, 6}) {
		t.Fatalf("opened chunks %v, want [0 6]: chunks 1-5 end before t and must not be decoded", got)
	}
	if u := pool.use[6]; u.seeks != 1 || u.nexts != 0 {
		t.Fatalf("chunk 6 driven by %d Seeks and %d Nexts, want its own Seek once", u.seeks, u.nexts)
	}
	if u := pool.use[0]; u.nexts != 1 {
		t.Fatalf("chunk 0 read with %d Nexts after the Seek left it, want only the first sample's", u.nexts)
	}
	expect(it.Seek(8000), 8000) // within the open chunk: its Seek again
	if u := pool.use[6]; u.seeks != 2 || u.nexts != 0 {
		t.Fatalf("chunk 6 driven by %d Seeks and %d Nexts", u.seeks, u.nexts)
	}
	expect(it.Seek(11000), 11000) // the open chunk ends before t: it is left undecoded
	if got := pool.opened(); !slices.Equal(got, []int{0, 6, 9}) {
		t.Fatalf("opened chunks %v, want [0 6 9]", got)
	}
	expect(it.Next(), 11010)
	if vt := it.Seek(12000); vt != chunkenc.ValNone || it.Err() != nil {
		t.Fatalf("Seek past the end: %v, %v", vt, it.Err())
	}
}

// The proof that skipped chunks are not decoded: corrupt ones are skipped without an
// error, including the rest of the open chunk when it ends before t.
func TestChunkListIteratorSeekDoesNotDecodeSkippedChunks(t *testing.T) {
	all := genSamples(0, 4790, 10, tenth, nil)
	tail := tailCorrupt(t, all[240:360]) // [2400, 3590]: the first samples decode, then an error
	chks := []*storepb.AggrChunk{xorChunk(t, all[:120]), corrupt(1200, 2390), tail, xorChunk(t, all[360:])}

	// The cut chunk really fails when read to its end.
	if bad := newIter([]*storepb.AggrChunk{tail}, 0, 1<<40); func() bool {
		for bad.Next() != chunkenc.ValNone {
		}
		return bad.Err() == nil
	}() {
		t.Fatal("setup: the cut chunk decodes without error")
	}

	it := newIter(chks, 0, 1<<40)
	if it.Next() != chunkenc.ValFloat || it.AtT() != 0 {
		t.Fatal("first sample")
	}
	// Over the corrupt chunk into the cut one, whose first samples are fine.
	if vt := it.Seek(2405); vt != chunkenc.ValFloat || it.AtT() != 2410 || it.Err() != nil {
		t.Fatalf("Seek(2405) = %v at %d, err %v", vt, it.AtT(), it.Err())
	}
	// The cut chunk ends (by its metadata) before t: its corrupt rest is not decoded.
	if vt := it.Seek(3650); vt != chunkenc.ValFloat || it.AtT() != 3650 || it.Err() != nil {
		t.Fatalf("Seek(3650) = %v at %d, err %v", vt, it.AtT(), it.Err())
	}
	rest := decodeAll(t, it)
	if len(rest) != 114 || rest[0].t != 3660 || rest[len(rest)-1].t != 4790 {
		t.Fatalf("after the Seek: %d samples", len(rest))
	}
}

func TestChunkListIteratorSeekBounds(t *testing.T) {
	cs := chunked(t, genSamples(0, 2990, 10, tenth, nil), 120) // [0,1190] [1200,2390] [2400,2990]
	it := newIter(cs, 455, 2005)
	for _, c := range []struct{ seek, want int64 }{{0, 460}, {1500, 1500}, {1195, 1500}, {1995, 2000}} {
		if vt := it.Seek(c.seek); vt != chunkenc.ValFloat || it.AtT() != c.want {
			t.Fatalf("Seek(%d) = %v (err %v), want a float at %d", c.seek, vt, it.Err(), c.want)
		}
	}
	if vt := it.Seek(2001); vt != chunkenc.ValNone || it.Next() != chunkenc.ValNone || it.Err() != nil {
		t.Fatalf("Seek past maxt = %v, err %v", vt, it.Err())
	}
	// A Seek into a chunk that starts after maxt.
	it = newIter(cs, 0, 1195)
	if vt := it.Seek(1193); vt != chunkenc.ValNone || it.Err() != nil {
		t.Fatalf("Seek into the gap before maxt = %v", vt)
	}
}

func TestChunkListIteratorSkipChunks(t *testing.T) {
	span := func(from, to int64) *storepb.AggrChunk { return xorChunk(t, genSamples(from, to, 10, tenth, nil)) }
	cs := []*storepb.AggrChunk{
		span(0, 1190), span(1200, 2390), corrupt(2400, 3590), span(3600, 4790),
		span(4800, 4990), // then no sample until 5600
		span(5600, 6790), span(6800, 7990), span(8000, 9190), span(9200, 10390),
	}
	pool := newCountingPool(cs)
	it := newChunkListIterator(cs, 0, 1<<40, pool)
	if vt, moved := it.SkipChunks(3000); moved || vt != chunkenc.ValNone {
		t.Fatalf("SkipChunks before the first Next moved: %v", vt)
	}
	it.Next()
	expect := func(skipTo int64, wantMoved bool, wantT int64) {
		t.Helper()
		vt, moved := it.SkipChunks(skipTo)
		if moved != wantMoved || vt != chunkenc.ValFloat || it.AtT() != wantT || it.Err() != nil {
			t.Fatalf("SkipChunks(%d) = %v, moved %v, at %d (err %v); want moved %v at %d",
				skipTo, vt, moved, it.AtT(), it.Err(), wantMoved, wantT)
		}
	}
	expect(100, false, 0)     // the open chunk holds the last sample at or before 100
	expect(5300, true, 4800)  // in the hole: chunk 4 holds 4990, the last sample before it
	expect(5300, false, 4800) // already there
	expect(5600, true, 5600)  // chunk 5 starts at t
	expect(9999, true, 9200)  // chunk 8
	if got := pool.opened(); !slices.Equal(got, []int{0, 4, 5, 8}) {
		t.Fatalf("opened chunks %v, want [0 4 5 8] (the corrupt chunk 2 must not be read)", got)
	}
	for _, i := range []int{4, 5} {
		if pool.use[i].nexts != 1 {
			t.Fatalf("chunk %d: %d samples read, want the first only", i, pool.use[i].nexts)
		}
	}
	rest := decodeAll(t, it)
	if len(rest) != 119 || rest[0].t != 9210 {
		t.Fatalf("after SkipChunks: %d samples from %v", len(rest), rest[:1])
	}
	if vt, moved := it.SkipChunks(20000); moved || vt != chunkenc.ValNone {
		t.Fatalf("SkipChunks after the end moved: %v", vt)
	}
}

// The deduplicating iterator reads the replica it does not follow only where it needs
// it: two complete replicas, the first followed to its end, the other only caught up
// there, from its last chunk (a corrupt chunk in the middle of it is never decoded).
func TestDedupDecodesOnlyTheFollowedReplica(t *testing.T) {
	const day = 24 * hour
	r0 := chunked(t, genSamples(0, day, 15_000, tenth, nil), 120)
	r1 := chunked(t, genSamples(4_000, day, 15_000, tenth, nil), 120)
	r1[20] = corrupt(r1[20].MinTime, r1[20].MaxTime)
	p0, p1 := newCountingPool(r0), newCountingPool(r1)
	for _, counter := range []bool{false, true} {
		p0.use, p1.use = make([]chunkUse, len(r0)), make([]chunkUse, len(r1))
		its := []chunkenc.Iterator{newChunkListIterator(r0, 0, day, p0), newChunkListIterator(r1, 0, day, p1)}
		got := decodeAll(t, dedup.NewIterator(its, dedup.Options{Counter: counter}))
		if want := int(day/15_000) + 1; len(got) != want || got[len(got)-1].t != day {
			t.Fatalf("counter %v: %d samples, want replica 0's %d", counter, len(got), want)
		}
		if len(p0.opened()) != len(r0) {
			t.Fatalf("counter %v: replica 0 opened %d of %d chunks", counter, len(p0.opened()), len(r0))
		}
		if o := p1.opened(); len(o) > 2 {
			t.Fatalf("counter %v: replica 1 opened chunks %v, want its last one or two", counter, o)
		}
	}
}

// BenchmarkChunkListDedup is the querier's per-series iteration without the network:
// one replica read alone (the baseline), and two replicas (24h at 15s, 4s apart, in
// 120-sample chunks) deduplicated, in ns per sample read.
func BenchmarkChunkListDedup(b *testing.B) {
	const day = 24 * hour
	r0 := chunked(b, genSamples(0, day, 15_000, tenth, nil), 120)
	r1 := chunked(b, genSamples(4_000, day, 15_000, tenth, nil), 120)
	pool := chunkenc.NewPool()
	run := func(b *testing.B, newIt func() chunkenc.Iterator) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			it := newIt()
			n = 0
			for it.Next() != chunkenc.ValNone {
				_, _ = it.At()
				n++
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sample")
	}
	b.Run("one-replica", func(b *testing.B) {
		run(b, func() chunkenc.Iterator { return newChunkListIterator(r0, 0, day, pool) })
	})
	for _, opts := range []dedup.Options{{Func: dedup.GapFill}, {Func: dedup.GapFill, Counter: true}, {Func: dedup.Penalty}} {
		name := opts.Func.String()
		if opts.Counter {
			name += "-counter"
		}
		b.Run(name, func(b *testing.B) {
			run(b, func() chunkenc.Iterator {
				return dedup.NewIterator([]chunkenc.Iterator{
					newChunkListIterator(r0, 0, day, pool), newChunkListIterator(r1, 0, day, pool),
				}, opts)
			})
		})
	}
}

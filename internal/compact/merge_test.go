package compact

import (
	"bytes"
	"testing"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigilhq/vigil/internal/dedup"
)

// chunkSeries builds a chunk series with one chunk per slice of samples.
func chunkSeries(parts ...[]sample) storage.ChunkSeries {
	var in [][]chunks.Sample
	for _, p := range parts {
		var cs []chunks.Sample
		for _, s := range p {
			cs = append(cs, s)
		}
		in = append(in, cs)
	}
	return storage.NewListChunkSeriesFromSamples(seriesLabels(0), in...)
}

// samplesEvery returns samples every step in [from, to) shifted by off, skipping gap.
func samplesEvery(from, to, step, off int64, gap [2]int64) []sample {
	var out []sample
	for t := from + off; t < to; t += step {
		if t >= gap[0] && t < gap[1] {
			continue
		}
		out = append(out, sample{t, float64(t) / 7})
	}
	return out
}

// isSourceChunk reports whether c is byte-identical to a chunk of one of the series.
func isSourceChunk(c chunks.Meta, sources []storage.ChunkSeries) bool {
	for _, s := range sources {
		it := s.Iterator(nil)
		for it.Next() {
			if m := it.At(); m.MinTime == c.MinTime && m.MaxTime == c.MaxTime && bytes.Equal(m.Chunk.Bytes(), c.Chunk.Bytes()) {
				return true
			}
		}
	}
	return false
}

// chunkSamples returns the samples of chks, checking that the chunks are in order, do not
// overlap and hold their samples; re-encoded chunks (those not copied from sources) hold
// at most 120 samples.
func chunkSamples(t *testing.T, chks []chunks.Meta, sources ...storage.ChunkSeries) []sample {
	t.Helper()
	var out []sample
	for i, c := range chks {
		if i > 0 && c.MinTime <= chks[i-1].MaxTime {
			t.Fatalf("chunk %d [%d,%d] overlaps the previous [%d,%d]", i, c.MinTime, c.MaxTime, chks[i-1].MinTime, chks[i-1].MaxTime)
		}
		it := c.Chunk.Iterator(nil)
		n := 0
		for it.Next() == chunkenc.ValFloat {
			ts, f := it.At()
			if ts < c.MinTime || ts > c.MaxTime {
				t.Fatalf("sample %d outside its chunk meta [%d,%d]", ts, c.MinTime, c.MaxTime)
			}
			out = append(out, sample{ts, f})
			n++
		}
		if n > 120 && !isSourceChunk(c, sources) {
			t.Fatalf("re-encoded chunk %d holds %d samples", i, n)
		}
	}
	return out
}

func TestDedupMergeAdjacentChunksPassThrough(t *testing.T) {
	a := chunkSeries(samplesEvery(0, 1000, 10, 0, [2]int64{}))
	b := chunkSeries(samplesEvery(1000, 2000, 10, 0, [2]int64{}))
	chks, err := mergeReplicaChunks([]storage.ChunkSeries{b, a}, dedup.GapFill, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(chks) != 2 || chks[0].MinTime != 0 || chks[1].MinTime != 1000 {
		t.Fatalf("got %d chunks", len(chks))
	}
	// Both chunks are copied as they are, not decoded and re-encoded.
	for i, s := range []storage.ChunkSeries{a, b} {
		it := s.Iterator(nil)
		it.Next()
		if string(chks[i].Chunk.Bytes()) != string(it.At().Chunk.Bytes()) {
			t.Fatalf("chunk %d was re-encoded", i)
		}
	}
}

func TestDedupMergeOverlappingReplicas(t *testing.T) {
	for _, fn := range []dedup.Func{dedup.GapFill, dedup.Penalty} {
		t.Run(fn.String(), func(t *testing.T) {
			sa := samplesEvery(0, 10_000, 10, 0, [2]int64{3000, 3500})
			sb := samplesEvery(0, 10_000, 10, 3, [2]int64{7000, 7400})
			// Replica a in three chunks, b in two, at different boundaries.
			a := chunkSeries(sa[:200], sa[200:700], sa[700:])
			b := chunkSeries(sb[:450], sb[450:])
			f := newDedupMergeFunc(fn, false)
			merged := f(a, b)
			it := merged.Iterator(nil)
			var chks []chunks.Meta
			for it.Next() {
				chks = append(chks, it.At())
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
			got := chunkSamples(t, chks, a, b)
			want := []sample{}
			dit := dedup.NewIterator([]chunkenc.Iterator{sliceIter(sa), sliceIter(sb)}, dedup.Options{Func: fn})
			for dit.Next() == chunkenc.ValFloat {
				ts, v := dit.At()
				want = append(want, sample{ts, v})
			}
			if len(got) != len(want) {
				t.Fatalf("got %d samples, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("sample %d = %v, want %v", i, got[i], want[i])
				}
			}
			if fn == dedup.GapFill {
				// Each replica's gap is filled by the other.
				for _, g := range [][2]int64{{3000, 3500}, {7000, 7400}} {
					n := 0
					for _, s := range got {
						if s.t >= g[0] && s.t < g[1] {
							n++
						}
					}
					if n < 35 {
						t.Errorf("gap %v holds %d samples", g, n)
					}
				}
			}
		})
	}
}

func TestDedupMergeSingleSeries(t *testing.T) {
	a := chunkSeries(samplesEvery(0, 100, 10, 0, [2]int64{}))
	if got := newDedupMergeFunc(dedup.GapFill, false)(a); got != a {
		t.Fatal("a single series must be returned as is")
	}
	if newDedupMergeFunc(dedup.GapFill, false)() != nil {
		t.Fatal("no series must merge to nil")
	}
}

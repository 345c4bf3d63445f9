package compact

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	promvalue "github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigilhq/vigil/internal/dedup"
)

// chunked splits samples into chunk series parts of n samples.
func chunked(ss []sample, n int) storage.ChunkSeries {
	var parts [][]sample
	for len(ss) > n {
		parts = append(parts, ss[:n])
		ss = ss[n:]
	}
	if len(ss) > 0 {
		parts = append(parts, ss)
	}
	return chunkSeries(parts...)
}

// replicaCase is two or three replicas of one series.
type replicaCase struct {
	name     string
	replicas [][]sample
	// minCopied is the least number of source chunks the merge must copy.
	minCopied int
}

func replicaCases() []replicaCase {
	const step, h = 15_000, 3_600_000
	full := func(off int64, gaps ...[2]int64) []sample {
		var out []sample
	next:
		for t := off; t < 2*h; t += step {
			for _, g := range gaps {
				if t >= g[0] && t < g[1] {
					continue next
				}
			}
			out = append(out, sample{t, float64(t)/1000 + float64(off)})
		}
		return out
	}
	stale := full(0)
	stale[300].f = math.Float64frombits(promvalue.StaleNaN)
	return []replicaCase{
		// a leads and has no gap: all its 4 chunks are copied.
		{"complete leader", [][]sample{full(0), full(3000, [2]int64{h / 2, h})}, 4},
		// a's gap in its second chunk is filled from b: chunks 1, 3 and 4 are copied.
		{"gap in leader", [][]sample{full(0, [2]int64{40 * 60_000, 50 * 60_000}), full(3000)}, 2},
		// b only has the second hour: a's chunks are all copied.
		{"partial replica", [][]sample{full(0), full(h + 3000)[:100]}, 4},
		// identical timestamps in both replicas.
		{"identical", [][]sample{full(0), full(0)}, 4},
		// GapFill takes a stale marker for a gap and fills it from b: the chunk holding it
		// is re-encoded, the other three are copied.
		{"stale marker", [][]sample{stale, full(3000)}, 3},
		// b starts first and ends early; a takes over.
		{"switch", [][]sample{full(0, [2]int64{0, h / 4}), full(3000, [2]int64{3 * h / 2, 2 * h})}, 1},
		{"three replicas", [][]sample{full(0, [2]int64{h, h + 600_000}), full(1000, [2]int64{h, h + 300_000}), full(2000)}, 2},
	}
}

// TestDedupCopyMatchesReencode checks that the copying merge returns the same samples as
// the re-encoding one, that every chunk it does not re-encode is byte-identical to a
// source chunk, and that it copies where the result is one replica's chunk.
func TestDedupCopyMatchesReencode(t *testing.T) {
	for _, tc := range replicaCases() {
		for _, fn := range []dedup.Func{dedup.GapFill, dedup.Penalty} {
			for _, continues := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/continues=%v", tc.name, fn, continues), func(t *testing.T) {
					var series []storage.ChunkSeries
					for _, r := range tc.replicas {
						series = append(series, chunked(r, 120))
					}
					all := collectChunks(t, series)
					want, err := reencodeChunks(series[0], all, len(series), fn, continues)
					if err != nil {
						t.Fatal(err)
					}
					got, err := dedupChunks(series[0], all, len(series), fn, continues)
					if err != nil {
						t.Fatal(err)
					}
					gs, ws := chunkSamples(t, got, series...), chunkSamples(t, want)
					if len(gs) != len(ws) {
						t.Fatalf("got %d samples, want %d", len(gs), len(ws))
					}
					for i := range ws {
						if gs[i].t != ws[i].t || math.Float64bits(gs[i].f) != math.Float64bits(ws[i].f) {
							t.Fatalf("sample %d = %v, want %v", i, gs[i], ws[i])
						}
					}
					copied := 0
					for _, c := range got {
						if isSourceChunk(c, series) {
							copied++
						}
					}
					if fn == dedup.GapFill && copied < tc.minCopied {
						t.Errorf("copied %d source chunks, want at least %d", copied, tc.minCopied)
					}
				})
			}
		}
	}
}

// TestDedupCopyKeepsChunkBytes checks that a copied chunk is the source's chunk itself.
func TestDedupCopyKeepsChunkBytes(t *testing.T) {
	tc := replicaCases()[0]
	a, b := chunked(tc.replicas[0], 120), chunked(tc.replicas[1], 120)
	// continues: b's last sample, 3s after a's, is not taken for a tail gap of a.
	chks, err := mergeReplicaChunks([]storage.ChunkSeries{a, b}, dedup.GapFill, true)
	if err != nil {
		t.Fatal(err)
	}
	it := a.Iterator(nil)
	i := 0
	for it.Next() {
		src := it.At()
		if i >= len(chks) || chks[i].MinTime != src.MinTime || chks[i].MaxTime != src.MaxTime ||
			!bytes.Equal(chks[i].Chunk.Bytes(), src.Chunk.Bytes()) {
			t.Fatalf("chunk %d is not replica a's chunk [%d,%d]", i, src.MinTime, src.MaxTime)
		}
		i++
	}
	if i != len(chks) {
		t.Fatalf("got %d chunks, want replica a's %d", len(chks), i)
	}
}

// TestDedupLongSeriesStreams checks that a series above maxBufferedSamples takes the
// streaming path and still merges correctly.
func TestDedupLongSeriesStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("long series")
	}
	n := maxBufferedSamples/2 + 1000
	a, b := make([]sample, 0, n), make([]sample, 0, n)
	for i := range n {
		a = append(a, sample{int64(i) * 15_000, float64(i)})
		b = append(b, sample{int64(i)*15_000 + 1000, float64(i)})
	}
	series := []storage.ChunkSeries{chunked(a, 120), chunked(b, 120)}
	all := collectChunks(t, series)
	got, err := dedupChunks(series[0], all, 2, dedup.GapFill, false)
	if err != nil {
		t.Fatal(err)
	}
	want, err := reencodeChunks(series[0], all, 2, dedup.GapFill, false)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := chunkSamples(t, got), chunkSamples(t, want); len(g) != len(w) || len(g) < n {
		t.Fatalf("got %d samples, want %d (at least %d)", len(g), len(w), n)
	}
}

func collectChunks(t testing.TB, series []storage.ChunkSeries) []inputChunk {
	t.Helper()
	var all []inputChunk
	for i, s := range series {
		it := s.Iterator(nil)
		for it.Next() {
			all = append(all, inputChunk{meta: it.At(), input: i})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	sortInputChunks(all)
	return all
}

// BenchmarkDedupChunks compares the copying merge with the re-encoding one over two 2h
// replicas at 15s, the leader complete and the other with a gap.
func BenchmarkDedupChunks(b *testing.B) {
	tc := replicaCases()[0]
	series := []storage.ChunkSeries{chunked(tc.replicas[0], 120), chunked(tc.replicas[1], 120)}
	all := collectChunks(b, series)
	for _, bc := range []struct {
		name string
		f    func(storage.ChunkSeries, []inputChunk, int, dedup.Func, bool) ([]chunks.Meta, error)
	}{{"copy", dedupChunks}, {"reencode", reencodeChunks}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.f(series[0], all, 2, dedup.GapFill, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

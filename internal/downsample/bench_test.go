package downsample

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigilhq/vigil/internal/block"
)

func reportSamples(b *testing.B, perOp int) {
	b.ReportMetric(float64(perOp)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkDownsampleRaw: one series of 48h of 15s samples (11520) to 5m.
func BenchmarkDownsampleRaw(b *testing.B) {
	raw := genCounter(testMint, 48*hour)
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			DownsampleRaw(raw, block.Resolution5m)
		}
		reportSamples(b, len(raw))
	})
	b.Run("reuse", func(b *testing.B) { // As Downsample does, one builder for all series.
		b.ReportAllocs()
		bl := newBuilder()
		var out []chunks.Meta
		for b.Loop() {
			out = bl.downsampleRaw(out[:0], raw, block.Resolution5m, block.Resolution5m*BatchWindows)
		}
		reportSamples(b, len(raw))
	})
}

// BenchmarkDownsampleAggr: 14 days of one series' 5m chunks to 1h.
func BenchmarkDownsampleAggr(b *testing.B) {
	m5 := DownsampleRaw(genCounter(testMint, 14*24*hour), block.Resolution5m)
	n := 0
	for _, m := range m5 {
		n += m.Chunk.NumSamples()
	}
	b.ReportAllocs()
	var d aggrDownsampler
	var out []chunks.Meta
	for b.Loop() {
		var err error
		if out, _, err = d.downsample(out[:0], m5, block.Resolution1h); err != nil {
			b.Fatal(err)
		}
	}
	reportSamples(b, n)
}

// BenchmarkApplyCounterResets reads 14 days of 5m counter aggregates.
func BenchmarkApplyCounterResets(b *testing.B) {
	m5 := DownsampleRaw(genCounter(testMint, 14*24*hour), block.Resolution5m)
	var chks []chunkenc.Chunk
	for _, m := range m5 {
		c, _ := m.Chunk.(AggrChunk).Get(AggrCounter)
		chks = append(chks, c)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		its := make([]chunkenc.Iterator, len(chks))
		for i, c := range chks {
			its[i] = c.Iterator(nil)
		}
		n = 0
		for it := NewApplyCounterResetsIterator(its...); it.Next() == chunkenc.ValFloat; n++ {
		}
	}
	reportSamples(b, n)
}

// BenchmarkDownsampleBlock: a 48h raw block of 200 series at 15s to 5m, end to end
// (read chunks, aggregate, write chunks, index and meta.json).
func BenchmarkDownsampleBlock(b *testing.B) {
	const numSeries = 200
	dir := b.TempDir()
	raw := genCounter(testMint, 48*hour)
	var series []storage.Series
	total := 0
	for i := range numSeries {
		var in []chunks.Sample
		for _, s := range raw {
			in = append(in, promSample{s.T, s.F + float64(i)})
		}
		total += len(raw)
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), in))
	}
	p, err := tsdb.CreateBlock(series, filepath.Join(dir, "src"), 30*24*hour, discard)
	if err != nil {
		b.Fatal(err)
	}
	meta, err := block.ReadMeta(p)
	if err != nil {
		b.Fatal(err)
	}
	blk, err := tsdb.OpenBlock(discard, p, NewPool(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer blk.Close()
	// mmap: Prometheus's mapped chunk reader; pread: FileChunkReader, as DownsampleDir uses.
	for _, r := range []struct {
		name string
		b    tsdb.BlockReader
	}{{"mmap", blk}, {"pread", WithFileChunks(blk, p, NewPool(), 0)}} {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Downsample(context.Background(), discard, meta, r.b, filepath.Join(dir, "out"), block.Resolution5m); err != nil {
					b.Fatal(err)
				}
			}
			reportSamples(b, total)
		})
	}
}

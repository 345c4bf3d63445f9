package downsample

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/block/blocktest"
)

var discard = slog.New(slog.DiscardHandler)

type histSample struct{ t int64 }

func (s histSample) T() int64 { return s.t }
func (histSample) ST() int64  { return 0 }
func (histSample) F() float64 { return 0 }
func (s histSample) H() *histogram.Histogram {
	return &histogram.Histogram{Count: 1, Sum: 1, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{1}}
}
func (histSample) FH() *histogram.FloatHistogram { return nil }
func (histSample) Type() chunkenc.ValueType      { return chunkenc.ValHistogram }
func (s histSample) Copy() chunks.Sample         { return s }

// createBlock writes a raw block with three counter series (data per genCounter, with
// different offsets) and one native histogram series, sets its Thanos meta as a
// level-3 compacted block and returns its dir and the float series' samples by name.
func createBlock(t *testing.T, dir string, dur int64) (string, map[string][]Sample) {
	t.Helper()
	base := genCounter(testMint, dur)
	want := map[string][]Sample{}
	var series []storage.Series
	for i, name := range []string{"a", "b", "c"} {
		var in []chunks.Sample
		var clean []Sample
		for _, s := range base {
			v := s.F + float64(i*1000)
			in = append(in, promSample{s.T, v})
			if !math.IsNaN(v) {
				clean = append(clean, Sample{s.T, v})
			}
		}
		want[name] = clean
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "m", "s", name), in))
	}
	var hs []chunks.Sample
	for ts := testMint; ts < testMint+dur; ts += 60_000 {
		hs = append(hs, histSample{ts})
	}
	series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "h"), hs))
	p, err := tsdb.CreateBlock(series, dir, 30*24*hour, discard) // Head range above the data's length.
	if err != nil {
		t.Fatal(err)
	}
	id := ulid.MustParse(filepath.Base(p))
	blocktest.EditMeta(t, dir, id, func(m *block.Meta) {
		m.Compaction.Level = 3
		m.Compaction.Sources = []ulid.ULID{ulid.MustParse("01HZZZZZZZZZZZZZZZZZZZZZZ1"), ulid.MustParse("01HZZZZZZZZZZZZZZZZZZZZZZ2")}
		m.Thanos.Labels = map[string]string{"cluster": "eu1", "replica": "a"}
		m.Thanos.Source = block.SourceCompactor
	})
	return p, want
}

// readBlock opens a downsampled block with NewPool and returns its meta and its series'
// chunks by the value of label s.
func readBlock(t *testing.T, dir string) (*block.Meta, map[string][]chunks.Meta) {
	t.Helper()
	meta, err := block.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tsdb.OpenBlock(discard, dir, NewPool(), nil)
	if err != nil {
		t.Fatalf("tsdb.OpenBlock with NewPool: %v", err)
	}
	defer b.Close()
	ir, err := b.Index()
	if err != nil {
		t.Fatal(err)
	}
	defer ir.Close()
	cr, err := b.Chunks()
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	p, err := ir.Postings(context.Background(), "__name__", "m", "h")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]chunks.Meta{}
	var sb labels.ScratchBuilder
	for p.Next() {
		var metas []chunks.Meta
		if err := ir.Series(p.At(), &sb, &metas); err != nil {
			t.Fatal(err)
		}
		lset := sb.Labels()
		for i := range metas {
			c, err := readChunk(cr, metas[i])
			if err != nil {
				t.Fatal(err)
			}
			ac, ok := c.(AggrChunk)
			if !ok {
				t.Fatalf("series %s: chunk of type %T, encoding %v", lset, c, c.Encoding())
			}
			metas[i].Chunk = AggrChunk(bytes.Clone(ac)) // The block's files are unmapped on Close.
		}
		out[lset.Get("s")] = metas
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	return meta, out
}

func sameChunks(t *testing.T, what string, got, want []chunks.Meta) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d chunks, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].MinTime != want[i].MinTime || got[i].MaxTime != want[i].MaxTime ||
			!bytes.Equal(got[i].Chunk.Bytes(), want[i].Chunk.Bytes()) {
			t.Fatalf("%s: chunk %d [%d, %d] differs from [%d, %d]", what, i, got[i].MinTime, got[i].MaxTime, want[i].MinTime, want[i].MaxTime)
		}
	}
}

func TestDownsampleBlock(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	srcDir, samples := createBlock(t, filepath.Join(tmp, "raw"), 12*24*hour)
	src, err := block.ReadMeta(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")

	var logs bytes.Buffer
	id5m, err := DownsampleDir(ctx, slog.New(slog.NewTextHandler(&logs, nil)), srcDir, out, block.Resolution5m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logs.Bytes(), []byte("raw_histogram_samples=17280")) {
		t.Fatalf("no warning about the skipped histogram samples in the log:\n%s", logs.String())
	}
	meta, got := readBlock(t, filepath.Join(out, id5m.String()))
	checkMeta(t, meta, src, id5m, block.Resolution5m)
	if len(got) != 3 || got[""] != nil {
		t.Fatalf("series in the 5m block: %d (the histogram series must be skipped)", len(got))
	}
	var n5m uint64
	for name, raw := range samples {
		sameChunks(t, "5m "+name, got[name], DownsampleRaw(raw, block.Resolution5m))
		for _, m := range got[name] {
			n5m += uint64(m.Chunk.NumSamples())
		}
	}
	if meta.Stats.NumSeries != 3 || meta.Stats.NumSamples != n5m || meta.Stats.NumChunks != uint64(3*len(got["a"])) {
		t.Fatalf("5m stats %+v, want 3 series, %d samples, %d chunks", meta.Stats, n5m, 3*len(got["a"]))
	}

	// 5m → 1h from the block on disk.
	id1h, err := DownsampleDir(ctx, discard, filepath.Join(out, id5m.String()), out, block.Resolution1h)
	if err != nil {
		t.Fatal(err)
	}
	meta1h, got1h := readBlock(t, filepath.Join(out, id1h.String()))
	checkMeta(t, meta1h, src, id1h, block.Resolution1h)
	for name, raw := range samples {
		want, _, err := DownsampleAggr(DownsampleRaw(raw, block.Resolution5m), block.Resolution1h)
		if err != nil {
			t.Fatal(err)
		}
		sameChunks(t, "1h "+name, got1h[name], want)
		checkAggregates(t, raw, got1h[name], block.Resolution1h)
	}

	// A stock chunk pool cannot read the downsampled chunks.
	cr, err := chunks.NewDirReader(filepath.Join(out, id5m.String(), "chunks"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	if _, _, err := cr.ChunkOrIterable(got["a"][0]); err == nil {
		t.Fatal("the default chunk pool read an AggrChunk")
	}

	// Only raw → 5m and 5m → 1h; nothing is left behind by failures.
	if _, err := DownsampleDir(ctx, discard, srcDir, out, block.Resolution1h); err == nil {
		t.Fatal("raw → 1h succeeded")
	}
	if _, err := DownsampleDir(ctx, discard, filepath.Join(out, id5m.String()), out, block.Resolution5m); err == nil {
		t.Fatal("5m → 5m succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := DownsampleDir(cctx, discard, srcDir, out, block.Resolution5m); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{id5m.String(), id1h.String()}; !slices.Equal(names, want) && !slices.Equal(names, []string{want[1], want[0]}) {
		t.Fatalf("output dir holds %v, want only %v", names, want)
	}
}

func checkMeta(t *testing.T, m, src *block.Meta, id ulid.ULID, res int64) {
	t.Helper()
	if m.ULID != id || m.MinTime != src.MinTime || m.MaxTime != src.MaxTime || m.Version != 1 {
		t.Fatalf("meta %s [%d, %d) v%d, want %s [%d, %d)", m.ULID, m.MinTime, m.MaxTime, m.Version, id, src.MinTime, src.MaxTime)
	}
	if m.Thanos.Downsample.Resolution != res || m.Thanos.Source != block.SourceCompactor || m.Thanos.Labels["cluster"] != "eu1" || len(m.Thanos.Labels) != 2 {
		t.Fatalf("thanos meta %+v", m.Thanos)
	}
	if m.Compaction.Level != src.Compaction.Level || !slices.Equal(m.Compaction.Sources, src.Compaction.Sources) {
		t.Fatalf("compaction %+v, want the source's %+v", m.Compaction, src.Compaction)
	}
	if len(m.Thanos.SegmentFiles) == 0 || len(m.Thanos.Files) < 3 {
		t.Fatalf("files %v %v", m.Thanos.SegmentFiles, m.Thanos.Files)
	}
}

// TestDownsampleBlocktest downsamples a 48h block made by blocktest (15s samples of a
// linear series) and checks it through the index: 20 samples per 5m window. blocktest
// appends series one after the other into a 2h head, so blocks longer than an hour can
// only hold one series.
func TestDownsampleBlocktest(t *testing.T) {
	dir := t.TempDir()
	mint := int64(0)
	id := blocktest.CreateBlock(t, dir, mint, mint+48*hour, 1)
	blocktest.EditMeta(t, dir, id, func(m *block.Meta) { m.Thanos.Labels = map[string]string{"cluster": "eu1", "replica": "a"} })
	out, err := DownsampleDir(context.Background(), discard, filepath.Join(dir, id.String()), dir, block.Resolution5m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tsdb.OpenBlock(discard, filepath.Join(dir, out.String()), NewPool(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	meta, err := block.ReadMeta(filepath.Join(dir, out.String()))
	if err != nil {
		t.Fatal(err)
	}
	if meta.Thanos.Downsample.Resolution != 300_000 || !slices.Equal(meta.Compaction.Sources, []ulid.ULID{id}) {
		t.Fatalf("meta: resolution %d sources %v", meta.Thanos.Downsample.Resolution, meta.Compaction.Sources)
	}
	if want := uint64(48 * 12); meta.Stats.NumSamples != want || meta.Stats.NumSeries != 1 {
		t.Fatalf("stats %+v, want %d samples", meta.Stats, want)
	}
	ir, _ := b.Index()
	defer ir.Close()
	cr, _ := b.Chunks()
	defer cr.Close()
	name, value := index.AllPostingsKey()
	p, err := ir.Postings(context.Background(), name, value)
	if err != nil {
		t.Fatal(err)
	}
	var sb labels.ScratchBuilder
	for p.Next() {
		var metas []chunks.Meta
		if err := ir.Series(p.At(), &sb, &metas); err != nil {
			t.Fatal(err)
		}
		for _, m := range metas {
			c, err := readChunk(cr, m)
			if err != nil {
				t.Fatal(err)
			}
			it, err := NewIteratorForFunc(c.(AggrChunk), "count_over_time")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range readAll(t, it) {
				if s.F != 20 {
					t.Fatalf("series %s: count %v at %d, want 20", sb.Labels(), s.F, s.T)
				}
			}
		}
	}
}

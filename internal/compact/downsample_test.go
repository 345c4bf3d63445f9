package compact

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/downsample"
)

func TestDownsamplingTrigger(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	// One block per group, so nothing is compacted; step 1m keeps them small.
	mk := func(group string, length int64) *block.Meta {
		return upload(t, bkt, spec{mint: base, maxt: base + length, series: 2, step: minute,
			labels: map[string]string{"group": group}, source: block.SourceCompactor})
	}
	b48h := mk("48h", 48*hour)
	b39h := mk("39h", 39*hour)
	b40h := mk("40h", 40*hour)
	noDS := mk("marked", 48*hour)
	if err := block.MarkForNoDownsample(ctx, bkt, noDS.ULID, block.NoDownsampleManual, "test"); err != nil {
		t.Fatal(err)
	}
	b10d := mk("10d", 10*day)

	c := newCompactor(t, bkt, Config{})
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	byRes := map[int64][]*block.Meta{}
	for _, m := range visible(t, bkt) {
		byRes[m.Thanos.Downsample.Resolution] = append(byRes[m.Thanos.Downsample.Resolution], m)
	}
	if len(byRes[block.ResolutionRaw]) != 5 {
		t.Errorf("%d raw blocks visible, want all 5 (sources are kept)", len(byRes[block.ResolutionRaw]))
	}
	sourcesOf := func(ms []*block.Meta) [][]string {
		var out [][]string
		for _, m := range ms {
			var s []string
			for _, id := range m.Compaction.Sources {
				s = append(s, id.String())
			}
			out = append(out, s)
		}
		slices.SortFunc(out, func(a, b []string) int { return slices.Compare(a, b) })
		return out
	}
	want5m := sourcesOf([]*block.Meta{b48h, b40h, b10d})
	if got := sourcesOf(byRes[block.Resolution5m]); !slices.EqualFunc(got, want5m, slices.Equal) {
		t.Errorf("5m blocks have sources %v, want those of the 40h, 48h and 10d blocks %v", got, want5m)
	}
	if got, want := sourcesOf(byRes[block.Resolution1h]), sourcesOf([]*block.Meta{b10d}); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("1h blocks have sources %v, want only the 10d block's %v", got, want)
	}
	for _, m := range append(byRes[block.Resolution5m], byRes[block.Resolution1h]...) {
		if m.Thanos.Source != block.SourceCompactor || m.Compaction.Level != 1 {
			t.Errorf("downsampled block %s: source %q level %d", m.ULID, m.Thanos.Source, m.Compaction.Level)
		}
		for _, src := range []*block.Meta{b39h, noDS} {
			if slices.Contains(m.Compaction.Sources, src.ULID) {
				t.Errorf("block %s must not be downsampled", src.ULID)
			}
		}
	}
	if got := testutil.ToFloat64(c.metrics.downsamples.WithLabelValues("5m")); got != 3 {
		t.Errorf("5m downsamples = %v, want 3", got)
	}

	// A second pass sees every source covered and does nothing.
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(c.metrics.downsamples.WithLabelValues("5m")) + testutil.ToFloat64(c.metrics.downsamples.WithLabelValues("1h")); got != 4 {
		t.Errorf("downsamples after a second pass = %v, want still 4", got)
	}

	// One aggregate per series and window: 48h/5m = 576 windows, 10d/1h = 240.
	for _, m := range append(byRes[block.Resolution5m], byRes[block.Resolution1h]...) {
		var want uint64
		switch {
		case m.Compaction.Sources[0] == b48h.ULID:
			want = 2 * 576
		case m.Compaction.Sources[0] == b10d.ULID && m.Thanos.Downsample.Resolution == block.Resolution1h:
			want = 2 * 240
		default:
			continue
		}
		if m.Stats.NumSamples != want {
			t.Errorf("downsampled block %s (resolution %d) has %d samples, want %d", m.ULID, m.Thanos.Downsample.Resolution, m.Stats.NumSamples, want)
		}
	}
}

func TestDownsamplingDisabled(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	upload(t, bkt, spec{mint: base, maxt: base + 48*hour, series: 1, step: minute})
	c := newCompactor(t, bkt, Config{DisableDownsampling: true})
	if err := c.Iteration(context.Background()); err != nil {
		t.Fatal(err)
	}
	if vis := visible(t, bkt); len(vis) != 1 {
		t.Fatalf("%d blocks, want only the raw one", len(vis))
	}
}

// TestCompactDownsampledBlocks compacts 5m blocks (AggrChunks, encoding 0xFF) into a
// 14d block and checks every aggregate chunk survives unchanged.
func TestCompactDownsampledBlocks(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	var srcs []*block.Meta
	for i := range int64(8) {
		raw := makeBlock(t, t.TempDir(), spec{mint: base + i*2*day, maxt: base + (i+1)*2*day, series: 2, step: 5 * minute})
		out := t.TempDir()
		id, err := downsample.DownsampleDir(ctx, nil, raw, out, block.Resolution5m)
		if err != nil {
			t.Fatal(err)
		}
		if err := block.Upload(ctx, slog.New(slog.DiscardHandler), bkt, filepath.Join(out, id.String())); err != nil {
			t.Fatal(err)
		}
		m, err := block.ReadMetaFromBucket(ctx, bkt, id)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, m)
	}
	before := aggrChunks(t, bkt, srcs[:7])
	if len(before) < 7*2 {
		t.Fatalf("sources hold only %d aggregate chunks", len(before))
	}
	c := newCompactor(t, bkt, Config{DisableDownsampling: true})
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	vis := visible(t, bkt)
	if len(vis) != 2 || vis[0].MaxTime-vis[0].MinTime != 14*day || vis[0].Thanos.Downsample.Resolution != block.Resolution5m {
		t.Fatalf("want one 14d 5m block and the newest 2d one, got %d blocks", len(vis))
	}
	if got := aggrChunks(t, bkt, vis[:1]); !slices.Equal(got, before) {
		t.Fatalf("compacted 5m block holds %d aggregate chunks, the sources %d, or their bytes differ", len(got), len(before))
	}
}

// aggrChunks returns the bytes of every chunk of the blocks, in series and time order.
func aggrChunks(t *testing.T, bkt objstore.Bucket, metas []*block.Meta) []string {
	t.Helper()
	ctx := context.Background()
	bySeries := map[string][]string{}
	for _, m := range metas {
		dir := filepath.Join(t.TempDir(), m.ULID.String())
		if _, err := downloadBlock(ctx, bkt, m, dir, 1); err != nil {
			t.Fatal(err)
		}
		b, err := tsdb.OpenBlock(nil, dir, downsample.NewPool(), nil)
		if err != nil {
			t.Fatal(err)
		}
		q, err := tsdb.NewBlockChunkQuerier(b, m.MinTime, m.MaxTime-1)
		if err != nil {
			t.Fatal(err)
		}
		set := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		for set.Next() {
			it := set.At().Iterator(nil)
			for it.Next() {
				chk := it.At().Chunk
				if chk.Encoding() != downsample.EncAggr {
					t.Fatalf("chunk encoding %v, want AggrChunk", chk.Encoding())
				}
				k := set.At().Labels().String()
				bySeries[k] = append(bySeries[k], string(chk.Bytes()))
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := set.Err(); err != nil {
			t.Fatal(err)
		}
		q.Close()
		b.Close()
	}
	var keys []string
	for k := range bySeries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		out = append(out, bySeries[k]...)
	}
	return out
}

package compact

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/downsample"
)

const (
	minute = int64(time.Minute / time.Millisecond)
	hour   = int64(time.Hour / time.Millisecond)
	day    = 24 * hour
)

// base is an aligned (to 14d) time about a month ago, so blocks look like real ones.
var base = (time.Now().Add(-30*24*time.Hour).UnixMilli() / (14 * day)) * (14 * day)

// spec describes a test block: series "test_metric" with series="0".."n-1", a sample
// every step ms from mint+offset, none in the gaps [from, to), value = f(series, t).
type spec struct {
	mint, maxt   int64
	labels       map[string]string
	series       int
	step, offset int64
	gaps         [][2]int64
	resolution   int64
	source       block.SourceType
}

type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }

// value is a counter-like value: every replica reads the same function of time.
func value(series int, t int64) float64 { return float64(series*1_000_000) + float64(t-base)/1000 }

func seriesLabels(i int) labels.Labels {
	return labels.FromStrings("__name__", "test_metric", "series", fmt.Sprint(i))
}

// samples returns the samples of series i of sp.
func (sp spec) samples(i int) []sample {
	step := sp.step
	if step == 0 {
		step = 15_000
	}
	var out []sample
	for t := sp.mint + sp.offset; t < sp.maxt; t += step {
		if !slices.ContainsFunc(sp.gaps, func(g [2]int64) bool { return t >= g[0] && t < g[1] }) {
			out = append(out, sample{t, value(i, t)})
		}
	}
	return out
}

func (sp spec) numSeries() int {
	if sp.series == 0 {
		return 3
	}
	return sp.series
}

// makeBlock writes the block of sp into dir and returns its directory.
func makeBlock(t testing.TB, dir string, sp spec) string {
	t.Helper()
	var series []storage.Series
	for i := range sp.numSeries() {
		var ss []chunks.Sample
		for _, s := range sp.samples(i) {
			ss = append(ss, s)
		}
		series = append(series, storage.NewListSeries(seriesLabels(i), ss))
	}
	// A chunk range well above the block length: CreateBlock appends series after series.
	p, err := tsdb.CreateBlock(series, dir, 4*(sp.maxt-sp.mint), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m, err := block.ReadMeta(p)
	if err != nil {
		t.Fatal(err)
	}
	m.MinTime, m.MaxTime = sp.mint, sp.maxt
	m.Thanos.Labels = sp.labels
	if m.Thanos.Labels == nil {
		m.Thanos.Labels = map[string]string{"cluster": "test"}
	}
	m.Thanos.Source = sp.source
	if sp.source == "" {
		m.Thanos.Source = block.SourceSidecar
	}
	m.Thanos.Downsample.Resolution = sp.resolution
	if err := block.WriteMeta(p, m); err != nil {
		t.Fatal(err)
	}
	return p
}

// upload creates the block of sp and uploads it, returning its meta.
func upload(t testing.TB, bkt objstore.Bucket, sp spec) *block.Meta {
	t.Helper()
	p := makeBlock(t, t.TempDir(), sp)
	if err := block.Upload(context.Background(), slog.New(slog.DiscardHandler), bkt, p); err != nil {
		t.Fatal(err)
	}
	m, err := block.ReadMeta(p)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := block.ReadMetaFromBucket(context.Background(), bkt, m.ULID)
	if err != nil {
		t.Fatal(err)
	}
	return bm
}

// newCompactor returns a compactor over bkt with test defaults (no delays).
// brokenAndGood uploads the blocks of two groups, cluster=broken and cluster=good, made by
// blocks, and deletes the chunk file of the broken group's block i. It returns the broken
// group's metas and the good group's specs.
func brokenAndGood(t testing.TB, bkt objstore.Bucket, blocks func(map[string]string) []spec, i int) ([]*block.Meta, []spec) {
	t.Helper()
	var broken []*block.Meta
	for _, sp := range blocks(map[string]string{"cluster": "broken"}) {
		broken = append(broken, upload(t, bkt, sp))
	}
	good := blocks(map[string]string{"cluster": "good"})
	for _, sp := range good {
		upload(t, bkt, sp)
	}
	if err := bkt.Delete(context.Background(), broken[i].ULID.String()+"/chunks/000001"); err != nil {
		t.Fatal(err)
	}
	return broken, good
}

func newCompactor(t testing.TB, bkt objstore.Bucket, cfg Config) *Compactor {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	c, err := New(bkt, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bucketMetas returns every block with a meta.json, and which of them carry a
// deletion mark.
func bucketMetas(t testing.TB, bkt objstore.Bucket) (all []*block.Meta, marked map[ulid.ULID]bool) {
	t.Helper()
	ctx := context.Background()
	ids, err := block.ListBlockIDs(ctx, bkt)
	if err != nil {
		t.Fatal(err)
	}
	marked = map[ulid.ULID]bool{}
	for _, id := range ids {
		m, err := block.ReadMetaFromBucket(ctx, bkt, id)
		if err != nil {
			continue // partial
		}
		all = append(all, m)
		if ok, err := bkt.Exists(ctx, id.String()+"/"+block.DeletionMarkFilename); err != nil {
			t.Fatal(err)
		} else if ok {
			marked[id] = true
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].MinTime < all[j].MinTime })
	return all, marked
}

// visible returns the blocks with a meta.json and no deletion mark, by minTime.
func visible(t testing.TB, bkt objstore.Bucket) []*block.Meta {
	t.Helper()
	all, marked := bucketMetas(t, bkt)
	return slices.DeleteFunc(all, func(m *block.Meta) bool { return marked[m.ULID] })
}

// readSeries downloads the blocks and returns their float samples by series labels,
// merged in time order. A timestamp present twice in a series fails the test.
func readSeries(t testing.TB, bkt objstore.Bucket, metas []*block.Meta) map[string][]sample {
	t.Helper()
	ctx := context.Background()
	out := map[string][]sample{}
	for _, m := range metas {
		dir := filepath.Join(t.TempDir(), m.ULID.String())
		if _, err := downloadBlock(ctx, bkt, m, dir, 2); err != nil {
			t.Fatal(err)
		}
		b, err := tsdb.OpenBlock(nil, dir, downsample.NewPool(), nil)
		if err != nil {
			t.Fatal(err)
		}
		q, err := tsdb.NewBlockQuerier(b, m.MinTime, m.MaxTime-1)
		if err != nil {
			t.Fatal(err)
		}
		set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		var it chunkenc.Iterator
		for set.Next() {
			s := set.At()
			it = s.Iterator(it)
			key := s.Labels().String()
			for it.Next() == chunkenc.ValFloat {
				ts, f := it.At()
				out[key] = append(out[key], sample{ts, f})
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
		os.RemoveAll(dir)
	}
	for k, ss := range out {
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].t < ss[j].t })
		for i := 1; i < len(ss); i++ {
			if ss[i].t == ss[i-1].t {
				t.Fatalf("series %s: timestamp %d is stored twice", k, ss[i].t)
			}
		}
	}
	return out
}

// expectSeries is the union of the specs' samples (specs must not overlap).
func expectSeries(specs ...spec) map[string][]sample {
	out := map[string][]sample{}
	for _, sp := range specs {
		for i := range sp.numSeries() {
			k := seriesLabels(i).String()
			out[k] = append(out[k], sp.samples(i)...)
		}
	}
	for _, ss := range out {
		sort.Slice(ss, func(i, j int) bool { return ss[i].t < ss[j].t })
	}
	return out
}

func equalSeries(t testing.TB, got, want map[string][]sample) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d series, want %d", len(got), len(want))
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			t.Fatalf("series %s: got %d samples, want %d", k, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("series %s: sample %d is %v, want %v", k, i, g[i], w[i])
			}
		}
	}
}

// blockBytes sums the index and chunk sizes of the blocks.
func blockBytes(metas []*block.Meta) int64 {
	var n int64
	for _, m := range metas {
		for _, f := range m.Thanos.Files {
			n += f.SizeBytes
		}
	}
	return n
}

func ids(metas []*block.Meta) []ulid.ULID {
	out := make([]ulid.ULID, len(metas))
	for i, m := range metas {
		out[i] = m.ULID
	}
	slices.SortFunc(out, func(a, b ulid.ULID) int { return a.Compare(b) })
	return out
}

// checkNoOverlap fails if two visible blocks of one group (labels + resolution)
// overlap in time, or if a source is in two visible blocks of one group.
func checkNoOverlap(t testing.TB, metas []*block.Meta) {
	t.Helper()
	byGroup := map[string][]*block.Meta{}
	for _, m := range metas {
		k := block.GroupKey(m.Thanos.Downsample.Resolution, labels.FromMap(m.Thanos.Labels))
		byGroup[k] = append(byGroup[k], m)
	}
	for k, ms := range byGroup {
		seen := map[ulid.ULID]ulid.ULID{}
		for i, a := range ms {
			for _, b := range ms[i+1:] {
				if a.MinTime < b.MaxTime && b.MinTime < a.MaxTime {
					t.Fatalf("group %s: visible blocks %s [%d,%d) and %s [%d,%d) overlap", k, a.ULID, a.MinTime, a.MaxTime, b.ULID, b.MinTime, b.MaxTime)
				}
			}
			for _, s := range a.Compaction.Sources {
				if o, ok := seen[s]; ok {
					t.Fatalf("group %s: source %s is in visible blocks %s and %s", k, s, o, a.ULID)
				}
				seen[s] = a.ULID
			}
		}
	}
}

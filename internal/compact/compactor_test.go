package compact

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/seek"
)

// fiveBlocks are five adjacent 2h blocks of one group.
func fiveBlocks(labels map[string]string) []spec {
	var out []spec
	for i := range int64(5) {
		out = append(out, spec{mint: base + i*2*hour, maxt: base + (i+1)*2*hour, labels: labels})
	}
	return out
}

func TestCompactFourBlocksInto8h(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	specs := fiveBlocks(nil)
	var srcs []*block.Meta
	for _, sp := range specs {
		srcs = append(srcs, upload(t, bkt, sp))
	}
	reg := prometheus.NewRegistry()
	c, err := New(bkt, Config{DataDir: t.TempDir(), DeleteDelay: 48 * time.Hour, DisableDownsampling: true}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	vis := visible(t, bkt)
	if len(vis) != 2 {
		t.Fatalf("want the 8h block and the newest 2h block visible, got %d blocks", len(vis))
	}
	nb, newest := vis[0], vis[1]
	if newest.ULID != srcs[4].ULID {
		t.Fatalf("newest block %s should be left alone, got %s", srcs[4].ULID, newest.ULID)
	}
	if nb.MinTime != base || nb.MaxTime != base+8*hour {
		t.Fatalf("new block spans [%d,%d), want [%d,%d)", nb.MinTime, nb.MaxTime, base, base+8*hour)
	}
	if nb.Compaction.Level != 2 {
		t.Errorf("level = %d, want 2", nb.Compaction.Level)
	}
	if got, want := nb.Compaction.Sources, ids(srcs[:4]); !slices.Equal(got, want) {
		t.Errorf("sources = %v, want %v", got, want)
	}
	if len(nb.Compaction.Parents) != 4 {
		t.Fatalf("parents = %v", nb.Compaction.Parents)
	}
	for i, p := range nb.Compaction.Parents {
		if p.ULID != srcs[i].ULID || p.MinTime != srcs[i].MinTime || p.MaxTime != srcs[i].MaxTime {
			t.Errorf("parent %d = %+v, want %s [%d,%d)", i, p, srcs[i].ULID, srcs[i].MinTime, srcs[i].MaxTime)
		}
	}
	if nb.Thanos.Source != block.SourceCompactor || nb.Thanos.Downsample.Resolution != 0 ||
		!maps.Equal(nb.Thanos.Labels, map[string]string{"cluster": "test"}) || len(nb.Thanos.Files) == 0 || len(nb.Thanos.SegmentFiles) == 0 {
		t.Errorf("thanos section = %+v", nb.Thanos)
	}
	if nb.Stats.NumSamples != srcs[0].Stats.NumSamples*4 {
		t.Errorf("samples = %d, want %d", nb.Stats.NumSamples, srcs[0].Stats.NumSamples*4)
	}
	_, marked := bucketMetas(t, bkt)
	for _, s := range srcs[:4] {
		if !marked[s.ULID] {
			t.Errorf("source %s is not marked for deletion", s.ULID)
		}
	}
	equalSeries(t, readSeries(t, bkt, vis), expectSeries(specs...))
	if got := testutil.ToFloat64(c.metrics.compactions.WithLabelValues("horizontal")); got != 1 {
		t.Errorf("compactions = %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.metrics.groupsPlanned); got != 1 {
		t.Errorf("groups planned = %v", got)
	}
	if got := testutil.ToFloat64(c.metrics.bytesUploaded); got < float64(blockBytes([]*block.Meta{nb})) {
		t.Errorf("bytes uploaded = %v, want at least %d", got, blockBytes([]*block.Meta{nb}))
	}

	// A second pass finds nothing to do.
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(c.metrics.compactions.WithLabelValues("horizontal")); got != 1 {
		t.Errorf("compactions after a second pass = %v, want 1", got)
	}
	if vis2 := visible(t, bkt); !slices.Equal(ids(vis2), ids(vis)) {
		t.Errorf("second pass changed the visible blocks")
	}

	// With no delete delay the sources go for good.
	c0 := newCompactor(t, bkt, Config{DisableDownsampling: true})
	if err := c0.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs[:4] {
		if n := countObjects(t, bkt, s.ULID.String()+"/"); n != 0 {
			t.Errorf("source %s still has %d objects", s.ULID, n)
		}
	}
	equalSeries(t, readSeries(t, bkt, visible(t, bkt)), expectSeries(specs...))
}

// countObjects counts the objects under dir, recursively.
func countObjects(t testing.TB, bkt objstore.Bucket, dir string) int {
	t.Helper()
	n := 0
	if err := bkt.Iter(context.Background(), dir, func(string) error { n++; return nil }, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCompactUpTheLevels(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	var specs []spec
	// 2d of 2h blocks plus one more: everything but the newest ends up in one 2d block.
	for i := range int64(25) {
		sp := spec{mint: base + i*2*hour, maxt: base + (i+1)*2*hour, series: 2, step: 60_000}
		specs = append(specs, sp)
		upload(t, bkt, sp)
	}
	c := newCompactor(t, bkt, Config{DisableDownsampling: true, CompactConcurrency: 2})
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	vis := visible(t, bkt)
	if len(vis) != 2 || vis[0].MaxTime-vis[0].MinTime != 48*hour || vis[0].Compaction.Level != 3 || len(vis[0].Compaction.Sources) != 24 {
		for _, m := range vis {
			t.Logf("%s [%d,%d) level %d sources %d", m.ULID, (m.MinTime-base)/hour, (m.MaxTime-base)/hour, m.Compaction.Level, len(m.Compaction.Sources))
		}
		t.Fatalf("want one 2d level-3 block of 24 sources and the newest 2h block")
	}
	equalSeries(t, readSeries(t, bkt, vis), expectSeries(specs...))
}

// replicaSpecs are two replicas' blocks [0,2h) and [2h,4h): replica a scrapes at :00,
// :15, ... and misses [30m,40m); replica b scrapes 3s later and misses [60m,70m) and
// [150m,160m).
func replicaSpecs(labelsA, labelsB map[string]string, series int) (a, b []spec) {
	gapsA := [][2]int64{{base + 30*minute, base + 40*minute}}
	gapsB := [][2]int64{{base + 60*minute, base + 70*minute}, {base + 150*minute, base + 160*minute}}
	for i := range int64(2) {
		mint, maxt := base+i*2*hour, base+(i+1)*2*hour
		a = append(a, spec{mint: mint, maxt: maxt, labels: labelsA, gaps: gapsA, series: series})
		b = append(b, spec{mint: mint, maxt: maxt, labels: labelsB, gaps: gapsB, offset: 3000, series: series})
	}
	return a, b
}

// dedupExpected merges the replicas' samples block window by block window with the
// querier's gap-fill rule.
// cutBlockTail mirrors tailCut for two replicas of one block: the replica that starts
// later loses the samples after the leading replica's last one when they are within two
// intervals of it.
func cutBlockTail(a, b []sample) ([]sample, []sample) {
	if len(a) < 2 || len(b) < 2 {
		return a, b
	}
	lead, other, swapped := a, b, b[0].t < a[0].t
	if swapped {
		lead, other = b, a
	}
	last := lead[len(lead)-1].t
	interval := last - lead[len(lead)-2].t
	if d := other[len(other)-1].t - last; d > 0 && d <= 2*interval {
		for len(other) > 0 && other[len(other)-1].t > last {
			other = other[:len(other)-1]
		}
	}
	if swapped {
		return other, lead
	}
	return lead, other
}

func dedupExpected(a, b []spec) map[string][]sample {
	out := map[string][]sample{}
	for w := range a {
		for i := range a[w].numSeries() {
			k := seriesLabels(i).String()
			sa, sb := a[w].samples(i), b[w].samples(i)
			if w < len(a)-1 { // later blocks follow: the block end is not a gap (tailCut)
				sa, sb = cutBlockTail(sa, sb)
			}
			it := dedup.NewIterator([]chunkenc.Iterator{sliceIter(sa), sliceIter(sb)}, dedup.Options{})
			for it.Next() == chunkenc.ValFloat {
				ts, f := it.At()
				out[k] = append(out[k], sample{ts, f})
			}
		}
	}
	return out
}

func TestDeduplicateReplicas(t *testing.T) {
	for _, tc := range []struct {
		name           string
		labelsA, wantL map[string]string
	}{
		{"replica label removed", map[string]string{"cluster": "eu", "replica": "a"}, map[string]string{"cluster": "eu"}},
		{"only the replica label", map[string]string{"replica": "a"}, map[string]string{"replica": "deduped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			bkt := objstore.NewInMemBucket()
			labelsB := maps.Clone(tc.labelsA)
			labelsB["replica"] = "b"
			a, b := replicaSpecs(tc.labelsA, labelsB, 20)
			var srcs []*block.Meta
			for i := range a {
				srcs = append(srcs, upload(t, bkt, a[i]), upload(t, bkt, b[i]))
			}
			before := blockBytes(srcs)
			c := newCompactor(t, bkt, Config{ReplicaLabels: []string{"replica"}, DisableDownsampling: true})
			if err := c.Iteration(ctx); err != nil {
				t.Fatal(err)
			}
			vis := visible(t, bkt)
			if len(vis) != 2 {
				t.Fatalf("want one deduplicated block per 2h, got %d visible blocks", len(vis))
			}
			for i, m := range vis {
				if !maps.Equal(m.Thanos.Labels, tc.wantL) {
					t.Errorf("labels = %v, want %v", m.Thanos.Labels, tc.wantL)
				}
				if want := ids([]*block.Meta{srcs[2*i], srcs[2*i+1]}); !slices.Equal(m.Compaction.Sources, want) || m.Compaction.Level != 2 {
					t.Errorf("block %d: sources %v level %d, want %v level 2", i, m.Compaction.Sources, m.Compaction.Level, want)
				}
			}
			// The sources were deleted (delete delay 0).
			if all, _ := bucketMetas(t, bkt); len(all) != 2 {
				t.Errorf("%d blocks left in the bucket, want 2", len(all))
			}
			after := blockBytes(vis)
			ratio := float64(after) / float64(before)
			t.Logf("replicas %d bytes, deduplicated %d bytes (ratio %.2f)", before, after, ratio)
			if ratio < 0.4 || ratio > 0.6 {
				t.Errorf("deduplicated blocks hold %d bytes, the replicas %d: ratio %.2f, want about half", after, before, ratio)
			}
			got := readSeries(t, bkt, vis)
			equalSeries(t, got, dedupExpected(a, b))
			checkGapsFilled(t, got, a, b)
			if n := testutil.ToFloat64(c.metrics.compactions.WithLabelValues("vertical")); n != 2 {
				t.Errorf("vertical compactions = %v, want 2", n)
			}
		})
	}
}

// checkGapsFilled checks the deduplicated series directly: every sample is one of a
// replica's, the series has about one replica's number of samples, and each replica's
// gaps hold the other's samples.
func checkGapsFilled(t *testing.T, got map[string][]sample, a, b []spec) {
	t.Helper()
	for i := range a[0].numSeries() {
		k := seriesLabels(i).String()
		known := map[sample]bool{}
		nA := 0
		for w := range a {
			for _, s := range a[w].samples(i) {
				known[s] = true
				nA++
			}
			for _, s := range b[w].samples(i) {
				known[s] = true
			}
		}
		inGap := func(g [2]int64) int {
			n := 0
			for _, s := range got[k] {
				if s.t >= g[0] && s.t < g[1] {
					n++
				}
			}
			return n
		}
		for _, s := range got[k] {
			if !known[s] {
				t.Fatalf("series %s: sample %v is in neither replica", k, s)
			}
		}
		if n := len(got[k]); n < nA || n > nA+nA/20 {
			t.Errorf("series %s: %d samples, one replica has %d", k, n, nA)
		}
		for _, g := range append(slices.Clone(a[0].gaps), b[0].gaps...) {
			if n := inGap(g); n < 35 {
				t.Errorf("series %s: gap [%d,%d) holds %d samples, want the other replica's 40", k, g[0]-base, g[1]-base, n)
			}
		}
	}
}

func TestVerticalCompactionWithoutReplicaLabels(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	// Two identical copies of a block (a receiver pair, say) and a half-overlapping one.
	sp := spec{mint: base, maxt: base + 2*hour}
	upload(t, bkt, sp)
	upload(t, bkt, sp)
	sp2 := spec{mint: base + hour, maxt: base + 3*hour, offset: 7000}
	upload(t, bkt, sp2)
	c := newCompactor(t, bkt, Config{EnableVerticalCompaction: true, DisableDownsampling: true})
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	vis := visible(t, bkt)
	if len(vis) != 1 || vis[0].MinTime != base || vis[0].MaxTime != base+3*hour {
		t.Fatalf("want one merged block [0,3h), got %d", len(vis))
	}
	// Prometheus's merger keeps identical samples once and interleaves different ones.
	want := expectSeries(sp)
	for k, ss := range expectSeries(sp2) {
		want[k] = append(want[k], ss...)
		slices.SortFunc(want[k], func(a, b sample) int { return cmpInt(a.t, b.t) })
	}
	equalSeries(t, readSeries(t, bkt, vis), want)
}

func TestOverlapHalts(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	a, b := replicaSpecs(map[string]string{"replica": "a"}, map[string]string{"replica": "a"}, 2)
	for i := range a {
		upload(t, bkt, a[i])
		upload(t, bkt, b[i])
	}
	reg := prometheus.NewRegistry()
	c, err := New(bkt, Config{DataDir: t.TempDir(), DisableDownsampling: true}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Iteration(ctx)
	if !IsHalt(err) {
		t.Fatalf("want a halt error for overlapping blocks, got %v", err)
	}
	if err := c.Run(ctx, RunOptions{}); !IsHalt(err) {
		t.Fatalf("Run without wait: want the halt error, got %v", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx, RunOptions{Wait: true, WaitInterval: time.Hour, HaltOnError: true}) }()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(c.metrics.halted) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("vigil_compact_halted never became 1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned while halted: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("halted Run returned %v after cancel, want nil", err)
	}
	if _, marked := bucketMetas(t, bkt); len(marked) != 0 {
		t.Errorf("halted compactor marked blocks: %v", marked)
	}
}

func TestBadIndexHalts(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	var srcs []*block.Meta
	for _, sp := range fiveBlocks(nil) {
		srcs = append(srcs, upload(t, bkt, sp))
	}
	if err := bkt.Upload(ctx, srcs[2].ULID.String()+"/index", strings.NewReader("not an index")); err != nil {
		t.Fatal(err)
	}
	c := newCompactor(t, bkt, Config{DisableDownsampling: true})
	if err := c.Iteration(ctx); !IsHalt(err) || !strings.Contains(err.Error(), srcs[2].ULID.String()) {
		t.Fatalf("want a halt error naming block %s, got %v", srcs[2].ULID, err)
	}
	if vis := visible(t, bkt); len(vis) != 5 {
		t.Errorf("%d visible blocks after the halt, want the 5 untouched", len(vis))
	}
}

func TestFailingGroupIsSkipped(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	// A chunk file of a block of the first group is gone.
	broken, good := brokenAndGood(t, bkt, fiveBlocks, 1)
	c := newCompactor(t, bkt, Config{DisableDownsampling: true, CompactConcurrency: 2})
	err := c.Iteration(ctx)
	if err == nil || IsHalt(err) {
		t.Fatalf("want a (non-halt) error for the broken group, got %v", err)
	}
	if got := testutil.ToFloat64(c.metrics.groupsFailed); got != 1 {
		t.Errorf("groups failed = %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.metrics.groupsCompacted); got != 1 {
		t.Errorf("groups compacted = %v, want 1", got)
	}
	var goodVis, brokenVis []*block.Meta
	for _, m := range visible(t, bkt) {
		if m.Thanos.Labels["cluster"] == "good" {
			goodVis = append(goodVis, m)
		} else {
			brokenVis = append(brokenVis, m)
		}
	}
	if len(goodVis) != 2 {
		t.Errorf("good group: %d visible blocks, want 2", len(goodVis))
	}
	equalSeries(t, readSeries(t, bkt, goodVis), expectSeries(good...))
	if len(brokenVis) != 5 {
		t.Errorf("broken group: %d visible blocks, want all 5 untouched", len(brokenVis))
	}
	if !strings.Contains(err.Error(), broken[1].ULID.String()) {
		t.Errorf("error does not name the broken block: %v", err)
	}
}

// sliceIter iterates samples.
func sliceIter(ss []sample) chunkenc.Iterator {
	return &sampleIter{ss: ss, i: -1}
}

type sampleIter struct {
	ss []sample
	i  int
}

func (it *sampleIter) Next() chunkenc.ValueType {
	if it.i+1 >= len(it.ss) {
		it.i = len(it.ss)
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloat
}

func (it *sampleIter) Seek(t seek.Millis) chunkenc.ValueType {
	if it.i < 0 {
		it.i = 0
	}
	for ; it.i < len(it.ss); it.i++ {
		if it.ss[it.i].t >= t {
			return chunkenc.ValFloat
		}
	}
	return chunkenc.ValNone
}

func (it *sampleIter) At() (int64, float64) { return it.ss[it.i].t, it.ss[it.i].f }
func (it *sampleIter) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("no histograms")
}

func (it *sampleIter) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("no histograms")
}
func (it *sampleIter) AtT() int64  { return it.ss[it.i].t }
func (it *sampleIter) AtST() int64 { return 0 }
func (it *sampleIter) Err() error  { return nil }

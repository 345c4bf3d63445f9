package compact

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

func TestRemoveReplicaLabels(t *testing.T) {
	for _, tc := range []struct {
		in       labels.Labels
		replicas []string
		want     labels.Labels
	}{
		{labels.FromStrings("cluster", "eu", "replica", "a"), []string{"replica"}, labels.FromStrings("cluster", "eu")},
		{labels.FromStrings("replica", "a"), []string{"replica"}, labels.FromStrings("replica", "deduped")},
		{labels.FromStrings("prometheus_replica", "1", "rule_replica", "x"), []string{"rule_replica", "prometheus_replica"},
			labels.FromStrings("rule_replica", "deduped")},
		{labels.FromStrings("cluster", "eu"), []string{"replica"}, labels.FromStrings("cluster", "eu")},
		{labels.FromStrings("cluster", "eu", "replica", "a"), nil, labels.FromStrings("cluster", "eu", "replica", "a")},
	} {
		if got := removeReplicaLabels(tc.in, tc.replicas); !labels.Equal(got, tc.want) {
			t.Errorf("removeReplicaLabels(%s, %v) = %s, want %s", tc.in, tc.replicas, got, tc.want)
		}
	}
}

// db is a duplicate-filter test block with the given sources.
func db(key string, srcs ...ulid.ULID) *blockInfo {
	return &blockInfo{key: key, meta: &block.Meta{BlockMeta: tsdb.BlockMeta{ULID: ulid.Make(),
		Compaction: tsdb.BlockMetaCompaction{Sources: srcs}}}}
}

func TestFilterDuplicates(t *testing.T) {
	s1, s2, s3, s4 := ulid.Make(), ulid.Make(), ulid.Make(), ulid.Make()
	a1, a2, a3 := db("g", s1), db("g", s2), db("g", s3)
	big := db("g", s1, s2, s3)
	partial := db("g", s1, s2) // a level-2 block the big one was made from
	other := db("g", s3, s4)   // overlaps big's sources but is not covered
	otherGroup := db("h", s1)  // same source, another group (resolution): not a duplicate
	twin := db("g", s1, s2, s3)
	kept, dups := filterDuplicates([]*blockInfo{a1, a2, a3, partial, big, other, otherGroup, twin})
	idsOf := func(bs []*blockInfo) []ulid.ULID {
		var out []ulid.ULID
		for _, b := range bs {
			out = append(out, b.id())
		}
		slices.SortFunc(out, func(a, b ulid.ULID) int { return a.Compare(b) })
		return out
	}
	sorted := func(bs ...*blockInfo) []ulid.ULID { return idsOf(bs) }
	// big and twin have the same sources: the older (smaller ULID) one stays.
	if got, want := idsOf(kept), sorted(big, other, otherGroup); !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	if got, want := idsOf(dups), sorted(a1, a2, a3, partial, twin); !slices.Equal(got, want) {
		t.Errorf("duplicates %v, want %v", got, want)
	}
}

func TestSyncFilters(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	mk := func(group string, mint int64, src block.SourceType) *block.Meta {
		return upload(t, bkt, spec{mint: mint, maxt: mint + 2*hour, series: 1, source: src, labels: map[string]string{"group": group}})
	}
	fresh := mk("a", base, block.SourceSidecar)              // uploaded just now: too fresh
	compacted := mk("a", base+2*hour, block.SourceCompactor) // skips the consistency delay
	early := mk("b", base-10*day, block.SourceCompactor)     // before --min-time
	dropped := mk("drop", base, block.SourceCompactor)       // dropped by the relabel rules
	markedOld := mk("c", base, block.SourceCompactor)
	writeMark(t, bkt, markedOld.ULID, time.Now().Add(-2*time.Hour)) // older than delete-delay/2: hidden
	markedNew := mk("d", base, block.SourceCompactor)
	writeMark(t, bkt, markedNew.ULID, time.Now()) // still visible
	noCompact := mk("e", base, block.SourceCompactor)
	if err := block.MarkForNoCompact(ctx, bkt, noCompact.ULID, block.NoCompactManual, "test"); err != nil {
		t.Fatal(err)
	}
	// A broken deletion mark is ignored.
	broken := mk("f", base, block.SourceCompactor)
	if err := bkt.Upload(ctx, broken.ULID.String()+"/"+block.DeletionMarkFilename, stringsReader("{not json")); err != nil {
		t.Fatal(err)
	}

	relabel, err := block.ParseRelabelConfig([]byte(`- action: drop
  source_labels: [group]
  regex: drop
`))
	if err != nil {
		t.Fatal(err)
	}
	c := newCompactor(t, bkt, Config{ConsistencyDelay: 30 * time.Minute, DeleteDelay: 2 * time.Hour,
		MinTime: base - day, Relabel: relabel, DisableDownsampling: true})
	st, err := c.syncer.sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		m       *block.Meta
		visible bool
	}{{fresh, false}, {compacted, true}, {early, false}, {dropped, false}, {markedOld, false}, {markedNew, true}, {noCompact, true}, {broken, true}} {
		if _, ok := st.visible[tc.m.ULID]; ok != tc.visible {
			t.Errorf("block %v: visible %v, want %v", tc.m.Thanos.Labels, ok, tc.visible)
		}
	}
	if !st.visible[noCompact.ULID].noCompact {
		t.Error("no-compact mark not seen")
	}
	if len(st.marked) != 2 {
		t.Errorf("%d marked blocks, want 2", len(st.marked))
	}
	if got := testutil.ToFloat64(c.metrics.synced.WithLabelValues("too-fresh")); got != 1 {
		t.Errorf("too-fresh = %v", got)
	}
	// Metas are cached: a second sync reads no meta.json again.
	before := c.syncer.fetcher.Cached()
	if _, err := c.syncer.sync(ctx); err != nil || c.syncer.fetcher.Cached() != before {
		t.Fatalf("second sync: %v, %d cached metas (was %d)", err, c.syncer.fetcher.Cached(), before)
	}
}

func TestGroupKeys(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	a := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, series: 1, source: block.SourceCompactor, labels: map[string]string{"cluster": "eu", "replica": "a"}})
	b := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, series: 1, source: block.SourceCompactor, labels: map[string]string{"cluster": "eu", "replica": "b"}})
	d := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, series: 1, source: block.SourceCompactor, resolution: block.Resolution5m,
		labels: map[string]string{"cluster": "eu", "replica": "b"}})
	c := newCompactor(t, bkt, Config{ReplicaLabels: []string{"replica"}})
	st, err := c.syncer.sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ka, kb, kd := st.visible[a.ULID].key, st.visible[b.ULID].key, st.visible[d.ULID].key
	want := block.GroupKey(0, labels.FromStrings("cluster", "eu"))
	if ka != want || kb != want || kd == want || kd != block.GroupKey(block.Resolution5m, labels.FromStrings("cluster", "eu")) {
		t.Errorf("keys %s %s %s, want %s for both raw replicas and a 300000@ key for the 5m block", ka, kb, kd, want)
	}
	if len(groupBlocks(st.visible)) != 2 {
		t.Errorf("want 2 groups")
	}
}

func TestOverlappingDownsampledBlocksMarkedNoCompact(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	var ms []*block.Meta
	for _, r := range []string{"a", "b"} {
		ms = append(ms, upload(t, bkt, spec{mint: base, maxt: base + 2*hour, series: 1, source: block.SourceCompactor,
			resolution: block.Resolution5m, labels: map[string]string{"replica": r}}))
	}
	c := newCompactor(t, bkt, Config{ReplicaLabels: []string{"replica"}, DisableDownsampling: true})
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		var nc block.NoCompactMark
		if err := block.ReadMarker(ctx, bkt, m.ULID, &nc); err != nil || nc.Reason != block.NoCompactDownsampleVerticalComp {
			t.Errorf("block %s: no-compact mark %+v, %v", m.ULID, nc, err)
		}
	}
	if vis := visible(t, bkt); len(vis) != 2 {
		t.Errorf("%d visible blocks, want both untouched", len(vis))
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// TestRelabelIgnoresReplicaLabels: sharding rules never see the replica labels, so a
// replica pair always lands in one shard.
func TestRelabelIgnoresReplicaLabels(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	var ms []*block.Meta
	for _, r := range []string{"a", "b"} {
		ms = append(ms, upload(t, bkt, spec{mint: base, maxt: base + 2*hour, series: 1, source: block.SourceCompactor,
			labels: map[string]string{"cluster": "eu", "replica": r}}))
	}
	rules, err := block.ParseRelabelConfig([]byte(`- action: drop
  source_labels: [replica]
  regex: b
- action: keep
  source_labels: [cluster]
  regex: eu
`))
	if err != nil {
		t.Fatal(err)
	}
	c := newCompactor(t, bkt, Config{ReplicaLabels: []string{"replica"}, Relabel: rules})
	st, err := c.syncer.sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if _, ok := st.visible[m.ULID]; !ok {
			t.Errorf("block of replica %s dropped by a rule on the replica label", m.Thanos.Labels["replica"])
		}
	}
}

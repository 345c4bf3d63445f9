package block_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/block/blocktest"
)

// clockAt is a fake clock that counts its reads.
type clockAt struct {
	t     time.Time
	reads int
}

func (c *clockAt) now() time.Time { c.reads++; return c.t }

// TestFilterBoundaries pins each filter's edges with an injected time: a block is
// [MinTime, MaxTime) and overlaps the inclusive [min, max] flags when MinTime ≤ max and
// MaxTime > min; a delay is over at exactly its length.
func TestFilterBoundaries(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	const minT, maxT = 1_000_000, 2_000_000
	dir := func(mint, maxt int64, upload time.Time, src block.SourceType, markedAt time.Time) *block.Dir {
		d := &block.Dir{ID: ulid.Make(), Meta: &block.Meta{BlockMeta: tsdb.BlockMeta{MinTime: mint, MaxTime: maxt},
			Thanos: block.ThanosMeta{UploadTime: upload, Source: src}}}
		if !markedAt.IsZero() {
			d.Deletion = &block.DeletionMark{DeletionTime: markedAt.Unix()}
		}
		return d
	}
	span := func(mint, maxt int64) *block.Dir { return dir(mint, maxt, time.Time{}, "", time.Time{}) }
	uploaded := func(at time.Time, src block.SourceType) *block.Dir { return dir(0, 1, at, src, time.Time{}) }
	marked := func(at time.Time) *block.Dir { return dir(0, 1, time.Time{}, "", at) }
	tr := block.TimeRangeFilter{Min: minT, Max: maxT}
	cd := block.ConsistencyDelayFilter{Delay: 30 * time.Minute}
	cdx := block.ConsistencyDelayFilter{Delay: 30 * time.Minute, ExemptCompacted: true}
	dd := block.DeletionDelayFilter{Delay: time.Hour}
	for _, tc := range []struct {
		name string
		f    block.Filter
		d    *block.Dir
		keep bool
	}{
		{"ends exactly at min (max is exclusive)", tr, span(0, minT), false},
		{"ends 1ms after min", tr, span(0, minT+1), true},
		{"starts exactly at max (max flag is inclusive)", tr, span(maxT, maxT+10), true},
		{"starts 1ms after max", tr, span(maxT+1, maxT+10), false},
		{"inside", tr, span(minT+1, maxT-1), true},
		{"covers the range", tr, span(minT-1, maxT+1), true},
		{"unbounded range", block.TimeRangeFilter{Min: math.MinInt64, Max: math.MaxInt64}, span(0, 1), true},
		{"uploaded exactly the delay ago", cd, uploaded(now.Add(-30*time.Minute), block.SourceSidecar), true},
		{"uploaded 1ms short of the delay", cd, uploaded(now.Add(-30*time.Minute+time.Millisecond), block.SourceSidecar), false},
		{"uploaded in the future, delay 0", block.ConsistencyDelayFilter{}, uploaded(now.Add(time.Second), block.SourceSidecar), false},
		{"uploaded now, delay 0", block.ConsistencyDelayFilter{}, uploaded(now, block.SourceSidecar), true},
		{"compacted block, not exempt", cd, uploaded(now, block.SourceCompactor), false},
		{"compacted block, exempt", cdx, uploaded(now, block.SourceCompactor), true},
		{"repaired block, exempt", cdx, uploaded(now, block.SourceBucketRepair), true},
		{"sidecar block with the exemption", cdx, uploaded(now, block.SourceSidecar), false},
		{"no upload time: the ULID's time", cd, &block.Dir{Meta: &block.Meta{BlockMeta: tsdb.BlockMeta{
			ULID: ulid.MustNew(ulid.Timestamp(now.Add(-30*time.Minute)), nil)}}}, true},
		{"not marked", dd, marked(time.Time{}), true},
		{"marked exactly the delay ago", dd, marked(now.Add(-time.Hour)), false},
		{"marked 1s short of the delay", dd, marked(now.Add(-time.Hour + time.Second)), true},
		{"marked now, delay 0", block.DeletionDelayFilter{}, marked(now), false},
		{"marked in the future, delay 0", block.DeletionDelayFilter{}, marked(now.Add(time.Second)), true},
	} {
		if got := tc.f.Keep(tc.d, now); got != tc.keep {
			t.Errorf("%s (%s): keep = %v, want %v", tc.name, tc.f.Name(), got, tc.keep)
		}
	}
}

// TestFetcherEdges runs a fetcher with a full chain and an injected clock over the
// shared edge cases: the clock is read once per Fetch, and each hidden block names the
// filter that hid it.
func TestFetcherEdges(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	now := time.Unix(1_900_000_000, 0)
	minT, maxT := now.Add(-48*time.Hour).UnixMilli(), now.Add(-24*time.Hour).UnixMilli()
	edges := blocktest.UploadEdges(t, bkt, map[string]string{"cluster": "eu"},
		blocktest.Edges(now, minT, maxT, 30*time.Minute, time.Hour))
	clock := &clockAt{t: now}
	f := block.NewFetcher(bkt, logger, 3, block.WithClock(clock.now), block.WithFilters(
		block.TimeRangeFilter{Min: minT, Max: maxT},
		block.RelabelFilter{},
		block.ConsistencyDelayFilter{Delay: 30 * time.Minute},
		block.DeletionDelayFilter{Delay: time.Hour},
	))
	dirs, err := f.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if clock.reads != 1 || len(dirs) != len(edges) {
		t.Fatalf("%d clock reads, %d dirs; want 1 and %d", clock.reads, len(dirs), len(edges))
	}
	states := []string{block.StateTimeExcluded, block.StateTooFresh, block.StateMarkedForDeletion}
	for _, d := range dirs {
		e := edges[d.ID]
		if d.Visible() != e.Visible {
			t.Errorf("%s: visible %v (excluded %q), want %v", e.Name, d.Visible(), d.Excluded, e.Visible)
		}
		if !e.Visible && !slices.Contains(states, d.Excluded) {
			t.Errorf("%s: excluded as %q", e.Name, d.Excluded)
		}
	}

	// A view with other filters shares the meta cache and reads no meta.json again.
	cached := f.Cached()
	all, err := f.With(block.WithFilters()).Fetch(ctx)
	if err != nil || f.Cached() != cached {
		t.Fatalf("view: %v, %d cached (was %d)", err, f.Cached(), cached)
	}
	for _, d := range all {
		if !d.Visible() {
			t.Errorf("%s: hidden without filters (%q)", edges[d.ID].Name, d.Excluded)
		}
	}
}

func TestRelabelFilter(t *testing.T) {
	rules, err := block.ParseRelabelConfig([]byte(`
- action: drop
  source_labels: [replica]
  regex: b
- action: keep
  source_labels: [cluster]
  regex: eu`))
	if err != nil {
		t.Fatal(err)
	}
	d := &block.Dir{ID: ulid.Make(), Meta: &block.Meta{Thanos: block.ThanosMeta{Labels: map[string]string{"cluster": "eu", "replica": "b"}}}}
	if (block.RelabelFilter{Rules: rules}).Keep(d, time.Time{}) {
		t.Error("replica b kept by a rule that drops it")
	}
	if !(block.RelabelFilter{Rules: rules, Ignore: []string{"replica"}}).Keep(d, time.Time{}) {
		t.Error("an ignored label still seen by the rules")
	}
	id, err := block.ParseRelabelConfig([]byte("- action: keep\n  source_labels: [__block_id]\n  regex: " + d.ID.String()))
	if err != nil {
		t.Fatal(err)
	}
	other := &block.Dir{ID: ulid.Make(), Meta: d.Meta}
	if !(block.RelabelFilter{Rules: id}).Keep(d, time.Time{}) || (block.RelabelFilter{Rules: id}).Keep(other, time.Time{}) {
		t.Error("__block_id not set to the block's ULID")
	}
	empty, err := block.ParseRelabelConfig([]byte("- action: labeldrop\n  regex: .+"))
	if err != nil {
		t.Fatal(err)
	}
	if (block.RelabelFilter{Rules: empty}).Keep(d, time.Time{}) {
		t.Error("a block whose labels are all dropped is kept")
	}
}

func TestParseRelabelConfigErrors(t *testing.T) {
	for _, y := range []string{
		"- action: keep\n  source_labels: [a]\n  regexp: x\n", // unknown key
		"- action: hashmod\n  source_labels: [a]\n",           // no modulus
		"action: keep\n", // not a list
	} {
		if _, err := block.ParseRelabelConfig([]byte(y)); err == nil {
			t.Errorf("ParseRelabelConfig(%q) accepted it", y)
		}
	}
}

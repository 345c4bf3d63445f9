package block_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

func TestFetcher(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	dir, good := localBlock(t)
	if err := block.Upload(ctx, logger, bkt, dir); err != nil {
		t.Fatal(err)
	}
	if err := block.MarkForNoCompact(ctx, bkt, good, block.NoCompactManual, "x"); err != nil {
		t.Fatal(err)
	}
	if err := block.MarkForDeletion(ctx, bkt, good, "x"); err != nil {
		t.Fatal(err)
	}
	corrupt, partial := ulid.Make(), ulid.Make()
	for name, content := range map[string]string{
		corrupt.String() + "/meta.json":               "{",
		partial.String() + "/index":                   "x",
		partial.String() + "/no-downsample-mark.json": "{broken",
		"debug/metas/" + good.String() + ".json":      "{}",
	} {
		if err := bkt.Upload(ctx, name, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	f := block.NewFetcher(bkt, logger, 4)
	dirs, err := f.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[ulid.ULID]*block.Dir{}
	for _, d := range dirs {
		byID[d.ID] = d
	}
	if len(dirs) != 3 {
		t.Fatalf("%d dirs, want 3", len(dirs))
	}
	if d := byID[good]; d.Meta == nil || d.Meta.ULID != good || d.Deletion == nil || d.NoCompact == nil || d.NoDownsample != nil || d.Partial() {
		t.Errorf("good block: %+v", d)
	}
	if d := byID[corrupt]; d.Meta != nil || d.MetaErr == nil || d.Partial() {
		t.Errorf("corrupt block: %+v", d)
	}
	if d := byID[partial]; !d.Partial() || d.NoDownsample != nil {
		t.Errorf("partial block: %+v", d)
	}
	if f.Cached() != 1 {
		t.Errorf("%d cached metas, want 1", f.Cached())
	}
	if err := block.Delete(ctx, bkt, good); err != nil {
		t.Fatal(err)
	}
	if dirs, err = f.Fetch(ctx); err != nil || len(dirs) != 2 || f.Cached() != 0 {
		t.Errorf("after delete: %d dirs, %d cached, %v", len(dirs), f.Cached(), err)
	}
}

func meta(mint, maxt int64, sources ...ulid.ULID) *block.Meta {
	return &block.Meta{BlockMeta: tsdb.BlockMeta{ULID: ulid.Make(), MinTime: mint, MaxTime: maxt,
		Compaction: tsdb.BlockMetaCompaction{Sources: sources}}}
}

func self(m *block.Meta) *block.Meta { return m }

func TestOverlappingRuns(t *testing.T) {
	a, b, c := meta(0, 10), meta(2, 3), meta(5, 12)
	d, e := meta(12, 14), meta(20, 30)
	f, g := meta(30, 40), meta(35, 36)
	runs := block.OverlappingRuns([]*block.Meta{a, b, c, d, e, f, g}, self)
	if len(runs) != 2 || !slices.Equal(runs[0], []*block.Meta{a, b, c}) || !slices.Equal(runs[1], []*block.Meta{f, g}) {
		t.Errorf("runs %v", runs)
	}
	if runs := block.OverlappingRuns([]*block.Meta{a, d, e}, self); runs != nil {
		t.Errorf("adjacent blocks overlap: %v", runs)
	}
}

func TestCoversAndDuplicates(t *testing.T) {
	s1, s2, s3 := ulid.Make(), ulid.Make(), ulid.Make()
	big, small, other := meta(0, 4, s1, s2), meta(0, 2, s1), meta(0, 2, s3)
	if !block.Covers(big, small) || block.Covers(small, big) || block.Covers(big, other) || block.Covers(big, meta(0, 1)) {
		t.Error("Covers")
	}
	key := func(m *block.Meta) string { return block.GroupKey(0, labels.FromStrings("a", "b")) }
	kept, dups := block.FilterDuplicates([]*block.Meta{small, other, big}, key, self)
	if len(kept) != 2 || !slices.Equal(dups, []*block.Meta{small}) {
		t.Errorf("kept %v dups %v", kept, dups)
	}
	if block.GroupKey(0, labels.FromStrings("a", "b")) == block.GroupKey(block.Resolution5m, labels.FromStrings("a", "b")) {
		t.Error("group key ignores the resolution")
	}
}

func TestVerifyIndex(t *testing.T) {
	ctx := context.Background()
	dir, _ := localBlock(t)
	m, err := block.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := block.VerifyIndex(ctx, dir, m.MinTime, m.MaxTime); err != nil {
		t.Errorf("good block: %v", err)
	}
	if err := block.VerifyIndex(ctx, dir, m.MaxTime+1000, m.MaxTime+2000); err == nil || !strings.Contains(err.Error(), "outside the block range") {
		t.Errorf("chunks outside the range: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, block.IndexFilename), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	var issue *block.IndexIssue
	if err := block.VerifyIndex(ctx, dir, m.MinTime, m.MaxTime); !errors.As(err, &issue) {
		t.Errorf("garbage index: %v", err)
	}
}

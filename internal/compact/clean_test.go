package compact

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/vigilhq/vigil/internal/block"
)

func TestRetention(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	now := time.Now().UnixMilli()
	// One block per group so nothing gets compacted.
	mk := func(group string, maxt, res int64) *block.Meta {
		return upload(t, bkt, spec{mint: maxt - 2*hour, maxt: maxt, series: 1, step: minute, resolution: res,
			labels: map[string]string{"group": group}})
	}
	oldRaw := mk("old-raw", now-4*day, block.ResolutionRaw)
	newRaw := mk("new-raw", now-2*day, block.ResolutionRaw)
	old5m := mk("old-5m", now-40*day, block.Resolution5m)
	ancient1h := mk("ancient-1h", now-400*day, block.Resolution1h)

	c := newCompactor(t, bkt, Config{RetentionRaw: 3 * 24 * time.Hour, Retention5m: 30 * 24 * time.Hour, DeleteDelay: 48 * time.Hour})
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	_, marked := bucketMetas(t, bkt)
	for _, tc := range []struct {
		m    *block.Meta
		want bool
	}{{oldRaw, true}, {newRaw, false}, {old5m, true}, {ancient1h, false /* 0d = forever */}} {
		if marked[tc.m.ULID] != tc.want {
			t.Errorf("block %v (res %d, maxTime %s ago): marked %v, want %v", tc.m.Thanos.Labels, tc.m.Thanos.Downsample.Resolution,
				time.Since(time.UnixMilli(tc.m.MaxTime)).Round(time.Hour), marked[tc.m.ULID], tc.want)
		}
	}
	if got := testutil.ToFloat64(c.metrics.markedForDeletion.WithLabelValues(reasonRetention)); got != 2 {
		t.Errorf("retention marks = %v, want 2", got)
	}
}

func TestRetentionValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{RetentionRaw: 24 * time.Hour}, false},
		{Config{RetentionRaw: 24 * time.Hour, DisableDownsampling: true}, true},
		{Config{RetentionRaw: 40 * time.Hour}, true},
		{Config{Retention5m: 5 * 24 * time.Hour}, false},
		{Config{Retention5m: 10 * 24 * time.Hour, Retention1h: time.Hour}, true},
		{Config{DedupFunc: "penalty"}, false},
		{Config{DedupFunc: "penalty", ReplicaLabels: []string{"replica"}}, true},
		{Config{DedupFunc: "chain", ReplicaLabels: []string{"replica"}}, false},
		{Config{}, true},
	} {
		tc.cfg.DataDir = "x"
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: err = %v, want ok = %v", tc.cfg, err, tc.ok)
		}
	}
}

// writeMark uploads a deletion mark with the given time.
func writeMark(t *testing.T, bkt objstore.Bucket, id ulid.ULID, at time.Time) {
	t.Helper()
	b, err := json.Marshal(block.DeletionMark{ID: id, Version: 1, DeletionTime: at.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(context.Background(), id.String()+"/"+block.DeletionMarkFilename, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteMarkedBlocks(t *testing.T) {
	ctx := context.Background()
	mk := func(bkt objstore.Bucket, group string) *block.Meta {
		return upload(t, bkt, spec{mint: base, maxt: base + 2*hour, series: 1, labels: map[string]string{"group": group}})
	}

	t.Run("delete delay 0", func(t *testing.T) {
		bkt := objstore.NewInMemBucket()
		gone, kept := mk(bkt, "a"), mk(bkt, "b")
		if err := block.MarkForDeletion(ctx, bkt, gone.ULID, "test"); err != nil {
			t.Fatal(err)
		}
		// An interrupted deletion: meta.json already gone, the mark still there.
		half := mk(bkt, "c")
		if err := block.MarkForDeletion(ctx, bkt, half.ULID, "test"); err != nil {
			t.Fatal(err)
		}
		if err := bkt.Delete(ctx, half.ULID.String()+"/"+block.MetaFilename); err != nil {
			t.Fatal(err)
		}
		c := newCompactor(t, bkt, Config{DisableDownsampling: true})
		if err := c.Iteration(ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range []ulid.ULID{gone.ULID, half.ULID} {
			if n := countObjects(t, bkt, id.String()+"/"); n != 0 {
				t.Errorf("block %s still has %d objects", id, n)
			}
		}
		if n := countObjects(t, bkt, kept.ULID.String()+"/"); n < 3 {
			t.Errorf("unmarked block %s lost objects (%d left)", kept.ULID, n)
		}
		if got := testutil.ToFloat64(c.metrics.deleted); got != 2 {
			t.Errorf("deleted = %v, want 2", got)
		}
	})

	t.Run("delete delay 48h", func(t *testing.T) {
		bkt := objstore.NewInMemBucket()
		fresh, old := mk(bkt, "a"), mk(bkt, "b")
		writeMark(t, bkt, fresh.ULID, time.Now().Add(-47*time.Hour))
		writeMark(t, bkt, old.ULID, time.Now().Add(-49*time.Hour))
		c := newCompactor(t, bkt, Config{DisableDownsampling: true, DeleteDelay: 48 * time.Hour})
		if err := c.Iteration(ctx); err != nil {
			t.Fatal(err)
		}
		if ok, _ := block.MetaExists(ctx, bkt, fresh.ULID); !ok {
			t.Error("block marked 47h ago was deleted before the 48h delete delay")
		}
		if n := countObjects(t, bkt, old.ULID.String()+"/"); n != 0 {
			t.Errorf("block marked 49h ago still has %d objects", n)
		}
	})
}

func TestCleanPartialUploads(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	bkt, err := filesystem.NewBucket(root)
	if err != nil {
		t.Fatal(err)
	}
	// partial writes a block's chunks and index but no meta.json, aged by age.
	partial := func(age time.Duration) ulid.ULID {
		t.Helper()
		dir := makeBlock(t, t.TempDir(), spec{mint: base, maxt: base + 2*hour, series: 1})
		id := ulid.MustParse(filepath.Base(dir))
		for _, rel := range []string{"chunks/000001", "index"} {
			f, err := os.Open(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			if err := bkt.Upload(ctx, id.String()+"/"+rel, f); err != nil {
				t.Fatal(err)
			}
			f.Close()
			mt := time.Now().Add(-age)
			if err := os.Chtimes(filepath.Join(root, id.String(), rel), mt, mt); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	old := partial(49 * time.Hour)
	young := partial(47 * time.Hour)
	oldMarked := partial(72 * time.Hour)
	writeMark(t, bkt, oldMarked, time.Now()) // a deletion in progress: the cleaner's, after the delete delay
	complete := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, series: 1})

	c := newCompactor(t, bkt, Config{DisableDownsampling: true, DeleteDelay: 48 * time.Hour})
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	exists := func(id ulid.ULID) bool {
		_, err := os.Stat(filepath.Join(root, id.String(), "index"))
		return err == nil
	}
	if exists(old) {
		t.Error("partial upload 49h old was not deleted")
	}
	if !exists(young) {
		t.Error("partial upload 47h old was deleted")
	}
	if !exists(oldMarked) {
		t.Error("partial block with a fresh deletion mark was deleted before the delete delay")
	}
	if !exists(complete.ULID) {
		t.Error("complete block was deleted")
	}
	if got := testutil.ToFloat64(c.metrics.partialDeleted); got != 1 {
		t.Errorf("partial uploads deleted = %v, want 1", got)
	}
	// The periodic cleanup does the same.
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if !exists(young) || !exists(complete.ULID) {
		t.Error("Cleanup deleted a young partial upload or a complete block")
	}
}

package bucketstore

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/vigilhq/vigil/internal/block/blocktest"
)

// TestSyncBoundaries pins the store's sync, at an injected clock, to the edges every
// component shares (block.Filter): --min-time/--max-time serve blocks overlapping the
// range with maxTime exclusive, a block is served from exactly --consistency-delay after
// its upload, and a marked block is dropped from exactly --ignore-deletion-marks-delay
// after its mark. internal/compact pins the compactor to the same edges.
func TestSyncBoundaries(t *testing.T) {
	bkt := newBucket(t)
	now := time.Unix(1_900_000_000, 0)
	minT, maxT := now.Add(-48*time.Hour).UnixMilli(), now.Add(-24*time.Hour).UnixMilli()
	edges := blocktest.UploadEdges(t, bkt, nil, blocktest.Edges(now, minT, maxT, 30*time.Minute, time.Hour))
	s := New(bkt, Config{DataDir: t.TempDir(), MinTime: minT, MaxTime: maxT,
		ConsistencyDelay: 30 * time.Minute, IgnoreDeletionMarksDelay: time.Hour}, slog.New(slog.DiscardHandler), nil)
	t.Cleanup(s.Close)
	if err := s.sync(context.Background(), func() time.Time { return now }); err != nil {
		t.Fatal(err)
	}
	var want []ulid.ULID
	for id, e := range edges {
		if e.Visible {
			want = append(want, id)
		}
		if (s.loaded(id) != nil) != e.Visible {
			t.Errorf("%s: served %v, want %v", e.Name, s.loaded(id) != nil, e.Visible)
		}
	}
	checkServed(t, s, want...)
}

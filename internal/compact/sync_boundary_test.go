package compact

import (
	"context"
	"testing"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block/blocktest"
)

// TestSyncBoundaries pins the compactor's sync, at an injected clock, to the edges every
// component shares (block.Filter): --min-time/--max-time keep blocks overlapping the
// range with maxTime exclusive, a block is visible from exactly --consistency-delay
// after its upload, and a marked block is hidden from exactly half --delete-delay after
// its mark. internal/bucketstore pins the store to the same edges.
func TestSyncBoundaries(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	now := time.Unix(1_900_000_000, 0)
	minT, maxT := now.Add(-48*time.Hour).UnixMilli(), now.Add(-24*time.Hour).UnixMilli()
	edges := blocktest.UploadEdges(t, bkt, nil, blocktest.Edges(now, minT, maxT, 30*time.Minute, time.Hour))
	c := newCompactor(t, bkt, Config{Now: func() time.Time { return now }, MinTime: minT, MaxTime: maxT,
		ConsistencyDelay: 30 * time.Minute, DeleteDelay: 2 * time.Hour, DisableDownsampling: true})
	st, err := c.syncer.sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for id, e := range edges {
		if _, ok := st.visible[id]; ok != e.Visible {
			t.Errorf("%s: visible %v, want %v", e.Name, ok, e.Visible)
		}
	}
	// Both marked blocks are in the compactor's range: the cleaner sees them, hidden or not.
	if len(st.marked) != 2 {
		t.Errorf("%d marked blocks, want 2", len(st.marked))
	}
}

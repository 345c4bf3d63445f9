package buckettool

import (
	"context"
	"encoding/json"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

func TestMark(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	a := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, labels: eu1})
	b := upload(t, bkt, spec{mint: base + 2*hour, maxt: base + 4*hour, labels: eu1})
	delA := path.Join(a.ULID.String(), block.DeletionMarkFilename)

	// An unknown ID fails the whole command: a is not marked either.
	unknown := ulid.Make()
	err := Mark(ctx, bkt, MarkOptions{IDs: []ulid.ULID{a.ULID, unknown}, Marker: block.DeletionMarkFilename, Details: "x"}, discard())
	if err == nil || !strings.Contains(err.Error(), unknown.String()+" not found") || exists(t, bkt, delA) {
		t.Fatalf("unknown ID: err %v, a marked %v", err, exists(t, bkt, delA))
	}
	if err := Mark(ctx, bkt, MarkOptions{IDs: []ulid.ULID{a.ULID}, Marker: block.DeletionMarkFilename}, discard()); err == nil {
		t.Error("mark without --details accepted")
	}
	if err := Mark(ctx, bkt, MarkOptions{IDs: []ulid.ULID{a.ULID}, Marker: "tombstones", Details: "x"}, discard()); err == nil {
		t.Error("unknown marker accepted")
	}

	before := time.Now().Unix()
	err = Mark(ctx, bkt, MarkOptions{IDs: []ulid.ULID{a.ULID, b.ULID}, Marker: block.DeletionMarkFilename, Details: "bad data"}, discard())
	if err != nil {
		t.Fatal(err)
	}
	var dm map[string]any
	if err := json.Unmarshal(get(t, bkt, delA), &dm); err != nil {
		t.Fatal(err)
	}
	if dm["id"] != a.ULID.String() || dm["version"] != 1.0 || dm["details"] != "bad data" || dm["deletion_time"].(float64) < float64(before) || len(dm) != 4 {
		t.Errorf("deletion-mark.json = %v", dm)
	}
	m, err := block.ReadDeletionMark(ctx, bkt, b.ULID)
	if err != nil || m.Details != "bad data" {
		t.Errorf("b's mark: %+v, %v", m, err)
	}

	// A second mark leaves the first one alone.
	first := get(t, bkt, delA)
	if err := Mark(ctx, bkt, MarkOptions{IDs: []ulid.ULID{a.ULID}, Marker: block.DeletionMarkFilename, Details: "again"}, discard()); err != nil {
		t.Fatal(err)
	}
	if string(get(t, bkt, delA)) != string(first) {
		t.Error("existing deletion mark rewritten")
	}

	if err := Mark(ctx, bkt, MarkOptions{IDs: []ulid.ULID{a.ULID}, Marker: block.NoCompactMarkFilename, Details: "keep"}, discard()); err != nil {
		t.Fatal(err)
	}
	var nc block.NoCompactMark
	if err := block.ReadMarker(ctx, bkt, a.ULID, &nc); err != nil || nc.Reason != block.NoCompactManual || nc.Details != "keep" || nc.ID != a.ULID {
		t.Errorf("no-compact-mark.json: %+v, %v", nc, err)
	}
	if err := Mark(ctx, bkt, MarkOptions{IDs: []ulid.ULID{a.ULID}, Marker: block.NoDownsampleMarkFilename, Details: "raw only"}, discard()); err != nil {
		t.Fatal(err)
	}
	var nd block.NoDownsampleMark
	if err := block.ReadMarker(ctx, bkt, a.ULID, &nd); err != nil || nd.Reason != block.NoDownsampleManual {
		t.Errorf("no-downsample-mark.json: %+v, %v", nd, err)
	}

	// --remove deletes the marker, and is fine when there is none.
	for range 2 {
		if err := Mark(ctx, bkt, MarkOptions{IDs: []ulid.ULID{a.ULID}, Marker: block.DeletionMarkFilename, Remove: true}, discard()); err != nil {
			t.Fatal(err)
		}
	}
	if exists(t, bkt, delA) {
		t.Error("deletion mark not removed")
	}
}

// recordingBucket records the order of deletions and reports every object under an
// old/ prefix as two weeks old.
type recordingBucket struct {
	objstore.Bucket
	mu      sync.Mutex
	deleted []string
	old     string
}

func (b *recordingBucket) Delete(ctx context.Context, name string) error {
	b.mu.Lock()
	b.deleted = append(b.deleted, name)
	b.mu.Unlock()
	return b.Bucket.Delete(ctx, name)
}

func (b *recordingBucket) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	attrs, err := b.Bucket.Attributes(ctx, name)
	if b.old != "" && strings.HasPrefix(name, b.old) {
		attrs.LastModified = time.Now().Add(-14 * 24 * time.Hour)
	}
	return attrs, err
}

func TestCleanup(t *testing.T) {
	ctx := context.Background()
	bkt := &recordingBucket{Bucket: objstore.NewInMemBucket()}
	due := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, labels: eu1})
	recent := upload(t, bkt, spec{mint: base + 2*hour, maxt: base + 4*hour, labels: eu1})
	kept := upload(t, bkt, spec{mint: base + 4*hour, maxt: base + 6*hour, labels: eu1})
	markDeleted(t, bkt, due.ULID, time.Now().Add(-49*time.Hour))
	markDeleted(t, bkt, recent.ULID, time.Now().Add(-47*time.Hour))
	oldPartial, newPartial := partialBlock(t, bkt), partialBlock(t, bkt)
	bkt.old = oldPartial.String() + "/"

	if err := Cleanup(ctx, bkt, 48*time.Hour, discard()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   ulid.ULID
		gone bool
	}{{due.ULID, true}, {recent.ULID, false}, {kept.ULID, false}, {oldPartial, true}, {newPartial, false}} {
		ids, err := block.ListBlockIDs(ctx, bkt)
		if err != nil {
			t.Fatal(err)
		}
		present := false
		for _, id := range ids {
			present = present || id == tc.id
		}
		if present == tc.gone {
			t.Errorf("block %s: present %v, want gone %v", tc.id, present, tc.gone)
		}
	}
	// meta.json goes first, the deletion mark last.
	var ofDue []string
	for _, n := range bkt.deleted {
		if strings.HasPrefix(n, due.ULID.String()+"/") && !strings.HasSuffix(n, "/") {
			ofDue = append(ofDue, path.Base(n))
		}
	}
	if len(ofDue) < 4 || ofDue[0] != block.MetaFilename || ofDue[len(ofDue)-1] != block.DeletionMarkFilename {
		t.Errorf("deletion order of the due block: %v", ofDue)
	}

	// With --delete-delay=0 the recently marked block goes too.
	if err := Cleanup(ctx, bkt, 0, discard()); err != nil {
		t.Fatal(err)
	}
	if exists(t, bkt, path.Join(recent.ULID.String(), block.MetaFilename)) || !exists(t, bkt, path.Join(kept.ULID.String(), block.MetaFilename)) {
		t.Error("--delete-delay=0: wrong blocks deleted")
	}
	if err := Cleanup(ctx, bkt, -time.Second, discard()); err == nil {
		t.Error("negative delay accepted")
	}
}

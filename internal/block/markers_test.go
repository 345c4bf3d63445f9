package block_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

func TestDeletionMark(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	id := ulid.MustNew(ulid.Now(), nil)

	if _, err := block.ReadDeletionMark(ctx, bkt, id); !errors.Is(err, block.ErrMarkerNotFound) {
		t.Fatalf("unmarked block: err = %v, want ErrMarkerNotFound", err)
	}
	if err := block.MarkForDeletion(ctx, bkt, id, "first"); err != nil {
		t.Fatal(err)
	}
	raw := bkt.Objects()[id.String()+"/deletion-mark.json"]
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if fields["id"] != id.String() || fields["version"] != 1.0 || fields["details"] != "first" {
		t.Fatalf("unexpected deletion mark %s", raw)
	}
	if ts := int64(fields["deletion_time"].(float64)); ts < time.Now().Add(-time.Minute).Unix() || ts > time.Now().Unix() {
		t.Fatalf("deletion_time %d is not Unix seconds of now", ts)
	}

	// Marking again keeps the first mark.
	if err := block.MarkForDeletion(ctx, bkt, id, "second"); err != nil {
		t.Fatal(err)
	}
	m, err := block.ReadDeletionMark(ctx, bkt, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Details != "first" || m.ID != id {
		t.Fatalf("mark overwritten: %+v", m)
	}
}

func TestInvalidMarkers(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	for _, content := range []string{`{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","vers`, `{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","version":2,"deletion_time":1}`} {
		id := ulid.MustNew(ulid.Now(), nil)
		if err := bkt.Upload(ctx, id.String()+"/deletion-mark.json", strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		_, err := block.ReadDeletionMark(ctx, bkt, id)
		var merr *block.MarkerError
		if !errors.As(err, &merr) {
			t.Fatalf("%s: err = %v, want *MarkerError", content, err)
		}
	}
}

func TestOtherMarkers(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	id := ulid.MustNew(ulid.Now(), nil)
	if err := block.MarkForNoCompact(ctx, bkt, id, block.NoCompactIndexSizeExceeding, "big"); err != nil {
		t.Fatal(err)
	}
	if err := block.MarkForNoDownsample(ctx, bkt, id, block.NoDownsampleManual, ""); err != nil {
		t.Fatal(err)
	}
	var nc block.NoCompactMark
	if err := block.ReadMarker(ctx, bkt, id, &nc); err != nil || nc.Reason != block.NoCompactIndexSizeExceeding || nc.NoCompactTime == 0 {
		t.Fatalf("no-compact mark %+v, %v", nc, err)
	}
	var nd block.NoDownsampleMark
	if err := block.ReadMarker(ctx, bkt, id, &nd); err != nil || nd.Reason != block.NoDownsampleManual {
		t.Fatalf("no-downsample mark %+v, %v", nd, err)
	}
	for _, key := range []string{`"no_compact_time"`, `"reason": "index-size-exceeding"`} {
		if !strings.Contains(string(bkt.Objects()[id.String()+"/no-compact-mark.json"]), key) {
			t.Errorf("%s missing in no-compact-mark.json", key)
		}
	}
	if !strings.Contains(string(bkt.Objects()[id.String()+"/no-downsample-mark.json"]), `"no_downsample_time"`) {
		t.Error("no_downsample_time missing in no-downsample-mark.json")
	}
}

func TestIsBlockDir(t *testing.T) {
	id := ulid.MustNew(ulid.Now(), nil)
	for name, want := range map[string]bool{
		id.String(): true, id.String() + "/": true, "debug/": false, "debug/metas/" + id.String(): false,
		id.String() + ".tmp-for-creation": false, "thanos/": false, "": false, strings.ToLower(id.String()): true,
		"ZZZZZZZZZZZZZZZZZZZZZZZZZZ": false,
	} {
		got, ok := block.IsBlockDir(name)
		if ok != want || (ok && !strings.EqualFold(got.String(), strings.TrimSuffix(name, "/"))) {
			t.Errorf("IsBlockDir(%q) = %v, %v; want ok=%v", name, got, ok, want)
		}
	}
}

func TestListBlocks(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	complete, partial := ulid.MustNew(1, nil), ulid.MustNew(2, nil)
	for _, name := range []string{
		complete.String() + "/meta.json", complete.String() + "/index",
		partial.String() + "/chunks/000001",
		"debug/metas/" + complete.String() + ".json", "parquet/x", "notablock/meta.json", ulid.MustNew(3, nil).String(),
	} {
		if err := bkt.Upload(ctx, name, strings.NewReader(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := block.ListBlockIDs(ctx, bkt)
	if err != nil || len(ids) != 2 || ids[0] != complete || ids[1] != partial {
		t.Fatalf("ListBlockIDs = %v, %v", ids, err)
	}
	parts, err := block.ListPartialBlocks(ctx, bkt)
	if err != nil || len(parts) != 1 || parts[0] != partial {
		t.Fatalf("ListPartialBlocks = %v, %v", parts, err)
	}
	for id, want := range map[ulid.ULID]bool{complete: false, partial: true, ulid.MustNew(9, nil): false} {
		if got, err := block.IsPartial(ctx, bkt, id); err != nil || got != want {
			t.Errorf("IsPartial(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	if _, err := block.ReadMetaFromBucket(ctx, bkt, partial); !errors.Is(err, block.ErrMetaNotFound) {
		t.Fatalf("ReadMetaFromBucket(partial) err = %v", err)
	}
	if _, err := block.ReadMetaFromBucket(ctx, bkt, complete); err == nil || errors.Is(err, block.ErrMetaNotFound) {
		t.Fatalf("ReadMetaFromBucket of meta with version 0: err = %v, want a version error", err)
	}
}

package block_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/block/blocktest"
)

var logger = slog.New(slog.DiscardHandler)

// recordingBucket records uploads and deletes in order and can fail uploads of objects
// whose name has a given suffix.
type recordingBucket struct {
	objstore.Bucket
	mu         sync.Mutex
	ops        []string
	failSuffix string
}

func (b *recordingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.mu.Lock()
	b.ops = append(b.ops, "upload "+name)
	fail := b.failSuffix != "" && strings.HasSuffix(name, b.failSuffix)
	b.mu.Unlock()
	if fail {
		return errors.New("injected upload failure")
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b *recordingBucket) Delete(ctx context.Context, name string) error {
	b.mu.Lock()
	b.ops = append(b.ops, "delete "+name)
	b.mu.Unlock()
	return b.Bucket.Delete(ctx, name)
}

// localBlock creates a labelled block in a fresh directory and returns the dir and ID.
func localBlock(t *testing.T) (string, ulid.ULID) {
	t.Helper()
	dir := t.TempDir()
	id := blocktest.CreateBlock(t, dir, 0, 2*time.Hour.Milliseconds(), 5)
	blocktest.EditMeta(t, dir, id, func(m *block.Meta) {
		m.Thanos.Labels = map[string]string{"cluster": "a", "replica": "0"}
		m.Thanos.Source = block.SourceTest
	})
	return filepath.Join(dir, id.String()), id
}

func TestMetaJSONFields(t *testing.T) {
	id := ulid.MustNew(1, nil)
	m := &block.Meta{Thanos: block.ThanosMeta{
		Version: 1, Labels: map[string]string{"a": "b"}, Downsample: block.ThanosDownsample{Resolution: block.Resolution5m},
		Source: block.SourceSidecar, SegmentFiles: []string{"000001"},
		Files: []block.File{
			{RelPath: "chunks/000001", SizeBytes: 10, Hash: &block.ObjectHash{Func: block.HashSHA256, Value: "ab"}},
			{RelPath: "meta.json"},
		},
		IndexStats: block.IndexStats{SeriesMaxSize: 1, ChunkMaxSize: 2},
		Extensions: map[string]any{"parquet_migrated": true},
		UploadTime: time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC),
		Rewrites:   []block.Rewrite{{Sources: []ulid.ULID{id}, DeletionsApplied: []block.DeletionRequest{{Matchers: `{a="b"}`, Intervals: []block.Interval{{Mint: 1, Maxt: 2}}}}}},
	}}
	m.ULID, m.Version, m.MinTime, m.MaxTime = id, 1, 10, 20
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("\n\t\"thanos\": {\n\t\t\"version\": 1")) {
		t.Fatalf("not tab-indented as expected:\n%s", b)
	}
	var raw struct {
		Thanos map[string]json.RawMessage `json:"thanos"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "labels", "downsample", "source", "segment_files", "files", "index_stats", "extensions", "upload_time", "rewrites"} {
		if _, ok := raw.Thanos[k]; !ok {
			t.Errorf("thanos.%s missing in\n%s", k, b)
		}
	}
	for _, want := range []string{`"resolution": 300000`, `"rel_path": "chunks/000001"`, `"size_bytes": 10`, `"hashFunc": "SHA256"`,
		`"series_max_size": 1`, `"chunk_max_size": 2`, `"upload_time": "2024-01-02T03:04:05.0000006Z"`, `"deletions_applied"`, `"mint": 1`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s missing in\n%s", want, b)
		}
	}
	if bytes.Contains(b, []byte(`"rel_path": "meta.json",`)) {
		t.Errorf("meta.json file entry has more than rel_path:\n%s", b)
	}
	got, err := block.DecodeMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Thanos.UploadTime.Equal(m.Thanos.UploadTime) || got.Thanos.IndexStats != m.Thanos.IndexStats || got.Thanos.Labels["a"] != "b" {
		t.Fatalf("round trip changed meta: %+v", got.Thanos)
	}

	// Empty optional fields are left out.
	m.Thanos = block.ThanosMeta{Labels: map[string]string{"a": "b"}}
	b, _ = m.Encode()
	for _, k := range []string{"index_stats", "extensions", "upload_time", "rewrites", "files", "segment_files", `"version": 0`} {
		if bytes.Contains(b, []byte(k)) {
			t.Errorf("%s present in\n%s", k, b)
		}
	}
}

func TestDecodeMetaVersions(t *testing.T) {
	for _, tc := range []struct {
		json string
		ok   bool
	}{
		{`{"ulid":"01ARZ3NDEKTSV4RRFFQ69G5FAV","version":1}`, true},
		{`{"ulid":"01ARZ3NDEKTSV4RRFFQ69G5FAV","version":1,"thanos":{"version":1,"labels":{"a":"b"}}}`, true},
		{`{"ulid":"01ARZ3NDEKTSV4RRFFQ69G5FAV","version":2}`, false},
		{`{"ulid":"01ARZ3NDEKTSV4RRFFQ69G5FAV","version":1,"thanos":{"version":2}}`, false},
		{`{"ulid":"01ARZ3NDEKTSV4RRFFQ69G5FAV","version":1`, false},
	} {
		m, err := block.DecodeMeta(strings.NewReader(tc.json))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.json, err, tc.ok)
		}
		if err == nil && m.Thanos.Labels == nil {
			t.Errorf("%s: nil labels, want empty map", tc.json)
		}
	}
}

func TestWriteReadMeta(t *testing.T) {
	bdir, id := localBlock(t)
	m, err := block.ReadMeta(bdir)
	if err != nil {
		t.Fatal(err)
	}
	if m.ULID != id || m.Stats.NumSamples == 0 || m.Compaction.Level != 1 || m.Thanos.Labels["cluster"] != "a" {
		t.Fatalf("unexpected meta %+v", m)
	}
	if _, err := os.Stat(filepath.Join(bdir, "meta.json.tmp")); !os.IsNotExist(err) {
		t.Fatalf("meta.json.tmp left behind: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(bdir, "meta.json"))
	if !bytes.HasPrefix(b, []byte("{\n\t\"ulid\"")) {
		t.Fatalf("meta.json not tab-indented:\n%s", b)
	}
}

func TestUploadOrder(t *testing.T) {
	bdir, id := localBlock(t)
	// Prometheus always writes a tombstones file; it must not be uploaded.
	if _, err := os.Stat(filepath.Join(bdir, "tombstones")); err != nil {
		t.Fatalf("test block has no tombstones file: %v", err)
	}
	bkt := &recordingBucket{Bucket: objstore.NewInMemBucket()}
	before := time.Now()
	if err := block.Upload(context.Background(), logger, bkt, bdir, block.WithHashFunc(block.HashSHA256)); err != nil {
		t.Fatal(err)
	}
	var chunkOps int
	for i, op := range bkt.ops {
		switch {
		case strings.HasPrefix(op, "upload "+id.String()+"/chunks/"):
			if i != chunkOps {
				t.Fatalf("chunk upload after other objects: %v", bkt.ops)
			}
			chunkOps++
		case op == "upload "+id.String()+"/index":
			if i != len(bkt.ops)-2 {
				t.Fatalf("index not uploaded right before meta.json: %v", bkt.ops)
			}
		case op == "upload "+id.String()+"/meta.json":
			if i != len(bkt.ops)-1 {
				t.Fatalf("meta.json not uploaded last: %v", bkt.ops)
			}
		default:
			t.Fatalf("unexpected operation %q (all: %v)", op, bkt.ops)
		}
	}
	if chunkOps == 0 || len(bkt.ops) != chunkOps+2 {
		t.Fatalf("operations %v", bkt.ops)
	}

	m, err := block.ReadMetaFromBucket(context.Background(), bkt, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Thanos.UploadTime.Before(before.Add(-time.Second)) || m.Thanos.UploadTime.After(time.Now()) {
		t.Fatalf("upload_time %v not set at upload", m.Thanos.UploadTime)
	}
	rels := make([]string, len(m.Thanos.Files))
	for i, f := range m.Thanos.Files {
		rels[i] = f.RelPath
		if f.RelPath == "meta.json" {
			if f.SizeBytes != 0 || f.Hash != nil {
				t.Fatalf("meta.json entry %+v has size or hash", f)
			}
			continue
		}
		fi, err := os.Stat(filepath.Join(bdir, f.RelPath))
		if err != nil || fi.Size() != f.SizeBytes || f.Hash == nil || len(f.Hash.Value) != 64 {
			t.Fatalf("file entry %+v does not match local file (%v)", f, err)
		}
		attrs, err := bkt.Attributes(context.Background(), id.String()+"/"+f.RelPath)
		if err != nil || attrs.Size != f.SizeBytes {
			t.Fatalf("bucket object %s: %+v, %v", f.RelPath, attrs, err)
		}
	}
	if !slices.IsSorted(rels) || rels[len(rels)-1] != "meta.json" || !slices.Contains(rels, "index") {
		t.Fatalf("files %v not sorted or incomplete", rels)
	}
	// The local meta.json is unchanged.
	local, _ := block.ReadMeta(bdir)
	if len(local.Thanos.Files) != 0 || !local.Thanos.UploadTime.IsZero() {
		t.Fatal("Upload changed the local meta.json")
	}
}

func TestUploadRejects(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()

	bdir, id := localBlock(t)
	blocktest.EditMeta(t, filepath.Dir(bdir), id, func(m *block.Meta) { m.Thanos.Labels = nil })
	if err := block.Upload(ctx, logger, bkt, bdir); err == nil || !strings.Contains(err.Error(), "labels") {
		t.Fatalf("empty labels: err = %v", err)
	}

	bdir, _ = localBlock(t)
	other := filepath.Join(filepath.Dir(bdir), ulid.MustNew(ulid.Now(), nil).String())
	if err := os.Rename(bdir, other); err != nil {
		t.Fatal(err)
	}
	if err := block.Upload(ctx, logger, bkt, other); err == nil || !strings.Contains(err.Error(), "meta.json is for block") {
		t.Fatalf("ULID mismatch: err = %v", err)
	}

	notULID := filepath.Join(t.TempDir(), "notablock")
	if err := os.Mkdir(notULID, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := block.Upload(ctx, logger, bkt, notULID); err == nil {
		t.Fatal("directory without ULID name accepted")
	}

	bdir, _ = localBlock(t)
	if err := os.Remove(filepath.Join(bdir, "index")); err != nil {
		t.Fatal(err)
	}
	if err := block.Upload(ctx, logger, bkt, bdir); err == nil {
		t.Fatal("block without index accepted")
	}
	if len(bkt.Objects()) != 0 {
		t.Fatalf("rejected uploads left objects: %v", bkt.Objects())
	}
}

func TestUploadFailureLeavesPartial(t *testing.T) {
	ctx := context.Background()
	bdir, id := localBlock(t)
	for _, fail := range []string{"/index", "/meta.json"} {
		bkt := &recordingBucket{Bucket: objstore.NewInMemBucket(), failSuffix: fail}
		if err := block.Upload(ctx, logger, bkt, bdir); err == nil {
			t.Fatalf("failing %s: no error", fail)
		}
		if _, err := block.ReadMetaFromBucket(ctx, bkt, id); !errors.Is(err, block.ErrMetaNotFound) {
			t.Fatalf("failing %s: meta.json readable after failed upload: %v", fail, err)
		}
		partial, err := block.IsPartial(ctx, bkt, id)
		if err != nil || !partial {
			t.Fatalf("failing %s: IsPartial = %v, %v", fail, partial, err)
		}
		bkt.failSuffix = ""
		if err := block.Upload(ctx, logger, bkt, bdir); err != nil {
			t.Fatal(err)
		}
		if partial, _ := block.IsPartial(ctx, bkt, id); partial {
			t.Fatal("still partial after re-upload")
		}
	}
}

func TestUploadCancelled(t *testing.T) {
	bdir, id := localBlock(t)
	inmem := objstore.NewInMemBucket()
	ctx, cancel := context.WithCancel(context.Background())
	bkt := &cancelOnFirstUpload{Bucket: inmem, cancel: cancel}
	if err := block.Upload(ctx, logger, bkt, bdir); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, ok := inmem.Objects()[id.String()+"/meta.json"]; ok {
		t.Fatal("meta.json uploaded after cancellation")
	}
}

type cancelOnFirstUpload struct {
	objstore.Bucket
	cancel func()
}

func (b *cancelOnFirstUpload) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	err := b.Bucket.Upload(ctx, name, r, opts...)
	b.cancel()
	return err
}

func TestDeleteOrder(t *testing.T) {
	ctx := context.Background()
	bdir, id := localBlock(t)
	inmem := objstore.NewInMemBucket()
	if err := block.Upload(ctx, logger, inmem, bdir); err != nil {
		t.Fatal(err)
	}
	if err := block.MarkForNoCompact(ctx, inmem, id, block.NoCompactManual, "test"); err != nil {
		t.Fatal(err)
	}
	if err := block.MarkForDeletion(ctx, inmem, id, "test"); err != nil {
		t.Fatal(err)
	}
	other := ulid.MustNew(ulid.Now(), nil)
	if err := inmem.Upload(ctx, other.String()+"/meta.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	bkt := &recordingBucket{Bucket: inmem}
	if err := block.Delete(ctx, bkt, id); err != nil {
		t.Fatal(err)
	}
	prefix := "delete " + id.String() + "/"
	if bkt.ops[0] != prefix+"meta.json" {
		t.Fatalf("meta.json not deleted first: %v", bkt.ops)
	}
	markAt := slices.Index(bkt.ops, prefix+"deletion-mark.json")
	if markAt < 0 {
		t.Fatalf("deletion mark not deleted: %v", bkt.ops)
	}
	for _, op := range bkt.ops[markAt+1:] {
		if !strings.HasSuffix(op, "/") {
			t.Fatalf("object %q deleted after deletion-mark.json: %v", op, bkt.ops)
		}
	}
	for name := range inmem.Objects() {
		if strings.HasPrefix(name, id.String()) {
			t.Fatalf("object %s left after Delete", name)
		}
	}
	if len(inmem.Objects()) != 1 {
		t.Fatalf("Delete touched other blocks: %v", inmem.Objects())
	}
	// Deleting again is not an error.
	if err := block.Delete(ctx, bkt, id); err != nil {
		t.Fatal(err)
	}
}

func TestFilesystemUploadDelete(t *testing.T) {
	ctx := context.Background()
	bdir, id := localBlock(t)
	root := t.TempDir()
	bkt, err := filesystem.NewBucket(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := block.Upload(ctx, logger, bkt, bdir); err != nil {
		t.Fatal(err)
	}
	ids, err := block.ListBlockIDs(ctx, bkt)
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("ListBlockIDs = %v, %v", ids, err)
	}
	if _, err := os.Stat(filepath.Join(root, id.String(), "tombstones")); !os.IsNotExist(err) {
		t.Fatalf("tombstones uploaded: %v", err)
	}
	if err := block.Delete(ctx, bkt, id); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("bucket not empty after Delete: %v", ents)
	}
}

package shipper

import (
	"context"
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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/block/blocktest"
)

const hour = int64(time.Hour / time.Millisecond)

var extLabels = labels.FromStrings("cluster", "test", "replica", "0")

// recBucket records uploads, can fail uploads whose name has a suffix and can cancel a
// context after a number of uploads.
type recBucket struct {
	objstore.Bucket
	mu          sync.Mutex
	uploads     []string
	failSuffix  string
	cancelAfter int
	cancel      func()
}

func (b *recBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.mu.Lock()
	b.uploads = append(b.uploads, name)
	fail := b.failSuffix != "" && strings.HasSuffix(name, b.failSuffix)
	n, cancel := len(b.uploads), b.cancel
	b.mu.Unlock()
	if fail {
		return errors.New("injected upload failure")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := b.Bucket.Upload(ctx, name, r, opts...)
	if cancel != nil && n >= b.cancelAfter {
		cancel()
	}
	return err
}

func (b *recBucket) metaUploads() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, u := range b.uploads {
		if strings.HasSuffix(u, "/meta.json") {
			out = append(out, strings.TrimSuffix(u, "/meta.json"))
		}
	}
	return out
}

func newShipper(t *testing.T, dir string, bkt objstore.Bucket, opts Options) (*Shipper, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Dir = dir
	if opts.Labels == nil {
		opts.Labels = func() labels.Labels { return extLabels }
	}
	s, err := New(slog.New(slog.DiscardHandler), reg, bkt, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

func mustSync(t *testing.T, s *Shipper, want int) {
	t.Helper()
	n, err := s.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("Sync uploaded %d blocks, want %d", n, want)
	}
}

func stateIDs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := ReadMetaFile(filepath.Join(dir, DefaultMetaFilename))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, id := range m.Uploaded {
		ids = append(ids, id.String())
	}
	return ids
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestUploadsOnceInOrder(t *testing.T) {
	dir := t.TempDir()
	// Created out of time order: uploads must follow minTime, not ULID or creation order.
	late := blocktest.CreateBlock(t, dir, 4*hour, 6*hour, 3)
	early := blocktest.CreateBlock(t, dir, 0, 2*hour, 3)
	mid := blocktest.CreateBlock(t, dir, 2*hour, 4*hour, 3)
	// Things in a Prometheus data dir that are not blocks.
	for _, d := range []string{"wal", "chunks_head", ulid.MustNew(1, nil).String() + ".tmp-for-creation"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bkt := &recBucket{Bucket: objstore.NewInMemBucket()}
	s, reg := newShipper(t, dir, bkt, Options{})

	mustSync(t, s, 3)
	want := []string{early.String(), mid.String(), late.String()}
	if got := bkt.metaUploads(); !slices.Equal(got, want) {
		t.Fatalf("meta.json upload order %v, want %v", got, want)
	}
	if got := stateIDs(t, dir); !slices.Equal(got, want) {
		t.Fatalf("state file lists %v, want %v", got, want)
	}
	m, err := block.ReadMetaFromBucket(context.Background(), bkt, early)
	if err != nil {
		t.Fatal(err)
	}
	if m.Thanos.Labels["cluster"] != "test" || m.Thanos.Labels["replica"] != "0" || len(m.Thanos.Labels) != 2 ||
		m.Thanos.Source != block.SourceSidecar || m.Thanos.Downsample.Resolution != 0 || m.Thanos.Version != 1 ||
		len(m.Thanos.SegmentFiles) == 0 || len(m.Thanos.Files) == 0 || m.Thanos.UploadTime.IsZero() {
		t.Fatalf("uploaded thanos section %+v", m.Thanos)
	}
	// The Prometheus block itself is untouched.
	local, err := block.ReadMeta(filepath.Join(dir, early.String()))
	if err != nil || len(local.Thanos.Labels) != 0 || local.Thanos.Source != "" {
		t.Fatalf("local meta.json changed: %+v, %v", local.Thanos, err)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "thanos", "upload")); err == nil && len(ents) > 0 {
		t.Fatalf("staging directory not cleaned: %v", ents)
	}
	if got := counter(t, reg, "vigil_shipper_uploads_total"); got != 3 {
		t.Fatalf("uploads_total = %v", got)
	}
	if got := counter(t, reg, "vigil_shipper_last_successful_upload_time"); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("last_successful_upload_time = %v", got)
	}

	before := len(bkt.uploads)
	mustSync(t, s, 0)
	if len(bkt.uploads) != before {
		t.Fatalf("second sync uploaded %v", bkt.uploads[before:])
	}
	if got := counter(t, reg, "vigil_shipper_dir_syncs_total"); got != 2 {
		t.Fatalf("dir_syncs_total = %v", got)
	}

	// A new block is picked up; a block deleted locally leaves the state file.
	newest := blocktest.CreateBlock(t, dir, 6*hour, 8*hour, 3)
	if err := os.RemoveAll(filepath.Join(dir, early.String())); err != nil {
		t.Fatal(err)
	}
	mustSync(t, s, 1)
	if got, want := stateIDs(t, dir), []string{mid.String(), late.String(), newest.String()}; !slices.Equal(got, want) {
		t.Fatalf("state file lists %v, want %v", got, want)
	}
}

func TestRestartWithoutStateFile(t *testing.T) {
	dir := t.TempDir()
	a := blocktest.CreateBlock(t, dir, 0, 2*hour, 2)
	b := blocktest.CreateBlock(t, dir, 2*hour, 4*hour, 2)
	bkt := &recBucket{Bucket: objstore.NewInMemBucket()}
	s, _ := newShipper(t, dir, bkt, Options{})
	mustSync(t, s, 2)

	for _, state := range []string{"", "{not json"} {
		path := filepath.Join(dir, DefaultMetaFilename)
		if state == "" {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(path, []byte(state), 0o644); err != nil {
			t.Fatal(err)
		}
		before := len(bkt.uploads)
		restarted, _ := newShipper(t, dir, bkt, Options{})
		mustSync(t, restarted, 0)
		if len(bkt.uploads) != before {
			t.Fatalf("state %q: re-uploaded %v", state, bkt.uploads[before:])
		}
		if got, want := stateIDs(t, dir), []string{a.String(), b.String()}; !slices.Equal(got, want) {
			t.Fatalf("state %q: state file lists %v, want %v", state, got, want)
		}
	}
}

func TestSkipsCompactedAndEmptyBlocks(t *testing.T) {
	dir := t.TempDir()
	compacted := blocktest.CreateBlock(t, dir, 0, 2*hour, 2)
	blocktest.EditMeta(t, dir, compacted, func(m *block.Meta) { m.Compaction.Level = 2 })
	empty := blocktest.CreateBlock(t, dir, 2*hour, 4*hour, 2)
	blocktest.EditMeta(t, dir, empty, func(m *block.Meta) { m.Stats.NumSamples = 0 })
	bkt := objstore.NewInMemBucket()

	s, _ := newShipper(t, dir, bkt, Options{})
	mustSync(t, s, 0)
	if len(bkt.Objects()) != 0 {
		t.Fatalf("uploaded %v", bkt.Objects())
	}
	if got := stateIDs(t, dir); len(got) != 0 {
		t.Fatalf("state file lists %v", got)
	}

	s, _ = newShipper(t, dir, bkt, Options{UploadCompacted: true})
	mustSync(t, s, 1)
	if ok, _ := block.MetaExists(context.Background(), bkt, compacted); !ok {
		t.Fatal("compacted block not uploaded with UploadCompacted")
	}
	if ok, _ := block.MetaExists(context.Background(), bkt, empty); ok {
		t.Fatal("block without samples uploaded")
	}
}

func TestCompactedOverlapAborts(t *testing.T) {
	dir := t.TempDir()
	bkt := objstore.NewInMemBucket()
	l1 := blocktest.CreateBlock(t, dir, 0, 2*hour, 2)
	s, _ := newShipper(t, dir, bkt, Options{UploadCompacted: true})
	mustSync(t, s, 1)
	if err := os.RemoveAll(filepath.Join(dir, l1.String())); err != nil {
		t.Fatal(err)
	}
	compacted := blocktest.CreateBlock(t, dir, hour, 3*hour, 2)
	blocktest.EditMeta(t, dir, compacted, func(m *block.Meta) { m.Compaction.Level = 2 })
	if _, err := s.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "overlaps block "+l1.String()) {
		t.Fatalf("err = %v, want an overlap error", err)
	}
	if ok, _ := block.MetaExists(context.Background(), bkt, compacted); ok {
		t.Fatal("overlapping compacted block uploaded")
	}
	// Another replica's blocks (other external labels) do not count.
	other, _ := newShipper(t, dir, bkt, Options{UploadCompacted: true, MetaFileName: "other.json",
		Labels: func() labels.Labels { return labels.FromStrings("cluster", "test", "replica", "1") }})
	mustSync(t, other, 1)
}

func TestFailedUploadRetried(t *testing.T) {
	dir := t.TempDir()
	a := blocktest.CreateBlock(t, dir, 0, 2*hour, 2)
	b := blocktest.CreateBlock(t, dir, 2*hour, 4*hour, 2)
	inmem := objstore.NewInMemBucket()
	bkt := &recBucket{Bucket: inmem, failSuffix: a.String() + "/index"}
	s, reg := newShipper(t, dir, bkt, Options{})

	n, err := s.Sync(context.Background())
	if err == nil || n != 0 || !strings.Contains(err.Error(), a.String()) {
		t.Fatalf("Sync = %d, %v; want a failure naming %s", n, err, a)
	}
	for name := range inmem.Objects() {
		if strings.HasSuffix(name, "meta.json") {
			t.Fatalf("%s visible after failed upload", name)
		}
		if strings.HasPrefix(name, b.String()) {
			t.Fatalf("later block uploaded after an earlier one failed: %s", name)
		}
	}
	if got := counter(t, reg, "vigil_shipper_upload_failures_total"); got != 1 {
		t.Fatalf("upload_failures_total = %v", got)
	}
	if got := counter(t, reg, "vigil_shipper_dir_sync_failures_total"); got != 1 {
		t.Fatalf("dir_sync_failures_total = %v", got)
	}
	if got := stateIDs(t, dir); len(got) != 0 {
		t.Fatalf("state file lists %v after failure", got)
	}

	bkt.failSuffix = ""
	mustSync(t, s, 2)
	if got, want := bkt.metaUploads(), []string{a.String(), b.String()}; !slices.Equal(got, want) {
		t.Fatalf("meta.json uploads %v, want %v", got, want)
	}
	if got := counter(t, reg, "vigil_shipper_uploads_total"); got != 2 {
		t.Fatalf("uploads_total = %v", got)
	}
}

func TestKilledMidUpload(t *testing.T) {
	dir := t.TempDir()
	id := blocktest.CreateBlock(t, dir, 0, 2*hour, 2)
	inmem := objstore.NewInMemBucket()
	ctx, cancel := context.WithCancel(context.Background())
	bkt := &recBucket{Bucket: inmem, cancelAfter: 1, cancel: cancel}
	s, reg := newShipper(t, dir, bkt, Options{})
	if _, err := s.Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(inmem.Objects()) == 0 {
		t.Fatal("test did not cancel mid-upload: nothing was uploaded")
	}
	if _, ok := inmem.Objects()[id.String()+"/meta.json"]; ok {
		t.Fatal("meta.json visible after interrupted upload")
	}
	if partial, _ := block.IsPartial(context.Background(), inmem, id); !partial {
		t.Fatal("interrupted upload is not a partial block")
	}
	if got := counter(t, reg, "vigil_shipper_upload_failures_total"); got != 0 {
		t.Fatalf("shutdown counted as upload failure: %v", got)
	}

	// Restart: the block is uploaded exactly once.
	bkt = &recBucket{Bucket: inmem}
	restarted, _ := newShipper(t, dir, bkt, Options{})
	mustSync(t, restarted, 1)
	mustSync(t, restarted, 0)
	if got := bkt.metaUploads(); !slices.Equal(got, []string{id.String()}) {
		t.Fatalf("meta.json uploads after restart %v", got)
	}
	if _, err := block.ReadMetaFromBucket(context.Background(), inmem, id); err != nil {
		t.Fatal(err)
	}
}

func TestFilesystemBucket(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	id := blocktest.CreateBlock(t, dir, 0, 2*hour, 2)
	bkt, err := filesystem.NewBucket(root)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newShipper(t, dir, bkt, Options{HashFunc: block.HashSHA256})
	mustSync(t, s, 1)
	for _, f := range []string{"meta.json", "index", "chunks/000001"} {
		if _, err := os.Stat(filepath.Join(root, id.String(), f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, id.String(), "tombstones")); !os.IsNotExist(err) {
		t.Fatalf("tombstones uploaded: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, DefaultMetaFilename)); err != nil {
		t.Fatal(err)
	}
	mtime := func() time.Time {
		fi, err := os.Stat(filepath.Join(root, id.String(), "meta.json"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	before := mtime()
	restarted, _ := newShipper(t, dir, bkt, Options{})
	mustSync(t, restarted, 0)
	if !mtime().Equal(before) {
		t.Fatal("meta.json rewritten after restart without state file")
	}
}

func TestNoExternalLabels(t *testing.T) {
	dir := t.TempDir()
	blocktest.CreateBlock(t, dir, 0, 2*hour, 2)
	bkt := objstore.NewInMemBucket()
	s, _ := newShipper(t, dir, bkt, Options{Labels: labels.EmptyLabels})
	if _, err := s.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "external labels") {
		t.Fatalf("err = %v", err)
	}
	if len(bkt.Objects()) != 0 {
		t.Fatalf("uploaded %v", bkt.Objects())
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	bkt := objstore.NewInMemBucket()
	s, _ := newShipper(t, dir, bkt, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx, 10*time.Millisecond) }()
	id := blocktest.CreateBlock(t, dir, 0, 2*hour, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, _ := block.MetaExists(context.Background(), bkt, id); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not upload the block")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestMetaFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultMetaFilename)
	id := ulid.MustNew(5, nil)
	if err := WriteMetaFile(path, &MetaFile{Version: 1, Uploaded: []ulid.ULID{id}}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if want := "{\n\t\"version\": 1,\n\t\"uploaded\": [\n\t\t\"" + id.String() + "\"\n\t]\n}\n"; string(b) != want {
		t.Fatalf("state file\n%s\nwant\n%s", b, want)
	}
	if err := WriteMetaFile(path, &MetaFile{Version: 1}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"uploaded": []`) {
		t.Fatalf("empty state file %s", b)
	}
	if err := os.WriteFile(path, []byte(`{"version":2,"uploaded":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMetaFile(path); err == nil {
		t.Fatal("version 2 accepted")
	}
}

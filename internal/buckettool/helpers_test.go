package buckettool

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/block/blocktest"
)

const hour = int64(time.Hour / time.Millisecond)

// base is a 2h-aligned time a few days ago, so blocks look like real ones.
var base = (time.Now().Add(-5*24*time.Hour).UnixMilli() / (2 * hour)) * (2 * hour)

// spec describes a test block. Level 0 means 1; sources nil means the block itself.
type spec struct {
	mint, maxt int64
	labels     map[string]string
	level      int
	sources    []ulid.ULID
	resolution int64
	series     int
	source     block.SourceType
	// shift moves the range in meta.json away from the samples (a broken block).
	shift int64
}

// upload creates a real TSDB block for sp, gives it a Thanos meta.json and uploads it.
func upload(t *testing.T, bkt objstore.Bucket, sp spec) *block.Meta {
	t.Helper()
	dir := t.TempDir()
	id := blocktest.CreateBlock(t, dir, sp.mint, sp.maxt, max(sp.series, 1))
	var meta *block.Meta
	blocktest.EditMeta(t, dir, id, func(m *block.Meta) {
		m.Thanos.Labels = sp.labels
		m.Thanos.Source = sp.source
		if m.Thanos.Source == "" {
			m.Thanos.Source = block.SourceSidecar
		}
		m.Thanos.Downsample.Resolution = sp.resolution
		m.Compaction.Level = max(sp.level, 1)
		if sp.sources != nil {
			m.Compaction.Sources = sp.sources
		}
		m.MinTime, m.MaxTime = sp.mint+sp.shift, sp.maxt+sp.shift
		meta = m
	})
	if err := block.Upload(context.Background(), discard(), bkt, filepath.Join(dir, id.String())); err != nil {
		t.Fatal(err)
	}
	return meta
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logBuffer returns a logger writing to a buffer.
func logBuffer() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func put(t *testing.T, bkt objstore.Bucket, name, content string) {
	t.Helper()
	if err := bkt.Upload(context.Background(), name, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, bkt objstore.Bucket, name string) []byte {
	t.Helper()
	rc, err := bkt.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func exists(t *testing.T, bkt objstore.Bucket, name string) bool {
	t.Helper()
	ok, err := bkt.Exists(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// markDeleted writes a deletion mark dated at.
func markDeleted(t *testing.T, bkt objstore.Bucket, id ulid.ULID, at time.Time) {
	t.Helper()
	b, err := json.Marshal(block.DeletionMark{ID: id, Version: block.MarkerVersion1, DeletionTime: at.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	put(t, bkt, path.Join(id.String(), block.DeletionMarkFilename), string(b))
}

// corruptBlock adds a block directory whose meta.json does not parse.
func corruptBlock(t *testing.T, bkt objstore.Bucket) ulid.ULID {
	t.Helper()
	id := ulid.Make()
	put(t, bkt, path.Join(id.String(), block.IndexFilename), "not an index")
	put(t, bkt, path.Join(id.String(), block.MetaFilename), `{"ulid": "`+id.String()+`", "version": 1, "minTime": 0,`)
	return id
}

// partialBlock adds a block directory without meta.json.
func partialBlock(t *testing.T, bkt objstore.Bucket) ulid.ULID {
	t.Helper()
	id := ulid.Make()
	put(t, bkt, path.Join(id.String(), "chunks", "000001"), "chunk data")
	return id
}

var (
	eu1 = map[string]string{"cluster": "eu1", "replica": "a"}
	us1 = map[string]string{"cluster": "us1", "replica": "a"}
)

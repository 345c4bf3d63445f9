package bucketstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/vigilhq/vigil/internal/block"
)

func newBucket(t testing.TB) objstore.Bucket {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bkt
}

// rangeCall is one GetRange call.
type rangeCall struct {
	name        string
	off, length int64
}

// countingBucket records GetRange calls and can fail those on index files, or make
// them hang until their context ends.
type countingBucket struct {
	objstore.Bucket
	mu         sync.Mutex
	ranges     []rangeCall
	failIndex  atomic.Bool
	failChunks atomic.Bool
	hangIndex  atomic.Bool
	hanging    atomic.Int32 // GetRange calls hanging now
}

var errInjected = errors.New("injected bucket failure")

func (b *countingBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	b.mu.Lock()
	b.ranges = append(b.ranges, rangeCall{name, off, length})
	b.mu.Unlock()
	if (b.failIndex.Load() && strings.HasSuffix(name, "/index")) || (b.failChunks.Load() && strings.Contains(name, "/chunks/")) {
		return nil, errInjected
	}
	if b.hangIndex.Load() && strings.HasSuffix(name, "/index") {
		b.hanging.Add(1)
		defer b.hanging.Add(-1)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return b.Bucket.GetRange(ctx, name, off, length)
}

// rangesOn returns the GetRange calls on object name.
func (b *countingBucket) rangesOn(name string) []rangeCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []rangeCall
	for _, r := range b.ranges {
		if r.name == name {
			out = append(out, r)
		}
	}
	return out
}

// newSyncedStore returns a store over bkt that has synced once, without a gRPC server.
func newSyncedStore(t testing.TB, bkt objstore.BucketReader, cfg Config) *Store {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.IndexCacheSize == 0 {
		cfg.IndexCacheSize = 64 << 20
	}
	s := New(bkt, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// served returns the IDs of the blocks the store serves, sorted.
func served(s *Store) []ulid.ULID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []ulid.ULID
	for id := range s.blocks {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	return ids
}

func sortedIDs(ids ...ulid.ULID) []ulid.ULID {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	return ids
}

func checkServed(t *testing.T, s *Store, want ...ulid.ULID) {
	t.Helper()
	if got, w := served(s), sortedIDs(want...); !slices.Equal(got, w) {
		if len(got) == 0 && len(w) == 0 {
			return
		}
		t.Fatalf("served blocks %v, want %v", got, w)
	}
}

func upload(t *testing.T, bkt objstore.Bucket, name string, content []byte) {
	t.Helper()
	if err := bkt.Upload(context.Background(), name, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
}

func uploadJSON(t *testing.T, bkt objstore.Bucket, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	upload(t, bkt, name, b)
}

// editBucketMeta rewrites block id's meta.json in the bucket.
func editBucketMeta(t *testing.T, bkt objstore.Bucket, id ulid.ULID, edit func(*block.Meta)) {
	t.Helper()
	m, err := block.ReadMetaFromBucket(context.Background(), bkt, id)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	upload(t, bkt, id.String()+"/meta.json", b)
}

// copyBlockAs copies block id to a new ID (its meta.json names the new ID), so tests can
// have blocks whose ULID carries an older time than now.
func copyBlockAs(t *testing.T, bkt objstore.Bucket, id, to ulid.ULID) {
	t.Helper()
	ctx := context.Background()
	err := bkt.Iter(ctx, id.String()+"/", func(name string) error {
		rc, err := bkt.Get(ctx, name)
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			return err
		}
		if strings.HasSuffix(name, "/"+block.MetaFilename) {
			m, err := block.DecodeMeta(bytes.NewReader(b))
			if err != nil {
				return err
			}
			m.ULID = to
			if b, err = m.Encode(); err != nil {
				return err
			}
		}
		return bkt.Upload(ctx, to.String()+strings.TrimPrefix(name, id.String()), bytes.NewReader(b))
	}, objstore.WithRecursiveIter())
	if err != nil {
		t.Fatal(err)
	}
}

// indexTOCOffsets returns the symbol table and postings offset table offsets from the
// TOC of block id's index in the bucket.
func indexTOCOffsets(t *testing.T, bkt objstore.Bucket, id ulid.ULID) (symbols, postingsTable int64) {
	t.Helper()
	ctx := context.Background()
	attrs, err := bkt.Attributes(ctx, id.String()+"/index")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := bkt.GetRange(ctx, id.String()+"/index", attrs.Size-tocLen, tocLen)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	toc, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return int64(binary.BigEndian.Uint64(toc[0:8])), int64(binary.BigEndian.Uint64(toc[40:48]))
}

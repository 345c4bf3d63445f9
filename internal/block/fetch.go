package block

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"
)

// Dir is what one top-level block directory of a bucket holds, as a Fetcher read it.
type Dir struct {
	ID ulid.ULID
	// Meta is the block's meta.json; nil for a partial upload (no meta.json) and when
	// MetaErr is set.
	Meta *Meta
	// MetaErr is set when meta.json exists but cannot be read or decoded (a corrupt
	// block, or an error of the bucket). Markers are then not read, except the
	// deletion mark.
	MetaErr error
	// Markers the block carries; nil when absent or invalid (an invalid marker is
	// logged and treated as absent).
	Deletion     *DeletionMark
	NoCompact    *NoCompactMark
	NoDownsample *NoDownsampleMark
}

// Partial reports whether the directory is a partial upload: objects but no meta.json.
func (d *Dir) Partial() bool { return d.Meta == nil && d.MetaErr == nil }

// Fetcher lists a bucket and reads every block directory: meta.json and the markers.
// meta.json never changes for a ULID, so it is read once and cached; markers are read
// at every Fetch. A Fetcher is safe for concurrent use.
type Fetcher struct {
	bkt         objstore.BucketReader
	logger      *slog.Logger
	concurrency int

	mu    sync.Mutex
	metas map[ulid.ULID]*Meta
}

// NewFetcher returns a Fetcher reading concurrency block directories at once (at least
// one). Invalid markers are logged to logger.
func NewFetcher(bkt objstore.BucketReader, logger *slog.Logger, concurrency int) *Fetcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{bkt: bkt, logger: logger, concurrency: max(1, concurrency), metas: map[ulid.ULID]*Meta{}}
}

// Fetch reads every block directory of the bucket, in bucket listing order. Directories
// that vanish while being read are left out. An error of the listing, of a marker read
// or of ctx fails the whole fetch; an unreadable meta.json is reported in Dir.MetaErr.
func (f *Fetcher) Fetch(ctx context.Context) ([]*Dir, error) {
	ids, err := ListBlockIDs(ctx, f.bkt)
	if err != nil {
		return nil, err
	}
	out := make([]*Dir, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.concurrency)
	for i, id := range ids {
		g.Go(func() error {
			d, err := f.fetch(gctx, id)
			out[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Forget metas of blocks that are gone.
	listed := make(map[ulid.ULID]bool, len(ids))
	for _, id := range ids {
		listed[id] = true
	}
	f.mu.Lock()
	for id := range f.metas {
		if !listed[id] {
			delete(f.metas, id)
		}
	}
	f.mu.Unlock()
	return slices.DeleteFunc(out, func(d *Dir) bool { return d == nil }), nil
}

// Forget drops the cached meta.json of block id (after deleting the block).
func (f *Fetcher) Forget(id ulid.ULID) {
	f.mu.Lock()
	delete(f.metas, id)
	f.mu.Unlock()
}

// Cached returns how many meta.json files are cached.
func (f *Fetcher) Cached() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.metas)
}

// fetch lists one block directory once and reads the meta.json (unless cached) and the
// markers it holds. It returns nil when the directory has no objects any more.
func (f *Fetcher) fetch(ctx context.Context, id ulid.ULID) (*Dir, error) {
	present := map[string]bool{}
	err := f.bkt.Iter(ctx, id.String()+"/", func(name string) error {
		present[path.Base(strings.TrimSuffix(name, "/"))] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list block %s: %w", id, err)
	}
	d := &Dir{ID: id}
	if present[DeletionMarkFilename] {
		if err := readMarker(ctx, f, id, &d.Deletion); err != nil {
			return nil, err
		}
	}
	if !present[MetaFilename] {
		f.Forget(id)
		if len(present) == 0 {
			return nil, nil // deleted between listing and now
		}
		return d, nil
	}
	if d.Meta, err = f.meta(ctx, id); err != nil {
		if errors.Is(err, ErrMetaNotFound) {
			return d, nil // deleted meanwhile: the deleter removes meta.json first
		}
		if ctx.Err() != nil {
			return nil, err
		}
		d.MetaErr = err
		return d, nil
	}
	if present[NoCompactMarkFilename] {
		if err := readMarker(ctx, f, id, &d.NoCompact); err != nil {
			return nil, err
		}
	}
	if present[NoDownsampleMarkFilename] {
		if err := readMarker(ctx, f, id, &d.NoDownsample); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// readMarker reads a marker into *dst. A missing marker leaves *dst nil; an invalid one
// is logged and leaves *dst nil; other errors are returned.
func readMarker[M any, PM interface {
	*M
	Marker
}](ctx context.Context, f *Fetcher, id ulid.ULID, dst *PM) error {
	var m PM = new(M)
	err := ReadMarker(ctx, f.bkt, id, m)
	var merr *MarkerError
	switch {
	case err == nil:
		*dst = m
	case errors.Is(err, ErrMarkerNotFound):
	case errors.As(err, &merr):
		f.logger.Warn("ignoring invalid marker", "block", id, "err", err)
	default:
		return err
	}
	return nil
}

func (f *Fetcher) meta(ctx context.Context, id ulid.ULID) (*Meta, error) {
	f.mu.Lock()
	m, ok := f.metas[id]
	f.mu.Unlock()
	if ok {
		return m, nil
	}
	m, err := ReadMetaFromBucket(ctx, f.bkt, id)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.metas[id] = m
	f.mu.Unlock()
	return m, nil
}

package block

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

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
	// Excluded is the Name of the first filter of the fetcher that hid the block (see
	// Filter); empty when every filter kept it, and for directories without Meta.
	Excluded string
}

// Partial reports whether the directory is a partial upload: objects but no meta.json.
func (d *Dir) Partial() bool { return d.Meta == nil && d.MetaErr == nil }

// Visible reports whether the directory is a block with a readable meta.json that every
// filter kept.
func (d *Dir) Visible() bool { return d.Meta != nil && d.Excluded == "" }

// Fetcher lists a bucket, reads every block directory (meta.json and the markers) and
// runs its filters over the blocks, at one instant of its clock per Fetch. meta.json
// never changes for a ULID, so it is read once and kept in the fetcher's MetaCache;
// markers are read at every Fetch. A Fetcher is safe for concurrent use.
type Fetcher struct {
	bkt         objstore.BucketReader
	logger      *slog.Logger
	concurrency int
	now         func() time.Time
	filters     []Filter
	cache       MetaCache
}

// FetcherOption configures a Fetcher.
type FetcherOption func(*Fetcher)

// WithClock makes the fetcher's filters read the time from now instead of time.Now.
func WithClock(now func() time.Time) FetcherOption {
	return func(f *Fetcher) { f.now = now }
}

// WithFilters sets the filter chain, run in order after every Fetch (see Filter).
func WithFilters(filters ...Filter) FetcherOption {
	return func(f *Fetcher) { f.filters = slices.Clone(filters) }
}

// WithMetaCache keeps the meta.json files read in c instead of a cache of the fetcher's
// own.
func WithMetaCache(c MetaCache) FetcherOption {
	return func(f *Fetcher) { f.cache = c }
}

// NewFetcher returns a Fetcher reading concurrency block directories at once (at least
// one). Invalid markers are logged to logger. Without options it keeps its metas in
// memory, has no filters and uses time.Now.
func NewFetcher(bkt objstore.BucketReader, logger *slog.Logger, concurrency int, opts ...FetcherOption) *Fetcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Fetcher{bkt: bkt, logger: logger, concurrency: max(1, concurrency), now: time.Now}
	for _, o := range opts {
		o(f)
	}
	if f.cache == nil {
		f.cache = NewMemMetaCache()
	}
	return f
}

// With returns a fetcher that reads the same bucket into the same MetaCache as f, with
// opts applied over f's options: one cache, several views of the bucket.
func (f *Fetcher) With(opts ...FetcherOption) *Fetcher {
	g := *f
	g.filters = slices.Clone(f.filters)
	for _, o := range opts {
		o(&g)
	}
	return &g
}

// Fetch reads every block directory of the bucket, in bucket listing order, and runs the
// filters over those with a meta.json (Dir.Excluded). Directories that vanish while
// being read are left out. An error of the listing, of a block directory's listing, of a
// marker read or of ctx fails the whole fetch (a caller keeps what it had); an
// unreadable meta.json is reported in Dir.MetaErr.
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
	f.cache.Retain(func(id ulid.ULID) bool { return listed[id] })
	dirs := slices.DeleteFunc(out, func(d *Dir) bool { return d == nil })
	applyFilters(dirs, f.filters, f.now())
	return dirs, nil
}

// Forget drops the cached meta.json of block id (after deleting the block).
func (f *Fetcher) Forget(id ulid.ULID) { f.cache.Delete(id) }

// Cached returns how many meta.json files are cached.
func (f *Fetcher) Cached() int { return f.cache.Len() }

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
		// Gone from the listing: deleted (meta.json goes first) or never complete.
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

// meta returns block id's meta.json from the cache, or reads and caches it.
func (f *Fetcher) meta(ctx context.Context, id ulid.ULID) (*Meta, error) {
	if m, ok := f.cache.Get(id); ok {
		return m, nil
	}
	m, err := ReadMetaFromBucket(ctx, f.bkt, id)
	if err != nil {
		return nil, err
	}
	f.cache.Set(id, m)
	return m, nil
}

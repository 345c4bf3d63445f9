package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/shipper"
	"github.com/vigilhq/vigil/internal/tsdbstore"
)

// TSDBOptions configure the per-tenant TSDBs.
type TSDBOptions struct {
	// Dir holds one TSDB directory per tenant (--tsdb.path).
	Dir string
	// Retention is --tsdb.retention: local blocks older than it are deleted, and a tenant
	// that received nothing for that long is flushed, uploaded and removed.
	Retention time.Duration
	// BlockDuration is the fixed block length (2h): local blocks are never compacted
	// further, the compactor does that in the bucket.
	BlockDuration time.Duration
	// OutOfOrderWindow is --tsdb.out-of-order.time-window.
	OutOfOrderWindow time.Duration
	// MaxExemplars is --tsdb.max-exemplars; 0 disables exemplar storage.
	MaxExemplars int64
	// UncompressedWAL turns --tsdb.wal-compression off: the WAL is written without snappy.
	UncompressedWAL bool
	// NoLockfile is --tsdb.no-lockfile: no lock file in the tenants' TSDB directories.
	NoLockfile bool
	// HashFunc is --hash-func: the hash recorded for each uploaded file.
	HashFunc block.HashFunc
	// MaxBytes is --tsdb.max-retention-bytes: each tenant's blocks are deleted oldest
	// first beyond it (0 = no size bound).
	MaxBytes int64
	// OutOfOrderCapMax is --tsdb.out-of-order.cap-max: samples per out-of-order chunk
	// (0 = Prometheus' default).
	OutOfOrderCapMax int64
	// Labels are the --label flags, on every tenant's blocks and series.
	Labels labels.Labels
	// TenantLabel is --receive.tenant-label-name.
	TenantLabel string
	// Bucket, when set, receives every finished block of every tenant.
	Bucket objstore.Bucket
	// RingLabels returns the external labels of the hashring a tenant belongs to.
	RingLabels func(tenant string) labels.Labels
	// Store configures the StoreAPI of each tenant.
	Store tsdbstore.Options
}

// Tenants keeps one TSDB per tenant, opened on its first write, and serves and uploads
// them. Safe for concurrent use.
type Tenants struct {
	opts   TSDBOptions
	logger *slog.Logger
	reg    prometheus.Registerer

	mu      sync.RWMutex
	tenants map[string]*tenant
	closed  bool
}

// tenant is one tenant's TSDB with what serves and uploads it.
type tenant struct {
	name      string
	db        *tsdb.DB
	store     *tsdbstore.Store
	ship      *shipper.Shipper
	lastWrite atomic.Int64 // wall-clock ms of the last successful append
	refs      *refCache

	// mu is held for reading by each append and for writing while the tenant is
	// retired, so that no append reaches a closed TSDB.
	mu     sync.RWMutex
	closed bool
}

// acquire holds the tenant open for one write; release with tn.mu.RUnlock.
func (tn *tenant) acquire() error {
	tn.mu.RLock()
	if tn.closed {
		tn.mu.RUnlock()
		return writeErr(CauseUnavailable, "tenant %q is being closed; retry", tn.name)
	}
	return nil
}

// NewTenants opens the tenants already on disk, so that their data is served and their
// WAL replayed at once rather than on their next write.
func NewTenants(logger *slog.Logger, reg prometheus.Registerer, opts TSDBOptions) (*Tenants, error) {
	if opts.BlockDuration <= 0 {
		opts.BlockDuration = 2 * time.Hour
	}
	if opts.RingLabels == nil {
		opts.RingLabels = func(string) labels.Labels { return labels.EmptyLabels() }
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create TSDB directory: %w", err)
	}
	t := &Tenants{opts: opts, logger: logger, reg: reg, tenants: map[string]*tenant{}}
	entries, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("list tenants in %s: %w", opts.Dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || ValidateTenant(e.Name()) != nil {
			continue
		}
		if _, err := t.Get(e.Name()); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ValidateTenant rejects tenant names that are not a single path element: the name
// becomes a directory, and "../x" must not write outside --tsdb.path.
func ValidateTenant(name string) error {
	if name == "" || name == "." || name == ".." || path.Base(name) != name || filepath.Base(name) != name {
		return fmt.Errorf("invalid tenant %q: must be a single path element", name)
	}
	return nil
}

// Get returns the tenant's TSDB, opening (and creating) it on first use.
func (t *Tenants) Get(name string) (*tenant, error) {
	t.mu.RLock()
	tn, ok := t.tenants[name]
	closed := t.closed
	t.mu.RUnlock()
	if ok {
		return tn, nil
	}
	if closed {
		return nil, writeErr(CauseUnavailable, "receiver is shutting down")
	}
	if err := ValidateTenant(name); err != nil {
		return nil, &WriteError{Cause: CauseBadRequest, Err: err}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tn, ok := t.tenants[name]; ok {
		return tn, nil
	}
	tn, err := t.open(name)
	if err != nil {
		return nil, err
	}
	t.tenants[name] = tn
	return tn, nil
}

// ExternalLabels are a tenant's block and series labels: --label, the tenant label and
// the hashring's external labels.
func (t *Tenants) ExternalLabels(name string) labels.Labels {
	b := labels.NewBuilder(t.opts.Labels)
	t.opts.RingLabels(name).Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
	b.Set(t.opts.TenantLabel, name)
	return b.Labels()
}

func (t *Tenants) open(name string) (*tenant, error) {
	dir := filepath.Join(t.opts.Dir, name)
	o := tsdb.DefaultOptions()
	o.MinBlockDuration = t.opts.BlockDuration.Milliseconds()
	o.MaxBlockDuration = o.MinBlockDuration
	o.RetentionDuration = t.opts.Retention.Milliseconds()
	o.OutOfOrderTimeWindow = t.opts.OutOfOrderWindow.Milliseconds()
	o.EnableExemplarStorage = t.opts.MaxExemplars > 0
	o.MaxExemplars = t.opts.MaxExemplars
	o.WALCompression = compression.Snappy
	if t.opts.UncompressedWAL {
		o.WALCompression = compression.None
	}
	o.NoLockfile = t.opts.NoLockfile
	o.MaxBytes = t.opts.MaxBytes
	if t.opts.OutOfOrderCapMax > 0 {
		o.OutOfOrderCapMax = t.opts.OutOfOrderCapMax
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"tenant": name}, t.reg)
	db, err := tsdb.Open(dir, t.logger.With("tenant", name), reg, o, nil)
	if err != nil {
		return nil, fmt.Errorf("open TSDB of tenant %q: %w", name, err)
	}
	ext := t.ExternalLabels(name)
	tn := &tenant{name: name, db: db, store: tsdbstore.New(db, ext, t.opts.Store), refs: newRefCache()}
	tn.lastWrite.Store(time.Now().UnixMilli())
	if t.opts.Bucket != nil {
		tn.ship, err = shipper.New(t.logger.With("tenant", name), reg, t.opts.Bucket, shipper.Options{
			Dir: dir, Source: block.SourceReceive, Labels: func() labels.Labels { return ext }, HashFunc: t.opts.HashFunc,
		})
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("shipper of tenant %q: %w", name, err)
		}
	}
	t.logger.Info("opened tenant TSDB", "tenant", name, "dir", dir, "labels", ext.String())
	return tn, nil
}

// Stores returns the StoreAPI of every open tenant, in tenant order.
func (t *Tenants) Stores() []*tsdbstore.Store {
	t.mu.RLock()
	defer t.mu.RUnlock()
	names := make([]string, 0, len(t.tenants))
	for n := range t.tenants {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]*tsdbstore.Store, 0, len(names))
	for _, n := range names {
		out = append(out, t.tenants[n].store)
	}
	return out
}

func (t *Tenants) snapshot() []*tenant {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*tenant, 0, len(t.tenants))
	for _, tn := range t.tenants {
		out = append(out, tn)
	}
	return out
}

// refCacheSweep is how often each tenant's series-reference cache forgets the series
// that were not written since the previous sweep.
const refCacheSweep = 15 * time.Minute

// Run uploads finished blocks every interval (when a bucket is set), removes tenants
// idle for longer than the retention and sweeps the reference caches, until ctx is done.
func (t *Tenants) Run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sweep := time.NewTicker(refCacheSweep)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			for _, tn := range t.snapshot() {
				tn.refs.sweep()
			}
			continue
		case <-tick.C:
		}
		t.upload(ctx)
		if t.opts.Retention > 0 {
			t.pruneIdle(ctx, time.Now().Add(-t.opts.Retention))
		}
	}
}

func (t *Tenants) upload(ctx context.Context) {
	for _, tn := range t.snapshot() {
		if tn.ship == nil {
			continue
		}
		if n, err := tn.ship.Sync(ctx); err != nil {
			if ctx.Err() == nil {
				t.logger.Error("upload failed; retrying next pass", "tenant", tn.name, "uploaded", n, "err", err)
			}
		} else if n > 0 {
			t.logger.Info("uploaded blocks", "tenant", tn.name, "blocks", n)
		}
	}
}

// pruneIdle flushes, uploads and removes the tenants that received nothing since cutoff.
func (t *Tenants) pruneIdle(ctx context.Context, cutoff time.Time) {
	for _, tn := range t.snapshot() {
		if tn.lastWrite.Load() >= cutoff.UnixMilli() {
			continue
		}
		// The tenant stays in the map, closed, until its directory is gone: a write
		// meanwhile gets 503 and is retried, instead of opening the directory being
		// deleted.
		err := t.retire(ctx, tn)
		if err == nil {
			err = os.RemoveAll(tn.db.Dir())
		}
		if err != nil {
			t.logger.Error("removing idle tenant failed; its data stays on disk", "tenant", tn.name, "err", err)
		} else {
			t.logger.Info("removed idle tenant", "tenant", tn.name, "idle_since", time.UnixMilli(tn.lastWrite.Load()))
		}
		t.mu.Lock()
		delete(t.tenants, tn.name)
		t.mu.Unlock()
	}
}

// retire flushes the head into a block, uploads what is left and closes the TSDB. The
// upload must succeed before the caller deletes anything.
func (t *Tenants) retire(ctx context.Context, tn *tenant) error {
	tn.mu.Lock()
	tn.closed = true
	tn.mu.Unlock()
	var errs []error
	if err := block.FlushHead(tn.db); err != nil {
		errs = append(errs, fmt.Errorf("flush head of tenant %q: %w", tn.name, err))
	}
	if tn.ship != nil {
		if _, err := tn.ship.Sync(ctx); err != nil {
			errs = append(errs, fmt.Errorf("upload blocks of tenant %q: %w", tn.name, err))
		}
	}
	if err := tn.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close TSDB of tenant %q: %w", tn.name, err))
	}
	return errors.Join(errs...)
}

// Close stops accepting writes; with flush it writes every head into a block and
// uploads it first, as on shutdown. It closes every TSDB.
func (t *Tenants) Close(ctx context.Context, flush bool) error {
	t.mu.Lock()
	t.closed = true
	all := make([]*tenant, 0, len(t.tenants))
	for _, tn := range t.tenants {
		all = append(all, tn)
	}
	t.tenants = map[string]*tenant{}
	t.mu.Unlock()
	var errs []error
	for _, tn := range all {
		if flush {
			errs = append(errs, t.retire(ctx, tn))
			continue
		}
		tn.mu.Lock()
		tn.closed = true
		tn.mu.Unlock()
		errs = append(errs, tn.db.Close())
	}
	return errors.Join(errs...)
}

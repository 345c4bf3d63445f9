package compact

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/dedup"
)

// Work directories under Config.DataDir.
const (
	compactDirname    = "compact"
	downsampleDirname = "downsample"
)

// HaltError is a critical error (overlapping blocks without vertical compaction, a bad
// index, a failed compaction): continuing could make things worse, so the compactor
// stops working until an operator has looked.
type HaltError struct{ Err error }

func (e *HaltError) Error() string { return "critical error, compactor halted: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *HaltError) Unwrap() error { return e.Err }

// IsHalt reports whether err is or wraps a HaltError.
func IsHalt(err error) bool {
	var h *HaltError
	return errors.As(err, &h)
}

func halt(err error) error { return &HaltError{Err: err} }

func haltf(format string, args ...any) error { return halt(fmt.Errorf(format, args...)) }

// Compactor compacts, deduplicates, downsamples, applies retention to and cleans up the
// blocks of one bucket. One Compactor must own a bucket (or a disjoint shard of it,
// through Config.MinTime/MaxTime/Relabel).
type Compactor struct {
	cfg         Config
	bkt         objstore.Bucket
	logger      *slog.Logger
	tsdbLogger  *slog.Logger
	metrics     *metrics
	tsdbMetrics *tsdb.CompactorMetrics
	dedupFunc   *dedup.Func // replica dedup merge, when replica labels are configured
	syncer      *syncer
	local       *localBlocks // blocks made in this iteration, kept for reuse

	// mu serialises iterations and cleanups.
	mu sync.Mutex
	// halted is set once a HaltError stopped the compactor.
	halted atomic.Bool
	// testCompactionHook, when set (tests only), is called as a compaction of the group
	// starts; the function it returns is called when the compaction ends.
	testCompactionHook func(groupKey string) func()
}

// New returns a Compactor for bkt. cfg is validated (see Config.Validate). reg may be nil.
func New(bkt objstore.Bucket, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Compactor{
		cfg: cfg, bkt: bkt, logger: logger,
		// Prometheus's compactor logs every compaction at info; ours already does.
		tsdbLogger:  slog.New(warnOnly{logger.Handler()}),
		metrics:     newMetrics(reg),
		tsdbMetrics: tsdb.NewCompactorMetrics(reg),
	}
	if fn, ok := cfg.dedupFunc(); ok {
		c.dedupFunc = &fn
	}
	c.syncer = &syncer{c: c, fetcher: block.NewFetcher(bkt, logger, cfg.MetaFetchConcurrency)}
	c.local = newLocalBlocks(filepath.Join(cfg.DataDir, localDirname), cfg.KeepLocalBytes)
	return c, nil
}

// warnOnly drops records below warning level.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

// Iteration runs one full pass: sync; deletion of blocks whose mark is older than the
// delete delay; marking of duplicates; compaction of every group until nothing is left
// to plan; two downsampling passes (raw → 5m, 5m → 1h); retention; and cleanup of
// marked blocks and aborted partial uploads.
//
// A group that fails is logged with its blocks, counted and skipped while the others
// go on; such failures are returned joined at the end. A HaltError stops the iteration
// after the groups already running and is returned at once.
func (c *Compactor) Iteration(ctx context.Context) (err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	c.metrics.iterations.Inc()
	defer func() {
		if err != nil {
			c.metrics.iterationFailures.Inc()
			return
		}
		c.metrics.lastSuccess.SetToCurrentTime()
		c.logger.Info("compactor iteration done", "duration", time.Since(start))
	}()
	for _, d := range []string{compactDirname, downsampleDirname} {
		if err := os.RemoveAll(filepath.Join(c.cfg.DataDir, d)); err != nil {
			return fmt.Errorf("clean work directory: %w", err)
		}
	}
	if err := c.local.reset(); err != nil {
		return err
	}
	defer func() {
		if err := c.local.reset(); err != nil {
			c.logger.Warn("cannot remove local blocks", "err", err)
		}
	}()
	st, err := c.syncer.sync(ctx)
	if err != nil {
		return err
	}
	var errs []error
	if err := c.deleteMarked(ctx, st); err != nil {
		errs = append(errs, err)
	}
	if err := c.markDuplicates(ctx, st); err != nil {
		errs = append(errs, err)
	}
	if err := c.compactAll(ctx, st); err != nil {
		if IsHalt(err) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	if !c.cfg.DisableDownsampling {
		for _, step := range []struct{ from, to, minRange int64 }{
			{block.ResolutionRaw, block.Resolution5m, DownsampleRange5m},
			{block.Resolution5m, block.Resolution1h, DownsampleRange1h},
		} {
			if st, err = c.syncer.sync(ctx); err != nil {
				return errors.Join(append(errs, err)...)
			}
			if err := c.downsamplePass(ctx, st, step.from, step.to, step.minRange); err != nil {
				if ctx.Err() != nil {
					return err
				}
				errs = append(errs, err)
			}
		}
	}
	if st, err = c.syncer.sync(ctx); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := c.applyRetention(ctx, st); err != nil {
		errs = append(errs, err)
	}
	if err := c.cleanup(ctx, st); err != nil {
		errs = append(errs, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// Cleanup syncs and deletes blocks whose deletion mark is older than the delete delay
// and aborted partial uploads. It runs at the end of every iteration and, when
// waiting, every --compact.cleanup-interval in between.
func (c *Compactor) Cleanup(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.syncer.sync(ctx)
	if err != nil {
		return err
	}
	return c.cleanup(ctx, st)
}

func (c *Compactor) cleanup(ctx context.Context, st *syncResult) error {
	return errors.Join(c.deleteMarked(ctx, st), c.cleanPartialUploads(ctx, st))
}

// compactAll compacts the groups, Config.CompactConcurrency at a time.
func (c *Compactor) compactAll(ctx context.Context, st *syncResult) error {
	groups := groupBlocks(st.visible)
	var (
		mu     sync.Mutex
		errs   []error
		halted error
		wg     sync.WaitGroup
	)
	work := make(chan *group)
	for range c.cfg.CompactConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range work {
				n, err := c.compactGroup(ctx, g)
				if err == nil {
					if n > 0 {
						c.metrics.groupsCompacted.Inc()
					}
					continue
				}
				if ctx.Err() != nil {
					continue
				}
				c.metrics.groupsFailed.Inc()
				c.logger.Error("group compaction failed; skipping the group", "group", g.key, "labels", g.labels.String(),
					"resolution", g.resolution, "halt", IsHalt(err), "err", err)
				mu.Lock()
				if IsHalt(err) && halted == nil {
					halted = fmt.Errorf("group %s: %w", g.labels, err)
				}
				errs = append(errs, fmt.Errorf("group %s: %w", g.labels, err))
				mu.Unlock()
			}
		}()
	}
	for _, g := range groups {
		mu.Lock()
		stop := halted != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		select {
		case work <- g:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if halted != nil {
		return halted
	}
	return errors.Join(errs...)
}

// RunOptions configure Run.
type RunOptions struct {
	// Wait keeps running iterations every WaitInterval; otherwise one runs (cron style).
	Wait bool
	// WaitInterval is the time between iterations.
	WaitInterval time.Duration
	// CleanupInterval runs Cleanup between iterations when waiting (0 = never).
	CleanupInterval time.Duration
	// HaltOnError keeps the process up but idle after a HaltError when waiting;
	// otherwise the HaltError is returned.
	HaltOnError bool
}

// Run runs one iteration, or with Wait one every WaitInterval until ctx is done. It
// returns nil when ctx ends. Without Wait it returns the iteration's error. With Wait,
// errors are logged and retried at the next iteration, except a HaltError: with
// HaltOnError the compactor sets vigil_compact_halted to 1 and idles until ctx ends
// (so its HTTP server stays up for inspection), without it the error is returned.
//
// When Run returns, nothing it started touches the bucket any more: an iteration or
// cleanup in flight when ctx ends is cancelled and waited for. Leader election relies on
// this, and may call Run again later; a halted compactor stays halted.
func (c *Compactor) Run(ctx context.Context, o RunOptions) error {
	if c.halted.Load() {
		<-ctx.Done()
		return nil
	}
	if o.Wait && o.CleanupInterval > 0 {
		var cleanups sync.WaitGroup
		defer cleanups.Wait()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // runs first: ends the loop even when Run returns an error
		cleanups.Go(func() { c.cleanupLoop(ctx, o.CleanupInterval) })
		return c.run(ctx, o)
	}
	return c.run(ctx, o)
}

func (c *Compactor) run(ctx context.Context, o RunOptions) error {
	for {
		err := c.Iteration(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			if !o.Wait {
				return nil
			}
		case IsHalt(err):
			if !o.Wait || !o.HaltOnError {
				return err
			}
			c.halted.Store(true)
			c.metrics.halted.Set(1)
			c.logger.Error("critical error; the compactor is halted and will not touch the bucket until restarted. "+
				"Inspect the blocks named below (they may need repair or a no-compact mark).", "err", err)
			<-ctx.Done()
			return nil
		case !o.Wait:
			return err
		default:
			c.logger.Error("compactor iteration failed; retrying at the next one", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.WaitInterval):
		}
	}
}

func (c *Compactor) cleanupLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.halted.Load() {
			return
		}
		if err := c.Cleanup(ctx); err != nil && ctx.Err() == nil {
			c.logger.Warn("periodic cleanup failed", "err", err)
		}
	}
}

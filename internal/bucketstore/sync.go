package bucketstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/vigilhq/vigil/internal/block"
)

// Sync brings the served blocks in line with the bucket: new blocks that pass the
// filters are loaded (index-header built), blocks gone or marked for deletion long
// enough are dropped. A block that fails to load is logged, counted and skipped; the
// others are still served.
func (s *Store) Sync(ctx context.Context) error { return s.sync(ctx, time.Now) }

// sync is Sync with the filters reading the time from now.
func (s *Store) sync(ctx context.Context, now func() time.Time) error {
	dirs, err := s.fetcher(now).Fetch(ctx)
	if err != nil {
		// Nothing changes: the blocks served so far keep being served.
		s.metrics.syncFailures.Inc()
		return fmt.Errorf("sync blocks: %w", err)
	}
	want := map[ulid.ULID]*meta{}
	for _, d := range dirs {
		switch {
		case d.MetaErr != nil:
			if b := s.loaded(d.ID); b != nil {
				// The bucket could not be asked (a network error, an outage): a block
				// served so far keeps being served. Dropping it would make answers
				// silently miss its data until a later sync.
				s.logger.Warn("cannot read meta.json of a served block; still serving it", "block", d.ID, "err", d.MetaErr)
				want[d.ID] = b.meta
				continue
			}
			s.logger.Warn("skipping block with unreadable meta.json", "block", d.ID, "err", d.MetaErr)
			s.metrics.loadFailures.Inc()
		case d.Visible():
			want[d.ID] = &meta{Meta: d.Meta}
		case d.Excluded != "":
			s.logger.Debug("not serving block", "block", d.ID, "state", d.Excluded)
		}
		// Partial uploads (no meta.json; written last, deleted first) are not served.
	}
	s.loadNew(ctx, want)
	s.dropGone(want)
	s.synced.Store(true)
	s.metrics.syncs.Inc()
	s.mu.RLock()
	s.metrics.blocksLoaded.Set(float64(len(s.blocks)))
	s.mu.RUnlock()
	return nil
}

// fetcher returns the block.Fetcher of one sync: the store's filter chain at clock now,
// reading --block-sync-concurrency block directories at once, its metas cached in
// Store.metas across syncs. The chain, in order: time range, selector relabeling (over
// all external labels), consistency delay (for blocks of every source) and deletion
// marks (hidden once --ignore-deletion-marks-delay old); the boundaries are
// block.Filter's.
func (s *Store) fetcher(now func() time.Time) *block.Fetcher {
	conc := s.cfg.MetaFetchConcurrency
	if conc <= 0 {
		conc = 32
	}
	return block.NewFetcher(s.bkt, s.logger, conc,
		block.WithClock(now), block.WithMetaCache(storeMetas{s}),
		block.WithFilters(
			block.TimeRangeFilter{Min: s.cfg.MinTime, Max: s.cfg.MaxTime},
			block.RelabelFilter{Rules: s.cfg.Relabel},
			block.ConsistencyDelayFilter{Delay: s.cfg.ConsistencyDelay},
			block.DeletionDelayFilter{Delay: s.cfg.IgnoreDeletionMarksDelay},
		))
}

// storeMetas is Store.metas as the fetcher's block.MetaCache, guarded by Store.mu.
type storeMetas struct{ s *Store }

func (c storeMetas) Get(id ulid.ULID) (*block.Meta, bool) {
	c.s.mu.RLock()
	defer c.s.mu.RUnlock()
	m, ok := c.s.metas[id]
	if !ok {
		return nil, false
	}
	return m.Meta, true
}

func (c storeMetas) Set(id ulid.ULID, m *block.Meta) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.metas[id] = &meta{Meta: m}
}

func (c storeMetas) Delete(id ulid.ULID) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	delete(c.s.metas, id)
}

func (c storeMetas) Retain(keep func(ulid.ULID) bool) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for id := range c.s.metas {
		if !keep(id) {
			delete(c.s.metas, id)
		}
	}
}

func (c storeMetas) Len() int {
	c.s.mu.RLock()
	defer c.s.mu.RUnlock()
	return len(c.s.metas)
}

// loaded returns the served block id, or nil.
func (s *Store) loaded(id ulid.ULID) *loadedBlock {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.blocks[id]
}

// loadNew loads the wanted blocks not loaded yet, concurrently.
func (s *Store) loadNew(ctx context.Context, want map[ulid.ULID]*meta) {
	sem := make(chan struct{}, max(1, s.cfg.BlockSyncConcurrency))
	var wg sync.WaitGroup
	for id, m := range want {
		s.mu.RLock()
		_, loaded := s.blocks[id]
		s.mu.RUnlock()
		if loaded {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			b, err := s.loadBlock(ctx, m)
			if err != nil {
				s.logger.Error("cannot load block; skipping it", "block", id, "err", err)
				s.metrics.loadFailures.Inc()
				return
			}
			s.mu.Lock()
			s.blocks[id] = b
			s.mu.Unlock()
			s.metrics.loads.Inc()
			s.logger.Debug("loaded block", "block", id, "min_time", m.MinTime, "max_time", m.MaxTime, "labels", b.ext.String())
		}()
	}
	wg.Wait()
}

// loadBlock checks the block's chunk files and builds or reuses its index-header.
func (s *Store) loadBlock(ctx context.Context, m *meta) (*loadedBlock, error) {
	if err := s.checkChunkFiles(ctx, m); err != nil {
		return nil, err
	}
	r, ri, err := openIndexHeader(ctx, s.bkt, s.cache, m.ULID, filepath.Join(s.cfg.DataDir, m.ULID.String()), &s.indexFetches)
	if err != nil {
		return nil, err
	}
	return newBlock(m, s.bkt, r, ri), nil
}

// checkChunkFiles verifies that every chunk segment file the block names exists.
func (s *Store) checkChunkFiles(ctx context.Context, m *meta) error {
	present := map[string]bool{}
	if err := s.bkt.Iter(ctx, m.ULID.String()+"/chunks/", func(name string) error {
		present[name[strings.LastIndexByte(name, '/')+1:]] = true
		return nil
	}); err != nil {
		return fmt.Errorf("list chunk files: %w", err)
	}
	expected := m.segmentFiles()
	if len(expected) == 0 && len(present) == 0 && m.Stats.NumChunks > 0 {
		return errors.New("block has chunks but no chunk files")
	}
	for _, f := range expected {
		if !present[f] {
			return fmt.Errorf("chunk file chunks/%s is missing", f)
		}
	}
	return nil
}

// dropGone unloads blocks that are no longer wanted.
func (s *Store) dropGone(want map[ulid.ULID]*meta) {
	s.mu.Lock()
	var gone []*loadedBlock
	for id, b := range s.blocks {
		if _, ok := want[id]; !ok {
			gone = append(gone, b)
			delete(s.blocks, id)
		}
	}
	s.mu.Unlock()
	for _, b := range gone {
		// In-flight queries may still read the block: close it once they are done.
		go func() {
			b.inflight.Wait()
			if err := b.close(); err != nil {
				s.logger.Warn("closing dropped block", "block", b.id, "err", err)
			}
			s.cache.DropBlock(b.id)
			_ = os.RemoveAll(filepath.Join(s.cfg.DataDir, b.id.String()))
		}()
		s.logger.Info("dropped block", "block", b.id)
	}
}

// Run syncs at start and every interval until ctx is done; onSynced is called after the
// first successful sync (the store is ready then).
func (s *Store) Run(ctx context.Context, onSynced func()) error {
	first := true
	for {
		if err := s.Sync(ctx); err != nil {
			s.logger.Error("bucket sync failed", "err", err)
		} else if first {
			first = false
			onSynced()
		}
		wait := s.cfg.SyncInterval
		if first {
			wait = min(wait, 5*time.Second) // not ready yet: retry soon
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

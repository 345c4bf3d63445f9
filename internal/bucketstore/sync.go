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
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"

	"github.com/vigilhq/vigil/internal/block"
)

// ParseRelabelConfig parses --selector.relabel-config: Prometheus relabel rules applied
// to each block's external labels plus __block_id; a block whose labels are dropped is
// not served.
func ParseRelabelConfig(content []byte) ([]*relabel.Config, error) {
	var cfgs []*relabel.Config
	if err := yaml.UnmarshalStrict(content, &cfgs); err != nil {
		return nil, fmt.Errorf("parse selector relabel config: %w", err)
	}
	for i, c := range cfgs {
		if err := c.Validate(model.UTF8Validation); err != nil {
			return nil, fmt.Errorf("selector relabel config rule %d: %w", i, err)
		}
	}
	return cfgs, nil
}

// Sync brings the served blocks in line with the bucket: new blocks that pass the
// filters are loaded (index-header built), blocks gone or marked for deletion long
// enough are dropped. A block that fails to load is logged, counted and skipped; the
// others are still served.
func (s *Store) Sync(ctx context.Context) error {
	ids, err := s.listBlocks(ctx)
	if err != nil {
		s.metrics.syncFailures.Inc()
		return fmt.Errorf("list blocks in bucket: %w", err)
	}
	want := map[ulid.ULID]*meta{}
	for _, id := range ids {
		m, err := s.metaFor(ctx, id)
		if errors.Is(err, block.ErrMetaNotFound) {
			continue // partial upload: meta.json is written last
		}
		if err != nil {
			if b := s.loaded(id); b != nil {
				// The bucket could not be asked (a network error, an outage): a block
				// served so far keeps being served. Dropping it would make answers
				// silently miss its data until a later sync.
				s.logger.Warn("cannot check meta.json of a served block; still serving it", "block", id, "err", err)
				want[id] = b.meta
				continue
			}
			s.logger.Warn("skipping block with unreadable meta.json", "block", id, "err", err)
			s.metrics.loadFailures.Inc()
			continue
		}
		if s.keep(ctx, m) {
			want[id] = m
		}
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

// loaded returns the served block id, or nil.
func (s *Store) loaded(id ulid.ULID) *loadedBlock {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.blocks[id]
}

// listBlocks lists the top-level entries of the bucket that are block directories.
func (s *Store) listBlocks(ctx context.Context) ([]ulid.ULID, error) {
	var ids []ulid.ULID
	err := s.bkt.Iter(ctx, "", func(name string) error {
		if id, err := ulid.Parse(strings.TrimSuffix(name, "/")); err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// metaFor returns the block's meta, from memory when read before (metas never change),
// after checking meta.json still exists: a deleter removes it first.
func (s *Store) metaFor(ctx context.Context, id ulid.ULID) (*meta, error) {
	s.mu.RLock()
	m, ok := s.metas[id]
	s.mu.RUnlock()
	if ok {
		exists, err := s.bkt.Exists(ctx, id.String()+"/"+block.MetaFilename)
		if err != nil {
			return nil, fmt.Errorf("check meta.json of block %s: %w", id, err)
		}
		if !exists {
			s.mu.Lock()
			delete(s.metas, id)
			s.mu.Unlock()
			return nil, block.ErrMetaNotFound
		}
		return m, nil
	}
	bm, err := block.ReadMetaFromBucket(ctx, s.bkt, id)
	if err != nil {
		return nil, err
	}
	if bm.ULID != id {
		return nil, fmt.Errorf("meta.json of block %s names block %s", id, bm.ULID)
	}
	m = &meta{Meta: bm}
	s.mu.Lock()
	s.metas[id] = m
	s.mu.Unlock()
	return m, nil
}

// keep applies the block filters: time range, selector relabeling, consistency delay
// and deletion marks.
func (s *Store) keep(ctx context.Context, m *meta) bool {
	if m.MaxTime <= s.cfg.MinTime || m.MinTime > s.cfg.MaxTime {
		return false
	}
	if len(s.cfg.Relabel) > 0 {
		lb := labels.NewBuilder(m.extLabels())
		lb.Set("__block_id", m.ULID.String())
		if !relabel.ProcessBuilder(lb, s.cfg.Relabel...) || lb.Labels().IsEmpty() {
			return false
		}
	}
	if time.Since(m.visibleSince()) < s.cfg.ConsistencyDelay {
		return false
	}
	mark, err := block.ReadDeletionMark(ctx, s.bkt, m.ULID)
	switch {
	case errors.Is(err, block.ErrMarkerNotFound):
		return true
	case err != nil:
		// A partially written mark is ignored: the block is still whole.
		s.logger.Warn("ignoring unreadable deletion mark", "block", m.ULID, "err", err)
		return true
	}
	return time.Since(time.Unix(mark.DeletionTime, 0)) < s.cfg.IgnoreDeletionMarksDelay
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

package compact

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/internal/block"
)

// blockInfo is a block that passed the sync filters, with what the compactor derives
// from its meta.json and markers.
type blockInfo struct {
	meta *block.Meta
	// labels are the external labels with the replica labels removed: the group's.
	labels labels.Labels
	// key is the group key "<resolution>@<labels hash>".
	key string

	deletion     *block.DeletionMark // nil unless marked for deletion
	noCompact    bool
	noDownsample bool
}

func (b *blockInfo) id() ulid.ULID { return b.meta.ULID }

// partialBlock is a block directory without meta.json.
type partialBlock struct {
	id       ulid.ULID
	deletion *block.DeletionMark
}

// syncResult is one view of the bucket after the filter chain.
type syncResult struct {
	// visible are the blocks the planner, downsampler and retention work with.
	visible map[ulid.ULID]*blockInfo
	// duplicates are blocks hidden because a bigger block of their group covers all
	// their sources; they are to be marked for deletion.
	duplicates []*blockInfo
	// marked are all blocks in this compactor's range with a deletion mark, visible or
	// not: the cleaner deletes them once the mark is older than the delete delay.
	marked []*blockInfo
	// partial are block directories without meta.json.
	partial []partialBlock
}

// fetched is what one block directory holds.
type fetched struct {
	id                      ulid.ULID
	meta                    *block.Meta
	deletion                *block.DeletionMark
	noCompact, noDownsample bool
}

// syncer lists the bucket and caches meta.json files, which never change for a ULID.
type syncer struct {
	c     *Compactor
	mu    sync.Mutex
	metas map[ulid.ULID]*block.Meta
}

func groupKey(res int64, lset labels.Labels) string {
	return fmt.Sprintf("%d@%d", res, lset.Hash())
}

// sync lists the bucket and applies the filter chain: time range, relabel selector,
// consistency delay, deletion marks (hidden after half the delete delay), replica
// label removal and the duplicate filter. No-compact and no-downsample marks are
// recorded on the blocks.
func (s *syncer) sync(ctx context.Context) (*syncResult, error) {
	c := s.c
	res, err := s.fetchAll(ctx)
	if err != nil {
		c.metrics.syncFailures.Inc()
		return nil, fmt.Errorf("sync blocks: %w", err)
	}
	c.metrics.syncs.Inc()
	st := &syncResult{visible: map[ulid.ULID]*blockInfo{}}
	counts := map[string]int{}
	now := c.cfg.Now()
	var kept []*blockInfo
	for _, f := range res {
		if f.meta == nil {
			st.partial = append(st.partial, partialBlock{id: f.id, deletion: f.deletion})
			counts["partial"]++
			continue
		}
		m := f.meta
		maxT := c.cfg.MaxTime
		if maxT == 0 {
			maxT = 1<<63 - 1
		}
		if m.MaxTime < c.cfg.MinTime || m.MinTime > maxT {
			counts["time-excluded"]++
			continue
		}
		ext := labels.FromMap(m.Thanos.Labels)
		if !keepRelabeled(labels.NewBuilder(ext).Del(c.cfg.ReplicaLabels...).Labels(), m.ULID, c.cfg.Relabel) {
			counts["label-excluded"]++
			continue
		}
		if !skipsConsistencyDelay(m.Thanos.Source) && now.Sub(visibleSince(m)) < c.cfg.ConsistencyDelay {
			counts["too-fresh"]++
			continue
		}
		b := &blockInfo{meta: m, deletion: f.deletion, noCompact: f.noCompact, noDownsample: f.noDownsample}
		b.labels = removeReplicaLabels(ext, c.cfg.ReplicaLabels)
		b.key = groupKey(m.Thanos.Downsample.Resolution, b.labels)
		if b.deletion != nil {
			st.marked = append(st.marked, b)
			if !now.Before(time.Unix(b.deletion.DeletionTime, 0).Add(c.cfg.DeleteDelay / 2)) {
				counts["marked-for-deletion"]++
				continue
			}
		}
		kept = append(kept, b)
	}
	visible, dups := filterDuplicates(kept)
	st.duplicates = dups
	counts["duplicate"] = len(dups)
	for _, b := range visible {
		st.visible[b.id()] = b
		if b.noCompact {
			counts["no-compact"]++
		}
	}
	counts["visible"] = len(visible)
	c.metrics.synced.Reset()
	for k, v := range counts {
		c.metrics.synced.WithLabelValues(k).Set(float64(v))
	}
	return st, nil
}

// fetchAll reads every block directory of the bucket.
func (s *syncer) fetchAll(ctx context.Context) ([]*fetched, error) {
	ids, err := block.ListBlockIDs(ctx, s.c.bkt)
	if err != nil {
		return nil, err
	}
	out := make([]*fetched, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.c.cfg.MetaFetchConcurrency)
	for i, id := range ids {
		g.Go(func() error {
			f, err := s.fetch(gctx, id)
			out[i] = f
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
	s.mu.Lock()
	for id := range s.metas {
		if !listed[id] {
			delete(s.metas, id)
		}
	}
	s.mu.Unlock()
	return slices.DeleteFunc(out, func(f *fetched) bool { return f == nil }), nil
}

// fetch lists one block directory once and reads the meta.json (unless cached) and
// the markers it holds. An unreadable meta.json is logged and the block skipped (nil);
// an unreadable marker is logged and ignored.
func (s *syncer) fetch(ctx context.Context, id ulid.ULID) (*fetched, error) {
	c := s.c
	present := map[string]bool{}
	err := c.bkt.Iter(ctx, id.String()+"/", func(name string) error {
		present[path.Base(strings.TrimSuffix(name, "/"))] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list block %s: %w", id, err)
	}
	f := &fetched{id: id}
	if present[block.DeletionMarkFilename] {
		m, err := block.ReadDeletionMark(ctx, c.bkt, id)
		if err := s.markerErr(id, err); err != nil {
			return nil, err
		}
		f.deletion = m
	}
	if !present[block.MetaFilename] {
		s.forget(id)
		if len(present) == 0 {
			return nil, nil // deleted between listing and now
		}
		return f, nil
	}
	if f.meta, err = s.meta(ctx, id); err != nil {
		if errors.Is(err, block.ErrMetaNotFound) {
			return f, nil // deleted meanwhile: the deleter removes meta.json first
		}
		if ctx.Err() != nil {
			return nil, err
		}
		c.logger.Warn("skipping block with unreadable meta.json", "block", id, "err", err)
		return nil, nil
	}
	if present[block.NoCompactMarkFilename] {
		err := block.ReadMarker(ctx, c.bkt, id, &block.NoCompactMark{})
		if err := s.markerErr(id, err); err != nil {
			return nil, err
		}
		f.noCompact = err == nil
	}
	if present[block.NoDownsampleMarkFilename] {
		err := block.ReadMarker(ctx, c.bkt, id, &block.NoDownsampleMark{})
		if err := s.markerErr(id, err); err != nil {
			return nil, err
		}
		f.noDownsample = err == nil
	}
	return f, nil
}

// markerErr turns a marker read error into a sync error; missing and invalid markers
// are not errors (an invalid one is logged and the block treated as unmarked).
func (s *syncer) markerErr(id ulid.ULID, err error) error {
	var merr *block.MarkerError
	switch {
	case err == nil, errors.Is(err, block.ErrMarkerNotFound):
		return nil
	case errors.As(err, &merr):
		s.c.logger.Warn("ignoring invalid marker", "block", id, "err", err)
		return nil
	}
	return err
}

func (s *syncer) meta(ctx context.Context, id ulid.ULID) (*block.Meta, error) {
	s.mu.Lock()
	m, ok := s.metas[id]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	m, err := block.ReadMetaFromBucket(ctx, s.c.bkt, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.metas[id] = m
	s.mu.Unlock()
	return m, nil
}

func (s *syncer) forget(id ulid.ULID) {
	s.mu.Lock()
	delete(s.metas, id)
	s.mu.Unlock()
}

// keepRelabeled runs the selector relabel rules over the external labels (without the
// replica labels, so all replicas of a pair land in the same shard) plus __block_id; a
// dropped or emptied label set drops the block.
func keepRelabeled(ext labels.Labels, id ulid.ULID, cfgs []*relabel.Config) bool {
	if len(cfgs) == 0 {
		return true
	}
	lb := labels.NewBuilder(ext)
	lb.Set("__block_id", id.String())
	return relabel.ProcessBuilder(lb, cfgs...) && !lb.Labels().IsEmpty()
}

// skipsConsistencyDelay reports whether blocks from this source are visible at once:
// the compactor and the repair tools write blocks whose sources it already knows.
func skipsConsistencyDelay(src block.SourceType) bool {
	switch src {
	case block.SourceCompactor, block.SourceCompactorRepair, block.SourceBucketRepair:
		return true
	}
	return false
}

// visibleSince is when the block became visible: its upload time, or its ULID time.
func visibleSince(m *block.Meta) time.Time {
	if !m.Thanos.UploadTime.IsZero() {
		return m.Thanos.UploadTime
	}
	return ulid.Time(m.ULID.Time())
}

// removeReplicaLabels drops the replica labels from ext. If nothing is left (and some
// label was removed), the result is <first replica label>="deduped", so the merged
// block still has external labels.
func removeReplicaLabels(ext labels.Labels, replicaLabels []string) labels.Labels {
	if len(replicaLabels) == 0 {
		return ext
	}
	out := labels.NewBuilder(ext).Del(replicaLabels...).Labels()
	if out.IsEmpty() && !ext.IsEmpty() {
		return labels.FromStrings(replicaLabels[0], "deduped")
	}
	return out
}

// filterDuplicates hides, per group, every block whose compaction sources are all
// among the sources of another (bigger, or equal and older) block of the group: the
// other block already holds its data. It returns the remaining and the hidden blocks.
func filterDuplicates(blocks []*blockInfo) (kept, dups []*blockInfo) {
	byGroup := map[string][]*blockInfo{}
	for _, b := range blocks {
		byGroup[b.key] = append(byGroup[b.key], b)
	}
	for _, grp := range byGroup {
		slices.SortFunc(grp, func(a, b *blockInfo) int {
			if d := len(b.meta.Compaction.Sources) - len(a.meta.Compaction.Sources); d != 0 {
				return d
			}
			return a.id().Compare(b.id())
		})
		var covers []map[ulid.ULID]struct{}
		bySource := map[ulid.ULID][]int{} // source → indexes into covers
		for _, b := range grp {
			srcs := b.meta.Compaction.Sources
			if len(srcs) > 0 && coveredBy(srcs, bySource[srcs[0]], covers) {
				dups = append(dups, b)
				continue
			}
			kept = append(kept, b)
			set := make(map[ulid.ULID]struct{}, len(srcs))
			for _, s := range srcs {
				set[s] = struct{}{}
				bySource[s] = append(bySource[s], len(covers))
			}
			covers = append(covers, set)
		}
	}
	return kept, dups
}

func coveredBy(srcs []ulid.ULID, candidates []int, covers []map[ulid.ULID]struct{}) bool {
	for _, i := range candidates {
		all := true
		for _, s := range srcs {
			if _, ok := covers[i][s]; !ok {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

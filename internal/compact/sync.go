package compact

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

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

// syncer applies the compactor's filter chain to what its block.Fetcher reads (the
// fetcher caches meta.json files, which never change for a ULID).
type syncer struct {
	c       *Compactor
	fetcher *block.Fetcher
}

// sync lists the bucket and applies the filter chain: time range, relabel selector,
// consistency delay, deletion marks (hidden after half the delete delay), replica
// label removal and the duplicate filter. No-compact and no-downsample marks are
// recorded on the blocks.
func (s *syncer) sync(ctx context.Context) (*syncResult, error) {
	c := s.c
	res, err := s.fetcher.Fetch(ctx)
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
		if f.MetaErr != nil {
			c.logger.Warn("skipping block with unreadable meta.json", "block", f.ID, "err", f.MetaErr)
			continue
		}
		if f.Meta == nil {
			st.partial = append(st.partial, partialBlock{id: f.ID, deletion: f.Deletion})
			counts["partial"]++
			continue
		}
		m := f.Meta
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
		b := &blockInfo{meta: m, deletion: f.Deletion, noCompact: f.NoCompact != nil, noDownsample: f.NoDownsample != nil}
		b.labels = removeReplicaLabels(ext, c.cfg.ReplicaLabels)
		b.key = block.GroupKey(m.Thanos.Downsample.Resolution, b.labels)
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
	return block.FilterDuplicates(blocks, func(b *blockInfo) string { return b.key },
		func(b *blockInfo) *block.Meta { return b.meta })
}

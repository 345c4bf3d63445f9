package compact

import (
	"context"
	"fmt"
	"math"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"

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

// syncer reads the bucket for the compactor: its block.Fetcher (which caches meta.json
// files, never changing for a ULID) runs the compactor's filter chain, and sync turns
// what is left into groups.
type syncer struct {
	c       *Compactor
	fetcher *block.Fetcher
}

// filters is the compactor's chain, in order: time range, relabel selector (over the
// external labels without the replica labels), consistency delay (blocks the compactor
// wrote are exempt) and deletion marks (hidden after half the delete delay). The
// boundaries are block.Filter's.
func (s *syncer) filters() []block.Filter {
	cfg := &s.c.cfg
	maxT := cfg.MaxTime
	if maxT == 0 {
		maxT = math.MaxInt64
	}
	return []block.Filter{
		block.TimeRangeFilter{Min: cfg.MinTime, Max: maxT},
		block.RelabelFilter{Rules: cfg.Relabel, Ignore: cfg.ReplicaLabels},
		block.ConsistencyDelayFilter{Delay: cfg.ConsistencyDelay, ExemptCompacted: true},
		block.DeletionDelayFilter{Delay: cfg.DeleteDelay / 2},
	}
}

// sync fetches the bucket through the filter chain, at the compactor's clock, then
// removes the replica labels and applies the duplicate filter. Blocks with a deletion
// mark are recorded for the cleaner whether the chain hid them for it or not;
// no-compact and no-downsample marks are recorded on the blocks.
func (s *syncer) sync(ctx context.Context) (*syncResult, error) {
	c := s.c
	dirs, err := s.fetcher.With(block.WithClock(c.cfg.Now), block.WithFilters(s.filters()...)).Fetch(ctx)
	if err != nil {
		c.metrics.syncFailures.Inc()
		return nil, fmt.Errorf("sync blocks: %w", err)
	}
	c.metrics.syncs.Inc()
	st := &syncResult{visible: map[ulid.ULID]*blockInfo{}}
	counts := map[string]int{}
	var kept []*blockInfo
	for _, d := range dirs {
		switch {
		case d.MetaErr != nil:
			c.logger.Warn("skipping block with unreadable meta.json", "block", d.ID, "err", d.MetaErr)
		case d.Partial():
			st.partial = append(st.partial, partialBlock{id: d.ID, deletion: d.Deletion})
			counts["partial"]++
		case d.Visible():
			b := s.info(d)
			if b.deletion != nil {
				st.marked = append(st.marked, b)
			}
			kept = append(kept, b)
		default:
			counts[d.Excluded]++
			if d.Excluded == block.StateMarkedForDeletion {
				st.marked = append(st.marked, s.info(d))
			}
		}
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

// info is the compactor's view of a block the chain kept or hid for its deletion mark.
func (s *syncer) info(d *block.Dir) *blockInfo {
	b := &blockInfo{meta: d.Meta, deletion: d.Deletion, noCompact: d.NoCompact != nil, noDownsample: d.NoDownsample != nil}
	b.labels = removeReplicaLabels(labels.FromMap(d.Meta.Thanos.Labels), s.c.cfg.ReplicaLabels)
	b.key = block.GroupKey(d.Meta.Thanos.Downsample.Resolution, b.labels)
	return b
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

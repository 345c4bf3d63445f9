package compact

import (
	"fmt"
	"slices"

	"github.com/vigilhq/vigil/internal/block"
)

// plan is what the planner decided for a group.
type plan struct {
	blocks []*blockInfo
	// overlapping is set when blocks overlap in time: a vertical compaction.
	overlapping bool
	// level is the least compaction level of the result: that of the range it fills when
	// levels are skipped (completeWindow), 0 otherwise.
	level int
}

// sortByMinTime orders blocks by minTime, then maxTime, then ULID.
func sortByMinTime(blocks []*blockInfo) {
	slices.SortFunc(blocks, func(a, b *blockInfo) int {
		switch {
		case a.meta.MinTime != b.meta.MinTime:
			return cmpInt(a.meta.MinTime, b.meta.MinTime)
		case a.meta.MaxTime != b.meta.MaxTime:
			return cmpInt(a.meta.MaxTime, b.meta.MaxTime)
		}
		return a.id().Compare(b.id())
	})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// planGroup returns the blocks of one group to compact next, following Prometheus's
// leveled planner with Thanos's changes:
//
//  1. Blocks marked no-compact are left out.
//  2. If blocks overlap in time, the first run of overlapping blocks is returned; without
//     vertical compaction that is a halt error (overlaps must never be compacted by
//     accident, and horizontal compaction around them would make things worse).
//  3. Otherwise the newest block (largest minTime) is left out, and for each range r of
//     ranges[1:] the blocks are split into aligned windows [t0, t0+r), t0 = r·⌊minTime/r⌋,
//     skipping blocks that do not fit into one window. The first window that holds at
//     least two blocks, none with compaction.failed, and that either spans exactly r or
//     ends at or before the minTime of the newest remaining block, is returned.
//     No-compact blocks split a window into runs of adjacent compactable blocks, so the
//     output never straddles a block it leaves out. Before that, a window of a larger
//     range that its blocks already span whole is compacted in one step (completeWindow).
//  4. Otherwise a block at least ranges[len/2] long with tombstones on more than 5% of
//     its series is rewritten on its own.
//
// blocks must belong to one group; they are sorted in place.
func planGroup(ranges []int64, blocks []*blockInfo, vertical bool) (plan, error) {
	sortByMinTime(blocks)
	compactable := slices.DeleteFunc(slices.Clone(blocks), func(b *blockInfo) bool { return b.noCompact })
	if ov := firstOverlap(compactable); len(ov) > 0 {
		if !vertical {
			return plan{}, haltf("blocks %s overlap in time and vertical compaction is disabled "+
				"(set --deduplication.replica-label for replicas, or --compact.enable-vertical-compaction)", describe(ov))
		}
		return plan{blocks: ov, overlapping: true}, nil
	}
	if len(blocks) == 0 {
		return plan{}, nil
	}
	// Leave out the newest block: it may still be joined by blocks of its range.
	rest := blocks[:len(blocks)-1]
	if sel, level := completeWindow(ranges, rest); len(sel) > 0 {
		return plan{blocks: sel, level: level}, nil
	}
	if sel := selectWindow(ranges, rest); len(sel) > 0 {
		return plan{blocks: sel}, nil
	}
	for _, b := range slices.Backward(rest) {
		if b.noCompact {
			continue
		}
		m := b.meta
		if m.MaxTime-m.MinTime < ranges[len(ranges)/2] {
			break
		}
		if float64(m.Stats.NumTombstones)/float64(m.Stats.NumSeries+1) > 0.05 {
			return plan{blocks: []*blockInfo{b}}, nil
		}
	}
	return plan{}, nil
}

// firstOverlap returns the first run of blocks (sorted by minTime) that overlap in time.
func firstOverlap(blocks []*blockInfo) []*blockInfo {
	runs := block.OverlappingRuns(blocks, func(b *blockInfo) *block.Meta { return b.meta })
	if len(runs) == 0 {
		return nil
	}
	return runs[0]
}

// selectWindow implements step 3 of planGroup.
func selectWindow(ranges []int64, blocks []*blockInfo) []*blockInfo {
	if len(blocks) == 0 {
		return nil
	}
	highTime := blocks[len(blocks)-1].meta.MinTime
	for _, r := range ranges[1:] {
		for _, win := range splitByRange(blocks, r) {
			spansRange := win[len(win)-1].meta.MaxTime-win[0].meta.MinTime == r
			for _, run := range compactableRuns(win) {
				if len(run) < 2 || hasFailed(run) {
					continue
				}
				if spansRange || run[len(run)-1].meta.MaxTime <= highTime {
					return run
				}
			}
		}
	}
	return nil
}

// maxSkipLevelBlocks bounds the blocks completeWindow compacts at once: a 2d window of
// 2h blocks (24) qualifies, a 14d window of them (168 sources open at once) does not.
const maxSkipLevelBlocks = 32

// completeWindow returns, for the largest range that has one, the first run of at least
// two compactable blocks that spans a whole aligned window and holds at most
// maxSkipLevelBlocks blocks. When a backlog of small blocks already covers a large
// window (a compactor catching up after downtime, or a bucket filled by a backfill),
// compacting it in one step writes, uploads and downloads every sample once instead of
// once per level; the result is the block the levels would have ended with, and level
// is its compaction level (range i of DefaultRanges is level i: 2h 1, 8h 2, 2d 3, 14d 4).
func completeWindow(ranges []int64, blocks []*blockInfo) (run []*blockInfo, level int) {
	for i := len(ranges) - 1; i >= 3; i-- { // below ranges[3] no level is skipped
		r := ranges[i]
		for _, win := range splitByRange(blocks, r) {
			if win[len(win)-1].meta.MaxTime-win[0].meta.MinTime != r {
				continue
			}
			for _, run := range compactableRuns(win) {
				if len(run) >= 2 && len(run) <= maxSkipLevelBlocks && len(run) == len(win) &&
					!hasFailed(run) {
					return run, i
				}
			}
		}
	}
	return nil, 0
}

// splitByRange splits blocks sorted by minTime into aligned windows of length r. Blocks
// that do not fit into the window their minTime falls in (misaligned, or longer than r)
// are skipped.
func splitByRange(blocks []*blockInfo, r int64) [][]*blockInfo {
	var out [][]*blockInfo
	for i := 0; i < len(blocks); {
		m := blocks[i].meta
		t0 := r * (m.MinTime / r)
		if m.MinTime < 0 && m.MinTime%r != 0 {
			t0 -= r
		}
		if m.MaxTime > t0+r {
			i++
			continue
		}
		var win []*blockInfo
		for ; i < len(blocks) && blocks[i].meta.MaxTime <= t0+r; i++ {
			win = append(win, blocks[i])
		}
		out = append(out, win)
	}
	return out
}

// compactableRuns splits a window at no-compact blocks into runs of adjacent blocks.
func compactableRuns(win []*blockInfo) [][]*blockInfo {
	var runs [][]*blockInfo
	var cur []*blockInfo
	for _, b := range win {
		if b.noCompact {
			if len(cur) > 0 {
				runs = append(runs, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, b)
	}
	if len(cur) > 0 {
		runs = append(runs, cur)
	}
	return runs
}

// hasFailed reports whether a block of run carries compaction.failed.
func hasFailed(run []*blockInfo) bool {
	return slices.ContainsFunc(run, func(b *blockInfo) bool { return b.meta.Compaction.Failed })
}

// describe lists blocks as "ULID[minTime,maxTime)" for logs and errors.
func describe(blocks []*blockInfo) string {
	s := ""
	for i, b := range blocks {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s[%d,%d)", b.id(), b.meta.MinTime, b.meta.MaxTime)
	}
	return s
}

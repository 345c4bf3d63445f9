package block

import (
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// GroupKey is the key of a compaction group (stream): blocks with identical external
// labels and resolution, "<resolution>@<labels hash>" as in Thanos. Blocks of different
// groups are never compacted together, so they may overlap in time.
func GroupKey(res int64, lset labels.Labels) string {
	return fmt.Sprintf("%d@%d", res, lset.Hash())
}

// FilterDuplicates hides, per group (key), every item whose block's compaction sources
// are all among the sources of another (bigger, or equal and older) block of the
// group: the other block already holds its data. It returns the remaining and the
// hidden items. meta returns an item's meta.json.
func FilterDuplicates[T any](items []T, key func(T) string, meta func(T) *Meta) (kept, dups []T) {
	byGroup := map[string][]T{}
	for _, it := range items {
		byGroup[key(it)] = append(byGroup[key(it)], it)
	}
	for _, grp := range byGroup {
		slices.SortFunc(grp, func(a, b T) int {
			if d := len(meta(b).Compaction.Sources) - len(meta(a).Compaction.Sources); d != 0 {
				return d
			}
			return meta(a).ULID.Compare(meta(b).ULID)
		})
		var covers []map[ulid.ULID]struct{}
		bySource := map[ulid.ULID][]int{} // source → indexes into covers
		for _, it := range grp {
			srcs := meta(it).Compaction.Sources
			if len(srcs) > 0 && coveredBy(srcs, bySource[srcs[0]], covers) {
				dups = append(dups, it)
				continue
			}
			kept = append(kept, it)
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

// Covers reports whether every compaction source of b is among those of a: a holds all
// of b's data. A block without sources is covered by nothing.
func Covers(a, b *Meta) bool {
	if len(b.Compaction.Sources) == 0 {
		return false
	}
	for _, s := range b.Compaction.Sources {
		if !slices.Contains(a.Compaction.Sources, s) {
			return false
		}
	}
	return true
}

// OverlappingRuns returns every run of blocks that overlap in time, in order. sorted
// must be one group's blocks ordered by minTime; a run is a maximal sequence in which
// each block starts before the end of some earlier block of the run.
func OverlappingRuns[T any](sorted []T, meta func(T) *Meta) [][]T {
	if len(sorted) < 2 {
		return nil
	}
	var runs [][]T
	var run []T
	maxT := meta(sorted[0]).MaxTime
	for i := 1; i < len(sorted); i++ {
		m := meta(sorted[i])
		if m.MinTime < maxT {
			if len(run) == 0 {
				run = append(run, sorted[i-1])
			}
			run = append(run, sorted[i])
		} else if len(run) > 0 {
			runs = append(runs, run)
			run = nil
		}
		maxT = max(maxT, m.MaxTime)
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	return runs
}

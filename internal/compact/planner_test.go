package compact

import (
	"fmt"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vigilhq/vigil/internal/block"
)

// pb is a planner test block [mint, maxt) in hours, with flags: "nc" no-compact,
// "failed" compaction failed, "tomb" 10% tombstones.
func pb(mint, maxt int64, flags ...string) *blockInfo {
	m := &block.Meta{BlockMeta: tsdb.BlockMeta{ULID: ulid.Make(), MinTime: mint * hour, MaxTime: maxt * hour}}
	m.Stats.NumSeries = 100
	b := &blockInfo{meta: m}
	for _, f := range flags {
		switch f {
		case "nc":
			b.noCompact = true
		case "failed":
			m.Compaction.Failed = true
		case "tomb":
			m.Stats.NumTombstones = 10
		}
	}
	return b
}

// run2h returns adjacent 2h blocks from hour a to hour b.
func run2h(a, b int64) []*blockInfo {
	var out []*blockInfo
	for h := a; h < b; h += 2 {
		out = append(out, pb(h, h+2))
	}
	return out
}

func hours(blocks []*blockInfo) string {
	var parts []string
	for _, b := range blocks {
		parts = append(parts, fmt.Sprintf("%d-%d", b.meta.MinTime/hour, b.meta.MaxTime/hour))
	}
	return strings.Join(parts, " ")
}

func TestPlanner(t *testing.T) {
	for _, tc := range []struct {
		name        string
		blocks      []*blockInfo
		vertical    bool
		want        string
		overlapping bool
		halt        bool
		level       int
	}{
		{name: "empty", want: ""},
		{name: "one block", blocks: []*blockInfo{pb(0, 2)}, want: ""},
		{name: "newest block is left out: four 2h blocks wait for a fifth",
			blocks: []*blockInfo{pb(0, 2), pb(2, 4), pb(4, 6), pb(6, 8)}, want: ""},
		{name: "four 2h blocks to 8h once a newer block exists",
			blocks: []*blockInfo{pb(8, 10), pb(0, 2), pb(4, 6), pb(2, 4), pb(6, 8)}, want: "0-2 2-4 4-6 6-8"},
		{name: "window spanning its range with a gap",
			blocks: []*blockInfo{pb(0, 2), pb(4, 6), pb(6, 8), pb(10, 12)}, want: "0-2 4-6 6-8"},
		{name: "incomplete window before the newest remaining block",
			blocks: []*blockInfo{pb(0, 2), pb(2, 4), pb(8, 10), pb(10, 12)}, want: "0-2 2-4"},
		{name: "incomplete window at the end is not compacted",
			blocks: []*blockInfo{pb(0, 8), pb(8, 10), pb(10, 12), pb(12, 14)}, want: ""},
		{name: "six 8h blocks to 2d",
			blocks: []*blockInfo{pb(0, 8), pb(8, 16), pb(16, 24), pb(24, 32), pb(32, 40), pb(40, 48), pb(48, 50)},
			want:   "0-8 8-16 16-24 24-32 32-40 40-48", level: 3},
		{name: "smallest range first",
			blocks: []*blockInfo{pb(0, 8), pb(8, 16), pb(16, 18), pb(18, 20), pb(20, 22), pb(22, 24), pb(24, 26)},
			want:   "16-18 18-20 20-22 22-24"},
		{name: "misaligned blocks skipped at 2h, compacted at 8h",
			blocks: []*blockInfo{pb(1, 3), pb(3, 5), pb(5, 7), pb(8, 10), pb(10, 12)}, want: "1-3 3-5 5-7"},
		{name: "misaligned blocks wait while their window is open",
			blocks: []*blockInfo{pb(1, 3), pb(3, 5), pb(5, 7), pb(8, 10)}, want: ""},
		{name: "overlap with vertical compaction",
			blocks: []*blockInfo{pb(0, 2), pb(1, 3), pb(4, 6)}, vertical: true, want: "0-2 1-3", overlapping: true},
		{name: "overlap run stops at the first gap",
			blocks: []*blockInfo{pb(0, 2), pb(0, 2), pb(2, 4), pb(2, 4)}, vertical: true, want: "0-2 0-2", overlapping: true},
		{name: "chained overlap",
			blocks: []*blockInfo{pb(0, 8), pb(2, 4), pb(6, 10), pb(12, 14)}, vertical: true, want: "0-8 2-4 6-10", overlapping: true},
		{name: "overlap without vertical compaction halts",
			blocks: []*blockInfo{pb(0, 2), pb(1, 3), pb(4, 6)}, halt: true},
		{name: "overlap with a no-compact block is ignored",
			blocks: []*blockInfo{pb(0, 2), pb(1, 3, "nc"), pb(2, 4), pb(4, 6), pb(6, 8), pb(8, 10)}, want: "2-4 4-6 6-8"},
		{name: "no-compact block splits its window without a gap",
			blocks: []*blockInfo{pb(0, 2), pb(2, 4, "nc"), pb(4, 6), pb(6, 8), pb(8, 10)}, want: "4-6 6-8"},
		{name: "all no-compact",
			blocks: []*blockInfo{pb(0, 2, "nc"), pb(2, 4, "nc"), pb(4, 6, "nc"), pb(6, 8, "nc"), pb(8, 10)}, want: ""},
		{name: "newest block is left out even when marked no-compact",
			blocks: []*blockInfo{pb(0, 2), pb(2, 4), pb(4, 6), pb(6, 8, "nc")}, want: ""},
		{name: "window with a failed compaction is skipped",
			blocks: []*blockInfo{pb(0, 2), pb(2, 4, "failed"), pb(4, 6), pb(6, 8), pb(8, 10), pb(10, 12), pb(12, 14), pb(14, 16), pb(16, 18)},
			want:   "8-10 10-12 12-14 14-16"},
		{name: "big block with tombstones is rewritten",
			blocks: []*blockInfo{pb(0, 48, "tomb"), pb(48, 50)}, want: "0-48"},
		{name: "small block with tombstones is not",
			blocks: []*blockInfo{pb(0, 2, "tomb"), pb(48, 50)}, want: ""},
		{name: "a whole 2d window of 2h blocks in one step, at level 3",
			blocks: run2h(0, 50), want: hours(run2h(0, 48)), level: 3},
		{name: "8h and 2h blocks filling a 2d window in one step",
			blocks: append([]*blockInfo{pb(0, 8), pb(8, 16), pb(16, 24)}, run2h(24, 50)...),
			want:   "0-8 8-16 16-24 " + hours(run2h(24, 48)), level: 3},
		{name: "a no-compact block keeps its window level by level",
			blocks: append(append(run2h(0, 2), pb(2, 4, "nc")), run2h(4, 50)...),
			want:   "4-6 6-8"},
		{name: "a 14d window of 2h blocks is too many sources for one step",
			blocks: run2h(0, 14*24+2), want: hours(run2h(0, 48)), level: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planGroup(DefaultRanges, tc.blocks, tc.vertical)
			if tc.halt {
				if !IsHalt(err) {
					t.Fatalf("want a halt error, got %v (plan %s)", err, hours(p.blocks))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := hours(p.blocks); got != tc.want {
				t.Errorf("plan = %q, want %q", got, tc.want)
			}
			if p.overlapping != tc.overlapping {
				t.Errorf("overlapping = %v, want %v", p.overlapping, tc.overlapping)
			}
			if p.level != tc.level {
				t.Errorf("level = %d, want %d", p.level, tc.level)
			}
		})
	}
}

func TestSplitByRangeNegative(t *testing.T) {
	got := splitByRange([]*blockInfo{pb(-4, -2), pb(-2, 0), pb(0, 2)}, 8*hour)
	if len(got) != 2 || hours(got[0]) != "-4--2 -2-0" || hours(got[1]) != "0-2" {
		t.Fatalf("windows = %v", got)
	}
}

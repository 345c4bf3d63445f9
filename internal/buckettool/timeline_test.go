package buckettool

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vigilhq/vigil/internal/block"
)

func dir(mint, maxt int64, level int, res int64, lbls map[string]string) *block.Dir {
	id := ulid.Make()
	return &block.Dir{ID: id, Meta: &block.Meta{
		BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: mint, MaxTime: maxt, Compaction: tsdb.BlockMetaCompaction{Level: level}},
		Thanos:    block.ThanosMeta{Labels: lbls, Downsample: block.ThanosDownsample{Resolution: res}},
	}}
}

func TestTimelineLayout(t *testing.T) {
	a := dir(base, base+2*hour, 1, 0, eu1)
	b := dir(base+hour, base+3*hour, 1, 0, eu1) // overlaps a: a second lane
	c := dir(base, base+8*hour, 2, 0, eu1)
	d := dir(base, base+8*hour, 2, block.Resolution5m, eu1)
	d.Deletion = &block.DeletionMark{}
	e := dir(base+6*hour, base+8*hour, 1, 0, us1)
	tl := newTimeline([]*block.Dir{a, b, c, d, e}, map[string]bool{a.ID.String(): true})
	if tl.MinT != base || tl.MaxT != base+8*hour || tl.Width != gutter+minPlotW {
		t.Fatalf("range [%d, %d) width %v", tl.MinT, tl.MaxT, tl.Width)
	}
	// Groups: eu1 raw, eu1 5m, us1 raw.
	if len(tl.Groups) != 3 || tl.Groups[0].Resolution != "raw" || tl.Groups[1].Resolution != "5m" || tl.Groups[2].Labels != labelsString(us1) {
		t.Fatalf("groups: %+v", tl.Groups)
	}
	g := tl.Groups[0]
	if len(g.Rows) != 3 || g.Rows[0].Label != "L1" || g.Rows[1].Label != "L1·2" || g.Rows[2].Label != "L2" {
		t.Errorf("rows: %+v", g.Rows)
	}
	if g.Height != 3*rowHeight+axisHeight {
		t.Errorf("height %v", g.Height)
	}
	byID := map[string]rect{}
	for _, r := range g.Rects {
		byID[r.ID] = r
	}
	ra, rb, rc := byID[a.ID.String()], byID[b.ID.String()], byID[c.ID.String()]
	if ra.Y == rb.Y || rc.Y <= rb.Y || ra.X != gutter || rc.W != minPlotW || ra.W != minPlotW/4 {
		t.Errorf("rects: a %+v b %+v c %+v", ra, rb, rc)
	}
	if ra.Class != "l1 ovl" || rc.Class != "l2" || tl.Groups[1].Rects[0].Class != "l2 del" {
		t.Errorf("classes: %q %q %q", ra.Class, rc.Class, tl.Groups[1].Rects[0].Class)
	}
	// 8h over 960px: ticks every hour (120px apart), on the hour.
	if len(g.Ticks) != 9 || g.Ticks[0].X != gutter || g.Ticks[1].X-g.Ticks[0].X != minPlotW/8 {
		t.Errorf("ticks: %+v", g.Ticks)
	}
	if g.Ticks[0].Label != time.UnixMilli(base).UTC().Format("01-02 15:04") {
		t.Errorf("first tick %q", g.Ticks[0].Label)
	}
	if tl := newTimeline(nil, nil); len(tl.Groups) != 0 {
		t.Error("empty bucket has groups")
	}
}

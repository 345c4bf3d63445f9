package buckettool

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/block"
)

// Timeline geometry, in SVG pixels.
const (
	gutter      = 44.0  // left margin with the row labels
	rowHeight   = 24.0  // one row of blocks
	rectHeight  = 18.0  // a block's rectangle
	axisHeight  = 22.0  // the time axis under the rows
	minPlotW    = 960.0 // narrowest plot (wider than a phone: it scrolls)
	maxPlotW    = 4800.0
	pxPerHour   = 8.0 // plot width per hour of data, between the two limits
	minRectW    = 2.0 // a block is never narrower than this
	minTickGapP = 90.0
)

// timeline is the drawing of all blocks: one panel per compaction group, all on the
// same time scale.
type timeline struct {
	MinT, MaxT int64
	Width      float64 // SVG width: gutter + plot
	Groups     []*panel
}

// panel draws one group: a row per compaction level (more when blocks of one level
// overlap), each block a rectangle from its min to its max time.
type panel struct {
	Labels     string
	Resolution string
	Blocks     int
	Height     float64
	Rows       []panelRow
	Rects      []rect
	Ticks      []tick
}

type panelRow struct {
	Y     float64 // baseline of the label
	Label string
}

// rect is one block.
type rect struct {
	ID         string
	X, Y, W, H float64
	Class      string // level colour class and state classes
	Title      string // tooltip
	Text       string // shown inside when wide enough
}

type tick struct {
	X     float64
	Label string
}

// tickSteps are the candidate distances between time axis ticks.
var tickSteps = []time.Duration{
	time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour,
	7 * 24 * time.Hour, 14 * 24 * time.Hour, 28 * 24 * time.Hour, 91 * 24 * time.Hour, 364 * 24 * time.Hour,
}

// newTimeline lays out the blocks (with meta.json) grouped as the compactor groups
// them. overlapping holds the IDs of blocks verify would report as overlapping.
func newTimeline(blocks []*block.Dir, overlapping map[string]bool) *timeline {
	tl := &timeline{}
	if len(blocks) == 0 {
		return tl
	}
	tl.MinT, tl.MaxT = blocks[0].Meta.MinTime, blocks[0].Meta.MaxTime
	for _, d := range blocks {
		tl.MinT, tl.MaxT = min(tl.MinT, d.Meta.MinTime), max(tl.MaxT, d.Meta.MaxTime)
	}
	tl.MaxT = max(tl.MaxT, tl.MinT+1)
	plotW := min(max(float64(tl.MaxT-tl.MinT)/float64(time.Hour/time.Millisecond)*pxPerHour, minPlotW), maxPlotW)
	tl.Width = gutter + plotW
	ticks := tl.ticks(plotW)
	for _, g := range byGroup(blocks) {
		p := tl.panel(g, plotW, overlapping)
		p.Ticks = ticks
		tl.Groups = append(tl.Groups, p)
	}
	return tl
}

func (tl *timeline) x(t int64, plotW float64) float64 {
	return gutter + float64(t-tl.MinT)/float64(tl.MaxT-tl.MinT)*plotW
}

// panel lays out one group: levels in ascending order, and within a level each block
// in the first lane where it does not overlap the previous block.
func (tl *timeline) panel(g []*block.Dir, plotW float64, overlapping map[string]bool) *panel {
	p := &panel{Labels: labelsString(g[0].Meta.Thanos.Labels), Resolution: resolutionName(g[0].Meta.Thanos.Downsample.Resolution), Blocks: len(g)}
	byLevel := map[int][]*block.Dir{}
	for _, d := range g { // g is sorted by minTime
		byLevel[d.Meta.Compaction.Level] = append(byLevel[d.Meta.Compaction.Level], d)
	}
	row := 0
	for _, level := range slices.Sorted(maps.Keys(byLevel)) {
		var laneEnd []int64
		for _, d := range byLevel[level] {
			lane := slices.IndexFunc(laneEnd, func(end int64) bool { return end <= d.Meta.MinTime })
			if lane < 0 {
				lane = len(laneEnd)
				laneEnd = append(laneEnd, 0)
				label := fmt.Sprintf("L%d", level)
				if lane > 0 {
					label += fmt.Sprintf("·%d", lane+1)
				}
				p.Rows = append(p.Rows, panelRow{Y: float64(row+lane)*rowHeight + rowHeight/2 + 4, Label: label})
			}
			laneEnd[lane] = d.Meta.MaxTime
			p.Rects = append(p.Rects, tl.rect(d, float64(row+lane)*rowHeight+(rowHeight-rectHeight)/2, plotW, overlapping))
		}
		row += len(laneEnd)
	}
	p.Height = float64(row)*rowHeight + axisHeight
	return p
}

func (tl *timeline) rect(d *block.Dir, y, plotW float64, overlapping map[string]bool) rect {
	m := d.Meta
	x0, x1 := tl.x(m.MinTime, plotW), tl.x(m.MaxTime, plotW)
	r := rect{ID: m.ULID.String(), X: x0, Y: y, W: max(x1-x0, minRectW), H: rectHeight,
		Class: fmt.Sprintf("l%d", min(max(m.Compaction.Level, 1), 6))}
	if d.Deletion != nil {
		r.Class += " del"
	}
	if d.NoCompact != nil {
		r.Class += " nc"
	}
	if overlapping[r.ID] {
		r.Class += " ovl"
	}
	r.Title = fmt.Sprintf("%s\n%s – %s (%s)\nlevel %d, %s, %d series, %d samples, source %s",
		r.ID, formatTime(m.MinTime), formatTime(m.MaxTime), formatDuration(m.MaxTime-m.MinTime),
		m.Compaction.Level, resolutionName(m.Thanos.Downsample.Resolution), m.Stats.NumSeries, m.Stats.NumSamples, m.Thanos.Source)
	if ms := marks(d); len(ms) > 0 {
		r.Title += fmt.Sprintf("\nmarked: %v", ms)
	}
	if r.W >= 48 {
		r.Text = formatDuration(m.MaxTime - m.MinTime)
	}
	return r
}

// ticks returns the time axis ticks: the smallest step in tickSteps that leaves
// minTickGapP pixels between labels, aligned to multiples of the step (UTC).
func (tl *timeline) ticks(plotW float64) []tick {
	span := tl.MaxT - tl.MinT
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if float64(s.Milliseconds())/float64(span)*plotW >= minTickGapP {
			step = s
			break
		}
	}
	ms := step.Milliseconds()
	format := "01-02 15:04"
	if step >= 24*time.Hour {
		format = "2006-01-02"
	}
	var out []tick
	first := tl.MinT - (tl.MinT%ms+ms)%ms
	if first < tl.MinT {
		first += ms
	}
	for t := first; t <= tl.MaxT; t += ms {
		out = append(out, tick{X: tl.x(t, plotW), Label: time.UnixMilli(t).UTC().Format(format)})
	}
	return out
}

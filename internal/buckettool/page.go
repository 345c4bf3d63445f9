package buckettool

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/block"
)

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"px": func(f float64) string { return fmt.Sprintf("%.1f", f) },
}).Parse(pageHTML))

// pageData is what page.html renders.
type pageData struct {
	Read           bool // the bucket has been read at least once
	Taken          string
	Error          string // the last refresh failed
	ErrorAt        string
	Refresh        string
	RefreshSeconds int
	Timeline       *timeline
	Blocks         []pageBlock
	Overlaps       int
	Partial        []string
	Corrupt        []pageCorrupt
}

// pageBlock is one row of the block table.
type pageBlock struct {
	ID, From, Until, Range, Resolution, Source, Labels, Marks string
	Level                                                     int
	Series, Samples                                           uint64
	Overlap                                                   bool
}

type pageCorrupt struct{ ID, Error string }

// newPageData prepares the page for the last snapshot (nil if none) and the last
// refresh's error.
func newPageData(s *Snapshot, lastErr error, tried time.Time, refresh time.Duration) *pageData {
	p := &pageData{Refresh: formatDuration(refresh.Milliseconds()), RefreshSeconds: max(int(refresh.Seconds()), 1)}
	if lastErr != nil {
		p.Error, p.ErrorAt = lastErr.Error(), tried.UTC().Format(time.RFC3339)
	}
	if s == nil {
		return p
	}
	p.Read, p.Taken = true, s.Taken.UTC().Format(time.RFC3339)
	blocks := s.Blocks()
	overlapping := map[string]bool{}
	live := slices.DeleteFunc(slices.Clone(blocks), func(d *block.Dir) bool { return d.Deletion != nil })
	for _, i := range overlaps(live) {
		p.Overlaps++
		for _, id := range i.Blocks {
			overlapping[id.String()] = true
		}
	}
	p.Timeline = newTimeline(blocks, overlapping)
	for _, g := range byGroup(blocks) {
		for _, d := range g {
			m := d.Meta
			p.Blocks = append(p.Blocks, pageBlock{
				ID: d.ID.String(), From: formatTime(m.MinTime), Until: formatTime(m.MaxTime),
				Range: formatDuration(m.MaxTime - m.MinTime), Resolution: resolutionName(m.Thanos.Downsample.Resolution),
				Source: string(m.Thanos.Source), Labels: labelsString(m.Thanos.Labels), Marks: newRow(d).marks,
				Level: m.Compaction.Level, Series: m.Stats.NumSeries, Samples: m.Stats.NumSamples,
				Overlap: overlapping[d.ID.String()],
			})
		}
	}
	for _, d := range s.Partial() {
		p.Partial = append(p.Partial, d.ID.String())
	}
	for _, d := range s.Corrupt() {
		p.Corrupt = append(p.Corrupt, pageCorrupt{ID: d.ID.String(), Error: d.MetaErr.Error()})
	}
	return p
}

func renderPage(w io.Writer, p *pageData) error {
	return pageTmpl.Execute(w, p)
}

package buckettool

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// Inspect output formats (-o).
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputCSV   = "csv"
	OutputTSV   = "tsv"
)

// row is one block of the inspect table.
type row struct {
	*block.Meta
	marks string // the markers, comma-separated, or "-"
}

func newRow(d *block.Dir) *row {
	r := &row{Meta: d.Meta, marks: "-"}
	if m := marks(d); len(m) > 0 {
		r.marks = strings.Join(m, ",")
	}
	return r
}

// column is one column of the inspect table.
type column struct {
	name string
	cell func(r *row) string
	// num is the sort key of numeric and time columns; others sort by their text.
	num func(r *row) int64
}

func (c column) compare(a, b *row) int {
	if c.num != nil {
		return cmp.Compare(c.num(a), c.num(b))
	}
	return strings.Compare(c.cell(a), c.cell(b))
}

func itoa[T int | int64 | uint64](v T) string { return fmt.Sprint(v) }

// columns are Thanos's inspect columns without UNTIL-DOWN, plus MARKS; LABELS comes
// last because it is the widest.
var columns = []column{
	{"ULID", func(r *row) string { return r.ULID.String() }, nil},
	{"FROM", func(r *row) string { return formatTime(r.MinTime) }, func(r *row) int64 { return r.MinTime }},
	{"UNTIL", func(r *row) string { return formatTime(r.MaxTime) }, func(r *row) int64 { return r.MaxTime }},
	{"RANGE", func(r *row) string { return formatDuration(r.MaxTime - r.MinTime) }, func(r *row) int64 { return r.MaxTime - r.MinTime }},
	{"#SERIES", func(r *row) string { return itoa(r.Stats.NumSeries) }, func(r *row) int64 { return int64(r.Stats.NumSeries) }},
	{"#SAMPLES", func(r *row) string { return itoa(r.Stats.NumSamples) }, func(r *row) int64 { return int64(r.Stats.NumSamples) }},
	{"#CHUNKS", func(r *row) string { return itoa(r.Stats.NumChunks) }, func(r *row) int64 { return int64(r.Stats.NumChunks) }},
	{"COMP-LEVEL", func(r *row) string { return itoa(r.Compaction.Level) }, func(r *row) int64 { return int64(r.Compaction.Level) }},
	{"COMP-FAILED", func(r *row) string { return fmt.Sprint(r.Compaction.Failed) }, nil},
	{"RESOLUTION", func(r *row) string { return resolutionName(r.Thanos.Downsample.Resolution) },
		func(r *row) int64 { return r.Thanos.Downsample.Resolution }},
	{"SOURCE", func(r *row) string { return string(r.Thanos.Source) }, nil},
	{"MARKS", func(r *row) string { return r.marks }, nil},
	{"LABELS", func(r *row) string { return labelsString(r.Thanos.Labels) }, nil},
}

// ColumnNames are the inspect columns, the values --sort-by takes.
func ColumnNames() []string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.name
	}
	return names
}

// InspectOptions configure Inspect.
type InspectOptions struct {
	// Selector keeps blocks whose external labels match all matchers.
	Selector []*labels.Matcher
	// SortBy are column names (case-insensitive, "#" optional); ties are broken by the
	// next one, and finally by ULID. Empty means FROM, UNTIL.
	SortBy []string
	// Output is OutputTable (default), OutputJSON, OutputCSV or OutputTSV.
	Output string
}

// ParseSelector parses --selector values: label matchers on external labels such as
// cluster="eu1" or region=~"eu.*", several per value separated by commas, braces
// optional. A block matches when it matches every matcher of every value.
func ParseSelector(values []string) ([]*labels.Matcher, error) {
	p := parser.NewParser(parser.Options{})
	var out []*labels.Matcher
	for _, v := range values {
		s := strings.TrimSpace(v)
		if !strings.HasPrefix(s, "{") {
			s = "{" + s + "}"
		}
		ms, err := p.ParseMetricSelector(s)
		if err != nil {
			return nil, fmt.Errorf("--selector %q: %w (want label matchers such as cluster=\"eu1\")", v, err)
		}
		out = append(out, ms...)
	}
	return out, nil
}

// parseSortBy resolves column names.
func parseSortBy(names []string) ([]column, error) {
	if len(names) == 0 {
		names = []string{"FROM", "UNTIL"}
	}
	var out []column
	for _, n := range names {
		want := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(n)), "#")
		i := slices.IndexFunc(columns, func(c column) bool { return strings.TrimPrefix(c.name, "#") == want })
		if i < 0 {
			return nil, fmt.Errorf("unknown --sort-by column %q (want one of %s)", n, strings.Join(ColumnNames(), ", "))
		}
		out = append(out, columns[i])
	}
	return out, nil
}

func matches(ms []*labels.Matcher, ext map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(ext[m.Name]) {
			return false
		}
	}
	return true
}

// Inspect writes a table of the bucket's blocks (those with a readable meta.json)
// that match the selector, sorted as asked.
func Inspect(ctx context.Context, w io.Writer, bkt objstore.BucketReader, o InspectOptions, logger *slog.Logger) error {
	sortBy, err := parseSortBy(o.SortBy)
	if err != nil {
		return err
	}
	write, err := inspectWriter(o.Output)
	if err != nil {
		return err
	}
	s, err := fetchBucket(ctx, bkt, logger)
	if err != nil {
		return err
	}
	var rows []*row
	for _, d := range s.Blocks() {
		if matches(o.Selector, d.Meta.Thanos.Labels) {
			rows = append(rows, newRow(d))
		}
	}
	slices.SortFunc(rows, func(a, b *row) int {
		for _, c := range sortBy {
			if r := c.compare(a, b); r != 0 {
				return r
			}
		}
		return a.ULID.Compare(b.ULID)
	})
	if err := write(w, rows); err != nil {
		return fmt.Errorf("write inspect output: %w", err)
	}
	return nil
}

func inspectWriter(format string) (func(io.Writer, []*row) error, error) {
	switch format {
	case "", OutputTable:
		return writeTable, nil
	case OutputJSON:
		return writeJSON, nil
	case OutputCSV:
		return func(w io.Writer, rows []*row) error { return writeCSV(w, rows, ',') }, nil
	case OutputTSV:
		return func(w io.Writer, rows []*row) error { return writeCSV(w, rows, '\t') }, nil
	}
	return nil, fmt.Errorf("unknown output format %q (want table, json, csv or tsv)", format)
}

func cells(r *row) []string {
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = c.cell(r)
	}
	return out
}

func writeTable(w io.Writer, rows []*row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(ColumnNames(), "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(cells(r), "\t"))
	}
	return tw.Flush()
}

func writeCSV(w io.Writer, rows []*row, sep rune) error {
	cw := csv.NewWriter(w)
	cw.Comma = sep
	if err := cw.Write(ColumnNames()); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(cells(r)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// jsonRow is one block of the JSON output: the table's values, typed.
type jsonRow struct {
	ULID             string            `json:"ulid"`
	MinTime          int64             `json:"minTime"`
	MaxTime          int64             `json:"maxTime"`
	From             string            `json:"from"`
	Until            string            `json:"until"`
	Range            string            `json:"range"`
	Series           uint64            `json:"series"`
	Samples          uint64            `json:"samples"`
	Chunks           uint64            `json:"chunks"`
	Level            int               `json:"level"`
	CompactionFailed bool              `json:"compactionFailed"`
	Resolution       int64             `json:"resolution"`
	Source           string            `json:"source"`
	Marks            []string          `json:"marks"`
	Labels           map[string]string `json:"labels"`
}

func writeJSON(w io.Writer, rows []*row) error {
	out := make([]jsonRow, len(rows))
	for i, r := range rows {
		m := r.Meta
		out[i] = jsonRow{
			ULID: m.ULID.String(), MinTime: m.MinTime, MaxTime: m.MaxTime,
			From: formatTime(m.MinTime), Until: formatTime(m.MaxTime), Range: formatDuration(m.MaxTime - m.MinTime),
			Series: m.Stats.NumSeries, Samples: m.Stats.NumSamples, Chunks: m.Stats.NumChunks,
			Level: m.Compaction.Level, CompactionFailed: m.Compaction.Failed, Resolution: m.Thanos.Downsample.Resolution,
			Source: string(m.Thanos.Source), Marks: r.markList(), Labels: m.Thanos.Labels,
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func (r *row) markList() []string {
	if r.marks == "-" {
		return []string{}
	}
	return strings.Split(r.marks, ",")
}

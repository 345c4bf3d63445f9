// Package blocktest creates real Prometheus TSDB blocks for tests.
package blocktest

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigilhq/vigil/internal/block"
)

// Step is the sample interval of created blocks, in milliseconds.
const Step = 15_000

// CreateBlock writes a TSDB block into dir holding numSeries float series named
// "test_metric" with a "series" label, sampled every Step ms in [mint, maxt), and returns
// its ULID. The block is a level-1 block, exactly as Prometheus writes its head blocks.
func CreateBlock(tb testing.TB, dir string, mint, maxt int64, numSeries int) ulid.ULID {
	tb.Helper()
	series := make([]storage.Series, 0, numSeries)
	for i := range numSeries {
		var samples []chunks.Sample
		for t := mint; t < maxt; t += Step {
			samples = append(samples, sample{t: t, f: float64(i*1000) + float64(t-mint)/Step})
		}
		lset := labels.FromStrings("__name__", "test_metric", "series", fmt.Sprint(i))
		series = append(series, storage.NewListSeries(lset, samples))
	}
	p, err := tsdb.CreateBlock(series, dir, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("create TSDB block in %s: %v", dir, err)
	}
	id, err := ulid.ParseStrict(filepath.Base(p))
	if err != nil {
		tb.Fatalf("created block dir %s is not a ULID: %v", p, err)
	}
	return id
}

// EditMeta reads <dir>/<id>/meta.json, applies edit and writes it back.
func EditMeta(tb testing.TB, dir string, id ulid.ULID, edit func(*block.Meta)) {
	tb.Helper()
	bdir := filepath.Join(dir, id.String())
	m, err := block.ReadMeta(bdir)
	if err != nil {
		tb.Fatal(err)
	}
	edit(m)
	if err := block.WriteMeta(bdir, m); err != nil {
		tb.Fatal(err)
	}
}

type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }

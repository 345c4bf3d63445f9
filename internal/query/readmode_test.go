package query

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func TestRewriteForDownsampling(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for in, want := range map[string]string{
		`count_over_time(x[1h])`:                   `sum_over_time(x{__vigil_read__="count"}[1h])`,
		`avg_over_time(x{job="a"}[5m] offset 1h)`:  `sum_over_time(x{job="a"}[5m] offset 1h) / sum_over_time(x{__vigil_read__="count",job="a"}[5m] offset 1h)`,
		`sum by (i) (count_over_time(x[30m])) > 3`: `sum by (i) (sum_over_time(x{__vigil_read__="count"}[30m])) > 3`,
		`1 + avg_over_time(x[1h] @ 100)`:           `1 + sum_over_time(x[1h] @ 100.000) / sum_over_time(x{__vigil_read__="count"}[1h] @ 100.000)`,
		// Untouched: no counting function, a subquery (its points are PromQL's own), text
		// that does not parse.
		`rate(x[5m])`:                       `rate(x[5m])`,
		`count_over_time(rate(x[5m])[1h:])`: `count_over_time(rate(x[5m])[1h:])`,
		`count_over_time(x[1h]`:             `count_over_time(x[1h]`,
	} {
		got := RewriteForDownsampling(p, in)
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
		if _, err := p.ParseExpr(got); err != nil && got != in {
			t.Errorf("%s: the rewrite %s does not parse: %v", in, got, err)
		}
	}
}

// TestCountingIterator: raw samples read as 1, stale markers stay stale, Seek too.
func TestCountingIterator(t *testing.T) {
	stale := math.Float64frombits(value.StaleNaN)
	chk := xorChunk(t, []sample{{1000, 5}, {2000, 7}, {3000, stale}, {4000, 2}})
	it := &countingIterator{Iterator: newChunkListIterator([]*storepb.AggrChunk{chk}, 0, 10_000, chunkenc.NewPool())}
	var got []float64
	for it.Next() == chunkenc.ValFloat {
		_, f := it.At()
		got = append(got, f)
	}
	if len(got) != 4 || got[0] != 1 || got[1] != 1 || !value.IsStaleNaN(got[2]) || got[3] != 1 {
		t.Fatalf("counting iterator read %v", got)
	}
	it = &countingIterator{Iterator: newChunkListIterator([]*storepb.AggrChunk{chk}, 0, 10_000, chunkenc.NewPool())}
	if it.Seek(3500) != chunkenc.ValFloat {
		t.Fatal("seek")
	}
	if ts, f := it.At(); ts != 4000 || f != 1 {
		t.Fatalf("after seek: %d %v", ts, f)
	}
}

package bucketstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/downsample"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

const (
	dsSeries = 3
	dsSpan   = 12 * time.Hour
	dsStep   = 15_000
)

// dsValue is the counter of series i at t: it grows by i+1 per scrape, with a reset
// after 6h.
func dsValue(i int, t int64) float64 {
	n := t / dsStep
	if t >= 6*time.Hour.Milliseconds() {
		n -= 6 * time.Hour.Milliseconds() / dsStep
	}
	return float64(n * int64(i+1))
}

// writeDownsampledPair writes a raw block of dsSeries counters {__name__="c", i="<n>"}
// sampled every 15s over [0, 12h), downsamples it to 5m with DownsampleDir and uploads
// both. It returns the raw and the 5m block IDs.
func writeDownsampledPair(t *testing.T, bkt objstore.Bucket) (raw, ds ulid.ULID) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	w, err := tsdb.NewBlockWriter(logger, dir, dsSpan.Milliseconds())
	if err != nil {
		t.Fatal(err)
	}
	app := w.Appender(ctx)
	for i := range dsSeries {
		ls := labels.FromStrings("__name__", "c", "i", fmt.Sprintf("%03d", i))
		for ts := int64(0); ts < dsSpan.Milliseconds(); ts += dsStep {
			if _, err := app.Append(0, ls, ts, dsValue(i, ts)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if raw, err = w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rawDir := filepath.Join(dir, raw.String())
	m, err := block.ReadMeta(rawDir)
	if err != nil {
		t.Fatal(err)
	}
	m.Thanos.Labels = map[string]string{"cluster": "c1"}
	m.Thanos.Downsample.Resolution = block.ResolutionRaw
	m.Thanos.Source = "test"
	if err := block.WriteMeta(rawDir, m); err != nil {
		t.Fatal(err)
	}
	dsParent := t.TempDir()
	if ds, err = downsample.DownsampleDir(ctx, logger, rawDir, dsParent, block.Resolution5m); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{rawDir, filepath.Join(dsParent, ds.String())} {
		if err := block.Upload(ctx, logger, bkt, d); err != nil {
			t.Fatal(err)
		}
	}
	return raw, ds
}

func chunkFields(c *storepb.AggrChunk) []string {
	var out []string
	for _, f := range []struct {
		name string
		c    *storepb.Chunk
	}{{"raw", c.GetRaw()}, {"count", c.GetCount()}, {"sum", c.GetSum()}, {"min", c.GetMin()}, {"max", c.GetMax()}, {"counter", c.GetCounter()}} {
		if f.c != nil {
			out = append(out, f.name)
		}
	}
	return out
}

func floats(t *testing.T, c *storepb.Chunk) (ts []int64, vs []float64) {
	t.Helper()
	chk, err := chunkenc.FromData(chunkenc.Encoding(c.GetType()+1), c.GetData())
	if err != nil {
		t.Fatal(err)
	}
	it := chk.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		tt, v := it.At()
		ts, vs = append(ts, tt), append(vs, v)
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	return ts, vs
}

// The store serves raw chunks at max_resolution_window 0 and, at 5m, the downsampled
// block's AggrChunks as exactly the requested aggregates.
func TestSeriesServesRequestedAggregatesOfDownsampledBlocks(t *testing.T) {
	bkt := newBucket(t)
	writeDownsampledPair(t, bkt)
	s := startStore(t, bkt, Config{})
	maxt := dsSpan.Milliseconds() - 1

	got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: maxt, Matchers: matchName("c"),
		Aggregates: []storepb.Aggr{storepb.Aggr_COUNT, storepb.Aggr_SUM}})
	if err != nil || len(got) != dsSeries {
		t.Fatalf("raw: %d series, %v", len(got), err)
	}
	for _, sr := range got {
		n := 0
		for _, c := range sr.Chunks {
			if f := chunkFields(c); !slices.Equal(f, []string{"raw"}) {
				t.Fatalf("raw resolution: chunk fields %v, want [raw]", f)
			}
			ts, _ := floats(t, c.GetRaw())
			n += len(ts)
		}
		if want := int(dsSpan.Milliseconds() / dsStep); n != want {
			t.Fatalf("raw resolution: %d samples, want %d", n, want)
		}
	}

	for _, aggrs := range [][]storepb.Aggr{
		{storepb.Aggr_COUNT}, {storepb.Aggr_SUM}, {storepb.Aggr_MIN}, {storepb.Aggr_MAX}, {storepb.Aggr_COUNTER},
		{storepb.Aggr_COUNT, storepb.Aggr_SUM}, {storepb.Aggr_MIN, storepb.Aggr_MAX, storepb.Aggr_RAW},
	} {
		var want []string
		for _, a := range aggrs {
			if a != storepb.Aggr_RAW {
				want = append(want, []string{"", "count", "sum", "min", "max", "counter"}[a])
			}
		}
		slices.SortFunc(want, func(a, b string) int {
			order := []string{"count", "sum", "min", "max", "counter"}
			return slices.Index(order, a) - slices.Index(order, b)
		})
		got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: maxt, Matchers: matchName("c"),
			MaxResolutionWindow: block.Resolution5m, Aggregates: aggrs})
		if err != nil || len(got) != dsSeries {
			t.Fatalf("%v: %d series, %v", aggrs, len(got), err)
		}
		for k, sr := range got {
			var count, sum float64
			mn, mx := math.Inf(1), math.Inf(-1)
			for _, c := range sr.Chunks {
				if f := chunkFields(c); !slices.Equal(f, want) {
					t.Fatalf("%v: chunk fields %v, want %v", aggrs, f, want)
				}
				if c.GetCount() != nil {
					_, vs := floats(t, c.GetCount())
					for _, v := range vs {
						count += v
					}
				}
				if c.GetSum() != nil {
					_, vs := floats(t, c.GetSum())
					for _, v := range vs {
						sum += v
					}
				}
				if c.GetMin() != nil {
					_, vs := floats(t, c.GetMin())
					mn = min(mn, slices.Min(vs))
				}
				if c.GetMax() != nil {
					_, vs := floats(t, c.GetMax())
					mx = max(mx, slices.Max(vs))
				}
			}
			var wantSum float64
			wantMax := math.Inf(-1)
			for ts := int64(0); ts < dsSpan.Milliseconds(); ts += dsStep {
				wantSum += dsValue(k, ts)
				wantMax = max(wantMax, dsValue(k, ts))
			}
			if slices.Contains(want, "count") && count != float64(dsSpan.Milliseconds()/dsStep) {
				t.Fatalf("%v: series %d counts %v samples", aggrs, k, count)
			}
			if slices.Contains(want, "sum") && sum != wantSum {
				t.Fatalf("%v: series %d sums to %v, want %v", aggrs, k, sum, wantSum)
			}
			if slices.Contains(want, "min") && mn != 0 {
				t.Fatalf("%v: series %d min %v, want 0", aggrs, k, mn)
			}
			if slices.Contains(want, "max") && mx != wantMax {
				t.Fatalf("%v: series %d max %v, want %v", aggrs, k, mx, wantMax)
			}
		}
	}
}

// The samples limit counts a downsampled chunk's aggregate samples (one per window, as
// its COUNT aggregate has), whichever aggregate is requested.
func TestSamplesLimitCountsAggregateSamples(t *testing.T) {
	bkt := newBucket(t)
	writeDownsampledPair(t, bkt)
	windows := int(dsSpan.Milliseconds() / block.Resolution5m)
	maxt := dsSpan.Milliseconds() - 1
	for _, aggrs := range [][]storepb.Aggr{{storepb.Aggr_COUNT}, {storepb.Aggr_MAX}, {storepb.Aggr_COUNTER}} {
		for _, tc := range []struct {
			limit int
			ok    bool
		}{{dsSeries * windows, true}, {dsSeries*windows - 1, false}} {
			s := startStore(t, bkt, Config{SamplesLimit: tc.limit})
			_, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: maxt, Matchers: matchName("c"),
				MaxResolutionWindow: block.Resolution5m, Aggregates: aggrs})
			if tc.ok && err != nil {
				t.Fatalf("%v, limit %d: %v", aggrs, tc.limit, err)
			}
			if !tc.ok && status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("%v, limit %d: %v, want ResourceExhausted", aggrs, tc.limit, err)
			}
		}
	}
}

// A requested aggregate the chunk does not hold is an error (the block is then skipped
// with a warning); RAW does not apply to downsampled chunks.
func TestFillAggregatesMissingAggregate(t *testing.T) {
	x := chunkenc.NewXORChunk()
	app, err := x.Appender()
	if err != nil {
		t.Fatal(err)
	}
	app.Append(0, 1, 2)
	ac := downsample.EncodeAggrChunk([5]chunkenc.Chunk{x, x, nil, nil, x})
	var out storepb.AggrChunk
	if err := fillAggregates(&out, ac, []storepb.Aggr{storepb.Aggr_RAW, storepb.Aggr_COUNTER}); err != nil {
		t.Fatal(err)
	}
	if f := chunkFields(&out); !slices.Equal(f, []string{"counter"}) {
		t.Fatalf("fields %v, want [counter]", f)
	}
	if out.Counter.GetType() != storepb.Chunk_XOR {
		t.Fatalf("counter encoding %v, want XOR", out.Counter.GetType())
	}
	out = storepb.AggrChunk{}
	if err := fillAggregates(&out, ac, nil); err != nil || !slices.Equal(chunkFields(&out), []string{"count", "sum"}) {
		t.Fatalf("no aggregates requested: %v %v, want count and sum", chunkFields(&out), err)
	}
	if err := fillAggregates(&storepb.AggrChunk{}, ac, []storepb.Aggr{storepb.Aggr_MIN}); !errors.Is(err, downsample.ErrAggrNotExist) {
		t.Fatalf("missing min: %v, want ErrAggrNotExist", err)
	}
}

// writeAggrBlock writes and uploads a 5m block holding one series {__name__="c"} with
// one downsampled chunk that has COUNT, SUM and COUNTER but no MIN or MAX.
func writeAggrBlock(t *testing.T, bkt objstore.Bucket) ulid.ULID {
	t.Helper()
	ctx := context.Background()
	id := ulid.Make()
	dir := filepath.Join(t.TempDir(), id.String())
	x := chunkenc.NewXORChunk()
	app, err := x.Appender()
	if err != nil {
		t.Fatal(err)
	}
	app.Append(0, block.Resolution5m-1, 20)
	app.Append(0, 2*block.Resolution5m-1, 20)
	metas := []chunks.Meta{{MinTime: block.Resolution5m - 1, MaxTime: 2*block.Resolution5m - 1,
		Chunk: downsample.EncodeAggrChunk([5]chunkenc.Chunk{x, x, nil, nil, x})}}
	cw, err := chunks.NewWriter(filepath.Join(dir, "chunks"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.WriteChunks(metas...); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	iw, err := index.NewWriter(ctx, filepath.Join(dir, "index"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"__name__", "c"} {
		if err := iw.AddSymbol(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := iw.AddSeries(1, labels.FromStrings("__name__", "c"), metas...); err != nil {
		t.Fatal(err)
	}
	if err := iw.Close(); err != nil {
		t.Fatal(err)
	}
	m := &block.Meta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: 0, MaxTime: 2 * block.Resolution5m, Version: 1,
		Stats: tsdb.BlockStats{NumSeries: 1, NumChunks: 1, NumSamples: 2}}}
	m.Compaction.Level, m.Compaction.Sources = 1, []ulid.ULID{id}
	m.Thanos.Labels = map[string]string{"cluster": "c2"}
	m.Thanos.Downsample.Resolution = block.Resolution5m
	m.Thanos.Source = "test"
	if err := block.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	if err := block.Upload(ctx, slog.New(slog.DiscardHandler), bkt, dir); err != nil {
		t.Fatal(err)
	}
	return id
}

// A block whose downsampled chunks lack a requested aggregate is skipped with a warning;
// the other blocks are still served, and no chunk-pool bytes stay held.
func TestSeriesMissingAggregateSkipsTheBlockWithAWarning(t *testing.T) {
	bkt := newBucket(t)
	writeDownsampledPair(t, bkt)
	bad := writeAggrBlock(t, bkt)
	s := startStore(t, bkt, Config{})
	read := func(aggrs ...storepb.Aggr) (series int, warnings []string) {
		t.Helper()
		st, err := s.client.Series(context.Background(), &storepb.SeriesRequest{MinTime: 0, MaxTime: dsSpan.Milliseconds(),
			Matchers: matchName("c"), MaxResolutionWindow: block.Resolution5m, Aggregates: aggrs})
		if err != nil {
			t.Fatal(err)
		}
		for st.Next() {
			series++
		}
		if st.Err() != nil {
			t.Fatal(st.Err())
		}
		return series, st.Warnings()
	}
	if n, ws := read(storepb.Aggr_COUNT, storepb.Aggr_COUNTER); n != dsSeries+1 || len(ws) != 0 {
		t.Fatalf("count and counter: %d series, warnings %v; want %d and none", n, ws, dsSeries+1)
	}
	n, ws := read(storepb.Aggr_MIN)
	if n != dsSeries || len(ws) != 1 || !strings.Contains(ws[0], bad.String()) || !strings.Contains(ws[0], "min") {
		t.Fatalf("min: %d series, warnings %v; want %d and one naming block %s and min", n, ws, dsSeries, bad)
	}
	if used := s.pool.used; used != 0 {
		t.Fatalf("%d chunk-pool bytes held after the requests", used)
	}
}

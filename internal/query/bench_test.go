package query

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// perSeries runs the timed loop body b.N times and reports time and allocations per
// series (everything in the process: the in-process servers' work is included).
func perSeries(b *testing.B, seriesPerOp int, body func()) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		body()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(seriesPerOp)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/series")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/series")
}

// BenchmarkMergeStream measures the proxy end to end over loopback gRPC, merged by the
// k-way merge: two replica endpoints with 10k series of one 120-sample chunk each, and
// a fan-out to 32 endpoints (shards) of 1000 series each.
func BenchmarkMergeStream(b *testing.B) {
	chk := []*storepb.AggrChunk{xorChunk(b, genSamples(0, 119*15_000, 15_000, tenth, nil))}
	for _, c := range []struct {
		name                 string
		endpoints, perSeries int
		label                string
	}{{"2x10k-replicas", 2, 10_000, "replica"}, {"32x1k-shards", 32, 1000, "shard"}} {
		b.Run(c.name, func(b *testing.B) {
			var fakes []*fakeStore
			for e := range c.endpoints {
				ss := make([]fakeSeries, c.perSeries)
				for i := range ss {
					ss[i] = fakeSeries{lset: labels.FromStrings("__name__", "m", "i", fmt.Sprintf("%06d", i)), chunks: chk}
				}
				fakes = append(fakes, newFakeStore(labels.FromStrings(c.label, fmt.Sprintf("%02d", e)), ss...))
			}
			p, _ := proxyOver(b, 0, fakes...)
			req := seriesReq(eq("__name__", "m"))
			total := c.endpoints * c.perSeries
			perSeries(b, total, func() {
				m, err := p.Series(context.Background(), req, nil)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for m.Next() {
					n += len(m.At().Sources)
				}
				m.Close()
				if n != total || m.Err() != nil {
					b.Fatalf("merged %d series, err %v", n, m.Err())
				}
			})
		})
	}
}

// BenchmarkSelectDedup measures the querier without PromQL: Select over two replicas
// (24h at 15s in 120-sample chunks, replica label stripped by the stores), then every
// deduplicated series' iterator to the end.
func BenchmarkSelectDedup(b *testing.B) {
	const nSeries, day = 50, 24 * hour
	for _, fn := range []dedup.Func{dedup.GapFill, dedup.Penalty} {
		b.Run(fn.String(), func(b *testing.B) {
			var addrs []string
			for r, offset := range []int64{0, 4_000} {
				chks := chunked(b, genSamples(offset, day, 15_000, tenth, nil), 120)
				ss := make([]fakeSeries, nSeries)
				for i := range ss {
					ss[i] = fakeSeries{lset: labels.FromStrings("__name__", "m", "i", fmt.Sprintf("%03d", i)), chunks: chks}
				}
				addrs = append(addrs, serveFake(b, newFakeStore(labels.FromStrings("replica", fmt.Sprint(r)), ss...)))
			}
			qf := NewQueryableFactory(NewProxy(newSet(b, addrs...), 0, discard), fn)
			queryable := qf(dedupOn)
			hints := &storage.SelectHints{Start: 0, End: day}
			ctx := context.Background()
			var it chunkenc.Iterator
			perSeries(b, nSeries, func() {
				q, err := queryable.Querier(0, day)
				if err != nil {
					b.Fatal(err)
				}
				set := q.Select(ctx, true, hints, eq("__name__", "m"))
				series, samples := 0, 0
				for set.Next() {
					series++
					it = set.At().Iterator(it)
					for it.Next() != chunkenc.ValNone {
						samples++
					}
					if it.Err() != nil {
						b.Fatal(it.Err())
					}
				}
				if set.Err() != nil || series != nSeries || samples < nSeries*int(day/15_000) {
					b.Fatalf("%d series, %d samples, err %v", series, samples, set.Err())
				}
				_ = q.Close()
			})
		})
	}
}

package rwload

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// BenchmarkEncodeRequest measures encoding one request of the reference batch (2000
// samples of 2000 series: marshal plus snappy), the generator's cost per request.
func BenchmarkEncodeRequest(b *testing.B) {
	const batch = 2000
	s := DefaultShape()
	p, err := Build(Shape{Series: batch, Steps: 1, Batch: batch, Concurrency: 1, Interval: s.Interval, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	ss := make([]seriesState, batch)
	for i := range ss {
		ss[i] = seriesState{labels: seriesLabels(i), m: metrics[i%len(metrics)]}
	}
	enc := newEncoder(batch, batch)
	t0 := time.Now().UnixMilli()
	b.SetBytes(int64(len(p.Senders[0][0].Body)))
	b.ReportAllocs()
	for b.Loop() {
		enc.reset()
		for j := range batch {
			enc.add(j, prompb.Sample{Timestamp: t0, Value: float64(j)})
		}
		if _, _, err := enc.encode(ss); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/sample")
}

// BenchmarkBuild measures building a whole plan of 2000 series × 10 steps (values,
// grouping, encoding, on all cores), per sample.
func BenchmarkBuild(b *testing.B) {
	s := DefaultShape()
	s.Series, s.Steps = 2000, 10
	b.ReportAllocs()
	var bytes int64
	for b.Loop() {
		p, err := Build(s)
		if err != nil {
			b.Fatal(err)
		}
		bytes = p.Bytes
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*s.Series*s.Steps), "ns/sample")
	b.ReportMetric(float64(bytes)/float64(s.Series*s.Steps), "B/sample")
}

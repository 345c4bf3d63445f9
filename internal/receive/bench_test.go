package receive

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigilhq/vigil/internal/storeapi/writepb"
)

// benchRequest builds step `step` of 2000 series with 7 labels each, as one remote-write
// 1.0 body: the shape of the reference load.
func benchRequest(b *testing.B, step int) []byte {
	series := make([]prompb.TimeSeries, 2000)
	for i := range series {
		series[i] = prompb.TimeSeries{
			Labels: lbls("__name__", fmt.Sprintf("metric_%d", i%50), "cluster", "bench", "env", "prod",
				"instance", fmt.Sprintf("host-%04d:9100", i/50), "job", "node", "region", "eu-1", "zone", "a"),
			Samples: []prompb.Sample{{Value: float64(i + step), Timestamp: nowMs() - 3_600_000 + int64(step)*15_000}},
		}
	}
	return encodeV1(b, series...)
}

// BenchmarkDecodeV1 decodes a 2000-series request into pooled buffers.
func BenchmarkDecodeV1(b *testing.B) {
	raw, err := snappy.Decode(nil, benchRequest(b, 0))
	if err != nil {
		b.Fatal(err)
	}
	var series []prompb.TimeSeries
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if series, err = writepb.DecodeSeries(raw, series); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(series)), "ns/sample")
}

// BenchmarkIngestV1 is the whole local path of one request, HTTP handler to committed
// append, on series the tenant already has (the steady state of a scraping Prometheus).
func BenchmarkIngestV1(b *testing.B) {
	n := newLocalNode(b, HandlerOptions{DefaultTenant: "bench"})
	const steps = 512
	bodies := make([][]byte, steps)
	for i := range bodies {
		bodies[i] = benchRequest(b, i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == steps {
			b.StopTimer() // every step is stored: start over in a fresh tenant
			n = newLocalNode(b, HandlerOptions{DefaultTenant: "bench"})
			i = 0
			b.StartTimer()
		}
		r := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/api/v1/receive", bytes.NewReader(bodies[i]))
		r.Header.Set("Content-Encoding", "snappy")
		w := httptest.NewRecorder()
		n.handler.serveRemoteWrite(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("step %d: %d %s", i, w.Code, w.Body.String())
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/sample")
}

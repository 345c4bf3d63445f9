package promclient

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

// BenchmarkDecodeChunkedReadResponse decodes one frame payload as Prometheus sends it: one
// series with 10 labels and three 120-sample XOR chunks. The interner is shared across
// iterations, as it is across the series of one response.
func BenchmarkDecodeChunkedReadResponse(b *testing.B) {
	ls := lbls(
		"__name__", "http_requests_total", "cluster", "eu-west-1", "code", "200", "handler", "/api/v1/query",
		"instance", "10.0.3.17:9090", "job", "apiserver", "method", "GET", "namespace", "monitoring",
		"pod", "apiserver-7d9f8b6c5-x2k4p", "replica", "0",
	)
	var chks []prompb.Chunk
	for i := range 3 {
		chks = append(chks, xorChunk(b, genSamples(int64(i)*120*15000, 120, float64(i)*1000)))
	}
	payload, err := (&prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{{Labels: ls, Chunks: chks}}}).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	in := newInterner()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := decodeChunkedReadResponse(payload, &in)
		if err != nil {
			b.Fatal(err)
		}
		if len(out) != 1 || len(out[0].Labels) != 10 || len(out[0].Chunks) != 3 {
			b.Fatalf("decoded %d series", len(out))
		}
	}
}

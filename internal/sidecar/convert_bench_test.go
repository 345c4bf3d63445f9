package sidecar

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

var benchExt = labels.FromStrings("cluster", "eu-west-1", "replica", "0")

// benchSeries returns n remote-read series as Prometheus sends them, sorted by their
// stored labels: 10 labels each (8 own plus the 2 external labels merged in) and
// chunksPer XOR chunks of 120 samples.
func benchSeries(n, chunksPer int) []*prompb.ChunkedSeries {
	var samples []prompb.Sample
	for i := range 120 * chunksPer {
		// Realistic counter: mostly regular timestamps, growing values.
		samples = append(samples, prompb.Sample{Timestamp: 1700000000000 + int64(i)*15000 + int64(i%3), Value: float64(i*i%977) + 1e6})
	}
	chks := encodeChunks(samples)
	stored := make([]labels.Labels, n)
	for i := range stored {
		stored[i] = labels.FromStrings(
			"__name__", "http_requests_total",
			"code", []string{"200", "404", "500"}[i%3],
			"handler", fmt.Sprintf("/api/v1/endpoint/%d", i/30),
			"instance", fmt.Sprintf("10.0.%d.%d:9090", i/250, i%250),
			"job", "apiserver",
			"method", []string{"GET", "POST"}[i/3%2],
			"namespace", "monitoring",
			"pod", fmt.Sprintf("apiserver-7d9f8b6c5-%05d", i),
		)
	}
	slices.SortFunc(stored, labels.Compare) // Prometheus sends series sorted by stored labels
	ext := toPromLabels(benchExt)
	out := make([]*prompb.ChunkedSeries, n)
	for i, st := range stored {
		out[i] = &prompb.ChunkedSeries{Labels: promMergeLabels(toPromLabels(st), ext), Chunks: chks}
	}
	return out
}

// streamedBody frames the series as a STREAMED_XOR_CHUNKS response, one series per frame.
func streamedBody(series []*prompb.ChunkedSeries) []byte {
	var body []byte
	for _, s := range series {
		body = append(body, streamFrame(&prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{s}})...)
	}
	return body
}

// BenchmarkRemoteReadToStoreAPI measures the sidecar's Series path from the HTTP
// response body to marshalled StoreAPI frames: decode the streamed remote-read frames
// (promclient over an httptest server serving a pre-built body), convert labels and chunks,
// re-sort, and proto.Marshal each SeriesResponse as the gRPC codec would. Allocations
// include the (small) share of the in-process HTTP server.
func BenchmarkRemoteReadToStoreAPI(b *testing.B) {
	const nSeries, chunksPer = 2000, 3
	series := benchSeries(nSeries, chunksPer)
	body := streamedBody(series)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse")
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	client := promclient.New(u, srv.Client())
	q := &prompb.Query{StartTimestampMs: 0, EndTimestampMs: 1 << 62,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "http_requests_total"}}}

	for _, bc := range []struct {
		name           string
		withoutReplica []string
	}{
		{"ext_labels", nil},
		{"without_replica", []string{"replica"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, stripped := storeapi.StripSet(benchExt, bc.withoutReplica)
			var frameBytes int
			run := func() {
				stream, err := client.RemoteRead(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				conv := newConverter(benchExt, stripped, false)
				var resp storepb.SeriesResponse
				var single storepb.SeriesResponse_Series
				sent := 0
				r := storeapi.NewResorter(0, func(s *storepb.Series) error {
					single.Series = s
					resp.Result = &single
					out, err := proto.Marshal(&resp)
					frameBytes += len(out)
					sent++
					return err
				})
				for stream.Next() {
					s, bound := conv.convert(stream.At())
					if err := r.Push(s, bound); err != nil {
						b.Fatal(err)
					}
				}
				if err := stream.Err(); err != nil {
					b.Fatal(err)
				}
				if err := r.Flush(); err != nil {
					b.Fatal(err)
				}
				_ = stream.Close()
				if sent != nSeries {
					b.Fatalf("sent %d series, want %d", sent, nSeries)
				}
			}
			run() // warm up connection and pools outside the measurement
			frameBytes = 0

			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			iters := 0
			for b.Loop() {
				run()
				iters++
			}
			runtime.ReadMemStats(&after)
			total := float64(iters * nSeries)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/series")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/series")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/series")
			b.ReportMetric(float64(frameBytes)/total, "frameB/series")
		})
	}
}

// BenchmarkConvert measures the converter alone on one 10-label, 3-chunk series.
func BenchmarkConvert(b *testing.B) {
	cs := benchSeries(1, 3)[0]
	raw := &promclient.RawSeries{Labels: cs.Labels}
	for _, c := range cs.Chunks {
		raw.Chunks = append(raw.Chunks, promclient.RawChunk{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Encoding: int32(c.Type), Data: c.Data})
	}
	for _, bc := range []struct {
		name           string
		withoutReplica []string
		skipChunks     bool
	}{
		{"ext_labels", nil, false},
		{"without_replica", []string{"replica"}, false},
		{"skip_chunks", nil, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, stripped := storeapi.StripSet(benchExt, bc.withoutReplica)
			conv := newConverter(benchExt, stripped, bc.skipChunks)
			wantChunks := 3
			if bc.skipChunks {
				wantChunks = 0
			}
			b.ReportAllocs()
			for b.Loop() {
				s, bound := conv.convert(raw)
				if bound != 9 || len(s.Chunks) != wantChunks {
					b.Fatalf("bound %d, %d chunks; want 9 and %d", bound, len(s.Chunks), wantChunks)
				}
			}
		})
	}
}

package federate

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vigilhq/vigil/internal/query"
)

// benchSeries returns n series spread over n/100 metric names, as node exporters' are,
// each scraped every 15s over the last 5m (20 samples in the lookback window).
func benchSeries(n int) []testSeries {
	out := make([]testSeries, 0, n)
	for i := range n {
		ls := labels.FromStrings("__name__", fmt.Sprintf("node_metric_%03d", i/100),
			"instance", fmt.Sprintf("host-%03d.example.net:9100", i%100), "job", "node", "cluster", "eu-west-1", "cpu", fmt.Sprint(i%8))
		pts := make([]point, 0, 20)
		for k := 20; k > 0; k-- {
			pts = append(pts, at(-time.Duration(k)*15*time.Second+time.Second, float64(i*k)))
		}
		out = append(out, testSeries{ls, pts})
	}
	return out
}

// discard is a ResponseWriter that counts the bytes written.
type discard struct {
	h     http.Header
	code  int
	bytes int
}

func (d *discard) Header() http.Header {
	if d.h == nil {
		d.h = http.Header{}
	}
	return d.h
}
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(p []byte) (int, error) { d.bytes += len(p); return len(p), nil }

func benchFederate(b *testing.B, factory query.QueryableFactory, wantSeries int) {
	e := newEnv(b, factory, nil)
	for _, c := range []struct {
		name   string
		header http.Header
	}{
		{"text", http.Header{}},
		{"protobuf", http.Header{"Accept": {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"}}},
		{"text-gzip", http.Header{"Accept-Encoding": {"gzip"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/federate?match[]=%7Bjob%3D%22node%22%7D", nil)
			req.Header = c.header
			var bytes int
			b.ReportAllocs()
			for b.Loop() {
				req.Form = nil // parsed again, as for a new request
				w := &discard{}
				e.h.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
				bytes = w.bytes
			}
			b.ReportMetric(float64(bytes), "bytes/response")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(wantSeries), "ns/series")
		})
	}
}

// BenchmarkFederate federates 10k series straight from a TSDB: the handler's own cost
// (selecting, finding the latest sample, building and encoding the families).
func BenchmarkFederate(b *testing.B) {
	db := openDB(b, benchSeries(10_000)...)
	benchFederate(b, func(query.Options) storage.Queryable { return db }, 10_000)
}

// BenchmarkFederateQuerier federates 10k series held by two replicas through the
// querier's storage: two StoreAPI endpoints over loopback gRPC, the streaming merge and
// deduplication, as `vigil query` answers /federate.
func BenchmarkFederateQuerier(b *testing.B) {
	series := benchSeries(10_000)
	dbs := []*tsdb.DB{openDB(b, series...), openDB(b, series...)}
	ext := []labels.Labels{labels.FromStrings("replica", "a"), labels.FromStrings("replica", "b")}
	benchFederate(b, dedupQuerier(b, dbs, ext), 10_000)
}

package receive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/grpcsnappy"
	"github.com/vigilhq/vigil/internal/hashring"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/writepb"
)

const contentTypeV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// nowMs is a timestamp the TSDB head and the OTLP handler both accept.
func nowMs() int64 { return time.Now().Add(-time.Minute).UnixMilli() }

// newTestTenants opens a Tenants in dir, closed when the test ends.
func newTestTenants(t testing.TB, dir string) *Tenants {
	t.Helper()
	tn, err := NewTenants(testLogger(), prometheus.NewRegistry(), TSDBOptions{
		Dir: dir, TenantLabel: "tenant_id", MaxExemplars: 1000,
	})
	if err != nil {
		t.Fatalf("NewTenants: %v", err)
	}
	t.Cleanup(func() { _ = tn.Close(context.Background(), false) })
	return tn
}

// localNode is one receiver without a hashring, served over HTTP.
type localNode struct {
	dir     string
	tenants *Tenants
	dist    *Distributor
	handler *Handler
	reg     *prometheus.Registry
	url     string // base URL of the HTTP server
}

// newLocalNode builds Tenants, Writer, Distributor (no ring) and Handler in a temp dir.
func newLocalNode(t testing.TB, opts HandlerOptions) *localNode {
	t.Helper()
	n := &localNode{dir: t.TempDir(), reg: prometheus.NewRegistry()}
	n.tenants = newTestTenants(t, n.dir)
	n.dist = NewDistributor(testLogger(), n.reg, NewWriter(n.tenants, opts.Limits), DistributorOptions{})
	n.handler, n.url = serveHTTP(t, n.reg, n.dist, opts)
	return n
}

// serveHTTP serves a Handler over dist on a test HTTP server and returns it with its URL.
func serveHTTP(t testing.TB, reg prometheus.Registerer, dist *Distributor, opts HandlerOptions) (*Handler, string) {
	t.Helper()
	h := NewHandler(testLogger(), reg, dist, opts)
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

// dialWriteable is a WriteableStore client for addr, with the storeapi codec.
func dialWriteable(t testing.TB, addr string) writepb.Client {
	t.Helper()
	cc, err := grpc.NewClient(addr, storeapi.DialOptions(nil, "")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return writepb.NewClient(cc)
}

// post sends body to the node's path with the given headers and returns status, body
// and response headers.
func post(t testing.TB, url string, body []byte, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// rw1Headers are the headers Prometheus sends with a remote-write 1.0 request.
func rw1Headers(tenant string) map[string]string {
	h := map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0"}
	if tenant != "" {
		h[DefaultTenantHeader] = tenant
	}
	return h
}

// writeV1 posts series as remote write 1.0 to tenant and returns the status and body.
func (n *localNode) writeV1(t testing.TB, tenant string, series ...prompb.TimeSeries) (int, string) {
	t.Helper()
	code, body, _ := post(t, n.url+"/api/v1/receive", encodeV1(t, series...), rw1Headers(tenant))
	return code, body
}

// encodeV1 is a snappy-compressed remote-write 1.0 body.
func encodeV1(t testing.TB, series ...prompb.TimeSeries) []byte {
	t.Helper()
	b, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// encodeV2 is the snappy-compressed remote-write 2.0 form of the same series.
func encodeV2(t testing.TB, series ...prompb.TimeSeries) []byte {
	t.Helper()
	st := writev2.NewSymbolTable()
	var req writev2.Request
	var b labels.ScratchBuilder
	for _, s := range series {
		var ts writev2.TimeSeries
		for _, l := range s.Labels { // as received, without sorting, so invalid input stays invalid
			ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(l.Name), st.Symbolize(l.Value))
		}
		for _, smp := range s.Samples {
			ts.Samples = append(ts.Samples, writev2.Sample{Value: smp.Value, Timestamp: smp.Timestamp})
		}
		for _, h := range s.Histograms {
			if h.IsFloatHistogram() {
				ts.Histograms = append(ts.Histograms, writev2.FromFloatHistogram(0, h.Timestamp, h.ToFloatHistogram()))
			} else {
				ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(0, h.Timestamp, h.ToIntHistogram()))
			}
		}
		for _, e := range s.Exemplars {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{
				LabelsRefs: st.SymbolizeLabels(prompbLabels(&b, e.Labels), nil), Value: e.Value, Timestamp: e.Timestamp})
		}
		ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("some help")}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

// lbls builds labels from name/value pairs, as given (not sorted).
func lbls(pairs ...string) []prompb.Label {
	out := make([]prompb.Label, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, prompb.Label{Name: pairs[i], Value: pairs[i+1]})
	}
	return out
}

// floatSeries is a series of float samples at ts, ts+1000, ... with values v, v+1, ...
func floatSeries(name string, ts int64, v float64, n int, extra ...string) prompb.TimeSeries {
	s := prompb.TimeSeries{Labels: lbls(append([]string{"__name__", name}, extra...)...)}
	for i := range n {
		s.Samples = append(s.Samples, prompb.Sample{Timestamp: ts + int64(i)*1000, Value: v + float64(i)})
	}
	return s
}

// testHistogram is a small valid native histogram.
func testHistogram(i int) *histogram.Histogram {
	return &histogram.Histogram{
		Count: uint64(6 + i), ZeroCount: 1, ZeroThreshold: 0.001, Sum: 18.4 + float64(i), Schema: 1,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}},
		PositiveBuckets: []int64{1, 1, int64(i)},
	}
}

// histogramSeries has n integer native histograms, one per second from ts.
func histogramSeries(name string, ts int64, n int) prompb.TimeSeries {
	s := prompb.TimeSeries{Labels: lbls("__name__", name)}
	for i := range n {
		s.Histograms = append(s.Histograms, prompb.FromIntHistogram(ts+int64(i)*1000, testHistogram(i)))
	}
	return s
}

// point is one stored sample: a float, or a histogram rendered as a string.
type point struct {
	T int64
	V float64
	H string
}

// dump reads every series of the tenant's TSDB: labels → points.
func dump(t testing.TB, ts *Tenants, tenant string) map[string][]point {
	t.Helper()
	tn, err := ts.Get(tenant)
	if err != nil {
		t.Fatalf("tenant %q: %v", tenant, err)
	}
	q, err := tn.db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string][]point{}
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for set.Next() {
		s := set.At()
		var pts []point
		it := s.Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				tt, v := it.At()
				pts = append(pts, point{T: tt, V: v})
			default:
				tt, fh := it.AtFloatHistogram(nil)
				fh.CounterResetHint = histogram.UnknownCounterReset // chunk-dependent, not data
				pts = append(pts, point{T: tt, H: fh.String()})
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[s.Labels().String()] = pts
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// mustMatchers selects the series of one metric name.
func mustMatchers(name string) []*labels.Matcher {
	return []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", name)}
}

// countPoints is the number of samples stored for the tenant.
func countPoints(t testing.TB, ts *Tenants, tenant string) int {
	t.Helper()
	n := 0
	for _, pts := range dump(t, ts, tenant) {
		n += len(pts)
	}
	return n
}

// expected is what dump should return after writing series (valid, in order).
func expected(series ...prompb.TimeSeries) map[string][]point {
	out := map[string][]point{}
	var b labels.ScratchBuilder
	for _, s := range series {
		var pts []point
		for _, smp := range s.Samples {
			pts = append(pts, point{T: smp.Timestamp, V: smp.Value})
		}
		for _, h := range s.Histograms {
			var fh *histogram.FloatHistogram
			if h.IsFloatHistogram() {
				fh = h.ToFloatHistogram()
			} else {
				fh = h.ToIntHistogram().ToFloat(nil)
			}
			fh.CounterResetHint = histogram.UnknownCounterReset
			pts = append(pts, point{T: h.Timestamp, H: fh.String()})
		}
		slices.SortFunc(pts, func(a, b point) int { return int(a.T - b.T) })
		out[s.ToLabels(&b, nil).String()] = pts
	}
	return out
}

// diffDumps describes the differences between two dumps, "" when equal.
func diffDumps(got, want map[string][]point) string {
	var sb strings.Builder
	for k, w := range want {
		if g, ok := got[k]; !ok {
			fmt.Fprintf(&sb, "missing series %s\n", k)
		} else if !slices.Equal(g, w) {
			fmt.Fprintf(&sb, "series %s: got %v, want %v\n", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&sb, "unexpected series %s\n", k)
		}
	}
	return sb.String()
}

// eventually polls cond until it returns "" or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ringNode is one receiver of an in-process cluster, serving WriteableStore over gRPC.
type ringNode struct {
	addr    string
	tenants *Tenants
	dist    *Distributor
	srv     *grpc.Server
}

// newCluster starts n receivers on loopback gRPC servers, sharing one hashmod ring with
// replication factor rf.
func newCluster(t testing.TB, n, rf int) []*ringNode {
	t.Helper()
	grpcsnappy.Register()
	nodes := make([]*ringNode, n)
	lns := make([]net.Listener, n)
	var eps []hashring.Endpoint
	for i := range nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		nodes[i] = &ringNode{addr: ln.Addr().String()}
		eps = append(eps, hashring.Endpoint{Address: nodes[i].addr})
	}
	ring, err := hashring.New([]hashring.Config{{Endpoints: eps}}, hashring.AlgorithmHashmod)
	if err != nil {
		t.Fatal(err)
	}
	for i, nd := range nodes {
		reg := prometheus.NewRegistry()
		nd.tenants = newTestTenants(t, t.TempDir())
		nd.dist = NewDistributor(testLogger(), reg, NewWriter(nd.tenants, nil), DistributorOptions{
			LocalEndpoint: nd.addr, ReplicationFactor: rf, ForwardTimeout: 3 * time.Second,
			DialOptions: storeapi.DialOptions(nil, grpcsnappy.Name),
		})
		if err := nd.dist.SetRing(ring); err != nil {
			t.Fatal(err)
		}
		nd.srv = grpc.NewServer(grpc.ForceServerCodecV2(storeapi.Codec()))
		writepb.RegisterWriteableStoreServer(nd.srv, GRPCServer{D: nd.dist, DefaultTenant: "default-tenant"})
		go func() { _ = nd.srv.Serve(lns[i]) }()
		t.Cleanup(func() {
			nd.srv.Stop()
			_ = nd.dist.Close()
		})
	}
	return nodes
}

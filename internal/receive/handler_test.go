package receive

import (
	"context"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// mixedSeries are floats, an integer native histogram, a float native histogram and an
// exemplar, at timestamps from ts.
func mixedSeries(ts int64) []prompb.TimeSeries {
	fl := floatSeries("http_requests_total", ts, 10, 3, "code", "200", "job", "api")
	fl.Exemplars = []prompb.Exemplar{{Labels: lbls("trace_id", "abc123"), Value: 11, Timestamp: ts + 1000}}
	fh := prompb.TimeSeries{Labels: lbls("__name__", "latency_float_hist")}
	for i := range 2 {
		fh.Histograms = append(fh.Histograms, prompb.FromFloatHistogram(ts+int64(i)*1000, testHistogram(i).ToFloat(nil)))
	}
	return []prompb.TimeSeries{
		fl,
		floatSeries("up", ts, 1, 2, "instance", "a:9090", "job", "api"),
		histogramSeries("latency_hist", ts, 3),
		fh,
	}
}

func exemplarCount(t *testing.T, ts *Tenants, tenant string) int {
	t.Helper()
	tn, err := ts.Get(tenant)
	if err != nil {
		t.Fatal(err)
	}
	eq, err := tn.db.ExemplarQuerier(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := eq.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range res {
		for _, e := range r.Exemplars {
			if e.Labels.Get("trace_id") != "abc123" {
				t.Errorf("exemplar labels %s, want trace_id=abc123", e.Labels)
			}
			n++
		}
	}
	return n
}

func TestRemoteWriteV1Stored(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant"})
	in := mixedSeries(nowMs())
	if code, body := n.writeV1(t, "team-a", in...); code != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", code, body)
	}
	if d := diffDumps(dump(t, n.tenants, "team-a"), expected(in...)); d != "" {
		t.Fatal(d)
	}
	if got := exemplarCount(t, n.tenants, "team-a"); got != 1 {
		t.Errorf("%d exemplars stored, want 1", got)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "team-a")); err != nil {
		t.Errorf("tenant directory: %v", err)
	}
}

func TestRemoteWriteV2StoredLikeV1(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{})
	in := mixedSeries(nowMs())
	code, body, hdr := post(t, n.url+"/api/v1/receive", encodeV2(t, in...), map[string]string{
		"Content-Type": contentTypeV2, "Content-Encoding": "snappy", DefaultTenantHeader: "v2",
		"X-Prometheus-Remote-Write-Version": "2.0.0",
	})
	if code != http.StatusNoContent {
		t.Fatalf("status %d (%s), want 204", code, body)
	}
	for h, want := range map[string]string{
		"X-Prometheus-Remote-Write-Samples-Written":    "5",
		"X-Prometheus-Remote-Write-Histograms-Written": "5",
		"X-Prometheus-Remote-Write-Exemplars-Written":  "1",
	} {
		if got := hdr.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if code, body := n.writeV1(t, "v1", in...); code != http.StatusOK {
		t.Fatalf("v1 status %d (%s)", code, body)
	}
	v1, v2 := dump(t, n.tenants, "v1"), dump(t, n.tenants, "v2")
	if d := diffDumps(v2, v1); d != "" {
		t.Errorf("2.0 stored differently from 1.0:\n%s", d)
	}
	if d := diffDumps(v2, expected(in...)); d != "" {
		t.Error(d)
	}
	if got := exemplarCount(t, n.tenants, "v2"); got != 1 {
		t.Errorf("%d exemplars stored from 2.0, want 1", got)
	}
}

func TestRemoteWriteV2Errors(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant"})
	h := map[string]string{"Content-Type": contentTypeV2, "Content-Encoding": "snappy"}
	bad := writev2.Request{Symbols: []string{"", "__name__", "x"}, Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 7}, Samples: []writev2.Sample{{Value: 1, Timestamp: nowMs()}}},
	}}
	odd := writev2.Request{Symbols: []string{"", "__name__", "x"}, Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 2, 1}, Samples: []writev2.Sample{{Value: 1, Timestamp: nowMs()}}},
	}}
	for name, req := range map[string]*writev2.Request{"reference out of the symbols": &bad, "odd references": &odd} {
		raw, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		code, body, hdr := post(t, n.url+"/api/v1/receive", snappy.Encode(nil, raw), h)
		if code != http.StatusBadRequest {
			t.Errorf("%s: status %d (%s), want 400", name, code, body)
		}
		if got := hdr.Get("X-Prometheus-Remote-Write-Samples-Written"); got != "0" {
			t.Errorf("%s: samples written header %q, want 0", name, got)
		}
	}
	// A 2.0 request refused with a conflict still stores the rest, answers 409 and
	// reports nothing written.
	ts := nowMs()
	if code, _ := n.writeV1(t, "default-tenant", floatSeries("a", ts, 1, 2)); code != http.StatusOK {
		t.Fatal(code)
	}
	code, body, hdr := post(t, n.url+"/api/v1/receive", encodeV2(t, floatSeries("a", ts-5000, 1, 1), floatSeries("b", ts, 1, 1)), h)
	if code != http.StatusConflict {
		t.Fatalf("status %d (%s), want 409", code, body)
	}
	if got := hdr.Get("X-Prometheus-Remote-Write-Samples-Written"); got != "0" {
		t.Errorf("samples written header %q on 409, want 0", got)
	}
	if got := countPoints(t, n.tenants, "default-tenant"); got != 3 {
		t.Errorf("%d points stored, want 3", got)
	}
}

func TestEmptyAndMetadataOnlyRequests(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant"})
	meta, err := (&prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "h"}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"empty": snappy.Encode(nil, nil), "metadata only": snappy.Encode(nil, meta)} {
		code, resp, _ := post(t, n.url+"/api/v1/receive", body, rw1Headers(""))
		if code != http.StatusOK {
			t.Errorf("%s: status %d (%s), want 200", name, code, resp)
		}
	}
}

// TestBadRequestsStoreNothing sends each malformed request to a receiver holding data
// and checks its status and that the stored data did not change.
func TestBadRequestsStoreNothing(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant"})
	ts := nowMs()
	base := mixedSeries(ts)
	if code, _ := n.writeV1(t, "default-tenant", base...); code != http.StatusOK {
		t.Fatal(code)
	}
	before := countPoints(t, n.tenants, "default-tenant")
	valid := encodeV1(t, floatSeries("new_series", ts, 1, 1))
	raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{floatSeries("new_series", ts, 1, 1)}}).Marshal()
	cases := []struct {
		name   string
		method string
		body   []byte
		hdr    map[string]string
		want   int
	}{
		{"garbage", "", []byte("\xff\xff\xff\xff\xff this is not snappy"), rw1Headers(""), 400},
		{"valid snappy, garbage proto", "", snappy.Encode(nil, []byte("\x0a\xff\xff\xff\x0f garbage")), rw1Headers(""), 400},
		{"protobuf without snappy", "", raw, rw1Headers(""), 400},
		{"truncated snappy", "", valid[:len(valid)-3], rw1Headers(""), 400},
		{"unsupported content type", "", valid, map[string]string{"Content-Type": "application/json", "Content-Encoding": "snappy"}, 415},
		{"unsupported proto", "", valid, map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request", "Content-Encoding": "snappy"}, 415},
		{"unsupported encoding", "", valid, map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, 415},
		{"GET", http.MethodGet, nil, nil, 405},
		{"PUT", http.MethodPut, valid, rw1Headers(""), 405},
		{"tenant ../x", "", valid, rw1Headers("../x"), 400},
		{"tenant a/b", "", valid, rw1Headers("a/b"), 400},
		{"tenant ..", "", valid, rw1Headers(".."), 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code := 0
			if tc.method == "" {
				code, _, _ = post(t, n.url+"/api/v1/receive", tc.body, tc.hdr)
			} else {
				req, _ := http.NewRequest(tc.method, n.url+"/api/v1/receive", strings.NewReader(string(tc.body)))
				for k, v := range tc.hdr {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				code = resp.StatusCode
				if code == 405 && resp.Header.Get("Allow") != http.MethodPost {
					t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
				}
			}
			if code != tc.want {
				t.Errorf("status %d, want %d", code, tc.want)
			}
			if after := countPoints(t, n.tenants, "default-tenant"); after != before {
				t.Errorf("stored points changed from %d to %d", before, after)
			}
			if _, ok := dump(t, n.tenants, "default-tenant")[`{__name__="new_series"}`]; ok {
				t.Error("series of a refused request was stored")
			}
		})
	}
	// "../x" must not have created anything outside (or inside) --tsdb.path.
	for _, p := range []string{filepath.Join(n.dir, "..", "x"), filepath.Join(n.dir, "a")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after refused tenants (err %v)", p, err)
		}
	}
	if d := diffDumps(dump(t, n.tenants, "default-tenant"), expected(base...)); d != "" {
		t.Error(d)
	}
}

func TestNotReady(t *testing.T) {
	var ready atomic.Bool
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant", Ready: ready.Load})
	s := floatSeries("up", nowMs(), 1, 1)
	if code, _ := n.writeV1(t, "", s); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := n.writeV1(t, "", s); code != http.StatusOK {
		t.Fatalf("status %d once ready, want 200", code)
	}
	if got := countPoints(t, n.tenants, "default-tenant"); got != 1 {
		t.Fatalf("%d points, want 1", got)
	}
}

// TestConflictsStoreTheRest: out-of-order and duplicate samples get 409, and the other
// series and samples of the same request are stored.
func TestConflictsStoreTheRest(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "t"})
	ts := nowMs()
	a := floatSeries("a", ts, 1, 3) // ts, ts+1s, ts+2s
	if code, _ := n.writeV1(t, "t", a); code != http.StatusOK {
		t.Fatal(code)
	}
	cases := []struct {
		name string
		bad  prompb.TimeSeries
	}{
		{"out of order", prompb.TimeSeries{Labels: a.Labels, Samples: []prompb.Sample{{Timestamp: ts + 1500, Value: 7}}}},
		{"duplicate timestamp, other value", prompb.TimeSeries{Labels: a.Labels, Samples: []prompb.Sample{{Timestamp: ts + 2000, Value: 99}}}},
		{"out of order histogram", prompb.TimeSeries{Labels: lbls("__name__", "a"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(ts, testHistogram(0))}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := countPoints(t, n.tenants, "t")
			good := floatSeries("b", ts+int64(i)*10_000, 5, 2, "case", tc.name)
			code, body := n.writeV1(t, "t", tc.bad, good)
			if code != http.StatusConflict {
				t.Fatalf("status %d (%s), want 409", code, body)
			}
			if after := countPoints(t, n.tenants, "t"); after != before+2 {
				t.Errorf("points %d → %d, want the 2 valid ones added", before, after)
			}
			got := dump(t, n.tenants, "t")
			if d := diffDumps(map[string][]point{`{__name__="a"}`: got[`{__name__="a"}`]}, expected(a)); d != "" {
				t.Errorf("conflicting series changed: %s", d)
			}
		})
	}
	// Resending the newest stored sample unchanged is not a conflict.
	last := prompb.TimeSeries{Labels: a.Labels, Samples: a.Samples[2:]}
	if code, body := n.writeV1(t, "t", last); code != http.StatusOK {
		t.Errorf("resending stored samples: status %d (%s), want 200", code, body)
	}
}

// TestInvalidLabelsStoreTheRest: invalid label sets get 400 and the valid series of the
// same request are stored.
func TestInvalidLabelsStoreTheRest(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "t"})
	ts := nowMs()
	cases := []struct {
		name string
		ls   []prompb.Label
	}{
		{"unsorted", lbls("__name__", "x", "job", "a", "instance", "b")},
		{"duplicate name", lbls("__name__", "x", "job", "a", "job", "b")},
		{"no labels", nil},
		{"empty value", lbls("__name__", "x", "job", "")},
		{"empty name", lbls("", "v", "__name__", "x")},
		{"invalid UTF-8 value", lbls("__name__", "x", "job", "\xff\xfe")},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := countPoints(t, n.tenants, "t")
			bad := prompb.TimeSeries{Labels: tc.ls, Samples: []prompb.Sample{{Timestamp: ts, Value: 1}}}
			good := floatSeries("good", ts+int64(i)*10_000, 1, 2)
			code, body := n.writeV1(t, "t", bad, good)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d (%s), want 400", code, body)
			}
			if after := countPoints(t, n.tenants, "t"); after != before+2 {
				t.Errorf("points %d → %d, want the 2 valid ones added", before, after)
			}
			if got := len(dump(t, n.tenants, "t")); got != 1 {
				t.Errorf("%d series stored, want only the valid one", got)
			}
		})
	}
}

func TestTenantLookupOrder(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{TenantHeader: "X-Scope-OrgID", DefaultTenant: "fallback"})
	ts := nowMs()
	send := func(name string, hdr map[string]string) {
		t.Helper()
		h := rw1Headers("")
		for k, v := range hdr {
			h[k] = v
		}
		if code, body, _ := post(t, n.url+"/api/v1/receive", encodeV1(t, floatSeries(name, ts, 1, 1)), h); code != http.StatusOK {
			t.Fatalf("%s: status %d (%s)", name, code, body)
		}
	}
	send("both", map[string]string{"X-Scope-OrgID": "configured", DefaultTenantHeader: "thanos"})
	send("thanos_only", map[string]string{DefaultTenantHeader: "thanos"})
	send("none", nil)
	want := map[string]string{"configured": `{__name__="both"}`, "thanos": `{__name__="thanos_only"}`, "fallback": `{__name__="none"}`}
	for tenant, series := range want {
		got := dump(t, n.tenants, tenant)
		if len(got) != 1 || got[series] == nil {
			t.Errorf("tenant %q holds %v, want only %s", tenant, got, series)
		}
	}
	entries, _ := os.ReadDir(n.dir)
	if len(entries) != 3 {
		t.Errorf("%d tenant directories, want 3", len(entries))
	}
}

// TestInvalidHistogramStoresTheRest: a native histogram the TSDB refuses as invalid can
// never be stored, so it gets a 4xx (not a retried 5xx), and the rest of the request is
// stored.
func TestInvalidHistogramStoresTheRest(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "t"})
	ts := nowMs()
	h := testHistogram(0)
	h.PositiveBuckets = h.PositiveBuckets[:1] // spans say 3 buckets
	bad := prompb.TimeSeries{Labels: lbls("__name__", "bad_hist"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(ts, h)}}
	good := floatSeries("good", ts, 1, 2)
	code, body := n.writeV1(t, "t", good, bad)
	stored := countPoints(t, n.tenants, "t")
	if code >= 500 || stored != 2 {
		t.Fatalf("an invalid histogram beside valid samples: %d of 2 valid points stored, answered %d (%s)", stored, code, strings.TrimSpace(body))
	}
	if code != http.StatusBadRequest {
		t.Errorf("status %d (%s), want 400", code, body)
	}
}

package receive

import (
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// otlpMetrics is a gauge in bytes and a monotonic cumulative counter of a service, with
// one data point each at ts (and an exemplar on the counter).
func otlpMetrics(ts time.Time, v float64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	rm.Resource().Attributes().PutStr("service.instance.id", "pod-1")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()

	g := ms.AppendEmpty()
	g.SetName("process.memory.usage")
	g.SetUnit("By")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetDoubleValue(v)

	c := ms.AppendEmpty()
	c.SetName("http.server.requests")
	c.SetUnit("{request}")
	sum := c.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	cp := sum.DataPoints().AppendEmpty()
	cp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	cp.SetIntValue(int64(v))
	cp.Attributes().PutStr("http.method", "GET")
	ex := cp.Exemplars().AppendEmpty()
	ex.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	ex.SetIntValue(1)
	ex.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	return md
}

func otlpBody(t testing.TB, md pmetric.Metrics, json bool) ([]byte, string) {
	t.Helper()
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	if json {
		b, err := req.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b, "application/json"
	}
	b, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b, "application/x-protobuf"
}

func postOTLP(t testing.TB, n *localNode, tenant string, body []byte, ct string) (int, string) {
	t.Helper()
	h := map[string]string{"Content-Type": ct}
	if tenant != "" {
		h[DefaultTenantHeader] = tenant
	}
	code, resp, _ := post(t, n.url+"/api/v1/otlp", body, h)
	return code, resp
}

func TestOTLPStoredUnderPrometheusNames(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant"})
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for _, enc := range []struct {
		name   string
		json   bool
		tenant string
	}{{"protobuf", false, "otlp-pb"}, {"json", true, "otlp-json"}} {
		t.Run(enc.name, func(t *testing.T) {
			body, ct := otlpBody(t, otlpMetrics(ts, 42), enc.json)
			if code, resp := postOTLP(t, n, enc.tenant, body, ct); code != http.StatusOK {
				t.Fatalf("status %d (%s), want 200", code, resp)
			}
			got := dump(t, n.tenants, enc.tenant)
			want := map[string]point{
				`{__name__="process_memory_usage_bytes", instance="pod-1", job="checkout"}`:                    {T: ts.UnixMilli(), V: 42},
				`{__name__="http_server_requests_total", http_method="GET", instance="pod-1", job="checkout"}`: {T: ts.UnixMilli(), V: 42},
			}
			for k, p := range want {
				if pts := got[k]; len(pts) != 1 || pts[0] != p {
					t.Errorf("series %s: got %v, want [%v]; stored: %v", k, pts, p, got)
				}
			}
		})
	}
	// Both encodings store the same series.
	if d := diffDumps(dump(t, n.tenants, "otlp-json"), dump(t, n.tenants, "otlp-pb")); d != "" {
		t.Error(d)
	}
	// The other endpoint path is the same handler.
	body, ct := otlpBody(t, otlpMetrics(ts.Add(time.Second), 43), false)
	code, resp, _ := post(t, n.url+"/api/v1/otlp/v1/metrics", body, map[string]string{"Content-Type": ct})
	if code != http.StatusOK {
		t.Fatalf("/api/v1/otlp/v1/metrics: status %d (%s)", code, resp)
	}
	if got := len(dump(t, n.tenants, "default-tenant")); got < 2 {
		t.Errorf("default tenant holds %d series, want at least 2", got)
	}
}

func TestOTLPStatusCodes(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant", Ready: ready.Load,
		Limits: mustLimits(t, "write:\n  tenants:\n    one:\n      request:\n        series_limit: 1\n")})
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	good, ct := otlpBody(t, otlpMetrics(ts, 1), false)
	if code, resp := postOTLP(t, n, "", good, ct); code != http.StatusOK {
		t.Fatalf("status %d (%s)", code, resp)
	}
	before := countPoints(t, n.tenants, "default-tenant")
	older, _ := otlpBody(t, otlpMetrics(ts.Add(-time.Second), 2), false)
	cases := []struct {
		name, tenant, ct string
		body             []byte
		want             []int
	}{
		{"garbage protobuf", "", "application/x-protobuf", []byte("\xff\xff\xff\xff garbage"), []int{400}},
		{"garbage json", "", "application/json", []byte(`{"resourceMetrics": [`), []int{400}},
		{"unsupported content type", "", "text/plain", good, []int{400, 415}},
		{"bad tenant", "../x", ct, good, []int{400}},
		{"out of order", "", ct, older, []int{409}},
		{"over the series limit", "one", ct, good, []int{413}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := postOTLP(t, n, tc.tenant, tc.body, tc.ct)
			if !slices.Contains(tc.want, code) {
				t.Errorf("status %d (%s), want %d", code, resp, tc.want)
			}
			if after := countPoints(t, n.tenants, "default-tenant"); after != before {
				t.Errorf("stored points %d → %d", before, after)
			}
		})
	}
	ready.Store(false)
	if code, resp := postOTLP(t, n, "", good, ct); code != http.StatusServiceUnavailable {
		t.Errorf("not ready: status %d (%s), want 503", code, resp)
	}
	ready.Store(true)
	req, _ := http.NewRequest(http.MethodGet, n.url+"/api/v1/otlp", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", resp.StatusCode)
	}
}

func TestOTLPSizeLimit413(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant",
		Limits: mustLimits(t, "write:\n  default:\n    request:\n      size_bytes_limit: 64\n")})
	body, ct := otlpBody(t, otlpMetrics(time.Now(), 1), false)
	if code, resp := postOTLP(t, n, "", body, ct); code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d (%s), want 413", code, resp)
	}
}

// TestOTLPRequestMetricCode: the requests counter is labelled with numeric codes for
// every protocol, so that one query covers them all.
func TestOTLPRequestMetricCode(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant"})
	body, ct := otlpBody(t, otlpMetrics(time.Now().Add(-time.Minute), 1), false)
	if code, _ := postOTLP(t, n, "", body, ct); code != http.StatusOK {
		t.Fatal(code)
	}
	if got := testutil.ToFloat64(n.handler.requests.WithLabelValues("otlp", "200")); got != 1 {
		t.Errorf("requests{protocol=otlp,code=200} = %v, want 1", got)
	}
}

// TestOTLPUntranslatableMetricNot5xx: a request the translator refuses (a metric without
// a type, a delta counter) is the client's fault and must not be answered 5xx, which
// the OTLP exporter retries forever.
func TestOTLPUntranslatableMetricNot5xx(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant"})
	typeless := []byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x"}]}]}]}`)
	md := otlpMetrics(time.Now().Add(-time.Minute), 1)
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(1).Sum().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	delta, _ := otlpBody(t, md, true)
	nameless := []byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"aggregationTemporality":2,"dataPoints":[{"asDouble":1}]}}]}]}]}`)
	for name, body := range map[string][]byte{"metric without a type": typeless, "delta counter": delta, "metric without a name": nameless} {
		code, resp := postOTLP(t, n, "", body, "application/json")
		if code >= 500 {
			t.Errorf("%s: status %d (%s), want < 500", name, code, resp)
		}
	}
}

func TestOTLPExemplarsStored(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "default-tenant"})
	body, ct := otlpBody(t, otlpMetrics(time.Now().Add(-time.Minute), 1), false)
	if code, resp := postOTLP(t, n, "", body, ct); code != http.StatusOK {
		t.Fatalf("status %d (%s)", code, resp)
	}
	tn, _ := n.tenants.Get("default-tenant")
	eq, err := tn.db.ExemplarQuerier(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res, err := eq.Select(0, time.Now().UnixMilli()+1, mustMatchers("http_server_requests_total"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 || len(res[0].Exemplars) == 0 {
		t.Fatal("OTLP exemplars were not stored")
	}
	if got := res[0].Exemplars[0].Labels.Get("trace_id"); got != "0102030405060708090a0b0c0d0e0f10" {
		t.Errorf("exemplar trace_id %q", got)
	}
}

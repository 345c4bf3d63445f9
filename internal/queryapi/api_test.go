package queryapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	upVector = `{"status":"success","data":{"resultType":"vector","result":[` +
		`{"metric":{"__name__":"up","instance":"a:9090","job":"prom"},"value":[1700000600,"1"]},` +
		`{"metric":{"__name__":"up","instance":"b:9090","job":"prom","replica":"r1"},"value":[1700000600,"0"]}]}}`
	requestsMatrix = `{"status":"success","data":{"resultType":"matrix","result":[` +
		`{"metric":{"__name__":"http_requests_total","code":"200","job":"api"},` +
		`"values":[[1700000000,"0"],[1700000015,"10"],[1700000030,"20"],[1700000045,"30"],[1700000060,"40"]]}]}}`
)

func TestQueryInstantVector(t *testing.T) {
	f := newFixture(t, nil, nil)
	params := vals("query", "up", "time", "1700000600")

	code, body := f.get(t, "/api/v1/query", params)
	expect(t, code, body, 200, upVector)

	code, body = f.post(t, "/api/v1/query", params)
	expect(t, code, body, 200, upVector)

	// Parameters may be split between the query string and the body.
	resp, err := http.Post(f.srv.URL+"/api/v1/query?time=1700000600", "application/x-www-form-urlencoded", strings.NewReader("query=up"))
	if err != nil {
		t.Fatal(err)
	}
	code, body = readResponse(t, resp)
	expect(t, code, body, 200, upVector)
}

func TestQueryMillisecondTimestamps(t *testing.T) {
	f := newFixture(t, nil, nil)
	code, body := f.get(t, "/api/v1/query", vals("query", `up{instance="a:9090"}`, "time", "1700000600.5"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"up","instance":"a:9090","job":"prom"},"value":[1700000600.500,"1"]}]}}`)

	// RFC 3339 is accepted too, and fractions are rounded to milliseconds.
	code, body = f.get(t, "/api/v1/query", vals("query", `up{instance="a:9090"}`, "time", "2023-11-14T22:23:20.0071Z"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"up","instance":"a:9090","job":"prom"},"value":[1700000600.007,"1"]}]}}`)
}

func TestQueryScalarAndString(t *testing.T) {
	f := newFixture(t, nil, nil)
	code, body := f.get(t, "/api/v1/query", vals("query", "1.5", "time", "1700000600.5"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"scalar","result":[1700000600.5,"1.5"]}}`)

	code, body = f.get(t, "/api/v1/query", vals("query", "-Inf", "time", "1700000600"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"scalar","result":[1700000600,"-Inf"]}}`)

	code, body = f.get(t, "/api/v1/query", vals("query", `"a <b> & \"c\""`, "time", "1700000600.25"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"string","result":[1700000600.25,"a \u003cb\u003e \u0026 \"c\""]}}`)
}

func TestQueryLabelEscapingAndSmallValues(t *testing.T) {
	f := newFixture(t, nil, nil)
	code, body := f.get(t, "/api/v1/query", vals("query", "weird", "time", "1700000600"))
	// Label values keep <, > and & and non-ASCII as they are; values below 1e-6 use 'e'.
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"weird","path":"/a<b>&\"q\"\n\\ é"},"value":[1700000600,"1.5e-07"]}]}}`)
}

func TestQueryNativeHistogram(t *testing.T) {
	f := newFixture(t, nil, nil)
	const h = `{"count":"5","sum":"10.5","buckets":[[1,"-1","-0.5","1"],[3,"-0.001","0.001","1"],[0,"0.5","1","2"],[0,"1","2","1"]]}`
	code, body := f.get(t, "/api/v1/query", vals("query", "native_hist", "time", "1700000600"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"native_hist","job":"h"},"histogram":[1700000600,`+h+`]}]}}`)

	code, body = f.get(t, "/api/v1/query_range", vals("query", "native_hist", "start", "1700000000", "end", "1700000015", "step", "15"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"matrix","result":[`+
		`{"metric":{"__name__":"native_hist","job":"h"},"histograms":[[1700000000,`+h+`],[1700000015,`+h+`]]}]}}`)
}

func TestQueryRangeMatrix(t *testing.T) {
	f := newFixture(t, nil, nil)
	params := vals("query", "http_requests_total", "start", "1700000000", "end", "1700000060", "step", "15")
	code, body := f.get(t, "/api/v1/query_range", params)
	expect(t, code, body, 200, requestsMatrix)
	code, body = f.post(t, "/api/v1/query_range", params)
	expect(t, code, body, 200, requestsMatrix)

	// Durations are accepted for step, RFC 3339 for start and end.
	code, body = f.get(t, "/api/v1/query_range", vals("query", "http_requests_total",
		"start", "2023-11-14T22:13:20Z", "end", "2023-11-14T22:14:20Z", "step", "15s"))
	expect(t, code, body, 200, requestsMatrix)
}

// points decodes a matrix response and returns the number of points of each series
// and the distance between the first two.
func points(t *testing.T, body string) (int, float64) {
	t.Helper()
	var resp struct {
		Data struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(resp.Data.Result) == 0 || len(resp.Data.Result[0].Values) < 2 {
		t.Fatalf("want a matrix with at least two points: %s", body)
	}
	v := resp.Data.Result[0].Values
	return len(v), v[1][0].(float64) - v[0][0].(float64)
}

func TestQueryRangeDefaultStep(t *testing.T) {
	f := newFixture(t, nil, nil)
	// 600s / 250 = 2s (integer seconds), above DefaultStep=1s.
	code, body := f.get(t, "/api/v1/query_range", vals("query", "up", "start", "1700000000", "end", "1700000600"))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if n, step := points(t, body); n != 301 || step != 2 {
		t.Errorf("got %d points %vs apart, want 301 points 2s apart", n, step)
	}
	// 100s / 250 = 0 → DefaultStep (1s).
	_, body = f.get(t, "/api/v1/query_range", vals("query", "up", "start", "1700000000", "end", "1700000100"))
	if n, step := points(t, body); n != 101 || step != 1 {
		t.Errorf("got %d points %vs apart, want 101 points 1s apart", n, step)
	}

	g := newFixture(t, nil, func(c *Config) { c.DefaultStep = time.Minute })
	_, body = g.get(t, "/api/v1/query_range", vals("query", "up", "start", "1700000000", "end", "1700000600"))
	if n, step := points(t, body); n != 11 || step != 60 {
		t.Errorf("got %d points %vs apart, want 11 points 60s apart", n, step)
	}
}

func TestQueryLimit(t *testing.T) {
	f := newFixture(t, nil, nil)
	code, body := f.get(t, "/api/v1/query", vals("query", "up", "time", "1700000600", "limit", "1"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"up","instance":"a:9090","job":"prom"},"value":[1700000600,"1"]}]},`+
		`"warnings":["results truncated due to limit"]}`)
}

func TestWarningsAndInfos(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.rec.Warning = "store a:10901 unavailable"
	code, body := f.get(t, "/api/v1/query", vals("query", `up{instance="a:9090"}`, "time", "1700000600"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"up","instance":"a:9090","job":"prom"},"value":[1700000600,"1"]}]},`+
		`"warnings":["store a:10901 unavailable"]}`)

	f.rec.Warning = ""
	code, body = f.get(t, "/api/v1/query", vals("query", `rate(up{instance="a:9090"}[1m])`, "time", "1700000600"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"instance":"a:9090","job":"prom"},"value":[1700000600,"0"]}]},`+
		`"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"]}`)
}

func TestSeries(t *testing.T) {
	f := newFixture(t, nil, nil)
	const both = `{"status":"success","data":[` +
		`{"__name__":"up","instance":"a:9090","job":"prom"},` +
		`{"__name__":"up","instance":"b:9090","job":"prom","replica":"r1"}]}`
	code, body := f.get(t, "/api/v1/series", vals("match[]", "up"))
	expect(t, code, body, 200, both)
	code, body = f.post(t, "/api/v1/series", vals("match[]", "up", "start", "1700000000", "end", "1700000600"))
	expect(t, code, body, 200, both)

	// Several match[] are merged and de-duplicated.
	code, body = f.get(t, "/api/v1/series", vals("match[]", `up{instance="a:9090"}`, "match[]", "up", "match[]", `{job="api"}`))
	expect(t, code, body, 200, `{"status":"success","data":[`+
		`{"__name__":"http_requests_total","code":"200","job":"api"},`+
		`{"__name__":"up","instance":"a:9090","job":"prom"},`+
		`{"__name__":"up","instance":"b:9090","job":"prom","replica":"r1"}]}`)

	code, body = f.get(t, "/api/v1/series", vals("match[]", "up", "limit", "1"))
	expect(t, code, body, 200, `{"status":"success","data":[{"__name__":"up","instance":"a:9090","job":"prom"}],"warnings":["results truncated due to limit"]}`)

	code, body = f.get(t, "/api/v1/series", vals("match[]", "nothing"))
	expect(t, code, body, 200, `{"status":"success","data":[]}`)

	// Series outside the time range are not returned.
	code, body = f.get(t, "/api/v1/series", vals("match[]", "up", "start", "1600000000", "end", "1600000600"))
	expect(t, code, body, 200, `{"status":"success","data":[]}`)
}

func TestLabels(t *testing.T) {
	f := newFixture(t, nil, nil)
	code, body := f.get(t, "/api/v1/labels", nil)
	expect(t, code, body, 200, `{"status":"success","data":["__name__","code","instance","job","path","replica"]}`)
	code, body = f.post(t, "/api/v1/labels", vals("match[]", "up"))
	expect(t, code, body, 200, `{"status":"success","data":["__name__","instance","job","replica"]}`)
	code, body = f.get(t, "/api/v1/labels", vals("match[]", `up{instance="a:9090"}`, "match[]", `{job="api"}`))
	expect(t, code, body, 200, `{"status":"success","data":["__name__","code","instance","job"]}`)
	code, body = f.get(t, "/api/v1/labels", vals("limit", "2"))
	expect(t, code, body, 200, `{"status":"success","data":["__name__","code"],"warnings":["results truncated due to limit"]}`)
	code, body = f.get(t, "/api/v1/labels", vals("match[]", "nothing"))
	expect(t, code, body, 200, `{"status":"success","data":[]}`)
}

func TestLabelValues(t *testing.T) {
	f := newFixture(t, nil, nil)
	code, body := f.get(t, "/api/v1/label/job/values", nil)
	expect(t, code, body, 200, `{"status":"success","data":["api","h","prom"]}`)
	code, body = f.post(t, "/api/v1/label/__name__/values", nil)
	expect(t, code, body, 200, `{"status":"success","data":["http_requests_total","native_hist","up","weird"]}`)
	code, body = f.get(t, "/api/v1/label/instance/values", vals("match[]", `up{replica="r1"}`, "match[]", `up{instance="a:9090"}`))
	expect(t, code, body, 200, `{"status":"success","data":["a:9090","b:9090"]}`)
	code, body = f.get(t, "/api/v1/label/path/values", nil)
	// Label values in a plain string list are HTML-escaped like any other JSON string.
	expect(t, code, body, 200, `{"status":"success","data":["/a\u003cb\u003e\u0026\"q\"\n\\ é"]}`)
	code, body = f.get(t, "/api/v1/label/job/values", vals("limit", "1"))
	expect(t, code, body, 200, `{"status":"success","data":["api"],"warnings":["results truncated due to limit"]}`)
	code, body = f.get(t, "/api/v1/label/nothing/values", nil)
	expect(t, code, body, 200, `{"status":"success","data":[]}`)
	// U__ escaped names are unescaped (U__job → job; _2e_ is '.').
	code, body = f.get(t, "/api/v1/label/U__job/values", nil)
	expect(t, code, body, 200, `{"status":"success","data":["api","h","prom"]}`)
}

func TestBuildInfo(t *testing.T) {
	f := newFixture(t, nil, nil)
	code, body := f.get(t, "/api/v1/status/buildinfo", nil)
	expect(t, code, body, 200, `{"status":"success","data":{"version":"0.1.0","revision":"abc123","branch":"main",`+
		`"buildUser":"ci@vigil","buildDate":"20240102-03:04:05","goVersion":"go1.26.8"}}`)
}

func TestStores(t *testing.T) {
	f := newFixture(t, nil, nil)
	code, body := f.get(t, "/api/v1/stores", nil)
	expect(t, code, body, 200, `{"status":"success","data":{}}`)

	errMsg := "rpc error: <unavailable>"
	g := newFixture(t, nil, func(c *Config) {
		c.Stores = fakeStores{
			"sidecar": {{
				Name: "10.0.0.1:10901", LastCheck: time.Date(2024, 1, 2, 3, 4, 5, 600_000_000, time.UTC),
				LabelSets: []map[string]string{{"replica": "r1", "cluster": "eu"}},
				MinTime:   1700000000000, MaxTime: math.MaxInt64, ComponentType: "sidecar",
			}},
			"store": {{
				Name: "10.0.0.2:10901", LastCheck: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), LastError: &errMsg,
				MinTime: -1, MaxTime: 0, ComponentType: "store",
			}},
		}
	})
	code, body = g.get(t, "/api/v1/stores", nil)
	expect(t, code, body, 200, `{"status":"success","data":{`+
		`"sidecar":[{"name":"10.0.0.1:10901","lastCheck":"2024-01-02T03:04:05.6Z","lastError":null,`+
		`"labelSets":[{"cluster":"eu","replica":"r1"}],"minTime":1700000000000,"maxTime":9223372036854775807}],`+
		`"store":[{"name":"10.0.0.2:10901","lastCheck":"2024-01-02T03:04:05Z","lastError":"rpc error: \u003cunavailable\u003e",`+
		`"labelSets":null,"minTime":-1,"maxTime":0}]}}`)
}

// --web.disable-cors: no CORS headers, pre-flight requests still answered.
func TestDisableCORS(t *testing.T) {
	f := newFixture(t, nil, func(c *Config) { c.DisableCORS = true })
	for _, m := range []string{http.MethodGet, http.MethodOptions} {
		req, _ := http.NewRequest(m, f.srv.URL+"/api/v1/query?query=up&time=1700000600", nil)
		req.Header.Set("Origin", "http://grafana.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if h := resp.Header.Get("Access-Control-Allow-Origin"); h != "" || resp.StatusCode >= 300 {
			t.Errorf("%s: %d, Access-Control-Allow-Origin %q; want no CORS header", m, resp.StatusCode, h)
		}
	}
}

func TestCompressionAndCORS(t *testing.T) {
	f := newFixture(t, nil, nil)
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/v1/query?query=up&time=1700000600", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Origin", "http://grafana.example")
	// A custom Accept-Encoding disables the transport's transparent decompression.
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q", resp.Header.Get("Content-Encoding"))
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("missing CORS header: %v", resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != upVector {
		t.Errorf("decompressed body %s", b)
	}

	req, _ = http.NewRequest(http.MethodOptions, f.srv.URL+"/api/v1/query", nil)
	req.Header.Set("Origin", "http://grafana.example")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNoContent || resp2.Header.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" {
		t.Errorf("OPTIONS: %d %v", resp2.StatusCode, resp2.Header)
	}

	req, _ = http.NewRequest(http.MethodDelete, f.srv.URL+"/api/v1/query", nil)
	resp3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp3.Body.Close()
	if resp3.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", resp3.StatusCode)
	}
}

func TestRegisterPrefix(t *testing.T) {
	f := newFixture(t, nil, nil)
	mux := http.NewServeMux()
	// A UI catch-all registered by the caller must not conflict with the API.
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	f.api.Register(mux, "/thanos/")
	rec := &bufferWriter{header: http.Header{}}
	req, _ := http.NewRequest(http.MethodGet, "/thanos/api/v1/query?query=up&time=1700000600", nil)
	mux.ServeHTTP(rec, req)
	if rec.code != 200 || rec.body.String() != upVector {
		t.Errorf("prefixed query: %d %s", rec.code, rec.body.String())
	}
	rec = &bufferWriter{header: http.Header{}}
	req, _ = http.NewRequest(http.MethodGet, "/thanos/graph", nil)
	mux.ServeHTTP(rec, req)
	if rec.code != http.StatusTeapot {
		t.Errorf("catch-all: %d", rec.code)
	}
}

// bufferWriter is a minimal http.ResponseWriter.
type bufferWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.header }
func (w *bufferWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *bufferWriter) Write(p []byte) (int, error) {
	w.WriteHeader(200)
	return w.body.Write(p)
}

// --query.metadata.default-time-range: series and label requests without start cover
// that much before their end (now by default); an explicit start still reaches back.
func TestMetadataDefaultTimeRange(t *testing.T) {
	f := newFixture(t, nil, func(c *Config) { c.MetadataDefaultRange = time.Hour })
	data := time.UnixMilli(t0) // the fixture's samples span 10 minutes from here, long ago
	for _, tc := range []struct {
		params url.Values
		want   bool
	}{
		{url.Values{}, false}, // the last hour before now
		{url.Values{"end": {fmt.Sprint(data.Add(30 * time.Minute).Unix())}}, true},
		{url.Values{"end": {fmt.Sprint(data.Add(2 * time.Hour).Unix())}}, false},
		{url.Values{"start": {"0"}}, true},
	} {
		tc.params.Set("match[]", `up{instance="a:9090"}`)
		code, body := f.get(t, "/api/v1/series", tc.params)
		if got := strings.Contains(body, `"instance":"a:9090"`); code != 200 || got != tc.want {
			t.Errorf("%v: %d %s; want the series %v", tc.params, code, body, tc.want)
		}
	}
}

package queryapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/query/querytest"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vigilhq/vigil/internal/query"
)

// t0 is the first sample time (ms) of the test data: 2023-11-14T22:13:20Z.
const t0 = int64(1_700_000_000_000)

// testHistogram is the native histogram stored in native_hist: a zero bucket of 1,
// one negative bucket [-1,-0.5) of 1, positive buckets (0.5,1] of 2 and (1,2] of 1.
func testHistogram() *histogram.Histogram {
	return &histogram.Histogram{
		Schema:          0,
		Count:           5,
		Sum:             10.5,
		ZeroThreshold:   0.001,
		ZeroCount:       1,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets: []int64{2, -1},
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 1}},
		NegativeBuckets: []int64{1},
	}
}

// newTestDB opens a TSDB with 41 samples (every 15s over 10 minutes from t0) of:
//
//	up{instance="a:9090",job="prom"}                 1
//	up{instance="b:9090",job="prom",replica="r1"}    0
//	http_requests_total{code="200",job="api"}        10*i
//	weird{path="/a<b>&\"q\"\n\\ é"}                  1.5e-07
//	native_hist{job="h"}                             testHistogram()
func newTestDB(t testing.TB) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	opts.MinBlockDuration = int64(24 * time.Hour / time.Millisecond)
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	app := db.Appender(context.Background())
	series := []struct {
		ls labels.Labels
		v  func(i int) float64
	}{
		{labels.FromStrings("__name__", "up", "job", "prom", "instance", "a:9090"), func(int) float64 { return 1 }},
		{labels.FromStrings("__name__", "up", "job", "prom", "instance", "b:9090", "replica", "r1"), func(int) float64 { return 0 }},
		{labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "200"), func(i int) float64 { return float64(10 * i) }},
		{labels.FromStrings("__name__", "weird", "path", "/a<b>&\"q\"\n\\ é"), func(int) float64 { return 1.5e-7 }},
	}
	hist := labels.FromStrings("__name__", "native_hist", "job", "h")
	for i := 0; i <= 40; i++ {
		ts := t0 + int64(i)*15000
		for _, s := range series {
			if _, err := app.Append(0, s.ls, ts, s.v(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := app.AppendHistogram(0, hist, ts, testHistogram(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return db
}

// fixture is an API over the test data, served by an httptest server.
type fixture struct {
	rec *querytest.Recorder
	api *API
	srv *httptest.Server
}

type fakeStores map[string][]query.StoreStatus

func (f fakeStores) Stores() map[string][]query.StoreStatus { return f }

// newFixture builds the API with a real engine; adjust may change the config.
func newFixture(t testing.TB, engineOpts *promql.EngineOpts, adjust func(*Config)) *fixture {
	t.Helper()
	rec := &querytest.Recorder{DB: newTestDB(t)}
	eo := promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, EnableAtModifier: true, EnableNegativeOffset: true}
	if engineOpts != nil {
		eo = *engineOpts
	}
	cfg := Config{
		Engine:          promql.NewEngine(eo),
		Queryable:       rec.Factory,
		ReplicaLabels:   []string{"replica"},
		PartialResponse: true,
		DefaultStep:     time.Second,
		Timeout:         time.Minute,
		BuildInfo: BuildInfo{
			Version: "0.1.0", Revision: "abc123", Branch: "main",
			BuildUser: "ci@vigil", BuildDate: "20240102-03:04:05", GoVersion: "go1.26.8",
		},
		Logger: slog.New(slog.DiscardHandler),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	f := &fixture{rec: rec, api: New(cfg)}
	mux := http.NewServeMux()
	f.api.Register(mux, "")
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// get performs a GET of path with the query parameters and returns status and body.
func (f *fixture) get(t *testing.T, path string, params url.Values) (int, string) {
	t.Helper()
	u := f.srv.URL + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return readResponse(t, resp)
}

// post performs a form POST of path.
func (f *fixture) post(t *testing.T, path string, params url.Values) (int, string) {
	t.Helper()
	resp, err := http.Post(f.srv.URL+path, "application/x-www-form-urlencoded", strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	return readResponse(t, resp)
}

func readResponse(t *testing.T, resp *http.Response) (int, string) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return resp.StatusCode, string(b)
}

// expect checks status code and exact body.
func expect(t *testing.T, gotCode int, gotBody string, wantCode int, wantBody string) {
	t.Helper()
	if gotCode != wantCode {
		t.Errorf("status = %d, want %d (body %s)", gotCode, wantCode, gotBody)
	}
	if gotBody != wantBody {
		t.Errorf("body mismatch\n got: %s\nwant: %s", gotBody, wantBody)
	}
}

// vals builds url.Values from key, value pairs.
func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

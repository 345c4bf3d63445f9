package promclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func success(data any, warnings ...string) map[string]any {
	m := map[string]any{"status": "success", "data": data}
	if len(warnings) > 0 {
		m["warnings"] = warnings
	}
	return m
}

func TestExternalLabels(t *testing.T) {
	const cfg = `global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels:
    cluster: eu-west
    replica: "1"
    zone: a
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets: [localhost:9090]
`
	var path string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		writeJSON(w, 200, success(map[string]string{"yaml": cfg}))
	})
	got, err := c.ExternalLabels(context.Background())
	if err != nil {
		t.Fatalf("ExternalLabels: %v", err)
	}
	if path != "/api/v1/status/config" {
		t.Errorf("requested %s, want /api/v1/status/config", path)
	}
	want := labels.FromStrings("cluster", "eu-west", "replica", "1", "zone", "a")
	if !labels.Equal(got, want) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestExternalLabelsNoneConfigured(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, success(map[string]string{"yaml": "global:\n  scrape_interval: 1m\n"}))
	})
	got, err := c.ExternalLabels(context.Background())
	if err != nil {
		t.Fatalf("ExternalLabels: %v", err)
	}
	if !got.IsEmpty() {
		t.Fatalf("got %s, want no labels", got)
	}
}

func TestExternalLabelsBadYAML(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, success(map[string]string{"yaml": "global: [unclosed"}))
	})
	if _, err := c.ExternalLabels(context.Background()); err == nil {
		t.Fatal("ExternalLabels accepted invalid YAML")
	}
}

func TestBaseURLWithPathPrefix(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		writeJSON(w, 200, success(map[string]string{"version": "3.5.0"}))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/prometheus/")
	v, err := New(u, srv.Client()).Version(context.Background())
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	if v != "3.5.0" || path != "/prometheus/api/v1/status/buildinfo" {
		t.Fatalf("version %q from %s, want 3.5.0 from /prometheus/api/v1/status/buildinfo", v, path)
	}
}

func TestLowestTimestamp(t *testing.T) {
	metrics := func(value string) string {
		return `# HELP prometheus_tsdb_lowest_timestamp Lowest timestamp value stored in the database. The unit is decided by the library consumer.
# TYPE prometheus_tsdb_lowest_timestamp gauge
prometheus_tsdb_lowest_timestamp ` + value + `
# HELP prometheus_tsdb_lowest_timestamp_seconds Lowest timestamp value stored in the head block.
# TYPE prometheus_tsdb_lowest_timestamp_seconds gauge
prometheus_tsdb_lowest_timestamp_seconds 1.0e+09
`
	}
	cases := []struct {
		name    string
		body    string
		code    int
		wantMs  int64
		wantOK  bool
		wantErr bool
	}{
		{name: "value", body: metrics("1.700000000123e+12"), code: 200, wantMs: 1700000000123, wantOK: true},
		{name: "plain integer", body: metrics("1712345678901"), code: 200, wantMs: 1712345678901, wantOK: true},
		{name: "seconds variant listed first", code: 200, wantMs: 42000, wantOK: true,
			body: "prometheus_tsdb_lowest_timestamp_seconds 9\nprometheus_tsdb_lowest_timestamp 42000\n"},
		{name: "empty TSDB reports MaxInt64", body: metrics(strconv.FormatFloat(float64(math.MaxInt64), 'g', -1, 64)), code: 200, wantOK: false},
		{name: "metric missing", body: "# nothing here\ngo_goroutines 12\n", code: 200, wantErr: true},
		{name: "unparsable value", body: metrics("soon"), code: 200, wantErr: true},
		{name: "HTTP error", body: "oops", code: 503, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var path string
			c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				path = r.URL.Path
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			})
			ms, ok, err := c.LowestTimestamp(context.Background())
			if path != "/metrics" {
				t.Errorf("requested %s, want /metrics", path)
			}
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got (%d, %v, nil), want an error", ms, ok)
				}
				return
			}
			if err != nil {
				t.Fatalf("LowestTimestamp: %v", err)
			}
			if ok != tc.wantOK || (ok && ms != tc.wantMs) {
				t.Fatalf("got (%d, %v), want (%d, %v)", ms, ok, tc.wantMs, tc.wantOK)
			}
		})
	}
}

// parseAPITime parses a Prometheus API time parameter (float seconds) into milliseconds.
func parseAPITime(t *testing.T, s string) int64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("time parameter %q is not float seconds: %v", s, err)
	}
	return int64(math.Round(f * 1000))
}

func TestLabelNamesRequest(t *testing.T) {
	var q url.Values
	var path, method string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		path, method = r.URL.Path, r.Method
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		q = r.Form
		writeJSON(w, 200, success([]string{"__name__", "job"}, "some warning"))
	})
	sels := []string{`{job="a"}`, `{__name__=~"up|down",x!=""}`}
	start, end := time.UnixMilli(1700000000123), time.UnixMilli(1700000100999)
	names, warnings, err := c.LabelNames(context.Background(), sels, start, end)
	if err != nil {
		t.Fatalf("LabelNames: %v", err)
	}
	if method != http.MethodGet || path != "/api/v1/labels" {
		t.Errorf("request %s %s, want GET /api/v1/labels", method, path)
	}
	if !slices.Equal(names, []string{"__name__", "job"}) || !slices.Equal(warnings, []string{"some warning"}) {
		t.Errorf("names %v warnings %v", names, warnings)
	}
	if !slices.Equal(q["match[]"], sels) {
		t.Errorf("match[] = %v, want %v", q["match[]"], sels)
	}
	if got := parseAPITime(t, q.Get("start")); got != start.UnixMilli() {
		t.Errorf("start %s = %d ms, want %d", q.Get("start"), got, start.UnixMilli())
	}
	if got := parseAPITime(t, q.Get("end")); got != end.UnixMilli() {
		t.Errorf("end %s = %d ms, want %d", q.Get("end"), got, end.UnixMilli())
	}
}

func TestLabelValuesRequest(t *testing.T) {
	var q url.Values
	var path string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		q = r.URL.Query()
		writeJSON(w, 200, success([]string{"a", "b"}))
	})
	start, end := time.UnixMilli(-1500), time.UnixMilli(math.MaxInt64/2) // before epoch; far future
	values, _, err := c.LabelValues(context.Background(), "job", []string{`{x="y"}`}, start, end)
	if err != nil {
		t.Fatalf("LabelValues: %v", err)
	}
	if path != "/api/v1/label/job/values" {
		t.Errorf("path %s, want /api/v1/label/job/values", path)
	}
	if !slices.Equal(values, []string{"a", "b"}) {
		t.Errorf("values %v", values)
	}
	if !slices.Equal(q["match[]"], []string{`{x="y"}`}) {
		t.Errorf("match[] = %v", q["match[]"])
	}
	if got := parseAPITime(t, q.Get("start")); got != -1500 {
		t.Errorf("start %s = %d ms, want -1500", q.Get("start"), got)
	}
	// Prometheus' API rejects times after MaxInt64/1000-62135596801 seconds; a far-future
	// end must stay a far-future time inside that range.
	endSec, err := strconv.ParseFloat(q.Get("end"), 64)
	if err != nil || endSec < 1e10 || endSec > float64(math.MaxInt64/1000-62135596801) {
		t.Errorf("end %q is not a clamped far-future time", q.Get("end"))
	}
}

// TestLabelValuesUTF8Name checks that a label name outside the legacy character set (valid
// in Prometheus 3) reaches the server as that name: the server decodes the path once.
// (Regression: the name used to be escaped twice.)
func TestLabelValuesUTF8Name(t *testing.T) {
	for _, name := range []string{"café", "http status", "a%b"} {
		var gotPath string
		c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			gotPath = r.URL.Path // decoded, as Prometheus' router sees it
			writeJSON(w, 200, success([]string{}))
		})
		if _, _, err := c.LabelValues(context.Background(), name, nil, time.UnixMilli(0), time.UnixMilli(0)); err != nil {
			t.Fatalf("LabelValues(%q): %v", name, err)
		}
		if want := "/api/v1/label/" + name + "/values"; gotPath != want {
			t.Errorf("LabelValues(%q) requested path %q, want %q", name, gotPath, want)
		}
	}
}

func TestLabelValuesEscapedUnderBasePath(t *testing.T) {
	var gotPath, gotRaw string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotRaw = r.URL.Path, r.URL.EscapedPath()
		writeJSON(w, 200, success([]string{"v"}))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/my%20prom/")
	if _, _, err := New(u, srv.Client()).LabelValues(context.Background(), "a/b", nil, time.UnixMilli(0), time.UnixMilli(0)); err != nil {
		t.Fatalf("LabelValues: %v", err)
	}
	if gotPath != "/my prom/api/v1/label/a/b/values" || gotRaw != "/my%20prom/api/v1/label/a%2Fb/values" {
		t.Fatalf("path %q (raw %q): base path and label name must each be escaped exactly once", gotPath, gotRaw)
	}
}

func TestLargeQueryUsesPOST(t *testing.T) {
	var method, ct string
	var matches []string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		method, ct = r.Method, r.Header.Get("Content-Type")
		_ = r.ParseForm()
		matches = r.PostForm["match[]"]
		writeJSON(w, 200, success([]string{"x"}))
	})
	long := fmt.Sprintf(`{job=~"%s"}`, strings.Repeat("a|", 3000))
	if _, _, err := c.LabelNames(context.Background(), []string{long}, time.UnixMilli(0), time.UnixMilli(1)); err != nil {
		t.Fatalf("LabelNames: %v", err)
	}
	if method != http.MethodPost || !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		t.Fatalf("long query sent as %s %q, want a form POST", method, ct)
	}
	if !slices.Equal(matches, []string{long}) {
		t.Fatalf("POST form lost the selector")
	}
}

func TestAPIErrorEnvelope(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"status": "error", "errorType": "bad_data", "error": "invalid parameter \"match[]\": parse error",
		})
	})
	_, _, err := c.LabelNames(context.Background(), []string{"{"}, time.UnixMilli(0), time.UnixMilli(1))
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	if apiErr.StatusCode != http.StatusUnprocessableEntity || apiErr.Type != "bad_data" ||
		apiErr.Msg != "invalid parameter \"match[]\": parse error" || apiErr.Path != "/api/v1/labels" {
		t.Fatalf("APIError %+v", apiErr)
	}
	if !strings.Contains(err.Error(), "bad_data") || !strings.Contains(err.Error(), "422") {
		t.Errorf("message %q lacks type or status", err)
	}
}

func TestAPINonJSONResponse(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found", http.StatusNotFound)
	})
	_, err := c.Flags(context.Background())
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("error %v, want a decode error naming HTTP 404", err)
	}
}

func TestFlags(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/status/flags" {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, 200, success(map[string]string{"storage.tsdb.min-block-duration": "2h", "storage.tsdb.max-block-duration": "2h"}))
	})
	f, err := c.Flags(context.Background())
	if err != nil || f["storage.tsdb.min-block-duration"] != "2h" || len(f) != 2 {
		t.Fatalf("Flags = %v, %v", f, err)
	}
}

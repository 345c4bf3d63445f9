package queryapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// FuzzQueryAPI sends arbitrary PromQL and parameters to the query endpoints: the API
// answers every request with a JSON envelope, never panics, and keeps 5xx for what is
// not the request's fault (timeouts, cancellations).
func FuzzQueryAPI(f *testing.F) {
	for _, s := range [][6]string{
		{"/api/v1/query", "up", "1700000600", "", "", ""},
		{"/api/v1/query_range", "rate(http_requests_total[1m])", "", "1700000000", "1700000600", "15"},
		{"/api/v1/query", `sum by (job) (up{instance=~"a.*"}) / ignoring(x) group_left count(up)`, "1700000600", "", "", ""},
		{"/api/v1/query", "histogram_quantile(0.9, native_hist)", "", "", "", ""},
		{"/api/v1/series", "up", "", "-1", "1e20", ""},
		{"/api/v1/labels", `{__name__=~".+"}`, "", "", "", ""},
		{"/api/v1/query", "up[5m:1s] @ end()", "NaN", "", "", "0"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	fx := newFixture(f, &promql.EngineOpts{MaxSamples: 1_000_000, Timeout: 5 * time.Second, EnableAtModifier: true, EnableNegativeOffset: true}, nil)
	mux := http.NewServeMux()
	fx.api.Register(mux, "")
	f.Fuzz(func(t *testing.T, path, q, ts, start, end, step string) {
		switch path {
		case "/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels":
		default:
			path = "/api/v1/query"
		}
		form := url.Values{"query": {q}, "match[]": {q}, "time": {ts}, "start": {start}, "end": {end}, "step": {step}, "timeout": {"2s"}}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		body := rec.Body.String()
		if !strings.HasPrefix(body, `{"status":"`) {
			t.Fatalf("%s %v: HTTP %d, not a JSON envelope: %.300s", path, form, rec.Code, body)
		}
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %v: HTTP %d %.300s", path, form, rec.Code, body)
		}
	})
}

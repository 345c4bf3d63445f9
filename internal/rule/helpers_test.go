package rule

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readFile returns the content of path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue returns the value of the counter or gauge name with the given labels in reg
// (0 if absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, lbls map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := lbls[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// queryRequest is what a fake query API saw of one request.
type queryRequest struct {
	Method      string
	Path        string
	ContentType string
	Form        url.Values // the POST body, or the URL's query of a GET
	Auth        string     // the Authorization header
}

// fakeQueryAPI is an httptest server standing in for a querier's /api/v1/query.
type fakeQueryAPI struct {
	*httptest.Server
	delay time.Duration // before answering, unless the client gives up first
	mu    sync.Mutex
	reqs  []queryRequest
	// inFlight and maxInFlight count the requests being answered, now and at most.
	inFlight, maxInFlight int
}

// newFakeQueryAPI answers every request with answer(form) → (status, body).
func newFakeQueryAPI(t *testing.T, answer func(form url.Values) (int, string)) *fakeQueryAPI {
	return newSlowQueryAPI(t, 0, answer)
}

// newSlowQueryAPI answers after delay, or not at all if the client gives up first.
func newSlowQueryAPI(t *testing.T, delay time.Duration, answer func(form url.Values) (int, string)) *fakeQueryAPI {
	t.Helper()
	f := &fakeQueryAPI{delay: delay}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		if r.Method == http.MethodGet {
			form = r.URL.Query()
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, queryRequest{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Form: form,
			Auth: r.Header.Get("Authorization")})
		f.inFlight++
		f.maxInFlight = max(f.maxInFlight, f.inFlight)
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.inFlight--
			f.mu.Unlock()
		}()
		if f.delay > 0 {
			select {
			case <-time.After(f.delay):
			case <-r.Context().Done():
				return
			}
		}
		code, out := answer(form)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, out)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeQueryAPI) requests() []queryRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]queryRequest(nil), f.reqs...)
}

func (f *fakeQueryAPI) count() int { return len(f.requests()) }

// hostPort is the server's address without scheme.
func (f *fakeQueryAPI) hostPort() string { return f.Listener.Addr().String() }

// vectorAnswer is a success answer of one sample per metric, at the query's own time.
func vectorAnswer(form url.Values, value string, metrics ...map[string]string) (int, string) {
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	ts := json.Number(form.Get("time"))
	res := make([]sample, 0, len(metrics))
	for _, m := range metrics {
		res = append(res, sample{Metric: m, Value: [2]any{ts, value}})
	}
	b, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": res}})
	return http.StatusOK, string(b)
}

func errorAnswer(code int, typ, msg string) (int, string) {
	b, _ := json.Marshal(map[string]any{"status": "error", "errorType": typ, "error": msg})
	return code, string(b)
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// postedAlert is one alert of an Alertmanager v2 POST body.
type postedAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// fakeAlertmanager is an httptest server accepting POST <prefix>/api/v2/alerts.
type fakeAlertmanager struct {
	*httptest.Server
	mu     sync.Mutex
	paths  []string
	alerts []postedAlert
}

func newFakeAlertmanager(t *testing.T) *fakeAlertmanager {
	t.Helper()
	am := &fakeAlertmanager{}
	am.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []postedAlert
		if err := json.NewDecoder(r.Body).Decode(&as); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		am.mu.Lock()
		am.paths = append(am.paths, r.Method+" "+r.URL.Path)
		am.alerts = append(am.alerts, as...)
		am.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(am.Close)
	return am
}

func (am *fakeAlertmanager) received() ([]string, []postedAlert) {
	am.mu.Lock()
	defer am.mu.Unlock()
	return append([]string(nil), am.paths...), append([]postedAlert(nil), am.alerts...)
}

// alertNamed returns the last received alert with that alertname.
func (am *fakeAlertmanager) alertNamed(name string) (postedAlert, bool) {
	_, as := am.received()
	for i := len(as) - 1; i >= 0; i-- {
		if as[i].Labels["alertname"] == name {
			return as[i], true
		}
	}
	return postedAlert{}, false
}

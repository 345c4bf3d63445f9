package reloader

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeProm serves /-/reload, answering with the status reply returns; it records
// the rendered config Prometheus would have read at each successful reload.
type fakeProm struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	reply  func(call int64) int
	loaded []string
}

func newFakeProm(t *testing.T, output string, reply func(call int64) int) *fakeProm {
	f := &fakeProm{reply: reply}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/prefix/-/reload" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		code := f.reply(f.calls.Add(1))
		if code == http.StatusOK && output != "" {
			b, _ := os.ReadFile(output)
			f.mu.Lock()
			f.loaded = append(f.loaded, string(b))
			f.mu.Unlock()
		}
		w.WriteHeader(code)
		fmt.Fprint(w, "failed to reload config: test says no")
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeProm) trigger(t *testing.T) Trigger {
	u, err := url.Parse(f.srv.URL + "/prefix")
	if err != nil {
		t.Fatal(err)
	}
	return HTTPTrigger(f.srv.Client(), u)
}

func (f *fakeProm) lastLoaded() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.loaded) == 0 {
		return ""
	}
	return f.loaded[len(f.loaded)-1]
}

func always(code int) func(int64) int { return func(int64) int { return code } }

// setup is a template, output and rule dir in a temporary directory.
type setup struct {
	dir, tmpl, out, rules string
}

func newSetup(t *testing.T, template string) setup {
	dir := t.TempDir()
	s := setup{dir: dir, tmpl: filepath.Join(dir, "prometheus.yml.tmpl"), out: filepath.Join(dir, "prometheus.yml"),
		rules: filepath.Join(dir, "rules")}
	s.writeTemplate(t, template)
	mustWrite(t, filepath.Join(s.rules, "nested", "a.rules.yml"), "groups: []\n")
	return s
}

// writeTemplate replaces the template by a rename, as an editor or Kubernetes would.
func (s setup) writeTemplate(t *testing.T, content string) {
	t.Helper()
	mustWrite(t, s.tmpl+".new", content)
	if err := os.Rename(s.tmpl+".new", s.tmpl); err != nil {
		t.Fatal(err)
	}
}

func (s setup) output(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(s.out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (s setup) options(trigger Trigger) Options {
	return Options{ConfigFile: s.tmpl, OutputFile: s.out, RuleDirs: []string{s.rules},
		WatchInterval: time.Hour, RetryInterval: 10 * time.Millisecond, Trigger: trigger,
		Poll: 10 * time.Millisecond, Settle: time.Millisecond,
		LookupEnv: env(map[string]string{"POD_NAME": "prom-0"})}
}

// start runs a Reloader until the test ends.
func start(t *testing.T, opts Options) *Reloader {
	t.Helper()
	r, err := New(nil, prometheus.NewRegistry(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func value(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

const tmplV1 = "global:\n  external_labels:\n    replica: $(POD_NAME)\n"

func TestReloadOnlyOnChange(t *testing.T) {
	s := newSetup(t, tmplV1)
	prom := newFakeProm(t, s.out, always(http.StatusOK))
	opts := s.options(prom.trigger(t))
	opts.WatchInterval = 50 * time.Millisecond // forced passes must not reload an unchanged config
	r := start(t, opts)

	// At start: rendered, and Prometheus reloaded once.
	eventually(t, "initial reload", func() bool { return prom.calls.Load() == 1 })
	if got := prom.lastLoaded(); got != "global:\n  external_labels:\n    replica: prom-0\n" {
		t.Fatalf("Prometheus loaded %q", got)
	}
	time.Sleep(300 * time.Millisecond) // several polls and forced passes
	if n := prom.calls.Load(); n != 1 {
		t.Fatalf("%d reloads without a change, want 1", n)
	}
	if value(r.m.applies) < 3 {
		t.Errorf("config_apply_operations_total %v, want a pass per watch interval", value(r.m.applies))
	}

	s.writeTemplate(t, tmplV1+"scrape_configs: []\n")
	eventually(t, "reload after a template change", func() bool { return prom.calls.Load() == 2 })
	if !strings.Contains(prom.lastLoaded(), "scrape_configs") {
		t.Errorf("Prometheus loaded %q, want the new config", prom.lastLoaded())
	}
	mustWrite(t, filepath.Join(s.rules, "nested", "a.rules.yml"), "groups: [{name: g, rules: []}]\n")
	eventually(t, "reload after a nested rule file change", func() bool { return prom.calls.Load() == 3 })

	// Any change of the rendered bytes counts, even a trailing newline...
	s.writeTemplate(t, tmplV1+"scrape_configs: []\n\n")
	eventually(t, "reload after a whitespace change", func() bool { return prom.calls.Load() == 4 })
	// ...but a template change that renders the same bytes is no change for Prometheus.
	s.writeTemplate(t, strings.Replace(tmplV1, "$(POD_NAME)", "prom-0", 1)+"scrape_configs: []\n\n")
	time.Sleep(200 * time.Millisecond)
	if n := prom.calls.Load(); n != 4 {
		t.Errorf("%d reloads, want 4", n)
	}
	if got, want := value(r.m.reloads), 4.0; got != want {
		t.Errorf("reloads_total %v, want %v", got, want)
	}
	if value(r.m.reloadFailures) != 0 || value(r.m.applyFailures) != 0 {
		t.Errorf("failures: reloads %v, applies %v; want none", value(r.m.reloadFailures), value(r.m.applyFailures))
	}
	if value(r.m.lastReloadOK) != 1 || value(r.m.lastReloadTime) < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last reload successful %v at %v", value(r.m.lastReloadOK), value(r.m.lastReloadTime))
	}
	if value(r.m.lastConfigChange) < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last config change %v", value(r.m.lastConfigChange))
	}
}

func TestRetryUntilPrometheusAccepts(t *testing.T) {
	s := newSetup(t, tmplV1)
	// Fails twice (as a Prometheus still starting, or refusing), then accepts.
	prom := newFakeProm(t, s.out, func(call int64) int {
		if call <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	r := start(t, s.options(prom.trigger(t)))
	eventually(t, "a successful reload", func() bool { return value(r.m.lastReloadOK) == 1 })
	if got := [3]float64{value(r.m.reloads), value(r.m.reloadFailures), float64(prom.calls.Load())}; got != [3]float64{3, 2, 3} {
		t.Errorf("reloads_total, reloads_failed_total, requests = %v, want [3 2 3]", got)
	}
	time.Sleep(100 * time.Millisecond)
	if n := prom.calls.Load(); n != 3 {
		t.Errorf("%d requests after success, want no more than 3", n)
	}
}

// Retries stop at the watch interval, and the next forced pass tries again because the
// last reload failed, even though nothing changed.
func TestFailedReloadRetriedAtNextPass(t *testing.T) {
	s := newSetup(t, tmplV1)
	var accept atomic.Bool
	prom := newFakeProm(t, s.out, func(int64) int {
		if accept.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	opts := s.options(prom.trigger(t))
	opts.WatchInterval, opts.RetryInterval = 100*time.Millisecond, 40*time.Millisecond
	r := start(t, opts)
	eventually(t, "several passes of failing retries", func() bool { return value(r.m.applies) >= 3 })
	accept.Store(true)
	eventually(t, "a successful reload", func() bool { return value(r.m.lastReloadOK) == 1 })
	n := prom.calls.Load()
	time.Sleep(300 * time.Millisecond)
	if prom.calls.Load() != n {
		t.Error("reloads continued after success without a change")
	}
}

// A fix made while a rejected config is being retried is taken at once, not after the
// watch interval.
func TestChangeDuringRetriesIsTakenAtOnce(t *testing.T) {
	s := newSetup(t, tmplV1+"bad: true\n")
	// Rejects the config while it has the bad key, as Prometheus rejects an invalid one.
	prom := newFakeProm(t, s.out, func(int64) int {
		if b, _ := os.ReadFile(s.out); strings.Contains(string(b), "bad") {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	opts := s.options(prom.trigger(t))
	opts.RetryInterval = 20 * time.Millisecond // WatchInterval stays 1h
	r := start(t, opts)
	eventually(t, "failed reloads", func() bool { return value(r.m.reloadFailures) >= 2 })
	s.writeTemplate(t, tmplV1)
	eventually(t, "the fixed config loaded", func() bool { return value(r.m.lastReloadOK) == 1 })
}

func TestBrokenTemplateKeepsLastGoodOutput(t *testing.T) {
	s := newSetup(t, tmplV1)
	prom := newFakeProm(t, s.out, always(http.StatusOK))
	r := start(t, s.options(prom.trigger(t)))
	eventually(t, "initial reload", func() bool { return prom.calls.Load() == 1 })
	good := s.output(t)

	for i, broken := range []string{
		tmplV1 + "cluster: $(NO_SUCH_VAR)\n",        // unset variable
		tmplV1 + "scrape_configs: [ {job_name: x\n", // invalid YAML
	} {
		s.writeTemplate(t, broken)
		eventually(t, "the failure counted", func() bool { return value(r.m.applyFailures) == float64(i+1) })
		time.Sleep(50 * time.Millisecond)
		if got := s.output(t); got != good {
			t.Errorf("broken template %d: output changed to %q", i, got)
		}
		if n := prom.calls.Load(); n != 1 {
			t.Errorf("broken template %d: Prometheus reloaded (%d requests)", i, n)
		}
	}
	// Polls of the unchanged broken template report it once, not every second.
	time.Sleep(100 * time.Millisecond)
	if got := value(r.m.applyFailures); got != 2 {
		t.Errorf("config_apply_operations_failed_total %v, want 2", got)
	}
	s.writeTemplate(t, tmplV1+"scrape_configs: []\n")
	eventually(t, "reload after the fix", func() bool { return prom.calls.Load() == 2 })
	if !strings.Contains(s.output(t), "scrape_configs") {
		t.Errorf("output %q after the fix", s.output(t))
	}
}

func TestRunFailsWhenFirstRenderFails(t *testing.T) {
	s := newSetup(t, "a: $(NO_SUCH_VAR)\n")
	prom := newFakeProm(t, s.out, always(http.StatusOK))
	r, err := New(nil, prometheus.NewRegistry(), s.options(prom.trigger(t)))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "NO_SUCH_VAR") {
		t.Fatalf("Run: %v, want an error naming NO_SUCH_VAR", err)
	}
	if _, statErr := os.Stat(s.out); statErr == nil {
		t.Error("output written despite the error")
	}
	if prom.calls.Load() != 0 {
		t.Error("Prometheus reloaded despite the error")
	}
}

func TestRuleDirsOnly(t *testing.T) {
	s := newSetup(t, "")
	prom := newFakeProm(t, "", always(http.StatusOK))
	opts := s.options(prom.trigger(t))
	opts.ConfigFile, opts.OutputFile = "", ""
	start(t, opts)
	eventually(t, "initial reload", func() bool { return prom.calls.Load() == 1 })
	mustWrite(t, filepath.Join(s.rules, "new.yml"), "groups: []\n")
	eventually(t, "reload after a new rule file", func() bool { return prom.calls.Load() == 2 })
}

func TestNewChecksOptions(t *testing.T) {
	trig := func(context.Context) error { return nil }
	ok := Options{ConfigFile: "in", OutputFile: "out", WatchInterval: time.Minute, RetryInterval: time.Second, Trigger: trig}
	for name, mod := range map[string]func(*Options){
		"nothing to follow":     func(o *Options) { o.ConfigFile, o.OutputFile = "", "" },
		"output without config": func(o *Options) { o.ConfigFile = "" },
		"output is input":       func(o *Options) { o.OutputFile = "in" },
		"zero watch interval":   func(o *Options) { o.WatchInterval = 0 },
		"no trigger":            func(o *Options) { o.Trigger = nil },
	} {
		o := ok
		mod(&o)
		if _, err := New(nil, prometheus.NewRegistry(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New(nil, prometheus.NewRegistry(), ok); err != nil {
		t.Error(err)
	}
}

func TestNewTrigger(t *testing.T) {
	u, _ := url.Parse("http://localhost:9090")
	if _, err := NewTrigger(MethodSignal, nil, u); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("signal: %v, want a clear refusal", err)
	}
	if tr, err := NewTrigger(MethodHTTP, nil, u); err != nil || tr == nil {
		t.Errorf("http: %v", err)
	}
}

func TestHTTPTriggerErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Lifecycle API is not enabled.", http.StatusForbidden)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	err := HTTPTrigger(srv.Client(), u)(context.Background())
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "--web.enable-lifecycle") {
		t.Errorf("got %v, want the status and a hint at --web.enable-lifecycle", err)
	}
}

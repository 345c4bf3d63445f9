package rule

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/rules"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

const rulerRules = `groups:
- name: warn-group
  interval: 100ms
  partial_response_strategy: warn
  rules:
  - record: job:warn:sum
    expr: sum(warn_metric)
- name: abort-group
  interval: 100ms
  rules:
  - record: job:abort:sum
    expr: sum(abort_metric)
  - alert: HighErrors
    expr: errors_metric > 0
    labels:
      severity: page
    annotations:
      summary: "value {{ $value }}"
`

// rulerQueryAPI answers the rule expressions of rulerRules.
func rulerQueryAPI(t *testing.T) *fakeQueryAPI {
	return newFakeQueryAPI(t, func(f url.Values) (int, string) {
		switch f.Get("query") {
		case "sum(warn_metric)":
			return vectorAnswer(f, "5", map[string]string{})
		case "sum(abort_metric)":
			return vectorAnswer(f, "7", map[string]string{})
		case "errors_metric > 0":
			return vectorAnswer(f, "3", map[string]string{"__name__": "errors_metric", "job": "api"})
		}
		return errorAnswer(http.StatusBadRequest, "bad_data", "unexpected query "+f.Get("query"))
	})
}

// partialByQuery maps each query the API saw to the partial_response values sent with it.
func partialByQuery(api *fakeQueryAPI) map[string][]string {
	out := map[string][]string{}
	for _, r := range api.requests() {
		q := r.Form.Get("query")
		if !slices.Contains(out[q], r.Form.Get("partial_response")) {
			out[q] = append(out[q], r.Form.Get("partial_response"))
		}
	}
	return out
}

func testRulerConfig(t *testing.T, rulesDir string, api *fakeQueryAPI, am *Alertmanagers) Config {
	return Config{
		DataDir:       t.TempDir(),
		Labels:        labels.FromStrings("cluster", "eu1", "replica", "r1"),
		RuleFiles:     []string{filepath.Join(rulesDir, "*.yaml")},
		EvalInterval:  time.Minute,
		Queries:       []QueryEndpoints{{Addrs: func() []string { return []string{api.URL} }}},
		QueryTimeout:  5 * time.Second,
		Alertmanagers: am,
		Alerts:        AlertOptions{LabelDrop: []string{"replica"}, External: labels.FromStrings("cluster", "eu1", "replica", "r1"), QueryURL: "http://query.example"},
		Outage:        time.Hour,
		ForGrace:      10 * time.Minute,
		BlockDuration: 2 * time.Hour,
		Retention:     48 * time.Hour,
	}
}

// startRuler builds, loads and runs a ruler; the returned stop (also run at cleanup)
// stops and closes it.
func startRuler(t *testing.T, cfg Config) (*Ruler, func()) {
	t.Helper()
	r, err := New(discardLogger(), prometheus.NewRegistry(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err != nil {
		_ = r.Close(context.Background())
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after its context was done")
			}
			if err := r.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// recorded returns the samples of series name in the ruler's TSDB.
func recorded(t *testing.T, r *Ruler, name string) (labels.Labels, []float64) {
	t.Helper()
	q, err := r.db.Querier(0, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	var lset labels.Labels
	var vals []float64
	for ss.Next() {
		lset = ss.At().Labels()
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			_, v := it.At()
			vals = append(vals, v)
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return lset, vals
}

func TestRulerEndToEnd(t *testing.T) {
	api := rulerQueryAPI(t)
	fake := newFakeAlertmanager(t)
	am, err := ParseAlertmanagerURLs([]string{fake.URL}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ruleFile := writeFile(t, dir, "rules.yaml", rulerRules)
	r, stop := startRuler(t, testRulerConfig(t, dir, api, am))

	if r.Store() == nil {
		t.Fatal("stateful ruler without a Store")
	}
	if got := r.Loader().Strategy(ruleFile, "warn-group"); got != "WARN" {
		t.Errorf("warn-group strategy %s", got)
	}
	waitFor(t, 10*time.Second, "recorded samples", func() bool {
		_, w := recorded(t, r, "job:warn:sum")
		_, a := recorded(t, r, "job:abort:sum")
		return len(w) >= 2 && len(a) >= 2
	})
	lset, vals := recorded(t, r, "job:warn:sum")
	if !labels.Equal(lset, labels.FromStrings("__name__", "job:warn:sum")) || vals[0] != 5 {
		t.Errorf("job:warn:sum: %v %v", lset, vals)
	}
	if _, vals := recorded(t, r, "job:abort:sum"); vals[0] != 7 {
		t.Errorf("job:abort:sum: %v", vals)
	}

	// Each group's strategy reaches the query API.
	pr := partialByQuery(api)
	for q, want := range map[string]string{"sum(warn_metric)": "true", "sum(abort_metric)": "false", "errors_metric > 0": "false"} {
		if !slices.Equal(pr[q], []string{want}) {
			t.Errorf("%s sent with partial_response %v, want always %s", q, pr[q], want)
		}
	}
	for _, req := range api.requests()[:3] {
		if req.Form.Get("dedup") != "true" {
			t.Errorf("query %q without dedup=true", req.Form.Get("query"))
		}
	}

	// The alert reaches Alertmanager with the replica label dropped and the external
	// labels set.
	waitFor(t, 10*time.Second, "alert at Alertmanager", func() bool { _, ok := fake.alertNamed("HighErrors"); return ok })
	a, _ := fake.alertNamed("HighErrors")
	if want := map[string]string{"alertname": "HighErrors", "job": "api", "severity": "page", "cluster": "eu1"}; !maps.Equal(a.Labels, want) {
		t.Errorf("alert labels %v, want %v", a.Labels, want)
	}
	if a.Annotations["summary"] != "value 3" || !strings.HasPrefix(a.GeneratorURL, "http://query.example/graph?g0.expr=errors_metric+%3E+0&g0.tab=1") {
		t.Errorf("alert %+v", a)
	}

	// The StoreAPI serves the recorded series with the ruler's external labels.
	// (ALERTS is committed just after the alert is sent.)
	nameValues := func() []string {
		now := time.Now()
		resp, err := r.Store().LabelValues(context.Background(), &storepb.LabelValuesRequest{Label: "__name__", Start: now.Add(-time.Hour).UnixMilli(), End: now.Add(time.Hour).UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetValues()
	}
	waitFor(t, 5*time.Second, "ALERTS series", func() bool { return slices.Contains(nameValues(), "ALERTS") })
	for _, want := range []string{"job:warn:sum", "job:abort:sum"} {
		if !slices.Contains(nameValues(), want) {
			t.Errorf("StoreAPI __name__ values %v lack %s", nameValues(), want)
		}
	}
	if ext := r.Store().LabelSet(); !labels.Equal(ext, labels.FromStrings("cluster", "eu1", "replica", "r1")) {
		t.Errorf("StoreAPI external labels %v", ext)
	}

	// An invalid file fails the reload and keeps the groups in force.
	writeFile(t, dir, "rules.yaml", strings.Replace(rulerRules, "sum(abort_metric)", "sum(abort_metric", 1))
	if err := r.Reload(); err == nil {
		t.Error("reload of an invalid file succeeded")
	}
	var names []string
	for _, g := range r.Manager().RuleGroups() {
		names = append(names, g.Name())
	}
	if !slices.Equal(names, []string{"abort-group", "warn-group"}) && !slices.Equal(names, []string{"warn-group", "abort-group"}) {
		t.Errorf("groups after failed reload: %v", names)
	}
	before := api.count()
	waitFor(t, 5*time.Second, "evaluation to go on", func() bool { return api.count() > before+3 })

	// A new file matching the glob is picked up by the next reload.
	writeFile(t, dir, "rules.yaml", rulerRules)
	writeFile(t, dir, "more.yaml", "groups:\n- name: more\n  interval: 100ms\n  rules:\n  - record: job:more\n    expr: sum(warn_metric)\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Manager().RuleGroups()); n != 3 {
		t.Errorf("%d groups after adding a file, want 3", n)
	}
	waitFor(t, 10*time.Second, "new group's samples", func() bool { _, v := recorded(t, r, "job:more"); return len(v) > 0 })
	stop()
}

// The reload error is what /-/reload answers: it must say which file is wrong and why.
func TestRulerReloadErrorExplains(t *testing.T) {
	api := rulerQueryAPI(t)
	dir := t.TempDir()
	writeFile(t, dir, "rules.yaml", rulerRules)
	r, _ := startRuler(t, testRulerConfig(t, dir, api, &Alertmanagers{}))
	writeFile(t, dir, "rules.yaml", strings.Replace(rulerRules, "sum(abort_metric)", "sum(abort_metric", 1))
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), "rules.yaml") || !strings.Contains(err.Error(), "abort-group") {
		t.Errorf("reload error %v, want one naming the file and the group", err)
	}
}

func TestRulerQueryFailureKeepsEvaluating(t *testing.T) {
	down := closedAddr(t)
	dir := t.TempDir()
	writeFile(t, dir, "r.yaml", "groups:\n- name: g\n  interval: 100ms\n  rules:\n  - record: a:b\n    expr: vector(1)\n")
	api := rulerQueryAPI(t)
	cfg := testRulerConfig(t, dir, api, &Alertmanagers{})
	cfg.Queries = []QueryEndpoints{{Addrs: func() []string { return []string{down} }}}
	r, _ := startRuler(t, cfg)
	waitFor(t, 10*time.Second, "failed evaluations", func() bool {
		g := r.Manager().RuleGroups()
		return len(g) == 1 && g[0].Rules()[0].LastError() != nil
	})
	if err := r.Manager().RuleGroups()[0].Rules()[0].LastError(); !strings.Contains(err.Error(), "no query endpoint answered") {
		t.Errorf("rule error %v", err)
	}
}

// remoteWriteReceiver decodes snappy-compressed remote write requests.
type remoteWriteReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	series map[string][]prompb.TimeSeries // by __name__
}

func newRemoteWriteReceiver(t *testing.T) *remoteWriteReceiver {
	rw := &remoteWriteReceiver{series: map[string][]prompb.TimeSeries{}}
	rw.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rw.mu.Lock()
		for _, ts := range req.Timeseries {
			for _, l := range ts.Labels {
				if l.Name == "__name__" {
					rw.series[l.Value] = append(rw.series[l.Value], ts)
				}
			}
		}
		rw.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rw.Close)
	return rw
}

func (rw *remoteWriteReceiver) get(name string) []prompb.TimeSeries {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return slices.Clone(rw.series[name])
}

func TestRulerStatelessRemoteWrite(t *testing.T) {
	api := rulerQueryAPI(t)
	rw := newRemoteWriteReceiver(t)
	dir := t.TempDir()
	writeFile(t, dir, "rules.yaml", rulerRules)
	cfg := testRulerConfig(t, dir, api, &Alertmanagers{})
	rwc, err := config.Load(`remote_write:
- url: `+rw.URL+`/api/v1/write
  queue_config:
    batch_send_deadline: 100ms
    min_backoff: 10ms
    max_backoff: 100ms
  metadata_config:
    send: false
`, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteWrite = rwc
	r, _ := startRuler(t, cfg)
	if r.Store() != nil {
		t.Error("stateless ruler has a StoreAPI")
	}
	waitFor(t, 30*time.Second, "remote-written samples", func() bool { return len(rw.get("job:warn:sum")) > 0 })
	ts := rw.get("job:warn:sum")[0]
	got := labels.New()
	b := labels.NewBuilder(got)
	for _, l := range ts.Labels {
		b.Set(l.Name, l.Value)
	}
	if want := labels.FromStrings("__name__", "job:warn:sum", "cluster", "eu1", "replica", "r1"); !labels.Equal(b.Labels(), want) {
		t.Errorf("remote-written labels %v, want %v (external labels attached)", b.Labels(), want)
	}
	if len(ts.Samples) == 0 || ts.Samples[0].Value != 5 {
		t.Errorf("samples %v", ts.Samples)
	}
}

// With a bucket, Close writes the head into a block and uploads it as the ruler's.
func TestRulerUploadsOnClose(t *testing.T) {
	api := rulerQueryAPI(t)
	dir := t.TempDir()
	writeFile(t, dir, "rules.yaml", rulerRules)
	cfg := testRulerConfig(t, dir, api, &Alertmanagers{})
	bkt := objstore.NewInMemBucket()
	cfg.Bucket, cfg.UploadEvery = bkt, time.Hour
	r, stop := startRuler(t, cfg)
	waitFor(t, 10*time.Second, "recorded samples", func() bool { _, v := recorded(t, r, "job:warn:sum"); return len(v) > 0 })
	stop()

	var metas []string
	for name := range bkt.Objects() {
		if strings.HasSuffix(name, "/meta.json") {
			metas = append(metas, name)
		}
	}
	if len(metas) != 1 {
		t.Fatalf("uploaded meta files %v, want one block", metas)
	}
	var meta struct {
		Thanos struct {
			Labels map[string]string `json:"labels"`
			Source string            `json:"source"`
		} `json:"thanos"`
	}
	if err := json.Unmarshal(bkt.Objects()[metas[0]], &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Thanos.Source != "ruler" || !maps.Equal(meta.Thanos.Labels, map[string]string{"cluster": "eu1", "replica": "r1"}) {
		t.Errorf("block meta thanos section %+v, want source ruler and the --label set", meta.Thanos)
	}
}

// Stateless mode without a working remote write still opens and evaluates.
func TestRulerStatelessOpens(t *testing.T) {
	api := rulerQueryAPI(t)
	dir := t.TempDir()
	writeFile(t, dir, "rules.yaml", rulerRules)
	cfg := testRulerConfig(t, dir, api, &Alertmanagers{})
	rwc, err := config.Load("remote_write:\n- url: http://"+closedAddr(t)+"/api/v1/write\n", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteWrite = rwc
	cfg.FlushDeadline = 100 * time.Millisecond // the endpoint is down: do not wait for it at shutdown
	r, _ := startRuler(t, cfg)
	if r.Store() != nil || r.db != nil || r.agentDB == nil {
		t.Fatalf("stateless ruler: store %v db %v agent %v", r.Store(), r.db, r.agentDB)
	}
	waitFor(t, 10*time.Second, "evaluations", func() bool {
		pr := partialByQuery(api)
		return len(pr["sum(warn_metric)"]) > 0 && len(pr["sum(abort_metric)"]) > 0
	})
	if pr := partialByQuery(api); !slices.Equal(pr["sum(warn_metric)"], []string{"true"}) || !slices.Equal(pr["sum(abort_metric)"], []string{"false"}) {
		t.Errorf("partial_response per query %v", pr)
	}
}

// Run's contract: on shutdown the notifier sends what is queued.
func TestRulerRunDrainsAlertQueue(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []postedAlert
		if err := json.NewDecoder(r.Body).Decode(&as); err != nil {
			t.Errorf("decode alerts: %v", err)
		}
		time.Sleep(300 * time.Millisecond) // keep the next batch queued
		mu.Lock()
		for _, a := range as {
			got = append(got, a.Labels["alertname"])
		}
		mu.Unlock()
	}))
	defer am.Close()
	ams, err := ParseAlertmanagerURLs([]string{am.URL}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "r.yaml", "groups: []\n")
	r, stop := startRuler(t, testRulerConfig(t, dir, rulerQueryAPI(t), ams))
	waitFor(t, 5*time.Second, "Alertmanager resolved", func() bool { return len(r.notifier.Alertmanagers()) == 1 })
	send := NotifyFunc(r.notifier, AlertOptions{})
	send(context.Background(), "x", &rules.Alert{Labels: labels.FromStrings("alertname", "First"), FiredAt: time.Now()})
	time.Sleep(50 * time.Millisecond)
	send(context.Background(), "x", &rules.Alert{Labels: labels.FromStrings("alertname", "Queued"), FiredAt: time.Now()})
	stop()
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(got, "Queued") {
		t.Errorf("Alertmanager received %v; the queued alert was dropped at shutdown", got)
	}
}

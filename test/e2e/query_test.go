package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// The querier's end-to-end tests share one HA fixture (issue 3): two real Prometheus
// replicas with external labels {cluster="test", replica="r0"|"r1"} scrape the same
// three targets every second (each other and a real node exporter), each has a vigil
// sidecar, and one `vigil query` finds both sidecars through --store.sd-files with
// --query.replica-label=replica.
//
// TestQueryHA runs in three phases: with both replicas up (most checks, in parallel,
// including the bad-input queriers), with replica r0 and its sidecar killed, and after
// both are restarted (r0's data then has a hole that deduplication must fill from r1).

const (
	replicaLabel = "replica"
	// scrapeInterval of both replicas.
	scrapeInterval = time.Second
)

// haFixture is the shared HA pair and its querier.
type haFixture struct {
	node   *e2eutil.NodeExporter
	prom   [2]*e2eutil.Prometheus
	side   [2]*e2eutil.Vigil
	q      *e2eutil.Vigil // vigil query over both sidecars, found through sdFile
	sdFile string
	// t0 is a moment from which every target is up in both replicas: queries at t0 or
	// later see all of them (with lookbacks of 3s or more).
	t0 time.Time
}

// targets returns the instance label of the three scrape targets by job.
func (f *haFixture) targets() map[string][]string {
	return map[string][]string{
		"node":       {f.node.Addr},
		"prometheus": {f.prom[0].Addr, f.prom[1].Addr},
	}
}

func replicaExtLabels(i int) map[string]string {
	return map[string]string{"cluster": "test", replicaLabel: fmt.Sprintf("r%d", i)}
}

// writeSDFile writes a Prometheus file SD file (JSON) listing addrs, atomically.
func writeSDFile(t *testing.T, path string, addrs ...string) {
	t.Helper()
	b, err := json.Marshal([]map[string]any{{"targets": addrs, "labels": map[string]string{"role": "sidecar"}}})
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func startHAFixture(t *testing.T) *haFixture {
	t.Helper()
	f := &haFixture{}
	f.node = e2eutil.StartNodeExporter(t)
	nodeJob := e2eutil.ScrapeConfig{JobName: "node", Targets: []string{f.node.Addr}}
	for i := range f.prom {
		f.prom[i] = e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{
			ExternalLabels: replicaExtLabels(i), ScrapeInterval: scrapeInterval,
			ScrapeConfigs: []e2eutil.ScrapeConfig{nodeJob},
		})
	}
	// Now that both addresses are known, each replica scrapes both Prometheus servers.
	for i, p := range f.prom {
		cfg := e2eutil.PrometheusConfig{
			ExternalLabels: replicaExtLabels(i), ScrapeInterval: scrapeInterval, NoSelfScrape: true,
			ScrapeConfigs: []e2eutil.ScrapeConfig{
				{JobName: "prometheus", Targets: []string{f.prom[0].Addr, f.prom[1].Addr}},
				nodeJob,
			},
		}
		if err := p.WriteConfig(cfg); err != nil {
			t.Fatal(err)
		}
		if err := p.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range f.prom {
		f.side[i] = e2eutil.StartVigil(t, "sidecar",
			"--prometheus.url="+p.URL,
			"--tsdb.path="+p.DataDir,
			"--prometheus.get_config_interval=1s",
			"--prometheus.ready_timeout=30s")
	}
	for _, s := range f.side {
		s.MustWaitReady(t)
	}

	// The querier starts with only r0's sidecar in the SD file; adding r1's afterwards
	// checks that the file is watched (the periodic re-read is left at its 5m default).
	f.sdFile = filepath.Join(t.TempDir(), "stores.json")
	writeSDFile(t, f.sdFile, f.side[0].GRPCAddr)
	f.q = e2eutil.StartVigil(t, "query",
		"--store.sd-files="+f.sdFile,
		"--query.replica-label="+replicaLabel)
	f.q.MustWaitReady(t)
	e2eutil.Poll(t, 15*time.Second, 200*time.Millisecond, func() error {
		return storesHealthy(f.q.HTTPURL, "sidecar", f.side[0].GRPCAddr)
	})
	writeSDFile(t, f.sdFile, f.side[0].GRPCAddr, f.side[1].GRPCAddr)
	added := time.Now()
	e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
		return storesHealthy(f.q.HTTPURL, "sidecar", f.side[0].GRPCAddr, f.side[1].GRPCAddr)
	})
	t.Logf("querier picked up the second sidecar from the SD file after %s", time.Since(added).Round(time.Millisecond))

	// Wait until every target has been up in both replicas (3 targets x 2 replicas)
	// for a few scrapes. Prometheus starts scraping new targets up to 5s after a start
	// or reload, so the data is only seconds old here.
	e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error {
		r, err := callAPI(f.q.HTTPURL, "/api/v1/query", url.Values{"query": {"count_over_time(up[4s]) >= 3 and min_over_time(up[4s]) == 1"}, "dedup": {"false"}})
		if err != nil {
			return err
		}
		if err := r.ok(); err != nil {
			return err
		}
		vec, err := r.series("vector")
		if err != nil {
			return err
		}
		if len(vec) != 6 {
			return fmt.Errorf("%d series of up with 3 samples of 1 in the last 4s without dedup, want 6: %v", len(vec), metricKeys(vec))
		}
		return nil
	})
	// Every series has a sample at or before now-2s, so queries at t0 or later see all.
	f.t0 = time.Now().Add(-time.Second)
	return f
}

func TestQueryHA(t *testing.T) {
	t.Parallel()
	f := startHAFixture(t)
	t.Logf("fixture ready at t0=%s: node exporter %s, prometheus %s / %s, sidecars %s / %s, querier %s (gRPC %s)",
		f.t0.Format(time.RFC3339Nano), f.node.Addr, f.prom[0].Addr, f.prom[1].Addr,
		f.side[0].GRPCAddr, f.side[1].GRPCAddr, f.q.HTTPAddr, f.q.GRPCAddr)

	t.Run("BothReplicasUp", func(t *testing.T) {
		// Longest first: at most GOMAXPROCS of them run at once (go test -parallel).
		t.Run("HangingEndpoints", func(t *testing.T) { t.Parallel(); testHangingEndpoints(t, f) })
		t.Run("Timeouts", func(t *testing.T) { t.Parallel(); testTimeouts(t, f) })
		t.Run("UnknownEndpoints", func(t *testing.T) { t.Parallel(); testUnknownEndpoints(t, f) })
		t.Run("StackedQuerier", func(t *testing.T) { t.Parallel(); testStackedQuerier(t, f) })
		t.Run("Promtool", func(t *testing.T) { t.Parallel(); testPromtool(t, f) })
		t.Run("Dedup", func(t *testing.T) { t.Parallel(); testDedup(t, f) })
		t.Run("MaxSamples", func(t *testing.T) { t.Parallel(); testMaxSamples(t, f) })
		t.Run("FetchLimits", func(t *testing.T) { t.Parallel(); testFetchLimits(t, f) })
		t.Run("ReplicaLabelsParam", func(t *testing.T) { t.Parallel(); testReplicaLabelsParam(t, f) })
		t.Run("SeriesAndLabels", func(t *testing.T) { t.Parallel(); testSeriesAndLabels(t, f) })
		t.Run("Stores", func(t *testing.T) { t.Parallel(); testStores(t, f) })
		t.Run("HealthAndInfo", func(t *testing.T) { t.Parallel(); testHealthAndInfo(t, f) })
		t.Run("InvalidPromQL", func(t *testing.T) { t.Parallel(); testInvalidPromQL(t, f) })
	})

	// Runs alone: it freezes r1's sidecar for a moment.
	t.Run("FrozenReplica", func(t *testing.T) { testFrozenReplica(t, f) })

	// At least 15s of data from both replicas, then replica r0 and its sidecar crash.
	sleepUntil(f.t0.Add(16 * time.Second))
	for _, p := range []*e2eutil.Process{f.side[0].Process, f.prom[0].Process} {
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	killed := time.Now()
	t.Logf("killed replica r0 and its sidecar at %s (t0+%s)", killed.Format(time.RFC3339Nano), killed.Sub(f.t0).Round(time.Millisecond))

	t.Run("ReplicaDown", func(t *testing.T) { testReplicaDown(t, f) })
	sleepUntil(killed.Add(16 * time.Second))
	t.Run("NoGapWhileReplicaDown", func(t *testing.T) { testNoGapWhileDown(t, f) })

	// Replica r0 comes back on the same port and data directory: its data now has a
	// hole of about 16s that the querier must fill from r1.
	if err := f.prom[0].Start(); err != nil {
		t.Fatal(err)
	}
	if err := f.prom[0].WaitReady(e2eutil.PrometheusStartTimeout); err != nil {
		t.Fatal(err)
	}
	if err := f.side[0].Start(); err != nil {
		t.Fatal(err)
	}
	f.side[0].MustWaitReady(t)
	restarted := time.Now()
	t.Logf("restarted replica r0 and its sidecar at t0+%s", restarted.Sub(f.t0).Round(time.Millisecond))
	t.Run("DedupFillsReplicaGap", func(t *testing.T) { testDedupFillsGap(t, f, killed, restarted) })
}

// sidecarsAndQuerier starts a sidecar beside each of an HA pair's Prometheus servers and
// a querier over both that deduplicates on the replica label.
func sidecarsAndQuerier(t *testing.T, proms [2]*e2eutil.Prometheus) (side [2]*e2eutil.Vigil, q *e2eutil.Vigil) {
	t.Helper()
	for i, p := range proms {
		side[i] = e2eutil.StartVigil(t, "sidecar",
			"--prometheus.url="+p.URL, "--tsdb.path="+p.DataDir,
			"--prometheus.get_config_interval=1s", "--prometheus.ready_timeout=30s")
	}
	for _, s := range side {
		s.MustWaitReady(t)
	}
	q = e2eutil.StartVigil(t, "query",
		"--endpoint="+side[0].GRPCAddr, "--endpoint="+side[1].GRPCAddr,
		"--query.replica-label="+replicaLabel)
	q.MustWaitReady(t)
	return side, q
}

// --- API helpers -------------------------------------------------------------------

var apiClient = &http.Client{Timeout: 30 * time.Second}

// apiResult is a decoded Prometheus API envelope.
type apiResult struct {
	HTTPStatus int
	Took       time.Duration
	Body       string

	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

func (r apiResult) String() string {
	return fmt.Sprintf("HTTP %d in %s: %.600s", r.HTTPStatus, r.Took.Round(time.Millisecond), r.Body)
}

// ok returns an error unless the request succeeded.
func (r apiResult) ok() error {
	if r.HTTPStatus != http.StatusOK || r.Status != "success" {
		return fmt.Errorf("want HTTP 200 success, got %s", r)
	}
	return nil
}

// apiRequest is one request of callAll.
type apiRequest struct {
	path   string
	params url.Values
}

// callAll sends the requests concurrently (GET) and returns their results by name; a
// request that gets no envelope fails the test.
func callAll(t *testing.T, base string, reqs map[string]apiRequest) map[string]apiResult {
	t.Helper()
	var (
		mu  sync.Mutex
		res = map[string]apiResult{}
		wg  sync.WaitGroup
	)
	for name, rq := range reqs {
		wg.Go(func() {
			r, err := callAPI(base, rq.path, rq.params)
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			mu.Lock()
			res[name] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return res
}

// callAPI sends GET base+path?params and decodes the envelope. A body that is not an
// envelope is an error.
func callAPI(base, path string, params url.Values) (apiResult, error) {
	return doAPI(http.MethodGet, base, path, params)
}

// postAPI sends the parameters as a form-encoded POST body.
func postAPI(base, path string, params url.Values) (apiResult, error) {
	return doAPI(http.MethodPost, base, path, params)
}

func doAPI(method, base, path string, params url.Values) (apiResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := base + path
	var body io.Reader
	if method == http.MethodGet {
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return apiResult{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	start := time.Now()
	resp, err := apiClient.Do(req)
	if err != nil {
		return apiResult{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := apiResult{HTTPStatus: resp.StatusCode, Took: time.Since(start), Body: string(b)}
	if err != nil {
		return r, fmt.Errorf("%s %s: read body: %w", method, u, err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s %s: HTTP %d, body is not a JSON envelope: %w: %.300s", method, u, resp.StatusCode, err, b)
	}
	return r, nil
}

// mustAPI is callAPI that fails the test unless the request succeeds.
func mustAPI(t *testing.T, base, path string, params url.Values) apiResult {
	t.Helper()
	r, err := callAPI(base, path, params)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ok(); err != nil {
		t.Fatalf("%s %v: %v", path, params, err)
	}
	return r
}

// promSeries is one element of a vector or matrix result.
type promSeries struct {
	Metric map[string]string    `json:"metric"`
	Value  [2]json.RawMessage   `json:"value"`  // vector
	Values [][2]json.RawMessage `json:"values"` // matrix
}

// series decodes a vector or matrix result, checking its type.
func (r apiResult) series(wantType string) ([]promSeries, error) {
	var d struct {
		ResultType string       `json:"resultType"`
		Result     []promSeries `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return nil, fmt.Errorf("decode data: %w: %.300s", err, r.Data)
	}
	if d.ResultType != wantType {
		return nil, fmt.Errorf("result type %q, want %q", d.ResultType, wantType)
	}
	return d.Result, nil
}

// single decodes a vector result of exactly one series and returns its sample.
func (r apiResult) single() (sample, error) {
	vec, err := r.series("vector")
	if err != nil {
		return sample{}, err
	}
	if len(vec) != 1 {
		return sample{}, fmt.Errorf("%d series, want 1", len(vec))
	}
	return decodePair(vec[0].Value)
}

func mustSeriesResult(t *testing.T, r apiResult, wantType string) []promSeries {
	t.Helper()
	s, err := r.series(wantType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// instant runs an instant query at the given time (zero: now) and returns the vector.
func instant(t *testing.T, base, query string, at time.Time, extra url.Values) (apiResult, []promSeries) {
	t.Helper()
	p := url.Values{"query": {query}}
	if !at.IsZero() {
		p.Set("time", unixParam(at))
	}
	for k, v := range extra {
		p[k] = v
	}
	r := mustAPI(t, base, "/api/v1/query", p)
	return r, mustSeriesResult(t, r, "vector")
}

// rangeQuery runs a range query and returns the matrix.
func rangeQuery(t *testing.T, base, query string, start, end time.Time, step time.Duration, extra url.Values) (apiResult, []promSeries) {
	t.Helper()
	p := url.Values{"query": {query}, "start": {unixParam(start)}, "end": {unixParam(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	for k, v := range extra {
		p[k] = v
	}
	r := mustAPI(t, base, "/api/v1/query_range", p)
	return r, mustSeriesResult(t, r, "matrix")
}

// rawSamples runs `sel[<end-start>ms]` at end: the raw samples in (start, end].
func rawSamples(t *testing.T, base, sel string, start, end time.Time, extra url.Values) []promSeries {
	t.Helper()
	ms := end.Sub(start).Milliseconds()
	_, m := instantMatrix(t, base, fmt.Sprintf("%s[%dms]", sel, ms), end, extra)
	return m
}

func instantMatrix(t *testing.T, base, query string, at time.Time, extra url.Values) (apiResult, []promSeries) {
	t.Helper()
	p := url.Values{"query": {query}, "time": {unixParam(at)}}
	for k, v := range extra {
		p[k] = v
	}
	r := mustAPI(t, base, "/api/v1/query", p)
	return r, mustSeriesResult(t, r, "matrix")
}

// unixParam formats t as Unix seconds with millisecond precision.
func unixParam(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// sample is a decoded [timestamp, "value"] pair.
type sample struct {
	T int64 // ms
	V float64
}

func decodePair(p [2]json.RawMessage) (sample, error) {
	var ts json.Number
	var v string
	if err := json.Unmarshal(p[0], &ts); err != nil {
		return sample{}, fmt.Errorf("timestamp %s: %w", p[0], err)
	}
	if err := json.Unmarshal(p[1], &v); err != nil {
		return sample{}, fmt.Errorf("value %s: %w", p[1], err)
	}
	secs, err := strconv.ParseFloat(ts.String(), 64)
	if err != nil {
		return sample{}, err
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return sample{}, err
	}
	return sample{T: int64(math.Round(secs * 1000)), V: f}, nil
}

func (s promSeries) samples(t *testing.T) []sample {
	t.Helper()
	out := make([]sample, 0, len(s.Values))
	for _, p := range s.Values {
		smp, err := decodePair(p)
		if err != nil {
			t.Fatalf("series %s: %v", metricKey(s.Metric), err)
		}
		out = append(out, smp)
	}
	return out
}

func (s promSeries) value(t *testing.T) sample {
	t.Helper()
	smp, err := decodePair(s.Value)
	if err != nil {
		t.Fatalf("series %s: %v", metricKey(s.Metric), err)
	}
	return smp
}

// metricKey renders a label set canonically: {a="1", b="2"}.
func metricKey(m map[string]string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%q", n, m[n]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func metricKeys(ss []promSeries) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, metricKey(s.Metric))
	}
	sort.Strings(out)
	return out
}

// without returns a copy of m without the named labels.
func without(m map[string]string, names ...string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if !slices.Contains(names, k) {
			out[k] = v
		}
	}
	return out
}

// warningsMention fails the test unless some warning contains each of the substrings.
func warningsMention(t *testing.T, what string, warnings []string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, s) }) {
			t.Errorf("%s: no warning mentions %q; warnings: %q", what, s, warnings)
		}
	}
}

// storeStatus is one entry of /api/v1/stores.
type storeStatus struct {
	Name      string              `json:"name"`
	LastCheck time.Time           `json:"lastCheck"`
	LastError *string             `json:"lastError"`
	LabelSets []map[string]string `json:"labelSets"`
	MinTime   int64               `json:"minTime"`
	MaxTime   int64               `json:"maxTime"`
}

// stores returns /api/v1/stores: component type -> endpoints.
func stores(base string) (map[string][]storeStatus, error) {
	r, err := callAPI(base, "/api/v1/stores", nil)
	if err != nil {
		return nil, err
	}
	if err := r.ok(); err != nil {
		return nil, err
	}
	var out map[string][]storeStatus
	if err := json.Unmarshal(r.Data, &out); err != nil {
		return nil, fmt.Errorf("decode stores: %w: %.300s", err, r.Data)
	}
	return out, nil
}

// findStore returns the endpoint named addr and its component type.
func findStore(all map[string][]storeStatus, addr string) (storeStatus, string, bool) {
	for typ, l := range all {
		for _, s := range l {
			if s.Name == addr {
				return s, typ, true
			}
		}
	}
	return storeStatus{}, "", false
}

// storesHealthy returns nil when /api/v1/stores lists exactly addrs under typ, all
// without an error.
func storesHealthy(base, typ string, addrs ...string) error {
	all, err := stores(base)
	if err != nil {
		return err
	}
	var names []string
	for _, s := range all[typ] {
		names = append(names, s.Name)
		if s.LastError != nil {
			return fmt.Errorf("store %s has lastError %q", s.Name, *s.LastError)
		}
	}
	want := slices.Clone(addrs)
	slices.Sort(want)
	slices.Sort(names)
	if !slices.Equal(names, want) {
		return fmt.Errorf("stores of type %s: %q, want %q (all: %+v)", typ, names, want, all)
	}
	return nil
}

func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

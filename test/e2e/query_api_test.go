package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// These run while both replicas are up (TestQueryHA/BothReplicasUp).

// wantUpTargets checks that vec is `up` of exactly the three targets, once each, with
// value 1 and exactly the labels __name__, cluster, instance and job plus, when
// withReplica, replica r0 or r1 (then every target appears once per replica).
func wantUpTargets(t *testing.T, f *haFixture, what string, vec []promSeries, withReplica bool) {
	t.Helper()
	var want []string
	for job, instances := range f.targets() {
		for _, inst := range instances {
			m := map[string]string{"__name__": "up", "cluster": "test", "instance": inst, "job": job}
			if !withReplica {
				want = append(want, metricKey(m))
				continue
			}
			for i := range 2 {
				m[replicaLabel] = fmt.Sprintf("r%d", i)
				want = append(want, metricKey(m))
			}
		}
	}
	slices.Sort(want)
	if got := metricKeys(vec); !slices.Equal(got, want) {
		t.Errorf("%s: series\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, s := range vec {
		if v := s.value(t); v.V != 1 {
			t.Errorf("%s: %s = %v, want 1", what, metricKey(s.Metric), v.V)
		}
	}
}

func testDedup(t *testing.T, f *haFixture) {
	at := time.Now().Add(-time.Second)
	r, vec := instant(t, f.q.HTTPURL, "up", at, nil)
	wantUpTargets(t, f, "up (dedup default)", vec, false)
	if len(r.Warnings) > 0 {
		t.Errorf("up with both replicas healthy: unexpected warnings %q", r.Warnings)
	}
	_, vec = instant(t, f.q.HTTPURL, "up", at, url.Values{"dedup": {"true"}})
	wantUpTargets(t, f, "up&dedup=true", vec, false)
	_, vec = instant(t, f.q.HTTPURL, "up", at, url.Values{"dedup": {"false"}})
	wantUpTargets(t, f, "up&dedup=false", vec, true)

	for _, tc := range []struct {
		dedup string
		want  float64
	}{{"true", 3}, {"false", 6}} {
		_, vec := instant(t, f.q.HTTPURL, "count(up)", at, url.Values{"dedup": {tc.dedup}})
		if len(vec) != 1 || vec[0].value(t).V != tc.want {
			t.Errorf("count(up)&dedup=%s = %+v, want %v", tc.dedup, vec, tc.want)
		}
	}

	// The same through POST (form body), as promtool and Grafana send it.
	pr, err := postAPI(f.q.HTTPURL, "/api/v1/query", url.Values{"query": {"up"}, "time": {unixParam(at)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.ok(); err != nil {
		t.Fatalf("POST /api/v1/query: %v", err)
	}
	wantUpTargets(t, f, "POST up", mustSeriesResult(t, pr, "vector"), false)

	// A range query deduplicates too: one series per target, every step present.
	start := f.t0
	end := start.Add(5 * time.Second)
	sleepUntil(end.Add(time.Second))
	_, m := rangeQuery(t, f.q.HTTPURL, "up", start, end, time.Second, nil)
	if len(m) != 3 {
		t.Errorf("query_range up: %d series %q, want 3", len(m), metricKeys(m))
	}
	for _, s := range m {
		if _, ok := s.Metric[replicaLabel]; ok {
			t.Errorf("query_range up: series %s keeps the replica label", metricKey(s.Metric))
		}
		if n := len(s.Values); n != 6 {
			t.Errorf("query_range up: %s has %d points, want 6", metricKey(s.Metric), n)
		}
	}
	_, m = rangeQuery(t, f.q.HTTPURL, "up", start, end, time.Second, url.Values{"dedup": {"false"}})
	if len(m) != 6 {
		t.Errorf("query_range up&dedup=false: %d series %q, want 6", len(m), metricKeys(m))
	}
}

func testReplicaLabelsParam(t *testing.T, f *haFixture) {
	at := time.Now().Add(-time.Second)
	_, vec := instant(t, f.q.HTTPURL, "up", at, url.Values{"replicaLabels[]": {replicaLabel}})
	wantUpTargets(t, f, "up&replicaLabels[]=replica", vec, false)
	_, vec = instant(t, f.q.HTTPURL, "up", at, url.Values{"replicaLabels[]": {replicaLabel}, "dedup": {"false"}})
	wantUpTargets(t, f, "up&replicaLabels[]=replica&dedup=false", vec, true)

	// replicaLabels[] replaces --query.replica-label: deduplicating on cluster strips
	// cluster and keeps the two replicas apart.
	_, vec = instant(t, f.q.HTTPURL, "up", at, url.Values{"replicaLabels[]": {"cluster"}})
	if len(vec) != 6 {
		t.Errorf("up&replicaLabels[]=cluster: %d series %q, want 6 (one per target and replica)", len(vec), metricKeys(vec))
	}
	for _, s := range vec {
		if _, ok := s.Metric["cluster"]; ok {
			t.Errorf("up&replicaLabels[]=cluster: %s keeps cluster", metricKey(s.Metric))
		}
		if r := s.Metric[replicaLabel]; r != "r0" && r != "r1" {
			t.Errorf("up&replicaLabels[]=cluster: %s lacks replica r0/r1", metricKey(s.Metric))
		}
	}
	// Both labels: everything but the target labels goes, one series per target.
	_, vec = instant(t, f.q.HTTPURL, "up", at, url.Values{"replicaLabels[]": {"cluster", replicaLabel}})
	if len(vec) != 3 {
		t.Errorf("up&replicaLabels[]=cluster&replicaLabels[]=replica: %d series %q, want 3", len(vec), metricKeys(vec))
	}
	for _, s := range vec {
		if len(without(s.Metric, "__name__", "instance", "job")) != 0 {
			t.Errorf("up with both labels as replica labels: %s keeps more than the target labels", metricKey(s.Metric))
		}
	}
}

func testSeriesAndLabels(t *testing.T, f *haFixture) {
	series := func(dedup string) []string {
		t.Helper()
		r := mustAPI(t, f.q.HTTPURL, "/api/v1/series", url.Values{"match[]": {"up"}, "dedup": {dedup}})
		var sets []map[string]string
		if err := json.Unmarshal(r.Data, &sets); err != nil {
			t.Fatalf("decode /api/v1/series: %v: %s", err, r.Data)
		}
		var keys []string
		for _, s := range sets {
			keys = append(keys, metricKey(s))
		}
		slices.Sort(keys)
		return keys
	}
	strs := func(path string, p url.Values) []string {
		t.Helper()
		r := mustAPI(t, f.q.HTTPURL, path, p)
		var out []string
		if err := json.Unmarshal(r.Data, &out); err != nil {
			t.Fatalf("decode %s: %v: %s", path, err, r.Data)
		}
		if out == nil {
			t.Errorf("%s %v: data is null, want a (possibly empty) list", path, p)
		}
		return out
	}

	deduped, raw := series("true"), series("false")
	if len(deduped) != 3 || len(raw) != 6 {
		t.Errorf("/api/v1/series match[]=up: %d series with dedup, %d without; want 3 and 6:\n%q\n%q", len(deduped), len(raw), deduped, raw)
	}
	for _, k := range deduped {
		if strings.Contains(k, replicaLabel+"=") {
			t.Errorf("/api/v1/series with dedup: %s keeps the replica label", k)
		}
	}
	for _, k := range raw {
		if !strings.Contains(k, `replica="r0"`) && !strings.Contains(k, `replica="r1"`) {
			t.Errorf("/api/v1/series with dedup=false: %s lacks the replica label", k)
		}
	}

	names := strs("/api/v1/labels", nil)
	for _, n := range []string{"__name__", "cluster", "instance", "job"} {
		if !slices.Contains(names, n) {
			t.Errorf("/api/v1/labels = %q lacks %q", names, n)
		}
	}
	if slices.Contains(names, replicaLabel) {
		t.Errorf("/api/v1/labels with dedup = %q, want no %q", names, replicaLabel)
	}
	if got := strs("/api/v1/labels", url.Values{"dedup": {"false"}}); !slices.Contains(got, replicaLabel) {
		t.Errorf("/api/v1/labels&dedup=false = %q, want %q in it", got, replicaLabel)
	}
	if got, want := strs("/api/v1/labels", url.Values{"match[]": {"up"}}), []string{"__name__", "cluster", "instance", "job"}; !slices.Equal(got, want) {
		t.Errorf("/api/v1/labels?match[]=up = %q, want %q", got, want)
	}

	if got := strs("/api/v1/label/replica/values", nil); len(got) != 0 {
		t.Errorf("/api/v1/label/replica/values with dedup = %q, want []", got)
	}
	if got := strs("/api/v1/label/replica/values", url.Values{"dedup": {"false"}}); !slices.Equal(got, []string{"r0", "r1"}) {
		t.Errorf("/api/v1/label/replica/values&dedup=false = %q, want [r0 r1]", got)
	}
	if got := strs("/api/v1/label/cluster/values", nil); !slices.Equal(got, []string{"test"}) {
		t.Errorf("/api/v1/label/cluster/values = %q, want [test]", got)
	}
	if got := strs("/api/v1/label/job/values", url.Values{"match[]": {"up"}}); !slices.Equal(got, []string{"node", "prometheus"}) {
		t.Errorf("/api/v1/label/job/values?match[]=up = %q, want [node prometheus]", got)
	}
}

func testStores(t *testing.T, f *haFixture) {
	all, err := stores(f.q.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || len(all["sidecar"]) != 2 {
		t.Fatalf("/api/v1/stores = %+v, want exactly the two sidecars under \"sidecar\"", all)
	}
	t0 := f.t0.UnixMilli()
	for i, sc := range f.side {
		s, _, ok := findStore(all, sc.GRPCAddr)
		if !ok {
			t.Errorf("/api/v1/stores lacks sidecar %s", sc.GRPCAddr)
			continue
		}
		if s.LastError != nil {
			t.Errorf("store %s: lastError %q, want null", s.Name, *s.LastError)
		}
		want := []map[string]string{replicaExtLabels(i)}
		if fmt.Sprint(s.LabelSets) != fmt.Sprint(want) {
			t.Errorf("store %s: labelSets %v, want %v", s.Name, s.LabelSets, want)
		}
		// Before the sidecar has read Prometheus's lowest timestamp, minTime is
		// Prometheus's "no lower bound" (year 0), as with Thanos.
		if s.MinTime > t0 || s.MaxTime < t0 {
			t.Errorf("store %s: time range [%d, %d] does not cover t0=%d", s.Name, s.MinTime, s.MaxTime, t0)
		}
		if age := time.Since(s.LastCheck); age < 0 || age > 30*time.Second {
			t.Errorf("store %s: lastCheck %s is %s old", s.Name, s.LastCheck, age)
		}
	}
}

// wantQueryInfo checks the Info of a querier over the HA pair: component "query" and
// the union of the sidecars' external label sets.
func wantQueryInfo(t *testing.T, v *e2eutil.Vigil, wantSets ...map[string]string) {
	t.Helper()
	c := v.StoreClient(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("Info of %s: %v", v.GRPCAddr, err)
	}
	if got := info.GetComponentType(); got != "query" {
		t.Errorf("Info of %s: component %q, want query", v.GRPCAddr, got)
	}
	var got []string
	for _, ls := range info.GetLabelSets() {
		got = append(got, storeapi.LabelsFromProto(ls.GetLabels()).String())
	}
	var want []string
	for _, m := range wantSets {
		want = append(want, metricKey(m))
	}
	if !slices.Equal(got, want) {
		t.Errorf("Info of %s: label sets %q, want %q", v.GRPCAddr, got, want)
	}
	st := info.GetStore()
	if st == nil {
		t.Fatalf("Info of %s: no StoreInfo", v.GRPCAddr)
	}
	if st.GetMinTime() > time.Now().UnixMilli() || st.GetMaxTime() < st.GetMinTime() {
		t.Errorf("Info of %s: time range [%d, %d]", v.GRPCAddr, st.GetMinTime(), st.GetMaxTime())
	}
}

func testHealthAndInfo(t *testing.T, f *haFixture) {
	for _, p := range []string{"/-/healthy", "/-/ready"} {
		if code := e2eutil.HTTPStatus(f.q.HTTPURL + p); code != http.StatusOK {
			t.Errorf("querier %s = %d, want 200", p, code)
		}
	}
	r := mustAPI(t, f.q.HTTPURL, "/api/v1/status/buildinfo", nil)
	var bi map[string]string
	if err := json.Unmarshal(r.Data, &bi); err != nil || bi["goVersion"] == "" {
		t.Errorf("/api/v1/status/buildinfo data = %s (%v), want an object with goVersion", r.Data, err)
	}
	wantQueryInfo(t, f.q, replicaExtLabels(0), replicaExtLabels(1))
}

// testStackedQuerier starts a second querier whose only endpoint is the first one's
// gRPC address, and checks that both give the same answers.
func testStackedQuerier(t *testing.T, f *haFixture) {
	q2 := e2eutil.StartVigil(t, "query",
		"--endpoint="+f.q.GRPCAddr,
		"--query.replica-label="+replicaLabel)
	q2.MustWaitReady(t)
	e2eutil.Poll(t, 15*time.Second, 200*time.Millisecond, func() error {
		all, err := stores(q2.HTTPURL)
		if err != nil {
			return err
		}
		s, typ, ok := findStore(all, f.q.GRPCAddr)
		if !ok || typ != "query" || s.LastError != nil || len(s.LabelSets) != 2 {
			return fmt.Errorf("second querier's stores: %+v, want the first querier, type query, healthy, 2 label sets", all)
		}
		return nil
	})
	wantQueryInfo(t, q2, replicaExtLabels(0), replicaExtLabels(1))

	sleepUntil(f.t0.Add(7 * time.Second)) // some data to compare
	at := time.Now().Add(-2 * time.Second).Truncate(time.Millisecond)
	canon := func(ss []promSeries) string {
		var b strings.Builder
		keys := make(map[string]string, len(ss))
		for _, s := range ss {
			v, _ := json.Marshal(s.Value)
			if s.Values != nil {
				v, _ = json.Marshal(s.Values)
			}
			keys[metricKey(s.Metric)] = string(v)
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			fmt.Fprintf(&b, "%s %s\n", k, keys[k])
		}
		return b.String()
	}
	for _, tc := range []struct {
		query string
		dedup string
		n     int // series expected
	}{
		{"up", "true", 3},
		{"up", "false", 6},
		{"count(up)", "true", 1},
		{"count(up)", "false", 1},
		{"sum(rate(prometheus_http_requests_total[30s]))", "true", 1},
		{"sum by (instance) (rate(prometheus_http_requests_total[30s]))", "true", 2},
		{`rate(promhttp_metric_handler_requests_total{job="node"}[10s])`, "true", 3},
	} {
		p := url.Values{"dedup": {tc.dedup}}
		r1, v1 := instant(t, f.q.HTTPURL, tc.query, at, p)
		r2, v2 := instant(t, q2.HTTPURL, tc.query, at, p)
		if len(v1) != tc.n {
			t.Errorf("%s&dedup=%s on the first querier: %d series, want %d:\n%s", tc.query, tc.dedup, len(v1), tc.n, canon(v1))
		}
		if c1, c2 := canon(v1), canon(v2); c1 != c2 {
			t.Errorf("%s&dedup=%s at %s differs:\nfirst querier:\n%s\nquerier over it:\n%s", tc.query, tc.dedup, unixParam(at), c1, c2)
		}
		if len(r1.Warnings)+len(r2.Warnings) > 0 {
			t.Errorf("%s: unexpected warnings %q / %q", tc.query, r1.Warnings, r2.Warnings)
		}
	}
	// A range query over the whole data so far, and the series API.
	start := f.t0
	for _, dedup := range []string{"true", "false"} {
		p := url.Values{"dedup": {dedup}}
		_, m1 := rangeQuery(t, f.q.HTTPURL, "up", start, at, time.Second, p)
		_, m2 := rangeQuery(t, q2.HTTPURL, "up", start, at, time.Second, p)
		if len(m1) == 0 {
			t.Errorf("query_range up&dedup=%s: no series", dedup)
		}
		if c1, c2 := canon(m1), canon(m2); c1 != c2 {
			t.Errorf("query_range up&dedup=%s differs:\nfirst querier:\n%s\nquerier over it:\n%s", dedup, c1, c2)
		}
		s1 := mustAPI(t, f.q.HTTPURL, "/api/v1/series", url.Values{"match[]": {"up"}, "dedup": {dedup}})
		s2 := mustAPI(t, q2.HTTPURL, "/api/v1/series", url.Values{"match[]": {"up"}, "dedup": {dedup}})
		if string(s1.Data) != string(s2.Data) {
			t.Errorf("/api/v1/series?match[]=up&dedup=%s differs:\n%s\n%s", dedup, s1.Data, s2.Data)
		}
	}
}

// testPromtool runs promtool's query commands against the querier.
func testPromtool(t *testing.T, f *haFixture) {
	promtool := func(args ...string) string {
		t.Helper()
		code, out, err := e2eutil.Promtool(t, 20*time.Second, args...)
		if err != nil || code != 0 {
			t.Fatalf("promtool %s: exit %d, %v:\n%s", strings.Join(args, " "), code, err, out)
		}
		return out
	}
	lines := func(out string, re *regexp.Regexp) []string {
		var l []string
		for _, line := range strings.Split(out, "\n") {
			if re.MatchString(line) {
				l = append(l, line)
			}
		}
		return l
	}
	noReplica := func(what, out string) {
		t.Helper()
		if strings.Contains(out, replicaLabel+"=") {
			t.Errorf("promtool %s printed the replica label:\n%s", what, out)
		}
	}
	url := f.q.HTTPURL

	// Instant: `up{cluster="test", instance="...", job="..."} => 1 @[<time>]`.
	out := promtool("query", "instant", url, "up")
	if got := lines(out, regexp.MustCompile(`^up\{.*\} => 1 @\[[0-9.]+\]$`)); len(got) != 3 {
		t.Errorf("promtool query instant up: %d lines `up{...} => 1 @[...]`, want 3:\n%s", len(got), out)
	}
	for _, inst := range []string{f.node.Addr, f.prom[0].Addr, f.prom[1].Addr} {
		if !strings.Contains(out, `instance="`+inst+`"`) {
			t.Errorf("promtool query instant up lacks instance %s:\n%s", inst, out)
		}
	}
	noReplica("query instant", out)
	out = promtool("query", "instant", url, "count(up)")
	if !regexp.MustCompile(`(?m)^\{\} => 3 @\[`).MatchString(out) {
		t.Errorf("promtool query instant count(up): want `{} => 3 @[...]`, got:\n%s", out)
	}

	// Range over 5s of data at 1s steps: each series is `up{...} =>` and then one
	// `1 @[<time>]` line per step.
	start := f.t0.Truncate(time.Second).Add(time.Second)
	end := start.Add(5 * time.Second)
	sleepUntil(end.Add(time.Second))
	out = promtool("query", "range", "--start="+strconv.FormatInt(start.Unix(), 10), "--end="+strconv.FormatInt(end.Unix(), 10), "--step=1s", url, "up")
	if got := lines(out, regexp.MustCompile(`^up\{.*\} =>$`)); len(got) != 3 {
		t.Errorf("promtool query range up: %d series headers, want 3:\n%s", len(got), out)
	}
	if got := lines(out, regexp.MustCompile(`^1 @\[[0-9.]+\]$`)); len(got) != 3*6 {
		t.Errorf("promtool query range up: %d points `1 @[...]`, want 3 series x 6 steps:\n%s", len(got), out)
	}
	noReplica("query range", out)

	// Series and label values.
	out = promtool("query", "series", "--match=up", url)
	if got := lines(out, regexp.MustCompile(`^\{__name__="up", cluster="test", instance="[^"]+", job="(node|prometheus)"\}$`)); len(got) != 3 {
		t.Errorf("promtool query series --match=up: %d matching lines, want 3:\n%s", len(got), out)
	}
	noReplica("query series", out)
	if out := promtool("query", "labels", url, "cluster"); strings.TrimSpace(out) != "test" {
		t.Errorf("promtool query labels cluster = %q, want test", out)
	}
	if out := promtool("query", "labels", url, replicaLabel); strings.TrimSpace(out) != "" {
		t.Errorf("promtool query labels replica = %q, want nothing (deduplicated)", out)
	}
}

// testInvalidPromQL checks that parse errors are 400 bad_data, exactly as the real
// Prometheus (replica r1) classifies them.
func testInvalidPromQL(t *testing.T, f *haFixture) {
	now := unixParam(time.Now())
	for _, tc := range []struct {
		method, path string
		params       url.Values
	}{
		{http.MethodGet, "/api/v1/query", url.Values{"query": {"up{"}}},
		{http.MethodGet, "/api/v1/query", url.Values{"query": {"no_such_function(up)"}}},
		{http.MethodPost, "/api/v1/query", url.Values{"query": {"sum(up"}}},
		{http.MethodGet, "/api/v1/query_range", url.Values{"query": {"rate(up)"}, "start": {now}, "end": {now}, "step": {"1"}}},
		{http.MethodPost, "/api/v1/query_range", url.Values{"query": {"up +"}, "start": {now}, "end": {now}, "step": {"1"}}},
	} {
		what := fmt.Sprintf("%s %s %v", tc.method, tc.path, tc.params)
		got, err := doAPI(tc.method, f.q.HTTPURL, tc.path, tc.params)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if got.HTTPStatus != http.StatusBadRequest || got.Status != "error" || got.ErrorType != "bad_data" {
			t.Errorf("%s: %s; want HTTP 400, status error, errorType bad_data", what, got)
		}
		if !strings.Contains(got.Error, "parse error") {
			t.Errorf("%s: error %q does not say parse error", what, got.Error)
		}
		prom, err := doAPI(tc.method, f.prom[1].URL, tc.path, tc.params)
		if err != nil {
			t.Errorf("%s on Prometheus: %v", what, err)
			continue
		}
		if prom.HTTPStatus != got.HTTPStatus || prom.ErrorType != got.ErrorType {
			t.Errorf("%s: querier says HTTP %d %s, Prometheus HTTP %d %s", what, got.HTTPStatus, got.ErrorType, prom.HTTPStatus, prom.ErrorType)
		}
	}
}

// closeTo reports whether a and b differ by at most rel (relative to b).
func closeTo(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Abs(b)
}

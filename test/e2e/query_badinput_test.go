package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// Bad endpoints and bad queries, each on its own querier over replica r1's sidecar.
// They run while both replicas are up (TestQueryHA/BothReplicasUp).

// testUnknownEndpoints: an address nobody listens on and a DNS name that does not
// resolve must not stop the querier from answering from the healthy endpoint.
func testUnknownEndpoints(t *testing.T, f *haFixture) {
	const (
		refused  = "127.0.0.1:1"
		noSuchDN = "dns+does-not-exist.invalid:10901"
	)
	q := e2eutil.StartVigil(t, "query",
		"--endpoint="+refused,
		"--endpoint="+noSuchDN,
		"--endpoint="+f.side[1].GRPCAddr,
		"--query.replica-label="+replicaLabel)
	q.MustWaitReady(t)

	r, vec := instant(t, q.HTTPURL, "up", time.Now().Add(-time.Second), nil)
	if len(vec) != 3 {
		t.Errorf("up with an unreachable endpoint: %d series %q, want the 3 targets from r1", len(vec), metricKeys(vec))
	}
	for _, s := range vec {
		if _, ok := s.Metric[replicaLabel]; ok {
			t.Errorf("up: %s keeps the replica label", metricKey(s.Metric))
		}
	}
	// Healthy() reports endpoints whose last probe failed as warnings of every query.
	warningsMention(t, "up with an unreachable endpoint", r.Warnings, refused)

	all, err := stores(q.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	if s, _, ok := findStore(all, refused); !ok || s.LastError == nil || *s.LastError == "" {
		t.Errorf("/api/v1/stores: want %s listed with a lastError; got %+v", refused, all)
	} else {
		t.Logf("%s: lastError %q", refused, *s.LastError)
	}
	if s, typ, ok := findStore(all, f.side[1].GRPCAddr); !ok || typ != "sidecar" || s.LastError != nil {
		t.Errorf("/api/v1/stores: want %s healthy under sidecar; got %+v", f.side[1].GRPCAddr, all)
	}
	// A name that does not exist resolves to no address (NXDOMAIN is not an error, as
	// in Thanos), so there is nothing to list; the querier logs it.
	b, _ := json.Marshal(all)
	if strings.Contains(string(b), "does-not-exist") {
		t.Errorf("/api/v1/stores lists the unresolvable name: %s", b)
	}
	if !strings.Contains(q.Log(), "does-not-exist.invalid") {
		t.Errorf("querier log does not mention the unresolvable endpoint does-not-exist.invalid")
	}

	// Still up and answering after a few probe rounds.
	time.Sleep(6 * time.Second)
	if q.Exited() {
		t.Fatal("querier exited")
	}
	for _, p := range []string{"/-/healthy", "/-/ready"} {
		if code := e2eutil.HTTPStatus(q.HTTPURL + p); code != http.StatusOK {
			t.Errorf("querier %s = %d, want 200", p, code)
		}
	}
	if _, vec := instant(t, q.HTTPURL, "count(up)", time.Time{}, nil); len(vec) != 1 || vec[0].value(t).V != 3 {
		t.Errorf("count(up) after a few probe rounds = %+v, want 3", vec)
	}
}

// testHangingEndpoints: an endpoint that passes Info but never answers data calls, and
// one that accepts TCP connections and says nothing, must not hang queries beyond
// --store.response-timeout.
func testHangingEndpoints(t *testing.T, f *haFixture) {
	const responseTimeout = 2 * time.Second
	hang := e2eutil.StartHangingStore(t, map[string]string{"cluster": "test", replicaLabel: "hang"})
	blackhole, accepted := e2eutil.StartBlackhole(t)
	q := e2eutil.StartVigil(t, "query",
		"--endpoint="+f.side[1].GRPCAddr,
		"--endpoint="+hang.Addr,
		"--endpoint="+blackhole,
		"--query.replica-hedge.min-delay=0", // the hanging store is a replica of the sidecars: no hedging here
		"--store.response-timeout="+responseTimeout.String(),
		"--query.replica-label="+replicaLabel)
	start := time.Now()
	q.MustWaitReady(t) // the first probe round waits for the blackhole's Info timeout (5s)
	t.Logf("querier ready after %s", time.Since(start).Round(time.Millisecond))

	all, err := stores(q.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	if s, typ, ok := findStore(all, hang.Addr); !ok || typ != "store" || s.LastError != nil {
		t.Fatalf("/api/v1/stores: want the hanging store %s healthy (its Info works); got %+v", hang.Addr, all)
	}
	if s, _, ok := findStore(all, blackhole); !ok || s.LastError == nil {
		t.Errorf("/api/v1/stores: want the blackhole %s with a lastError; got %+v", blackhole, all)
	}
	if accepted() == 0 {
		t.Errorf("the blackhole accepted no connection: the querier never tried it")
	}

	// maxTook bounds a query: the response timeout plus generous engine and HTTP time.
	const maxTook = responseTimeout + 3*time.Second
	now := time.Now()
	at := unixParam(now.Add(-time.Second))
	// The requests run concurrently; each waits for the hanging store on its own.
	reqs := map[string]apiRequest{
		"partial":        {"/api/v1/query", url.Values{"query": {"up"}, "time": {at}}},
		"range":          {"/api/v1/query_range", url.Values{"query": {"count(up)"}, "start": {unixParam(now.Add(-5 * time.Second))}, "end": {at}, "step": {"1"}}},
		"abort":          {"/api/v1/query", url.Values{"query": {"up"}, "time": {at}, "partial_response": {"false"}}},
		"labels":         {"/api/v1/labels", nil},
		"valuesAbort":    {"/api/v1/label/job/values", url.Values{"partial_response": {"false"}}},
		"seriesEndpoint": {"/api/v1/series", url.Values{"match[]": {"up"}}},
		"pruned":         {"/api/v1/query", url.Values{"query": {`up{replica="r1"}`}, "time": {at}, "dedup": {"false"}}},
	}
	res := callAll(t, q.HTTPURL, reqs)
	get := func(name string) apiResult {
		t.Helper()
		r, ok := res[name]
		if !ok {
			t.Fatalf("no request named %q", name)
		}
		return r
	}
	for name, r := range res {
		if r.Took > maxTook {
			t.Errorf("%s %s %v with a hanging endpoint took %s, want at most --store.response-timeout + 3s = %s", name, reqs[name].path, reqs[name].params, r.Took, maxTook)
		}
	}

	// Partial response (the default): the data of r1 plus a warning, after ~2s.
	r := get("partial")
	if err := r.ok(); err != nil {
		t.Fatalf("up with a hanging endpoint, partial response: %v", err)
	}
	vec := mustSeriesResult(t, r, "vector")
	if len(vec) != 3 {
		t.Errorf("up with a hanging endpoint: %d series %q, want the 3 targets from r1", len(vec), metricKeys(vec))
	}
	if r.Took < responseTimeout-100*time.Millisecond {
		t.Errorf("up with a hanging endpoint took %s, want about --store.response-timeout=%s: was the hanging store queried?", r.Took, responseTimeout)
	}
	warningsMention(t, "up with a hanging endpoint", r.Warnings, hang.Addr, "response-timeout", blackhole)
	if n := hang.Calls("Series"); n == 0 {
		t.Errorf("the hanging store received no Series call")
	}
	t.Logf("partial response in %s, warnings %q", r.Took.Round(time.Millisecond), r.Warnings)

	r = get("range")
	if err := r.ok(); err != nil {
		t.Errorf("query_range with a hanging endpoint: %v", err)
	}
	warningsMention(t, "query_range with a hanging endpoint", r.Warnings, hang.Addr)

	// Without partial response the query fails, as fast.
	r = get("abort")
	if r.HTTPStatus < 400 || r.Status != "error" || r.ErrorType == "" || !strings.Contains(r.Error, hang.Addr) {
		t.Errorf("up with a hanging endpoint, partial_response=false: %s; want a 4xx/5xx error envelope naming %s", r, hang.Addr)
	}
	t.Logf("partial_response=false: HTTP %d errorType %q error %q", r.HTTPStatus, r.ErrorType, r.Error)

	// Label names, values and series are bounded by the response timeout too.
	r = get("labels")
	var names []string
	if err := r.ok(); err != nil {
		t.Errorf("/api/v1/labels with a hanging endpoint: %v", err)
	} else if err := json.Unmarshal(r.Data, &names); err != nil || !slices.Contains(names, "job") {
		t.Errorf("/api/v1/labels with a hanging endpoint = %s (%v), want r1's names", r.Data, err)
	}
	warningsMention(t, "/api/v1/labels with a hanging endpoint", r.Warnings, hang.Addr)
	if hang.Calls("LabelNames") == 0 {
		t.Errorf("the hanging store received no LabelNames call")
	}
	if r := get("valuesAbort"); r.HTTPStatus < 400 || r.Status != "error" {
		t.Errorf("/api/v1/label/job/values with a hanging endpoint, partial_response=false: %s; want an error", r)
	}
	r = get("seriesEndpoint")
	if err := r.ok(); err != nil {
		t.Errorf("/api/v1/series with a hanging endpoint: %v", err)
	}
	warningsMention(t, "/api/v1/series with a hanging endpoint", r.Warnings, hang.Addr)

	// A matcher on the external labels prunes: replica="r1" contradicts the hanging
	// store's label set, so the query does not wait for it at all.
	r = get("pruned")
	if err := r.ok(); err != nil {
		t.Errorf(`up{replica="r1"}: %v`, err)
	} else if vec := mustSeriesResult(t, r, "vector"); len(vec) != 3 {
		t.Errorf(`up{replica="r1"}&dedup=false: %d series %q, want r1's 3`, len(vec), metricKeys(vec))
	}
	if r.Took >= responseTimeout {
		t.Errorf(`up{replica="r1"} took %s: the hanging store (replica="hang") was not pruned`, r.Took)
	}
	if slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, hang.Addr) }) {
		t.Errorf(`up{replica="r1"}: warnings %q mention the hanging store, which should have been pruned`, r.Warnings)
	}
	if q.Exited() {
		t.Fatal("querier exited")
	}
}

// testMaxSamples: a query over --query.max-samples fails with 422 execution, as
// Prometheus answers it; a small one still works.
func testMaxSamples(t *testing.T, f *haFixture) {
	q := e2eutil.StartVigil(t, "query",
		"--endpoint="+f.side[1].GRPCAddr,
		"--query.max-samples=100",
		"--query.replica-label="+replicaLabel)
	q.MustWaitReady(t)
	e2eutil.Poll(t, 10*time.Second, 200*time.Millisecond, func() error {
		return storesHealthy(q.HTTPURL, "sidecar", f.side[1].GRPCAddr)
	})

	if _, vec := instant(t, q.HTTPURL, "up", time.Time{}, nil); len(vec) != 3 {
		t.Errorf("up (3 samples) under --query.max-samples=100: %d series, want 3", len(vec))
	}
	now := time.Now()
	for _, tc := range []struct {
		path   string
		params url.Values
	}{
		// Every series of the self-scrape job: hundreds of samples at one instant.
		{"/api/v1/query", url.Values{"query": {`{job="prometheus"}`}}},
		// Range selectors count every sample they load.
		{"/api/v1/query", url.Values{"query": {`{job="node"}[1m]`}}},
		{"/api/v1/query_range", url.Values{"query": {`{job="node"}`},
			"start": {unixParam(now.Add(-10 * time.Second))}, "end": {unixParam(now)}, "step": {"1"}}},
	} {
		r, err := callAPI(q.HTTPURL, tc.path, tc.params)
		if err != nil {
			t.Error(err)
			continue
		}
		if r.HTTPStatus != http.StatusUnprocessableEntity || r.Status != "error" || r.ErrorType != "execution" ||
			!strings.Contains(r.Error, "too many samples") {
			t.Errorf("%s %v over the sample limit: %s; want HTTP 422, errorType execution, \"too many samples\"", tc.path, tc.params, r)
		}
	}
}

// testFetchLimits: a selector receiving more series or bytes from the endpoints than
// --store.limits.request-series or --query.max-fetched-bytes allow fails with 422
// execution naming the flag, even with partial response on; small queries still work.
func testFetchLimits(t *testing.T, f *haFixture) {
	for _, flag := range []string{"--store.limits.request-series=50", "--query.max-fetched-bytes=4KB"} {
		q := e2eutil.StartVigil(t, "query",
			"--endpoint="+f.side[1].GRPCAddr, flag, "--query.partial-response",
			"--query.replica-label="+replicaLabel)
		q.MustWaitReady(t)
		e2eutil.Poll(t, 10*time.Second, 200*time.Millisecond, func() error {
			return storesHealthy(q.HTTPURL, "sidecar", f.side[1].GRPCAddr)
		})
		if _, vec := instant(t, q.HTTPURL, "up", time.Time{}, nil); len(vec) != 3 {
			t.Errorf("up under %s: %d series, want 3", flag, len(vec))
		}
		name := strings.SplitN(flag, "=", 2)[0]
		// Every series of the self-scrape job: hundreds of series, many KB of chunks.
		r, err := callAPI(q.HTTPURL, "/api/v1/query", url.Values{"query": {`{job="prometheus"}[1m]`}})
		if err != nil {
			t.Fatal(err)
		}
		if r.HTTPStatus != http.StatusUnprocessableEntity || r.Status != "error" || r.ErrorType != "execution" ||
			!strings.Contains(r.Error, name) {
			t.Errorf("{job=\"prometheus\"}[1m] under %s: %s; want HTTP 422, errorType execution, naming %s", flag, r, name)
		}
	}
}

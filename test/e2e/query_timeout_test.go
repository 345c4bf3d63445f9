package e2e

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// testTimeouts: a request whose own deadline passes is a 503 timeout, as Prometheus
// answers it, whatever partial_response says. Partial response covers endpoints that
// fail, never the request's deadline: an answer cut short by it would show "no data"
// on a dashboard, and resolve an alert evaluated through the querier.
func testTimeouts(t *testing.T, f *haFixture) {
	hang := e2eutil.StartHangingStore(t, map[string]string{"cluster": "test", replicaLabel: "hang"})
	// No --store.response-timeout: only the request's deadline ends the wait.
	q := e2eutil.StartVigil(t, "query",
		"--endpoint="+f.side[0].GRPCAddr,
		"--endpoint="+f.side[1].GRPCAddr,
		"--endpoint="+hang.Addr,
		"--query.replica-label="+replicaLabel,
		"--query.replica-hedge.min-delay=0") // the hanging store is a replica of the sidecars: no hedging here
	q.MustWaitReady(t)

	const timeout = 700 * time.Millisecond
	now := time.Now()
	at := unixParam(now.Add(-time.Second))
	cases := map[string]apiRequest{
		"query":         {"/api/v1/query", url.Values{"query": {"up"}, "time": {at}}},
		"queryAbort":    {"/api/v1/query", url.Values{"query": {"up"}, "time": {at}, "partial_response": {"false"}}},
		"range":         {"/api/v1/query_range", url.Values{"query": {"count(up)"}, "start": {unixParam(now.Add(-10 * time.Second))}, "end": {at}, "step": {"1"}}},
		"series":        {"/api/v1/series", url.Values{"match[]": {"up"}}},
		"labels":        {"/api/v1/labels", url.Values{}},
		"labelValues":   {"/api/v1/label/job/values", url.Values{}},
		"heavySelector": {"/api/v1/query", url.Values{"query": {`{__name__=~".+"}`}, "time": {at}}},
	}
	for _, c := range cases {
		c.params.Set("timeout", timeout.String())
	}
	cases["heavySelector"].params.Set("timeout", "1ms") // the case: over before any endpoint answers
	res := callAll(t, q.HTTPURL, cases)
	for name, r := range res {
		if r.HTTPStatus != http.StatusServiceUnavailable || r.Status != "error" || r.ErrorType != "timeout" {
			t.Errorf("%s %s past its timeout: %s; want HTTP 503 errorType timeout", name, cases[name].path, r)
		}
		if r.Took > timeout+2*time.Second {
			t.Errorf("%s took %s with timeout=%s: the deadline did not end the wait", name, r.Took, timeout)
		}
		t.Logf("%s past its timeout: HTTP %d %q in %s", name, r.HTTPStatus, r.ErrorType, r.Took.Round(time.Millisecond))
	}

	if q.Exited() {
		t.Fatal("querier exited")
	}
}

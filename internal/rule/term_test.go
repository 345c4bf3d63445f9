package rule

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func recordingRule(expr string) string {
	return "groups:\n- name: g\n  interval: 50ms\n  rules:\n  - record: r:x\n    expr: " + expr + "\n"
}

// queriesSince returns the expressions the API saw from request n on.
func queriesSince(api *fakeQueryAPI, n int) []string {
	var out []string
	for _, r := range api.requests()[n:] {
		if q := r.Form.Get("query"); !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}

// term runs one term of leadership: Evaluate until it has queried at least twice, then
// ends it and checks that nothing is evaluated afterwards. It returns the expressions
// evaluated during the term.
func term(t *testing.T, r *Ruler, api *fakeQueryAPI) []string {
	t.Helper()
	before := api.count()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Evaluate(ctx) }()
	waitFor(t, 5*time.Second, "evaluations", func() bool { return api.count() >= before+2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Evaluate did not return after its context ended")
	}
	after := api.count()
	time.Sleep(300 * time.Millisecond) // six intervals
	if n := api.count(); n != after {
		t.Fatalf("%d evaluations after the term ended", n-after)
	}
	return queriesSince(api, before)
}

// Each term of leadership evaluates with a new manager, which runs the rule set in force
// (the last successful reload), and nothing is evaluated between terms.
func TestRulerTerms(t *testing.T) {
	api := newFakeQueryAPI(t, func(f url.Values) (int, string) { return vectorAnswer(f, "1", map[string]string{}) })
	dir := t.TempDir()
	writeFile(t, dir, "r.yaml", recordingRule("vector(1)"))
	cfg := testRulerConfig(t, dir, api, &Alertmanagers{})
	reg := prometheus.NewRegistry()
	r, err := New(discardLogger(), reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := api.count(); n != 0 {
		t.Fatalf("%d evaluations before the first term", n)
	}
	if got := term(t, r, api); !slices.Equal(got, []string{"vector(1)"}) {
		t.Errorf("first term evaluated %v", got)
	}
	evals := metricValue(t, reg, "prometheus_rule_evaluations_total", nil)

	// As a follower: a bad edit fails the reload; a good edit that is not reloaded does
	// not count either. The next term runs the rules in force.
	writeFile(t, dir, "r.yaml", recordingRule("vector(2"))
	if err := r.Reload(); err == nil {
		t.Fatal("reload of an invalid file succeeded")
	}
	writeFile(t, dir, "r.yaml", recordingRule("vector(2)"))
	if got := term(t, r, api); !slices.Equal(got, []string{"vector(1)"}) {
		t.Errorf("second term evaluated %v, want the rules in force", got)
	}
	if e := metricValue(t, reg, "prometheus_rule_evaluations_total", nil); e <= evals {
		t.Errorf("prometheus_rule_evaluations_total %v after the second term, was %v: the group metrics must carry on", e, evals)
	}
	if n := len(r.Manager().RuleGroups()); n != 1 {
		t.Errorf("the rules API shows %d groups between terms, want 1", n)
	}

	// A reload as a follower is taken up by the next term.
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := term(t, r, api); !slices.Equal(got, []string{"vector(2)"}) {
		t.Errorf("third term evaluated %v, want the reloaded rules", got)
	}
}

// The end of a term cancels the queries in flight rather than waiting for them.
func TestRulerTermCancelsQueries(t *testing.T) {
	api := newSlowQueryAPI(t, time.Minute, func(f url.Values) (int, string) { return vectorAnswer(f, "1", map[string]string{}) })
	dir := t.TempDir()
	writeFile(t, dir, "r.yaml", recordingRule("vector(1)"))
	cfg := testRulerConfig(t, dir, api, &Alertmanagers{})
	cfg.QueryTimeout = time.Minute
	r, err := New(discardLogger(), prometheus.NewRegistry(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Evaluate(ctx) }()
	waitFor(t, 5*time.Second, "a query in flight", func() bool { return api.count() > 0 })
	ended := time.Now()
	cancel()
	select {
	case <-done:
		t.Logf("Evaluate returned %s after the term ended, with a query in flight", time.Since(ended))
	case <-time.After(5 * time.Second):
		t.Fatal("Evaluate waited for the query in flight")
	}
}

package queryapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// fakeRules is a rules source that records requests.
type fakeRules struct {
	mu       sync.Mutex
	groups   func() []*rulespb.RuleGroup
	warnings []string
	err      error
	reqs     []*rulespb.RulesRequest
}

func (f *fakeRules) RuleGroups(_ context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if f.err != nil {
		return nil, nil, f.err
	}
	return f.groups(), f.warnings, nil
}

func (f *fakeRules) last() *rulespb.RulesRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

func lset(kv ...string) *storepb.LabelSet {
	ls := &storepb.LabelSet{}
	for i := 0; i+1 < len(kv); i += 2 {
		ls.Labels = append(ls.Labels, &storepb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

var evalTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// haGroup is what replica r's sidecar reports: a firing alert and a recording rule.
func haGroup(r string, lastEval time.Time) *rulespb.RuleGroup {
	return &rulespb.RuleGroup{Name: "example", File: "rules.yml", Interval: 1, LastEvaluation: timestamppb.New(lastEval),
		PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT,
		Rules: []*rulespb.Rule{
			{Result: &rulespb.Rule_Alert{Alert: &rulespb.Alert{
				State: rulespb.AlertState_FIRING, Name: "AlwaysFiring", Query: "vector(1) > 0",
				Labels: lset("cluster", "c", "replica", r), Annotations: lset(), Health: "ok",
				LastEvaluation: timestamppb.New(lastEval),
				Alerts: []*rulespb.AlertInstance{{
					Labels: lset("alertname", "AlwaysFiring", "cluster", "c", "replica", r), Annotations: lset(),
					State: rulespb.AlertState_FIRING, ActiveAt: timestamppb.New(evalTime), Value: "1e+00",
					PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT,
				}},
			}}},
			{Result: &rulespb.Rule_Recording{Recording: &rulespb.RecordingRule{
				Name: "job:up:sum", Query: "sum(up)", Labels: lset("cluster", "c", "replica", r), Health: "ok",
				LastEvaluation: timestamppb.New(lastEval),
			}}},
		}}
}

func rulesFixture(t *testing.T) (*fixture, *fakeRules) {
	src := &fakeRules{groups: func() []*rulespb.RuleGroup {
		return []*rulespb.RuleGroup{haGroup("r0", evalTime), haGroup("r1", evalTime.Add(time.Second))}
	}, warnings: []string{"endpoint x is unavailable"}}
	return newFixture(t, nil, func(c *Config) { c.Rules = src }), src
}

func TestRulesEndpointDedup(t *testing.T) {
	f, src := rulesFixture(t)
	code, body := f.get(t, "/api/v1/rules", nil)
	want := `{"status":"success","data":{"groups":[{"name":"example","file":"rules.yml","rules":[` +
		`{"state":"firing","name":"AlwaysFiring","query":"vector(1) \u003e 0","duration":0,"keepFiringFor":0,"labels":{"cluster":"c"},"annotations":{},` +
		`"alerts":[{"labels":{"alertname":"AlwaysFiring","cluster":"c"},"annotations":{},"state":"firing","activeAt":"2025-01-02T03:04:05Z","value":"1e+00","partialResponseStrategy":"ABORT"}],` +
		`"health":"ok","evaluationTime":0,"lastEvaluation":"2025-01-02T03:04:06Z","type":"alerting"},` +
		`{"name":"job:up:sum","query":"sum(up)","labels":{"cluster":"c"},"health":"ok","evaluationTime":0,"lastEvaluation":"2025-01-02T03:04:06Z","type":"recording"}],` +
		`"interval":1,"limit":0,"evaluationTime":0,"lastEvaluation":"2025-01-02T03:04:06Z","partialResponseStrategy":"ABORT"}]},` +
		`"warnings":["endpoint x is unavailable"]}`
	expect(t, code, body, http.StatusOK, want)
	if got := src.last().GetPartialResponseStrategy(); got != storepb.PartialResponseStrategy_WARN {
		t.Errorf("strategy %v, want WARN (--query.partial-response default)", got)
	}

	code, body = f.get(t, "/api/v1/rules", vals("dedup", "false"))
	if code != http.StatusOK || strings.Count(body, `"name":"AlwaysFiring"`) != 2 || strings.Count(body, `"name":"job:up:sum"`) != 2 ||
		strings.Count(body, `"name":"example"`) != 1 || !strings.Contains(body, `"replica":"r1"`) {
		t.Errorf("dedup=false: %d %s", code, body)
	}

	// replicaLabels[] overrides the flag: "cluster" is not what tells these apart.
	code, body = f.get(t, "/api/v1/rules", vals("replicaLabels[]", "cluster"))
	if code != http.StatusOK || strings.Count(body, `"name":"AlwaysFiring"`) != 2 || strings.Contains(body, `"cluster":"c"`) {
		t.Errorf("replicaLabels[]=cluster: %d %s", code, body)
	}
}

func TestRulesEndpointFilters(t *testing.T) {
	f, src := rulesFixture(t)
	code, body := f.get(t, "/api/v1/rules", vals("type", "record", "rule_name[]", "job:up:sum", "rule_group[]", "example",
		"file[]", "rules.yml", "match[]", `{replica="r1"}`, "exclude_alerts", "true"))
	if code != http.StatusOK || strings.Contains(body, "AlwaysFiring") || strings.Count(body, `"name":"job:up:sum"`) != 1 {
		t.Fatalf("%d %s", code, body)
	}
	req := src.last()
	if req.GetType() != rulespb.RulesRequest_RECORD || req.GetRuleName()[0] != "job:up:sum" || req.GetRuleGroup()[0] != "example" ||
		req.GetFile()[0] != "rules.yml" || req.GetMatcherString()[0] != `{replica="r1"}` {
		t.Fatalf("request %v", req)
	}
	// match[] is applied before the replica labels are removed.
	code, body = f.get(t, "/api/v1/rules", vals("match[]", `{replica="r9"}`))
	expect(t, code, body, http.StatusOK, `{"status":"success","data":{"groups":[]},"warnings":["endpoint x is unavailable"]}`)

	code, body = f.get(t, "/api/v1/rules", vals("exclude_alerts", "true"))
	if code != http.StatusOK || !strings.Contains(body, `"alerts":[],`) {
		t.Fatalf("exclude_alerts: %d %s", code, body)
	}

	for _, bad := range []string{"type=bogus", "match[]={", "exclude_alerts=maybe", "dedup=maybe", "partial_response=x"} {
		code, body := f.get(t, "/api/v1/rules?"+bad, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, `"errorType":"bad_data"`) {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

func TestAlertsEndpoint(t *testing.T) {
	f, src := rulesFixture(t)
	code, body := f.post(t, "/api/v1/alerts", vals("partial_response", "false"))
	want := `{"status":"success","data":{"alerts":[{"labels":{"alertname":"AlwaysFiring","cluster":"c"},"annotations":{},` +
		`"state":"firing","activeAt":"2025-01-02T03:04:05Z","value":"1e+00","partialResponseStrategy":"ABORT"}]},` +
		`"warnings":["endpoint x is unavailable"]}`
	expect(t, code, body, http.StatusOK, want)
	if req := src.last(); req.GetType() != rulespb.RulesRequest_ALERT || req.GetPartialResponseStrategy() != storepb.PartialResponseStrategy_ABORT {
		t.Errorf("request %v", req)
	}
	code, body = f.get(t, "/api/v1/alerts", vals("dedup", "false"))
	if code != http.StatusOK || strings.Count(body, `"alertname":"AlwaysFiring"`) != 2 {
		t.Errorf("dedup=false: %d %s", code, body)
	}
}

func TestRulesEndpointErrors(t *testing.T) {
	src := &fakeRules{err: errors.New("fetch rules from a:1: boom")}
	f := newFixture(t, nil, func(c *Config) { c.Rules = src })
	code, body := f.get(t, "/api/v1/rules", vals("partial_response", "false"))
	expect(t, code, body, http.StatusInternalServerError,
		`{"status":"error","errorType":"internal","error":"error retrieving rules: fetch rules from a:1: boom"}`)

	none := newFixture(t, nil, nil)
	code, body = none.get(t, "/api/v1/rules", nil)
	expect(t, code, body, http.StatusOK, `{"status":"success","data":{"groups":[]}}`)
	code, body = none.get(t, "/api/v1/alerts", nil)
	expect(t, code, body, http.StatusOK, `{"status":"success","data":{"alerts":[]}}`)
}

var _ rulesapi.Source = (*fakeRules)(nil)

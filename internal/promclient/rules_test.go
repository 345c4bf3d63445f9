package promclient

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// promRulesBody is /api/v1/rules as Prometheus 2.42 answers it.
const promRulesBody = `{"status":"success","data":{"groups":[{"name":"example","file":"/etc/prometheus/rules.yml","rules":[` +
	`{"state":"firing","name":"AlwaysFiring","query":"vector(1) \u003e 0","duration":0,"keepFiringFor":30,` +
	`"labels":{"severity":"page"},"annotations":{"summary":"always"},"alerts":[{"labels":{"alertname":"AlwaysFiring","severity":"page"},` +
	`"annotations":{"summary":"always"},"state":"firing","activeAt":"2025-01-02T04:04:05.5+01:00","value":"1e+00"}],` +
	`"health":"ok","evaluationTime":0.000123,"lastEvaluation":"2025-01-02T04:05:05.25+01:00","type":"alerting"},` +
	`{"name":"job:up:sum","query":"sum(up)","health":"err","lastError":"boom","evaluationTime":0.0001,` +
	`"lastEvaluation":"0001-01-01T00:00:00Z","type":"recording"}],"interval":15,"limit":0,"evaluationTime":0.0002,` +
	`"lastEvaluation":"2025-01-02T04:05:05.25+01:00"}]},"warnings":["w1"]}`

func TestRules(t *testing.T) {
	var got url.Values
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/rules" {
			http.NotFound(w, r)
			return
		}
		got = r.URL.Query()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(promRulesBody))
	})
	groups, warnings, err := c.Rules(context.Background(), &rulespb.RulesRequest{
		Type: rulespb.RulesRequest_ALERT, RuleName: []string{"a"}, RuleGroup: []string{"g"}, File: []string{"f"},
		MatcherString: []string{`{x="y"}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Get("type") != "alert" || got.Get("rule_name[]") != "a" || got.Get("rule_group[]") != "g" || got.Get("file[]") != "f" || got.Has("match[]") {
		t.Fatalf("query %v", got)
	}
	if len(warnings) != 1 || warnings[0] != "w1" {
		t.Fatalf("warnings %v", warnings)
	}
	if len(groups) != 1 {
		t.Fatalf("groups %v", groups)
	}
	g := groups[0]
	lastEval := time.Date(2025, 1, 2, 3, 5, 5, 250e6, time.UTC)
	if g.GetName() != "example" || g.GetFile() != "/etc/prometheus/rules.yml" || g.GetInterval() != 15 ||
		!g.GetLastEvaluation().AsTime().Equal(lastEval) || g.GetPartialResponseStrategy() != storepb.PartialResponseStrategy_ABORT {
		t.Fatalf("group %v", g)
	}
	a := g.GetRules()[0].GetAlert()
	if a.GetState() != rulespb.AlertState_FIRING || a.GetQuery() != "vector(1) > 0" || a.GetKeepFiringForSeconds() != 30 ||
		a.GetLabels().GetLabels()[0].GetName() != "severity" || len(a.GetAlerts()) != 1 {
		t.Fatalf("alert %v", a)
	}
	in := a.GetAlerts()[0]
	if in.GetState() != rulespb.AlertState_FIRING || !in.GetActiveAt().AsTime().Equal(time.Date(2025, 1, 2, 3, 4, 5, 5e8, time.UTC)) ||
		in.GetValue() != "1e+00" || len(in.GetLabels().GetLabels()) != 2 || in.GetLabels().GetLabels()[0].GetName() != "alertname" {
		t.Fatalf("instance %v", in)
	}
	r := g.GetRules()[1].GetRecording()
	if r.GetName() != "job:up:sum" || r.GetHealth() != "err" || r.GetLastError() != "boom" || len(r.GetLabels().GetLabels()) != 0 {
		t.Fatalf("recording %v", r)
	}
}

func TestRulesBadRule(t *testing.T) {
	c := newTestClient(t, serveBody("application/json",
		[]byte(`{"status":"success","data":{"groups":[{"name":"g","file":"f","rules":[{"name":"x","type":"weird"}]}]}}`)))
	if _, _, err := c.Rules(context.Background(), &rulespb.RulesRequest{}); err == nil || !strings.Contains(err.Error(), "unknown type") {
		t.Fatalf("want an unknown type error, got %v", err)
	}
	c = newTestClient(t, serveBody("application/json", []byte(`{"status":"error","errorType":"internal","error":"nope"}`)))
	if _, _, err := c.Rules(context.Background(), &rulespb.RulesRequest{}); err == nil {
		t.Fatal("want the API error")
	}
}

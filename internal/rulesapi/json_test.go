package rulesapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func TestRulesJSON(t *testing.T) {
	g := replicaGroup("r0", t0, rulespb.AlertState_FIRING, t0.Add(-time.Minute))
	g.Limit = 3
	g.EvaluationDurationSeconds = 0.5
	g.PartialResponseStrategy = storepb.PartialResponseStrategy_ABORT
	g.GetRules()[0].GetAlert().KeepFiringForSeconds = 60
	g.GetRules()[1].GetRecording().LastError = "bad <thing>"
	g.GetRules()[1].GetRecording().LastEvaluation = nil
	b, err := RulesJSON([]*rulespb.RuleGroup{g}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"groups":[{"name":"example","file":"rules.yml","rules":[` +
		`{"state":"firing","name":"AlwaysFiring","query":"vector(1) \u003e 0","duration":0,"keepFiringFor":60,` +
		`"labels":{"cluster":"c1","replica":"r0","severity":"page"},"annotations":{"summary":"always"},` +
		`"alerts":[{"labels":{"alertname":"AlwaysFiring","cluster":"c1","replica":"r0","severity":"page"},"annotations":{},` +
		`"state":"firing","activeAt":"2025-01-02T03:03:05Z","value":"1e+00","partialResponseStrategy":"WARN"}],` +
		`"health":"ok","evaluationTime":0,"lastEvaluation":"2025-01-02T03:04:05Z","type":"alerting"},` +
		`{"name":"job:up:sum","query":"sum(up)","labels":{"cluster":"c1","replica":"r0"},"health":"ok","lastError":"bad \u003cthing\u003e",` +
		`"evaluationTime":0,"lastEvaluation":"0001-01-01T00:00:00Z","type":"recording"}],` +
		`"interval":1,"limit":3,"evaluationTime":0.5,"lastEvaluation":"2025-01-02T03:04:05Z","partialResponseStrategy":"ABORT"}]}`
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}

	b, err = RulesJSON([]*rulespb.RuleGroup{g}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"alerts":[],"health"`) {
		t.Fatalf("exclude_alerts: %s", b)
	}
	if b, _ := RulesJSON(nil, false); string(b) != `{"groups":[]}` {
		t.Fatalf("no groups: %s", b)
	}

	b, err = AlertsJSON([]*rulespb.RuleGroup{g})
	if err != nil {
		t.Fatal(err)
	}
	wantAlerts := `{"alerts":[{"labels":{"alertname":"AlwaysFiring","cluster":"c1","replica":"r0","severity":"page"},"annotations":{},` +
		`"state":"firing","activeAt":"2025-01-02T03:03:05Z","value":"1e+00","partialResponseStrategy":"WARN"}]}`
	if string(b) != wantAlerts {
		t.Fatalf("alerts: got\n%s\nwant\n%s", b, wantAlerts)
	}
	if b, _ := AlertsJSON(nil); string(b) != `{"alerts":[]}` {
		t.Fatalf("no alerts: %s", b)
	}
}

func TestParseRequest(t *testing.T) {
	form := url.Values{
		"type": {"Alert"}, "rule_name[]": {"a", "b"}, "rule_group[]": {"g"}, "file[]": {"f.yml"},
		"match[]": {`{severity="page"}`}, "exclude_alerts": {"true"},
	}
	req, opts, err := ParseRequest(form)
	if err != nil {
		t.Fatal(err)
	}
	if req.GetType() != rulespb.RulesRequest_ALERT || len(req.GetRuleName()) != 2 || req.GetRuleGroup()[0] != "g" ||
		req.GetFile()[0] != "f.yml" || req.GetMatcherString()[0] != `{severity="page"}` || !opts.ExcludeAlerts {
		t.Fatalf("got %v %+v", req, opts)
	}
	for _, bad := range []url.Values{
		{"type": {"x"}}, {"match[]": {"{"}}, {"match[]": {`{a=~".*"}`}}, {"exclude_alerts": {"maybe"}},
	} {
		if _, _, err := ParseRequest(bad); err == nil || !IsParamError(err) {
			t.Errorf("%v: want a parameter error, got %v", bad, err)
		}
	}
}

func TestHandlers(t *testing.T) {
	src := staticSource([]*rulespb.RuleGroup{
		replicaGroup("r0", t0, rulespb.AlertState_FIRING, t0),
		group("other.yml", "second", t0, recRule("y", t0, labels.FromStrings("team", "b"))),
	}, []string{"careful"}, nil)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/rules", RulesHandler(src))
	mux.Handle("/api/v1/alerts", AlertsHandler(src))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, sb.String()
	}
	code, body := get("/api/v1/rules?type=record&file[]=other.yml")
	if code != 200 || !strings.HasPrefix(body, `{"status":"success","data":{"groups":[{"name":"second"`) ||
		strings.Contains(body, "example") || !strings.HasSuffix(body, `,"warnings":["careful"]}`) {
		t.Fatalf("rules: %d %s", code, body)
	}
	code, body = get("/api/v1/alerts")
	if code != 200 || !strings.Contains(body, `"alerts":[{"labels":{"alertname":"AlwaysFiring"`) {
		t.Fatalf("alerts: %d %s", code, body)
	}
	code, body = get("/api/v1/rules?type=bogus")
	if code != 400 || !strings.Contains(body, `"errorType":"bad_data"`) {
		t.Fatalf("bad type: %d %s", code, body)
	}
}

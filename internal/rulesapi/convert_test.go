package rulesapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func TestFromManager(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	expr := func(s string) parser.Expr {
		e, err := p.ParseExpr(s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	firing := rules.NewAlertingRule("AlwaysFiring", expr("vector(1) > 0"), 0, time.Minute,
		labels.FromStrings("severity", "page", "replica", "own"), labels.FromStrings("summary", "always"),
		labels.EmptyLabels(), "", false, nil)
	pending := rules.NewAlertingRule("Slow", expr("vector(1) > 0"), time.Hour, 0,
		labels.EmptyLabels(), labels.EmptyLabels(), labels.EmptyLabels(), "", false, nil)
	rec := rules.NewRecordingRule("job:up:sum", expr("sum(up)"), labels.FromStrings("team", "a"))

	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	query := func(context.Context, string, time.Time) (promql.Vector, error) {
		return promql.Vector{{Metric: labels.FromStrings("instance", "x"), F: 1, T: now.UnixMilli()}}, nil
	}
	for _, r := range []*rules.AlertingRule{firing, pending} {
		if _, err := r.Eval(context.Background(), 0, now, query, nil, 0); err != nil {
			t.Fatal(err)
		}
		r.SetEvaluationTimestamp(now)
		r.SetEvaluationDuration(time.Millisecond)
		r.SetHealth(rules.HealthGood)
	}
	rec.SetLastError(errors.New("no data"))
	rec.SetHealth(rules.HealthBad)
	g := rules.NewGroup(rules.GroupOptions{Name: "example", File: "/etc/rules/a.yml", Interval: 30 * time.Second, Limit: 5,
		Rules: []rules.Rule{firing, pending, rec}, Opts: &rules.ManagerOptions{}})

	ext := labels.FromStrings("cluster", "c1", "replica", "r0")
	out := FromManager([]*rules.Group{g}, ext, func(*rules.Group) storepb.PartialResponseStrategy {
		return storepb.PartialResponseStrategy_WARN
	})
	if len(out) != 1 {
		t.Fatalf("want 1 group, got %d", len(out))
	}
	pg := out[0]
	if pg.GetName() != "example" || pg.GetFile() != "/etc/rules/a.yml" || pg.GetInterval() != 30 || pg.GetLimit() != 5 ||
		pg.GetPartialResponseStrategy() != storepb.PartialResponseStrategy_WARN || len(pg.GetRules()) != 3 {
		t.Fatalf("group %v", pg)
	}
	if !asTime(pg.GetLastEvaluation()).IsZero() {
		t.Fatalf("never evaluated group: lastEvaluation %v", asTime(pg.GetLastEvaluation()))
	}

	a := pg.GetRules()[0].GetAlert()
	if a.GetName() != "AlwaysFiring" || a.GetQuery() != "vector(1) > 0" || a.GetState() != rulespb.AlertState_FIRING ||
		a.GetKeepFiringForSeconds() != 60 || a.GetHealth() != "ok" || !a.GetLastEvaluation().AsTime().Equal(now) ||
		a.GetEvaluationDurationSeconds() != 0.001 {
		t.Fatalf("alerting rule %v", a)
	}
	// External labels override the rule's own.
	if got, want := RuleLabels(pg.GetRules()[0]), labels.FromStrings("cluster", "c1", "replica", "r0", "severity", "page"); !labels.Equal(got, want) {
		t.Fatalf("rule labels %v, want %v", got, want)
	}
	if len(a.GetAlerts()) != 1 {
		t.Fatalf("want 1 alert instance, got %v", a.GetAlerts())
	}
	in := a.GetAlerts()[0]
	wantLs := labels.FromStrings("alertname", "AlwaysFiring", "cluster", "c1", "instance", "x", "replica", "r0", "severity", "page")
	if got := jsonLabels(in.GetLabels()); !labels.Equal(got, wantLs) {
		t.Fatalf("instance labels %v, want %v", got, wantLs)
	}
	if in.GetState() != rulespb.AlertState_FIRING || in.GetValue() != "1e+00" || !in.GetActiveAt().AsTime().Equal(now) ||
		jsonLabels(in.GetAnnotations()).Get("summary") != "always" || in.GetPartialResponseStrategy() != storepb.PartialResponseStrategy_WARN {
		t.Fatalf("instance %v", in)
	}

	if s := pg.GetRules()[1].GetAlert(); s.GetState() != rulespb.AlertState_PENDING || s.GetDurationSeconds() != 3600 ||
		s.GetAlerts()[0].GetState() != rulespb.AlertState_PENDING {
		t.Fatalf("pending rule %v", s)
	}
	r := pg.GetRules()[2].GetRecording()
	if r.GetName() != "job:up:sum" || r.GetQuery() != "sum(up)" || r.GetHealth() != "err" || r.GetLastError() != "no data" {
		t.Fatalf("recording rule %v", r)
	}
	if got, want := RuleLabels(pg.GetRules()[2]), labels.FromStrings("cluster", "c1", "replica", "r0", "team", "a"); !labels.Equal(got, want) {
		t.Fatalf("recording labels %v, want %v", got, want)
	}

	// nil strategy: ABORT, Thanos's default.
	if got := FromManager([]*rules.Group{g}, labels.EmptyLabels(), nil)[0].GetPartialResponseStrategy(); got != storepb.PartialResponseStrategy_ABORT {
		t.Fatalf("default strategy %v", got)
	}
	// The JSON is Prometheus's.
	if _, err := RulesJSON(out, false); err != nil {
		t.Fatal(err)
	}
}

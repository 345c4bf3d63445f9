package rulesapi

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
)

func TestMergeDeduplicatesReplicas(t *testing.T) {
	a := replicaGroup("r0", t0.Add(2*time.Second), rulespb.AlertState_FIRING, t0.Add(-time.Minute))
	b := replicaGroup("r1", t0.Add(time.Second), rulespb.AlertState_FIRING, t0.Add(-2*time.Minute))
	in := []*rulespb.RuleGroup{a, b}
	before := proto.Clone(a)

	out := Merge(in, []string{"replica"})
	if !proto.Equal(before, a) {
		t.Fatal("Merge modified its input")
	}
	if len(out) != 1 {
		t.Fatalf("want 1 group, got %d", len(out))
	}
	g := out[0]
	if g.GetName() != "example" || g.GetFile() != "rules.yml" || !g.GetLastEvaluation().AsTime().Equal(t0.Add(2*time.Second)) {
		t.Fatalf("group fields not from the latest member: %v", g)
	}
	if len(g.GetRules()) != 2 {
		t.Fatalf("want 2 rules, got %d: %v", len(g.GetRules()), g.GetRules())
	}
	alert := g.GetRules()[0].GetAlert()
	if alert == nil || g.GetRules()[1].GetRecording() == nil {
		t.Fatalf("rule order changed: %v", g.GetRules())
	}
	wantLs := labels.FromStrings("cluster", "c1", "severity", "page")
	if got := RuleLabels(g.GetRules()[0]); !labels.Equal(got, wantLs) {
		t.Fatalf("alert rule labels %v, want %v", got, wantLs)
	}
	if got := RuleLabels(g.GetRules()[1]); !labels.Equal(got, labels.FromStrings("cluster", "c1")) {
		t.Fatalf("recording rule labels %v", got)
	}
	if !alert.GetLastEvaluation().AsTime().Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("alert rule not from the latest evaluation: %v", alert.GetLastEvaluation().AsTime())
	}
	if len(alert.GetAlerts()) != 1 {
		t.Fatalf("want 1 alert instance, got %v", alert.GetAlerts())
	}
	inst := alert.GetAlerts()[0]
	if !inst.GetActiveAt().AsTime().Equal(t0.Add(-2 * time.Minute)) {
		t.Fatalf("instance activeAt %v, want the earliest", inst.GetActiveAt().AsTime())
	}
	if got := jsonLabels(inst.GetLabels()); got.Has("replica") {
		t.Fatalf("replica label kept on instance: %v", got)
	}
	if n := len(Alerts(out)); n != 1 {
		t.Fatalf("Alerts: want 1, got %d", n)
	}
}

func TestMergeWithoutDedupKeepsReplicas(t *testing.T) {
	// r1's endpoint answers first and r1 evaluated last: replicas are still in label order.
	in := []*rulespb.RuleGroup{
		replicaGroup("r1", t0.Add(time.Second), rulespb.AlertState_FIRING, t0),
		replicaGroup("r0", t0, rulespb.AlertState_FIRING, t0),
	}
	out := Merge(in, nil)
	if len(out) != 1 {
		t.Fatalf("want the groups merged into 1, got %d", len(out))
	}
	var order []string
	for _, r := range out[0].GetRules() {
		order = append(order, RuleName(r)+"/"+RuleLabels(r).Get("replica"))
	}
	if want := "AlwaysFiring/r0 AlwaysFiring/r1 job:up:sum/r0 job:up:sum/r1"; strings.Join(order, " ") != want {
		t.Fatalf("rules %v, want %s", order, want)
	}
	alerts := Alerts(out)
	if len(alerts) != 2 {
		t.Fatalf("want 2 alerts, got %d", len(alerts))
	}
	for i, want := range []string{"r0", "r1"} {
		if got := jsonLabels(alerts[i].GetLabels()).Get("replica"); got != want {
			t.Fatalf("alert %d replica %q, want %q", i, got, want)
		}
	}
}

func TestMergePicksMostCriticalThenLatest(t *testing.T) {
	// r0 evaluated last but its alert is only pending; r1 fires: the firing copy wins.
	pending := replicaGroup("r0", t0.Add(time.Second), rulespb.AlertState_PENDING, t0)
	firing := replicaGroup("r1", t0, rulespb.AlertState_FIRING, t0.Add(-time.Minute))
	out := Merge([]*rulespb.RuleGroup{pending, firing}, []string{"replica"})
	a := out[0].GetRules()[0].GetAlert()
	if a.GetState() != rulespb.AlertState_FIRING || !a.GetLastEvaluation().AsTime().Equal(t0) {
		t.Fatalf("want the firing copy, got state %v evaluated %v", a.GetState(), a.GetLastEvaluation().AsTime())
	}
	if len(a.GetAlerts()) != 1 || a.GetAlerts()[0].GetState() != rulespb.AlertState_FIRING {
		t.Fatalf("want one firing instance, got %v", a.GetAlerts())
	}
	// Recording rules: the latest evaluation wins.
	r := out[0].GetRules()[1].GetRecording()
	if !r.GetLastEvaluation().AsTime().Equal(t0.Add(time.Second)) {
		t.Fatalf("recording rule from %v, want the latest", r.GetLastEvaluation().AsTime())
	}

	// Equal states: the latest evaluation wins, whatever the input order.
	for _, order := range [][]int{{0, 1}, {1, 0}} {
		gs := []*rulespb.RuleGroup{
			replicaGroup("r0", t0, rulespb.AlertState_INACTIVE, t0),
			replicaGroup("r1", t0.Add(time.Second), rulespb.AlertState_INACTIVE, t0),
		}
		out := Merge([]*rulespb.RuleGroup{gs[order[0]], gs[order[1]]}, []string{"replica"})
		if got := out[0].GetRules()[0].GetAlert().GetLastEvaluation().AsTime(); !got.Equal(t0.Add(time.Second)) {
			t.Fatalf("order %v: alert from %v, want the latest", order, got)
		}
	}
}

func TestMergeUnionOfInstances(t *testing.T) {
	ls := func(replica, inst string) labels.Labels {
		return labels.FromStrings("alertname", "Down", "instance", inst, "replica", replica)
	}
	a := group("f", "g", t0, alertRule("Down", rulespb.AlertState_FIRING, t0, labels.FromStrings("replica", "a"),
		instance(rulespb.AlertState_FIRING, t0, ls("a", "x")),
		instance(rulespb.AlertState_PENDING, t0, ls("a", "y"))))
	b := group("f", "g", t0, alertRule("Down", rulespb.AlertState_FIRING, t0, labels.FromStrings("replica", "b"),
		instance(rulespb.AlertState_FIRING, t0.Add(-time.Hour), ls("b", "y")),
		instance(rulespb.AlertState_PENDING, t0, ls("b", "z"))))
	out := Merge([]*rulespb.RuleGroup{a, b}, []string{"replica"})
	got := out[0].GetRules()[0].GetAlert().GetAlerts()
	want := []struct {
		inst  string
		state rulespb.AlertState
		at    time.Time
	}{{"x", rulespb.AlertState_FIRING, t0}, {"y", rulespb.AlertState_FIRING, t0.Add(-time.Hour)}, {"z", rulespb.AlertState_PENDING, t0}}
	if len(got) != len(want) {
		t.Fatalf("want %d instances, got %v", len(want), got)
	}
	for i, w := range want {
		l := jsonLabels(got[i].GetLabels())
		if l.Get("instance") != w.inst || got[i].GetState() != w.state || !got[i].GetActiveAt().AsTime().Equal(w.at) || l.Has("replica") {
			t.Fatalf("instance %d: got %v %v %v, want %+v", i, l, got[i].GetState(), got[i].GetActiveAt().AsTime(), w)
		}
	}
}

func TestMergeKeepsDistinctRulesAndSortsGroups(t *testing.T) {
	// Same name and labels, different query: two rules (a rollout in progress).
	r1 := recRule("x", t0, labels.FromStrings("replica", "a"))
	r2 := recRule("x", t0, labels.FromStrings("replica", "b"))
	r2.GetRecording().Query = "sum(up) by (job)"
	in := []*rulespb.RuleGroup{
		group("b.yml", "g", t0, r1),
		group("a.yml", "z", t0),
		group("a.yml", "g", t0),
		group("b.yml", "g", t0, r2),
	}
	out := Merge(in, []string{"replica"})
	var keys []string
	for _, g := range out {
		keys = append(keys, g.GetFile()+"/"+g.GetName())
	}
	if want := "a.yml/g a.yml/z b.yml/g"; strings.Join(keys, " ") != want {
		t.Fatalf("group order %v, want %s", keys, want)
	}
	if n := len(out[2].GetRules()); n != 2 {
		t.Fatalf("want 2 distinct rules, got %d", n)
	}
}

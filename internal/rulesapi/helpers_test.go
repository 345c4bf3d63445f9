package rulesapi

import (
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func alertRule(name string, state rulespb.AlertState, lastEval time.Time, ls labels.Labels, alerts ...*rulespb.AlertInstance) *rulespb.Rule {
	return &rulespb.Rule{Result: &rulespb.Rule_Alert{Alert: &rulespb.Alert{
		State: state, Name: name, Query: "vector(1) > 0", DurationSeconds: 0, Labels: labelSet(ls),
		Annotations: labelSet(labels.FromStrings("summary", "always")), Alerts: alerts, Health: "ok",
		LastEvaluation: ts(lastEval),
	}}}
}

func recRule(name string, lastEval time.Time, ls labels.Labels) *rulespb.Rule {
	return &rulespb.Rule{Result: &rulespb.Rule_Recording{Recording: &rulespb.RecordingRule{
		Name: name, Query: "sum(up)", Labels: labelSet(ls), Health: "ok", LastEvaluation: ts(lastEval),
	}}}
}

func instance(state rulespb.AlertState, activeAt time.Time, ls labels.Labels) *rulespb.AlertInstance {
	return &rulespb.AlertInstance{Labels: labelSet(ls), Annotations: labelSet(labels.EmptyLabels()),
		State: state, ActiveAt: ts(activeAt), Value: "1e+00"}
}

func group(file, name string, lastEval time.Time, rules ...*rulespb.Rule) *rulespb.RuleGroup {
	return &rulespb.RuleGroup{File: file, Name: name, Interval: 1, LastEvaluation: ts(lastEval), Rules: rules}
}

// replicaGroup is the group a replica reports: one firing alert and one recording rule,
// labelled with its replica external label.
func replicaGroup(replica string, lastEval time.Time, state rulespb.AlertState, activeAt time.Time) *rulespb.RuleGroup {
	ext := labels.FromStrings("cluster", "c1", "replica", replica)
	alertLs := labels.FromStrings("alertname", "AlwaysFiring", "cluster", "c1", "replica", replica, "severity", "page")
	var alerts []*rulespb.AlertInstance
	if state != rulespb.AlertState_INACTIVE {
		alerts = append(alerts, instance(state, activeAt, alertLs))
	}
	return group("rules.yml", "example", lastEval,
		alertRule("AlwaysFiring", state, lastEval, labels.FromStrings("cluster", "c1", "replica", replica, "severity", "page"), alerts...),
		recRule("job:up:sum", lastEval, ext),
	)
}

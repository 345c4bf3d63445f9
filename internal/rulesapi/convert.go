package rulesapi

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// FromManager converts the groups of a Prometheus rules manager (Manager.RuleGroups())
// into Rules API groups, as Prometheus's /api/v1/rules reports them: active alerts
// (pending and firing) with their labels, annotations, activeAt and value, health,
// last error, evaluation times. ext (the ruler's --label set) is added to the labels of
// every rule and alert instance, overriding labels of the same name. strategy gives
// each group's partial response strategy; nil means ABORT for all, Thanos's default.
// Groups keep the manager's order (file, then name).
func FromManager(groups []*rules.Group, ext labels.Labels, strategy func(*rules.Group) storepb.PartialResponseStrategy) []*rulespb.RuleGroup {
	out := make([]*rulespb.RuleGroup, 0, len(groups))
	for _, g := range groups {
		prs := storepb.PartialResponseStrategy_ABORT
		if strategy != nil {
			prs = strategy(g)
		}
		pg := &rulespb.RuleGroup{
			Name: g.Name(), File: g.File(), Interval: g.Interval().Seconds(), Limit: int64(g.Limit()),
			EvaluationDurationSeconds: g.GetEvaluationTime().Seconds(),
			LastEvaluation:            timestamp(g.GetLastEvaluation()),
			PartialResponseStrategy:   prs,
			Rules:                     make([]*rulespb.Rule, 0, len(g.Rules())),
		}
		for _, r := range g.Rules() {
			if pr := fromRule(r, prs); pr != nil {
				pg.Rules = append(pg.Rules, pr)
			}
		}
		out = append(out, pg)
	}
	AddExternalLabels(out, ext)
	return out
}

// fromRule converts one alerting or recording rule; other rule types are skipped.
func fromRule(r rules.Rule, prs storepb.PartialResponseStrategy) *rulespb.Rule {
	lastError := ""
	if err := r.LastError(); err != nil {
		lastError = err.Error()
	}
	switch rule := r.(type) {
	case *rules.AlertingRule:
		active := rule.ActiveAlerts()
		alerts := make([]*rulespb.AlertInstance, 0, len(active))
		for _, a := range active {
			alerts = append(alerts, &rulespb.AlertInstance{
				Labels:                  labelSet(a.Labels),
				Annotations:             labelSet(a.Annotations),
				State:                   alertState(a.State),
				ActiveAt:                timestamp(a.ActiveAt),
				Value:                   strconv.FormatFloat(a.Value, 'e', -1, 64),
				PartialResponseStrategy: prs,
			})
		}
		return &rulespb.Rule{Result: &rulespb.Rule_Alert{Alert: &rulespb.Alert{
			State:                     alertState(rule.State()),
			Name:                      rule.Name(),
			Query:                     rule.Query().String(),
			DurationSeconds:           rule.HoldDuration().Seconds(),
			KeepFiringForSeconds:      rule.KeepFiringFor().Seconds(),
			Labels:                    labelSet(rule.Labels()),
			Annotations:               labelSet(rule.Annotations()),
			Alerts:                    alerts,
			Health:                    string(rule.Health()),
			LastError:                 lastError,
			EvaluationDurationSeconds: rule.GetEvaluationDuration().Seconds(),
			LastEvaluation:            timestamp(rule.GetEvaluationTimestamp()),
		}}}
	case *rules.RecordingRule:
		return &rulespb.Rule{Result: &rulespb.Rule_Recording{Recording: &rulespb.RecordingRule{
			Name:                      rule.Name(),
			Query:                     rule.Query().String(),
			Labels:                    labelSet(rule.Labels()),
			Health:                    string(rule.Health()),
			LastError:                 lastError,
			EvaluationDurationSeconds: rule.GetEvaluationDuration().Seconds(),
			LastEvaluation:            timestamp(rule.GetEvaluationTimestamp()),
		}}}
	}
	return nil
}

// alertState maps Prometheus's alert state onto the wire enum (the same values in
// Thanos: inactive 0, pending 1, firing 2).
func alertState(s rules.AlertState) rulespb.AlertState {
	switch s {
	case rules.StatePending:
		return rulespb.AlertState_PENDING
	case rules.StateFiring:
		return rulespb.AlertState_FIRING
	}
	return rulespb.AlertState_INACTIVE
}

// ParseAlertState parses Prometheus's JSON spelling of an alert state ("inactive",
// "pending", "firing", in any case).
func ParseAlertState(s string) (rulespb.AlertState, bool) {
	switch strings.ToLower(s) {
	case "inactive":
		return rulespb.AlertState_INACTIVE, true
	case "pending":
		return rulespb.AlertState_PENDING, true
	case "firing":
		return rulespb.AlertState_FIRING, true
	}
	return rulespb.AlertState_INACTIVE, false
}

// stateString is the JSON spelling of a state.
func stateString(s rulespb.AlertState) string {
	switch s {
	case rulespb.AlertState_PENDING:
		return "pending"
	case rulespb.AlertState_FIRING:
		return "firing"
	}
	return "inactive"
}

// timestamp converts a time; the zero time becomes 0001-01-01T00:00:00Z, as Thanos
// (gogoproto stdtime, not nullable) sends it.
func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// asTime converts a wire timestamp; nil is the zero time.
func asTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

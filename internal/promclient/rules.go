package promclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// promRuleGroup is a group of Prometheus's /api/v1/rules.
type promRuleGroup struct {
	Name           string            `json:"name"`
	File           string            `json:"file"`
	Rules          []json.RawMessage `json:"rules"`
	Interval       float64           `json:"interval"`
	Limit          int64             `json:"limit"`
	EvaluationTime float64           `json:"evaluationTime"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
}

// promRule holds the fields of both alerting and recording rules.
type promRule struct {
	Type           string            `json:"type"`
	State          string            `json:"state"`
	Name           string            `json:"name"`
	Query          string            `json:"query"`
	Duration       float64           `json:"duration"`
	KeepFiringFor  float64           `json:"keepFiringFor"`
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations"`
	Alerts         []promAlert       `json:"alerts"`
	Health         string            `json:"health"`
	LastError      string            `json:"lastError"`
	EvaluationTime float64           `json:"evaluationTime"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
}

type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    *time.Time        `json:"activeAt"`
	Value       string            `json:"value"`
}

// Rules reads /api/v1/rules and converts the groups to the Rules API, without external
// labels, with the ABORT strategy (Prometheus has none; Thanos uses ABORT). The type,
// rule_name[], rule_group[] and file[] filters of req are passed on (Prometheus before
// 2.46 ignores all but type; callers filter again); match[] is not, since Prometheus
// would match it against labels that lack the external labels.
func (c *Client) Rules(ctx context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
	q := url.Values{}
	switch req.GetType() {
	case rulespb.RulesRequest_ALERT:
		q.Set("type", "alert")
	case rulespb.RulesRequest_RECORD:
		q.Set("type", "record")
	}
	for _, v := range req.GetRuleName() {
		q.Add("rule_name[]", v)
	}
	for _, v := range req.GetRuleGroup() {
		q.Add("rule_group[]", v)
	}
	for _, v := range req.GetFile() {
		q.Add("file[]", v)
	}
	var data struct {
		Groups []promRuleGroup `json:"groups"`
	}
	warnings, err := c.getAPI(ctx, "/api/v1/rules", q, &data)
	if err != nil {
		return nil, warnings, err
	}
	out := make([]*rulespb.RuleGroup, 0, len(data.Groups))
	for _, g := range data.Groups {
		pg := &rulespb.RuleGroup{
			Name: g.Name, File: g.File, Interval: g.Interval, Limit: g.Limit,
			EvaluationDurationSeconds: g.EvaluationTime, LastEvaluation: timestamppb.New(g.LastEvaluation),
			PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT,
			Rules:                   make([]*rulespb.Rule, 0, len(g.Rules)),
		}
		for _, raw := range g.Rules {
			r, err := convertRule(raw)
			if err != nil {
				return nil, warnings, fmt.Errorf("group %q in %s: %w", g.Name, g.File, err)
			}
			pg.Rules = append(pg.Rules, r)
		}
		out = append(out, pg)
	}
	return out, warnings, nil
}

func convertRule(raw json.RawMessage) (*rulespb.Rule, error) {
	var r promRule
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode rule: %w", err)
	}
	switch strings.ToLower(r.Type) {
	case "alerting":
		state, err := alertState(r.State)
		if err != nil {
			return nil, fmt.Errorf("alerting rule %q: %w", r.Name, err)
		}
		a := &rulespb.Alert{
			State: state, Name: r.Name, Query: r.Query, DurationSeconds: r.Duration,
			KeepFiringForSeconds: r.KeepFiringFor, Labels: labelSet(r.Labels), Annotations: labelSet(r.Annotations),
			Health: r.Health, LastError: r.LastError, EvaluationDurationSeconds: r.EvaluationTime,
			LastEvaluation: timestamppb.New(r.LastEvaluation),
			Alerts:         make([]*rulespb.AlertInstance, 0, len(r.Alerts)),
		}
		for _, pa := range r.Alerts {
			st, err := alertState(pa.State)
			if err != nil {
				return nil, fmt.Errorf("alert of rule %q: %w", r.Name, err)
			}
			in := &rulespb.AlertInstance{
				Labels: labelSet(pa.Labels), Annotations: labelSet(pa.Annotations), State: st, Value: pa.Value,
				PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT,
			}
			if pa.ActiveAt != nil {
				in.ActiveAt = timestamppb.New(*pa.ActiveAt)
			}
			a.Alerts = append(a.Alerts, in)
		}
		return &rulespb.Rule{Result: &rulespb.Rule_Alert{Alert: a}}, nil
	case "recording":
		return &rulespb.Rule{Result: &rulespb.Rule_Recording{Recording: &rulespb.RecordingRule{
			Name: r.Name, Query: r.Query, Labels: labelSet(r.Labels), Health: r.Health, LastError: r.LastError,
			EvaluationDurationSeconds: r.EvaluationTime, LastEvaluation: timestamppb.New(r.LastEvaluation),
		}}}, nil
	}
	return nil, fmt.Errorf("rule %q has unknown type %q", r.Name, r.Type)
}

func alertState(s string) (rulespb.AlertState, error) {
	switch strings.ToLower(s) {
	case "inactive":
		return rulespb.AlertState_INACTIVE, nil
	case "pending":
		return rulespb.AlertState_PENDING, nil
	case "firing":
		return rulespb.AlertState_FIRING, nil
	}
	return 0, fmt.Errorf("unknown alert state %q", s)
}

// labelSet converts a JSON label object to a wire label set sorted by name.
func labelSet(m map[string]string) *storepb.LabelSet {
	ls := &storepb.LabelSet{Labels: make([]*storepb.Label, 0, len(m))}
	for k, v := range m {
		ls.Labels = append(ls.Labels, &storepb.Label{Name: k, Value: v})
	}
	sort.Slice(ls.Labels, func(i, j int) bool { return ls.Labels[i].Name < ls.Labels[j].Name })
	return ls
}

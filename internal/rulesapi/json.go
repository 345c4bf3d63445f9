package rulesapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// The JSON below is Prometheus's /api/v1/rules and /api/v1/alerts "data" (web/api/v1
// RuleDiscovery and AlertDiscovery), field for field and in the same order, plus
// Thanos's partialResponseStrategy on groups and alerts. Times are RFC 3339 in UTC; a
// rule never evaluated has lastEvaluation 0001-01-01T00:00:00Z as in Prometheus.

type jsonRuleDiscovery struct {
	Groups []*jsonGroup `json:"groups"`
}

type jsonGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	Rules          []any     `json:"rules"`
	Interval       float64   `json:"interval"`
	Limit          int64     `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Strategy       string    `json:"partialResponseStrategy"`
}

type jsonAlertingRule struct {
	State          string        `json:"state"`
	Name           string        `json:"name"`
	Query          string        `json:"query"`
	Duration       float64       `json:"duration"`
	KeepFiringFor  float64       `json:"keepFiringFor"`
	Labels         labels.Labels `json:"labels"`
	Annotations    labels.Labels `json:"annotations"`
	Alerts         []*jsonAlert  `json:"alerts"`
	Health         string        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	EvaluationTime float64       `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Type           string        `json:"type"`
}

type jsonRecordingRule struct {
	Name           string        `json:"name"`
	Query          string        `json:"query"`
	Labels         labels.Labels `json:"labels"`
	Health         string        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	EvaluationTime float64       `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Type           string        `json:"type"`
}

type jsonAlertDiscovery struct {
	Alerts []*jsonAlert `json:"alerts"`
}

type jsonAlert struct {
	Labels      labels.Labels `json:"labels"`
	Annotations labels.Labels `json:"annotations"`
	State       string        `json:"state"`
	ActiveAt    *time.Time    `json:"activeAt,omitempty"`
	Value       string        `json:"value"`
	Strategy    string        `json:"partialResponseStrategy"`
}

// RulesJSON returns the data of /api/v1/rules for groups: {"groups":[...]}. With
// excludeAlerts (exclude_alerts=true) alerting rules list no alert instances.
func RulesJSON(groups []*rulespb.RuleGroup, excludeAlerts bool) ([]byte, error) {
	d := jsonRuleDiscovery{Groups: make([]*jsonGroup, 0, len(groups))}
	for _, g := range groups {
		jg := &jsonGroup{
			Name: g.GetName(), File: g.GetFile(), Rules: make([]any, 0, len(g.GetRules())),
			Interval: g.GetInterval(), Limit: g.GetLimit(), EvaluationTime: g.GetEvaluationDurationSeconds(),
			LastEvaluation: asTime(g.GetLastEvaluation()), Strategy: g.GetPartialResponseStrategy().String(),
		}
		for _, r := range g.GetRules() {
			if a := r.GetAlert(); a != nil {
				alerts := []*jsonAlert{}
				if !excludeAlerts {
					alerts = toJSONAlerts(alerts, a.GetAlerts())
				}
				jg.Rules = append(jg.Rules, &jsonAlertingRule{
					State: stateString(a.GetState()), Name: a.GetName(), Query: a.GetQuery(),
					Duration: a.GetDurationSeconds(), KeepFiringFor: a.GetKeepFiringForSeconds(),
					Labels: jsonLabels(a.GetLabels()), Annotations: jsonLabels(a.GetAnnotations()),
					Alerts: alerts, Health: a.GetHealth(), LastError: a.GetLastError(),
					EvaluationTime: a.GetEvaluationDurationSeconds(), LastEvaluation: asTime(a.GetLastEvaluation()),
					Type: "alerting",
				})
				continue
			}
			if rr := r.GetRecording(); rr != nil {
				jg.Rules = append(jg.Rules, &jsonRecordingRule{
					Name: rr.GetName(), Query: rr.GetQuery(), Labels: jsonLabels(rr.GetLabels()),
					Health: rr.GetHealth(), LastError: rr.GetLastError(),
					EvaluationTime: rr.GetEvaluationDurationSeconds(), LastEvaluation: asTime(rr.GetLastEvaluation()),
					Type: "recording",
				})
			}
		}
		d.Groups = append(d.Groups, jg)
	}
	return json.Marshal(d)
}

// AlertsJSON returns the data of /api/v1/alerts for groups: {"alerts":[...]}, the
// instances of every alerting rule (see Alerts).
func AlertsJSON(groups []*rulespb.RuleGroup) ([]byte, error) {
	return AlertInstancesJSON(Alerts(groups))
}

// AlertInstancesJSON is the data of /api/v1/alerts for the given alert instances.
func AlertInstancesJSON(alerts []*rulespb.AlertInstance) ([]byte, error) {
	return json.Marshal(jsonAlertDiscovery{Alerts: toJSONAlerts([]*jsonAlert{}, alerts)})
}

func toJSONAlerts(out []*jsonAlert, in []*rulespb.AlertInstance) []*jsonAlert {
	for _, a := range in {
		ja := &jsonAlert{
			Labels: jsonLabels(a.GetLabels()), Annotations: jsonLabels(a.GetAnnotations()),
			State: stateString(a.GetState()), Value: a.GetValue(),
			Strategy: a.GetPartialResponseStrategy().String(),
		}
		if a.GetActiveAt() != nil {
			t := a.GetActiveAt().AsTime()
			ja.ActiveAt = &t
		}
		out = append(out, ja)
	}
	return out
}

func jsonLabels(ls *storepb.LabelSet) labels.Labels {
	return storeapi.LabelsFromProto(ls.GetLabels())
}

// RequestOptions are the /api/v1/rules parameters that shape the JSON rather than
// select rules.
type RequestOptions struct {
	ExcludeAlerts bool // exclude_alerts
}

// ParamError is a bad request parameter (HTTP 400, errorType bad_data).
type ParamError struct {
	Param string
	Err   error
}

func (e *ParamError) Error() string { return fmt.Sprintf("invalid parameter %q: %v", e.Param, e.Err) }

func (e *ParamError) Unwrap() error { return e.Err }

// ParseRequest reads Prometheus's /api/v1/rules parameters from a parsed form: type
// (alert or record), rule_name[], rule_group[], file[], match[] and exclude_alerts.
// group_limit and group_next_token (pagination) are not supported and ignored.
func ParseRequest(form url.Values) (*rulespb.RulesRequest, RequestOptions, error) {
	var opts RequestOptions
	req := &rulespb.RulesRequest{
		RuleName: form["rule_name[]"], RuleGroup: form["rule_group[]"], File: form["file[]"],
		MatcherString: form["match[]"],
	}
	switch t := strings.ToLower(form.Get("type")); t {
	case "":
	case "alert":
		req.Type = rulespb.RulesRequest_ALERT
	case "record":
		req.Type = rulespb.RulesRequest_RECORD
	default:
		return nil, opts, &ParamError{"type", fmt.Errorf("not supported value %q", t)}
	}
	sets, err := ParseMatchers(req)
	if err != nil {
		return nil, opts, &ParamError{"match[]", err}
	}
	for _, ms := range sets {
		empty := true
		for _, m := range ms {
			if !m.Matches("") {
				empty = false
				break
			}
		}
		if empty {
			return nil, opts, &ParamError{"match[]", errors.New("match[] must contain at least one non-empty matcher")}
		}
	}
	if v := form.Get("exclude_alerts"); v != "" {
		b, err := strconv.ParseBool(strings.ToLower(v))
		if err != nil {
			return nil, opts, &ParamError{"exclude_alerts", fmt.Errorf("error converting exclude_alerts: %w", err)}
		}
		opts.ExcludeAlerts = b
	}
	return req, opts, nil
}

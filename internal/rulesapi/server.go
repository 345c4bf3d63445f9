// Package rulesapi is Vigil's side of the Thanos Rules API (thanos.Rules/Rules) and of
// Prometheus's /api/v1/rules and /api/v1/alerts, shared by the sidecar, the ruler and the
// querier:
//
//   - Server serves thanos.Rules from any Source (the sidecar's Prometheus, the ruler's
//     rules manager), applying the request's filters;
//   - FromManager converts the groups of a Prometheus rules.Manager into protos;
//   - Collect, Fetch and Local read Rules streams (streamapi does the fan-out);
//   - Merge deduplicates the groups of HA replicas on the replica labels;
//   - RulesJSON, AlertsJSON, ParseRequest and the HTTP handlers speak Prometheus's JSON.
package rulesapi

import (
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/internal/streamapi"
)

// Source yields the rule groups of a component for a request, external labels included,
// plus warnings. It may ignore the request's filters: Server applies them again.
type Source interface {
	RuleGroups(ctx context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error)

// RuleGroups calls f.
func (f SourceFunc) RuleGroups(ctx context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
	return f(ctx, req)
}

// Server serves thanos.Rules from a Source: warnings first, then one frame per group
// that passes the request's filters.
type Server struct {
	rulespb.UnimplementedRulesServer
	src Source
}

// NewServer returns a thanos.Rules server over src.
func NewServer(src Source) *Server { return &Server{src: src} }

// Register serves src as thanos.Rules on srv.
func Register(srv *grpc.Server, src Source) { rulespb.RegisterRulesServer(srv, NewServer(src)) }

// Rules implements rulespb.RulesServer.
func (s *Server) Rules(req *rulespb.RulesRequest, srv rulespb.Rules_RulesServer) error {
	return streamapi.Serve(Frames, srv, func(ctx context.Context) ([]*rulespb.RuleGroup, []string, error) {
		groups, warnings, err := s.src.RuleGroups(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		groups, err = Filter(groups, req)
		if err != nil {
			return nil, nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return groups, warnings, nil
	})
}

// ParseMatchers parses the request's matcher_string selectors (match[]).
func ParseMatchers(req *rulespb.RulesRequest) ([][]*labels.Matcher, error) {
	var sets [][]*labels.Matcher
	p := parser.NewParser(parser.Options{})
	for _, s := range req.GetMatcherString() {
		ms, err := p.ParseMetricSelector(s)
		if err != nil {
			return nil, fmt.Errorf("invalid rule matcher %q: %w", s, err)
		}
		sets = append(sets, ms)
	}
	return sets, nil
}

// Filter keeps what the request selects, as Prometheus's /api/v1/rules does: groups by
// rule_group and file, rules by type, rule_name and match[] (a rule matches when its
// labels, external labels included, match any of the selectors). A group left without
// rules by the rule filters is dropped; with no rule filter every group is kept, empty
// or not. The input is not modified: kept groups are copies when rules were removed.
func Filter(groups []*rulespb.RuleGroup, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, error) {
	matchers, err := ParseMatchers(req)
	if err != nil {
		return nil, err
	}
	typ := req.GetType()
	names, gnames, files := req.GetRuleName(), req.GetRuleGroup(), req.GetFile()
	ruleFilter := typ != rulespb.RulesRequest_ALL || len(names) > 0 || len(matchers) > 0
	if !ruleFilter && len(gnames) == 0 && len(files) == 0 {
		return groups, nil
	}
	out := make([]*rulespb.RuleGroup, 0, len(groups))
	for _, g := range groups {
		if len(gnames) > 0 && !slices.Contains(gnames, g.GetName()) {
			continue
		}
		if len(files) > 0 && !slices.Contains(files, g.GetFile()) {
			continue
		}
		if !ruleFilter {
			out = append(out, g)
			continue
		}
		var rules []*rulespb.Rule
		for _, r := range g.GetRules() {
			switch {
			case r.GetAlert() != nil && typ == rulespb.RulesRequest_RECORD,
				r.GetRecording() != nil && typ == rulespb.RulesRequest_ALERT,
				r.GetAlert() == nil && r.GetRecording() == nil:
				continue
			}
			if len(names) > 0 && !slices.Contains(names, RuleName(r)) {
				continue
			}
			if len(matchers) > 0 && !matchesAny(matchers, RuleLabels(r)) {
				continue
			}
			rules = append(rules, r)
		}
		if len(rules) == 0 {
			continue
		}
		if len(rules) != len(g.GetRules()) {
			g = shallowGroup(g, rules)
		}
		out = append(out, g)
	}
	return out, nil
}

func matchesAny(sets [][]*labels.Matcher, ls labels.Labels) bool {
	for _, ms := range sets {
		ok := true
		for _, m := range ms {
			if !m.Matches(ls.Get(m.Name)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// shallowGroup copies g's fields with other rules.
func shallowGroup(g *rulespb.RuleGroup, rules []*rulespb.Rule) *rulespb.RuleGroup {
	return &rulespb.RuleGroup{
		Name: g.GetName(), File: g.GetFile(), Rules: rules, Interval: g.GetInterval(),
		EvaluationDurationSeconds: g.GetEvaluationDurationSeconds(), LastEvaluation: g.GetLastEvaluation(),
		Limit: g.GetLimit(), PartialResponseStrategy: g.GetPartialResponseStrategy(),
	}
}

// RuleName is the name of an alerting or recording rule.
func RuleName(r *rulespb.Rule) string {
	if a := r.GetAlert(); a != nil {
		return a.GetName()
	}
	return r.GetRecording().GetName()
}

// RuleLabels are the labels of an alerting or recording rule.
func RuleLabels(r *rulespb.Rule) labels.Labels {
	if a := r.GetAlert(); a != nil {
		return storeapi.LabelsFromProto(a.GetLabels().GetLabels())
	}
	return storeapi.LabelsFromProto(r.GetRecording().GetLabels().GetLabels())
}

// labelSet converts Prometheus labels to a wire label set.
func labelSet(ls labels.Labels) *storepb.LabelSet { return storeapi.LabelSet(ls) }

// AddExternalLabels adds ext to the labels of every rule and alert instance, in place.
// External labels override labels of the same name, as they do for series.
func AddExternalLabels(groups []*rulespb.RuleGroup, ext labels.Labels) {
	if ext.IsEmpty() {
		return
	}
	for _, g := range groups {
		for _, r := range g.GetRules() {
			switch {
			case r.GetAlert() != nil:
				a := r.GetAlert()
				a.Labels = storeapi.ExtendLabelSet(a.GetLabels(), ext)
				for _, in := range a.GetAlerts() {
					in.Labels = storeapi.ExtendLabelSet(in.GetLabels(), ext)
				}
			case r.GetRecording() != nil:
				rr := r.GetRecording()
				rr.Labels = storeapi.ExtendLabelSet(rr.GetLabels(), ext)
			}
		}
	}
}

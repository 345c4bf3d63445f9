package queryapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
)

// rules serves /api/v1/rules: the rule groups of every rules endpoint, merged and, with
// dedup, deduplicated on the replica labels (rulesapi.Merge). It takes Prometheus's
// type, rule_name[], rule_group[], file[], match[] and exclude_alerts, and Thanos's
// dedup, replicaLabels[] and partial_response.
func (a *API) rules(r *http.Request) result {
	req, opts, err := rulesapi.ParseRequest(r.Form)
	if err != nil {
		return errResult(&apiError{errorBadData, err})
	}
	groups, warnings, apiErr := a.ruleGroups(r, req)
	if apiErr != nil {
		return errResult(apiErr)
	}
	b, err := rulesapi.RulesJSON(groups, opts.ExcludeAlerts)
	if err != nil {
		return errResult(&apiError{errorInternal, fmt.Errorf("encode rules: %w", err)})
	}
	return rawResult(b, warnings)
}

// alerts serves /api/v1/alerts: the alert instances of the merged alerting rules.
func (a *API) alerts(r *http.Request) result {
	groups, warnings, apiErr := a.ruleGroups(r, &rulespb.RulesRequest{Type: rulespb.RulesRequest_ALERT})
	if apiErr != nil {
		return errResult(apiErr)
	}
	alerts := rulesapi.Alerts(groups)
	if dedup, _ := parseBoolParam(r, "dedup", true); dedup {
		alerts = rulesapi.DedupAlerts(alerts) // the same alert from different groups
	}
	b, err := rulesapi.AlertInstancesJSON(alerts)
	if err != nil {
		return errResult(&apiError{errorInternal, fmt.Errorf("encode alerts: %w", err)})
	}
	return rawResult(b, warnings)
}

// ruleGroups fetches, filters and merges the rule groups for req.
func (a *API) ruleGroups(r *http.Request, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, annotations.Annotations, *apiError) {
	params, apiErr := a.parseFanoutParams(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	req.PartialResponseStrategy = params.strategy
	if a.cfg.Rules == nil {
		return nil, nil, nil
	}
	groups, warnings, apiErr := fetchFanout(a, r, "rules", func(ctx context.Context) ([]*rulespb.RuleGroup, []string, error) {
		groups, warns, err := a.cfg.Rules.RuleGroups(ctx, req)
		if err == nil {
			// Endpoints other than Vigil may not filter (older Thanos ignores rule_name[]
			// and the like): filter again, before replica labels are gone so match[]
			// sees them.
			groups, err = rulesapi.Filter(groups, req)
		}
		return groups, warns, err
	})
	if apiErr != nil {
		return nil, nil, apiErr
	}
	return rulesapi.Merge(groups, params.replicaLabels), warnings, nil
}

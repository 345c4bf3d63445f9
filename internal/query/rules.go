package query

import (
	"context"

	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
)

// RulesAPI is thanos.Rules for FanoutAPI.
var RulesAPI = API{What: "rules", Serves: func(in *infopb.InfoResponse) bool { return in.GetRules() != nil }}

// RulesProxy fans thanos.Rules out to the healthy endpoints whose Info advertises the
// Rules API (sidecars, rulers, queriers) and returns what they answer, unmerged
// (rulesapi.Merge deduplicates). It implements rulesapi.Source.
type RulesProxy struct{ apis *APIEndpoints }

// NewRulesProxy returns a Rules fan-out over the API endpoints.
func NewRulesProxy(apis *APIEndpoints) *RulesProxy { return &RulesProxy{apis: apis} }

// RuleGroups asks every rules endpoint, in address order, with FanoutAPI's
// partial-response rules.
func (p *RulesProxy) RuleGroups(ctx context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
	return FanoutAPI(ctx, p.apis, RulesAPI, req.GetPartialResponseStrategy(),
		func(ctx context.Context, ep APIEndpoint) ([]*rulespb.RuleGroup, []string, error) {
			return rulesapi.Fetch(ctx, rulespb.NewRulesClient(ep.Conn), req)
		})
}

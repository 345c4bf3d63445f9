package query

import (
	"context"

	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
	"github.com/vigilhq/vigil/internal/targetsapi"
)

// TargetsAPI is thanos.Targets for FanoutAPI.
var TargetsAPI = API{What: "targets", Serves: func(in *infopb.InfoResponse) bool { return in.GetTargets() != nil }}

// TargetsProxy fans thanos.Targets out to the healthy endpoints whose Info advertises
// the Targets API and returns what they answer, unmerged (targetsapi.Merge
// deduplicates). It implements targetsapi.Source.
type TargetsProxy struct{ apis *APIEndpoints }

// NewTargetsProxy returns a Targets fan-out over the API endpoints.
func NewTargetsProxy(apis *APIEndpoints) *TargetsProxy { return &TargetsProxy{apis: apis} }

// Targets asks every targets endpoint, in address order, with FanoutAPI's
// partial-response rules.
func (p *TargetsProxy) Targets(ctx context.Context, req *targetspb.TargetsRequest) ([]*targetspb.TargetDiscovery, []string, error) {
	return FanoutAPI(ctx, p.apis, TargetsAPI, req.GetPartialResponseStrategy(),
		func(ctx context.Context, ep APIEndpoint) ([]*targetspb.TargetDiscovery, []string, error) {
			return targetsapi.Fetch(ctx, targetspb.NewTargetsClient(ep.Conn), req)
		})
}

var _ targetsapi.Source = (*TargetsProxy)(nil)

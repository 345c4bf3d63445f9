package query

import (
	"context"

	"github.com/vigilhq/vigil/internal/statusapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
)

// StatusAPI is thanos.Status for FanoutAPI.
var StatusAPI = API{What: "TSDB statistics", Serves: func(in *infopb.InfoResponse) bool { return in.GetStatus() != nil }}

// StatusProxy fans thanos.Status out to the healthy endpoints whose Info advertises the
// Status API and returns what they answer, unmerged (statusapi.Merge adds up). It
// implements statusapi.Source.
type StatusProxy struct{ apis *APIEndpoints }

// NewStatusProxy returns a Status fan-out over the API endpoints.
func NewStatusProxy(apis *APIEndpoints) *StatusProxy { return &StatusProxy{apis: apis} }

// TSDBStatistics asks every status endpoint, in address order, with FanoutAPI's
// partial-response rules. The request, matchers included, is sent as it is: each
// endpoint selects its TSDBs.
func (p *StatusProxy) TSDBStatistics(ctx context.Context, req *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error) {
	return FanoutAPI(ctx, p.apis, StatusAPI, req.GetPartialResponseStrategy(),
		func(ctx context.Context, ep APIEndpoint) ([]*statuspb.TSDBStatistics, []string, error) {
			return statusapi.Fetch(ctx, statuspb.NewStatusClient(ep.Conn), req)
		})
}

var _ statusapi.Source = (*StatusProxy)(nil)

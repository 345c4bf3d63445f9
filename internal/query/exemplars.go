package query

import (
	"context"

	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/exemplarsapi"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
)

// ExemplarsAPI is thanos.Exemplars for FanoutAPI.
var ExemplarsAPI = API{What: "exemplars", Serves: func(in *infopb.InfoResponse) bool { return in.GetExemplars() != nil }}

// ExemplarsProxy fans thanos.Exemplars out to the healthy endpoints whose Info
// advertises the Exemplars API and returns what they answer, unmerged
// (exemplarsapi.Merge deduplicates). It implements exemplarsapi.Source.
//
// As Thanos's querier, it sends each endpoint the query rewritten for the endpoint's
// external labels (exemplarsapi.QueryFor), and does not ask endpoints whose labels
// contradict every selector.
type ExemplarsProxy struct {
	apis   *APIEndpoints
	parser parser.Parser
}

// NewExemplarsProxy returns an Exemplars fan-out over the API endpoints; p parses
// queries (nil: the default options).
func NewExemplarsProxy(apis *APIEndpoints, p parser.Parser) *ExemplarsProxy {
	if p == nil {
		p = parser.NewParser(parser.Options{})
	}
	return &ExemplarsProxy{apis: apis, parser: p}
}

// Exemplars asks every exemplars endpoint the query concerns, in address order, with
// FanoutAPI's partial-response rules. A query that does not parse is InvalidArgument.
func (p *ExemplarsProxy) Exemplars(ctx context.Context, req *exemplarspb.ExemplarsRequest) ([]*exemplarspb.ExemplarData, []string, error) {
	if _, err := p.parser.ParseExpr(req.GetQuery()); err != nil {
		return nil, nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return FanoutAPI(ctx, p.apis, ExemplarsAPI, req.GetPartialResponseStrategy(),
		func(ctx context.Context, ep APIEndpoint) ([]*exemplarspb.ExemplarData, []string, error) {
			q, ok, err := exemplarsapi.QueryFor(p.parser, req.GetQuery(), ep.LabelSets)
			if err != nil || !ok {
				return nil, nil, err
			}
			epReq := proto.Clone(req).(*exemplarspb.ExemplarsRequest)
			epReq.Query = q
			return exemplarsapi.Fetch(ctx, exemplarspb.NewExemplarsClient(ep.Conn), epReq)
		})
}

var _ exemplarsapi.Source = (*ExemplarsProxy)(nil)

package query

import (
	"context"

	"github.com/vigilhq/vigil/internal/metadataapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
)

// MetadataAPI is thanos.Metadata for FanoutAPI.
var MetadataAPI = API{What: "metadata", Serves: func(in *infopb.InfoResponse) bool { return in.GetMetricMetadata() != nil }}

// MetadataProxy fans thanos.Metadata out to the healthy endpoints whose Info advertises
// the Metadata API and returns what they answer, unmerged (metadataapi.Merge unites).
// It implements metadataapi.Source.
type MetadataProxy struct{ apis *APIEndpoints }

// NewMetadataProxy returns a Metadata fan-out over the API endpoints.
func NewMetadataProxy(apis *APIEndpoints) *MetadataProxy { return &MetadataProxy{apis: apis} }

// MetricMetadata asks every metadata endpoint, in address order, with FanoutAPI's
// partial-response rules.
func (p *MetadataProxy) MetricMetadata(ctx context.Context, req *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error) {
	return FanoutAPI(ctx, p.apis, MetadataAPI, req.GetPartialResponseStrategy(),
		func(ctx context.Context, ep APIEndpoint) ([]*metadatapb.MetricMetadata, []string, error) {
			return metadataapi.Fetch(ctx, metadatapb.NewMetadataClient(ep.Conn), req)
		})
}

var _ metadataapi.Source = (*MetadataProxy)(nil)

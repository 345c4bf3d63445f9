package sidecar

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/metadataapi"
	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
)

// RegisterMetadata serves thanos.Metadata from the Prometheus behind the sidecar on
// srv: Prometheus's /api/v1/metadata, as Thanos's sidecar answers (metadata carries no
// labels, so there are no external labels to add).
func RegisterMetadata(srv *grpc.Server, client *promclient.Client) {
	metadataapi.Register(srv, metadataapi.SourceFunc(func(ctx context.Context, req *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error) {
		md, warnings, err := client.MetricMetadata(ctx, req.GetMetric(), int(req.GetLimit()))
		if err != nil {
			return nil, nil, status.Error(codes.Unavailable, fmt.Sprintf("metadata from Prometheus: %v", err))
		}
		return []*metadatapb.MetricMetadata{md}, warnings, nil
	}))
}

package sidecar

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
	"github.com/vigilhq/vigil/internal/targetsapi"
)

// RegisterTargets serves thanos.Targets from the Prometheus behind the sidecar on srv:
// Prometheus's /api/v1/targets with the external labels added to the labels and
// discovered labels of every target, as Thanos's sidecar answers. It fails with
// Unavailable while Prometheus is unreachable or its external labels are unknown.
func RegisterTargets(srv *grpc.Server, prom *Prometheus, client *promclient.Client) {
	targetsapi.Register(srv, targetsapi.SourceFunc(func(ctx context.Context, req *targetspb.TargetsRequest) ([]*targetspb.TargetDiscovery, []string, error) {
		ext, _, err := prom.State()
		if err != nil {
			return nil, nil, status.Error(codes.Unavailable, err.Error())
		}
		td, warnings, err := client.Targets(ctx, req.GetState())
		if err != nil {
			return nil, nil, status.Error(codes.Unavailable, fmt.Sprintf("targets from Prometheus: %v", err))
		}
		targetsapi.AddExternalLabels(td, ext)
		return []*targetspb.TargetDiscovery{td}, warnings, nil
	}))
}

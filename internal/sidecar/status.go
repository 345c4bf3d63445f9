package sidecar

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/statusapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
)

// RegisterStatus serves thanos.Status on srv from the Prometheus behind the sidecar:
// Prometheus's /api/v1/status/tsdb, under the key of the external labels as a string
// (Thanos's receiver keys by tenant). Matchers on the external labels select: when one
// does not hold, the answer is empty; other matchers are ignored (the statistics are of
// the whole TSDB). It fails with Unavailable while Prometheus is unreachable or its
// external labels are unknown.
func RegisterStatus(srv *grpc.Server, prom *Prometheus, client *promclient.Client) {
	statusapi.Register(srv, statusapi.SourceFunc(func(ctx context.Context, req *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error) {
		ext, _, err := prom.State()
		if err != nil {
			return nil, nil, status.Error(codes.Unavailable, err.Error())
		}
		ms, err := storeapi.MatchersFromProto(req.GetMatchers())
		if err != nil {
			return nil, nil, status.Error(codes.InvalidArgument, err.Error())
		}
		if ok, _ := storeapi.MatchExternalLabels(ext, ms); !ok {
			return nil, nil, nil
		}
		e, warnings, err := client.TSDBStatus(ctx, statusapi.Limit(req))
		if err != nil {
			return nil, nil, status.Error(codes.Unavailable, fmt.Sprintf("TSDB status from Prometheus: %v", err))
		}
		return []*statuspb.TSDBStatistics{{Statistics: map[string]*statuspb.TSDBStatisticsEntry{ext.String(): e}}}, warnings, nil
	}))
}

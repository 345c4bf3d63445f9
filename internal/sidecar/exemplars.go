package sidecar

import (
	"context"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/exemplarsapi"
	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
)

// RegisterExemplars serves thanos.Exemplars from the Prometheus behind the sidecar on
// srv: Prometheus's /api/v1/query_exemplars with the external labels added to the
// series labels, as Thanos's sidecar answers. Matchers on the external labels are
// answered by the sidecar (exemplarsapi.QueryFor), since Prometheus does not know them:
// a querier removes them already, a direct client need not. It fails with Unavailable
// while Prometheus is unreachable or its external labels are unknown.
func RegisterExemplars(srv *grpc.Server, prom *Prometheus, client *promclient.Client) {
	p := parser.NewParser(parser.Options{})
	exemplarsapi.Register(srv, exemplarsapi.SourceFunc(func(ctx context.Context, req *exemplarspb.ExemplarsRequest) ([]*exemplarspb.ExemplarData, []string, error) {
		ext, _, err := prom.State()
		if err != nil {
			return nil, nil, status.Error(codes.Unavailable, err.Error())
		}
		q, ok, err := exemplarsapi.QueryFor(p, req.GetQuery(), []labels.Labels{ext})
		if err != nil {
			return nil, nil, status.Error(codes.InvalidArgument, err.Error())
		}
		if !ok {
			return nil, nil, nil
		}
		data, warnings, err := client.Exemplars(ctx, q, req.GetStart(), req.GetEnd())
		if err != nil {
			return nil, nil, status.Error(codes.Unavailable, fmt.Sprintf("exemplars from Prometheus: %v", err))
		}
		exemplarsapi.AddExternalLabels(data, ext)
		return data, warnings, nil
	}))
}

package rulesapi

import (
	"context"

	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/streamapi"
)

// Frames describes the RulesResponse frames (streamapi).
var Frames = streamapi.Frames[rulespb.RulesResponse, *rulespb.RuleGroup]{
	What:    "rules",
	Item:    func(r *rulespb.RulesResponse) (*rulespb.RuleGroup, bool) { return r.GetGroup(), r.GetGroup() != nil },
	Warning: (*rulespb.RulesResponse).GetWarning,
	NewItem: func(g *rulespb.RuleGroup) *rulespb.RulesResponse {
		return &rulespb.RulesResponse{Result: &rulespb.RulesResponse_Group{Group: g}}
	},
	NewWarning: func(w string) *rulespb.RulesResponse {
		return &rulespb.RulesResponse{Result: &rulespb.RulesResponse_Warning{Warning: w}}
	},
}

// Collect reads a Rules stream to its end and returns its groups and warnings.
func Collect(stream rulespb.Rules_RulesClient) ([]*rulespb.RuleGroup, []string, error) {
	return Frames.Collect(stream)
}

// Fetch calls Rules on c and collects the answer.
func Fetch(ctx context.Context, c rulespb.RulesClient, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
	stream, err := c.Rules(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return Collect(stream)
}

// Local calls a Rules server in process, without a network, and collects its answer:
// how a component reads its own thanos.Rules service for its HTTP API.
func Local(srv rulespb.RulesServer) Source {
	return SourceFunc(func(ctx context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
		return Frames.Local(ctx, func(s grpc.ServerStreamingServer[rulespb.RulesResponse]) error { return srv.Rules(req, s) })
	})
}

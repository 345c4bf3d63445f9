package sidecar

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
)

// Rules is the sidecar's source of the Rules API: Prometheus's /api/v1/rules with the
// external labels added to every rule and alert, as Thanos's sidecar answers.
type Rules struct {
	prom   *Prometheus
	client *promclient.Client
}

// NewRules returns the sidecar's rules source.
func NewRules(prom *Prometheus, client *promclient.Client) *Rules {
	return &Rules{prom: prom, client: client}
}

// RegisterRules serves thanos.Rules from the Prometheus behind the sidecar on srv.
func RegisterRules(srv *grpc.Server, prom *Prometheus, client *promclient.Client) {
	rulesapi.Register(srv, NewRules(prom, client))
}

// RuleGroups implements rulesapi.Source. It fails with Unavailable while Prometheus is
// unreachable or its external labels are unknown.
func (r *Rules) RuleGroups(ctx context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
	ext, _, err := r.prom.State()
	if err != nil {
		return nil, nil, status.Error(codes.Unavailable, err.Error())
	}
	groups, warnings, err := r.client.Rules(ctx, req)
	if err != nil {
		return nil, nil, status.Error(codes.Unavailable, fmt.Sprintf("rules from Prometheus: %v", err))
	}
	rulesapi.AddExternalLabels(groups, ext)
	return groups, warnings, nil
}

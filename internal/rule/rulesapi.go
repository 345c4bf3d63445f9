package rule

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// RulesSource is the ruler's rule groups as thanos.Rules reports them: external labels
// on rules and alerts, and each group's partial response strategy. It serves the ruler's
// thanos.Rules service and its /api/v1/rules and /api/v1/alerts.
func (r *Ruler) RulesSource() rulesapi.Source {
	strategy := func(g *rules.Group) storepb.PartialResponseStrategy {
		if r.loader.PartialResponse(g.File(), g.Name()) {
			return storepb.PartialResponseStrategy_WARN
		}
		return storepb.PartialResponseStrategy_ABORT
	}
	return rulesapi.SourceFunc(func(context.Context, *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
		return rulesapi.FromManager(r.Manager().RuleGroups(), r.cfg.Labels, strategy), nil, nil
	})
}

// infoServer answers Info for a stateless ruler, which serves rules but no StoreAPI.
type infoServer struct {
	infopb.UnimplementedInfoServer
	ext labels.Labels
}

// InfoServer is the Info service of a ruler without a StoreAPI (stateless mode).
func InfoServer(ext labels.Labels) infopb.InfoServer { return infoServer{ext: ext} }

func (s infoServer) Info(context.Context, *infopb.InfoRequest) (*infopb.InfoResponse, error) {
	return &infopb.InfoResponse{
		ComponentType: "rule", Rules: &infopb.RulesInfo{},
		LabelSets: []*storepb.LabelSet{{Labels: storeapi.LabelsToProto(s.ext)}},
	}, nil
}

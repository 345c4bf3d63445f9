package promclient

import (
	"context"
	"net/url"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
	"github.com/vigilhq/vigil/internal/targetsapi"
)

// promTarget is an active target of Prometheus's /api/v1/targets.
type promTarget struct {
	DiscoveredLabels   map[string]string `json:"discoveredLabels"`
	Labels             map[string]string `json:"labels"`
	ScrapePool         string            `json:"scrapePool"`
	ScrapeURL          string            `json:"scrapeUrl"`
	GlobalURL          string            `json:"globalUrl"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
	Health             string            `json:"health"`
}

// Targets reads /api/v1/targets and converts the answer to the Targets API, without
// external labels. state is passed on as Prometheus's state parameter.
func (c *Client) Targets(ctx context.Context, state targetspb.TargetsRequest_State) (*targetspb.TargetDiscovery, []string, error) {
	q := url.Values{}
	if s := targetsapi.StateParam(state); s != "" {
		q.Set("state", s)
	}
	var data struct {
		ActiveTargets  []promTarget `json:"activeTargets"`
		DroppedTargets []struct {
			DiscoveredLabels map[string]string `json:"discoveredLabels"`
		} `json:"droppedTargets"`
	}
	warnings, err := c.getAPI(ctx, "/api/v1/targets", q, &data)
	if err != nil {
		return nil, warnings, err
	}
	out := &targetspb.TargetDiscovery{
		ActiveTargets:  make([]*targetspb.ActiveTarget, 0, len(data.ActiveTargets)),
		DroppedTargets: make([]*targetspb.DroppedTarget, 0, len(data.DroppedTargets)),
	}
	for _, t := range data.ActiveTargets {
		out.ActiveTargets = append(out.ActiveTargets, &targetspb.ActiveTarget{
			DiscoveredLabels: labelSet(t.DiscoveredLabels), Labels: labelSet(t.Labels),
			ScrapePool: t.ScrapePool, ScrapeUrl: t.ScrapeURL, GlobalUrl: t.GlobalURL, LastError: t.LastError,
			LastScrape: timestamppb.New(t.LastScrape), LastScrapeDuration: t.LastScrapeDuration,
			Health: targetsapi.ParseHealth(t.Health),
		})
	}
	for _, t := range data.DroppedTargets {
		out.DroppedTargets = append(out.DroppedTargets, &targetspb.DroppedTarget{DiscoveredLabels: labelSet(t.DiscoveredLabels)})
	}
	return out, warnings, nil
}

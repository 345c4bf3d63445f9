package queryapi

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
	"github.com/vigilhq/vigil/internal/targetsapi"
)

// The JSON below is Prometheus's /api/v1/targets "data" (web/api/v1 TargetDiscovery),
// with the fields the Targets API carries, as Thanos writes it: no scrapeInterval,
// scrapeTimeout or droppedTargetCounts.

type jsonTargetDiscovery struct {
	ActiveTargets  []jsonActiveTarget  `json:"activeTargets"`
	DroppedTargets []jsonDroppedTarget `json:"droppedTargets"`
}

type jsonActiveTarget struct {
	DiscoveredLabels   labels.Labels `json:"discoveredLabels"`
	Labels             labels.Labels `json:"labels"`
	ScrapePool         string        `json:"scrapePool"`
	ScrapeURL          string        `json:"scrapeUrl"`
	GlobalURL          string        `json:"globalUrl"`
	LastError          string        `json:"lastError"`
	LastScrape         time.Time     `json:"lastScrape"`
	LastScrapeDuration float64       `json:"lastScrapeDuration"`
	Health             string        `json:"health"`
}

type jsonDroppedTarget struct {
	DiscoveredLabels labels.Labels `json:"discoveredLabels"`
}

// targets serves /api/v1/targets: the targets of every targets endpoint, merged and,
// with dedup, deduplicated on the replica labels (targetsapi.Merge). It takes
// Prometheus's state (active, dropped or any) and scrapePool, and Thanos's dedup,
// replicaLabels[] and partial_response.
func (a *API) targets(r *http.Request) result {
	state, err := targetsapi.ParseState(r.FormValue("state"))
	if err != nil {
		return errResult(&apiError{errorBadData, err})
	}
	params, apiErr := a.parseFanoutParams(r)
	if apiErr != nil {
		return errResult(apiErr)
	}
	var (
		tds      []*targetspb.TargetDiscovery
		warnings annotations.Annotations
	)
	if a.cfg.Targets != nil {
		req := &targetspb.TargetsRequest{State: state, PartialResponseStrategy: params.strategy}
		tds, warnings, apiErr = fetchFanout(a, r, "targets", func(ctx context.Context) ([]*targetspb.TargetDiscovery, []string, error) {
			return a.cfg.Targets.Targets(ctx, req)
		})
		if apiErr != nil {
			return errResult(apiErr)
		}
	}
	td := targetsapi.Filter(targetsapi.Merge(tds, params.replicaLabels), state, r.FormValue("scrapePool"))
	return jsonResult(targetsJSON(td), warnings)
}

// targetsJSON converts merged targets to their JSON form.
func targetsJSON(td *targetspb.TargetDiscovery) jsonTargetDiscovery {
	out := jsonTargetDiscovery{
		ActiveTargets:  make([]jsonActiveTarget, 0, len(td.GetActiveTargets())),
		DroppedTargets: make([]jsonDroppedTarget, 0, len(td.GetDroppedTargets())),
	}
	for _, t := range td.GetActiveTargets() {
		var last time.Time // never scraped: 0001-01-01T00:00:00Z, as Prometheus
		if t.GetLastScrape() != nil {
			last = t.GetLastScrape().AsTime()
		}
		out.ActiveTargets = append(out.ActiveTargets, jsonActiveTarget{
			DiscoveredLabels: storeapi.LabelsFromProto(t.GetDiscoveredLabels().GetLabels()),
			Labels:           storeapi.LabelsFromProto(t.GetLabels().GetLabels()),
			ScrapePool:       t.GetScrapePool(), ScrapeURL: t.GetScrapeUrl(), GlobalURL: t.GetGlobalUrl(),
			LastError: t.GetLastError(), LastScrape: last, LastScrapeDuration: t.GetLastScrapeDuration(),
			Health: targetsapi.Health(t.GetHealth()),
		})
	}
	for _, t := range td.GetDroppedTargets() {
		out.DroppedTargets = append(out.DroppedTargets, jsonDroppedTarget{
			DiscoveredLabels: storeapi.LabelsFromProto(t.GetDiscoveredLabels().GetLabels()),
		})
	}
	return out
}

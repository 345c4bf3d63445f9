package queryapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/vigilhq/vigil/internal/metadataapi"
	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
)

// metricMetadata serves /api/v1/metadata: the metric metadata of every metadata
// endpoint, united (metadataapi.Merge). It takes Prometheus's metric, limit and
// limit_per_metric, and Thanos's partial_response.
func (a *API) metricMetadata(r *http.Request) result {
	limit, apiErr := parseIntParam(r, "limit")
	if apiErr != nil {
		return errResult(apiErr)
	}
	limitPerMetric, apiErr := parseIntParam(r, "limit_per_metric")
	if apiErr != nil {
		return errResult(apiErr)
	}
	params, apiErr := a.parseFanoutParams(r)
	if apiErr != nil {
		return errResult(apiErr)
	}
	metric := r.FormValue("metric")
	if a.cfg.Metadata == nil {
		return jsonResult(map[string]any{}, nil)
	}
	req := &metadatapb.MetricMetadataRequest{Metric: metric, Limit: int32(limit), PartialResponseStrategy: params.strategy}
	if limit > math.MaxInt32 {
		req.Limit = -1 // enough to ask every endpoint for everything
	}
	mds, warnings, apiErr := fetchFanout(a, r, "metadata", func(ctx context.Context) ([]*metadatapb.MetricMetadata, []string, error) {
		return a.cfg.Metadata.MetricMetadata(ctx, req)
	})
	if apiErr != nil {
		return errResult(apiErr)
	}
	return jsonResult(metadataapi.JSON(metadataapi.Merge(mds, metric, limit, limitPerMetric)), warnings)
}

// parseIntParam parses an optional integer parameter as Prometheus's metadata API
// does: -1 when absent, any integer otherwise.
func parseIntParam(r *http.Request, name string) (int, *apiError) {
	v := r.FormValue(name)
	if v == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, &apiError{errorBadData, errors.New(name + " must be a number")}
	}
	return n, nil
}

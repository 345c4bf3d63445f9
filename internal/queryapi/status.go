package queryapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/vigilhq/vigil/internal/statusapi"
	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
)

// tsdbStatus serves /api/v1/status/tsdb: the TSDB statistics of every status endpoint,
// added up with replicas counted once (statusapi.Merge). It takes Prometheus's limit
// (default 10) and Thanos's dedup, replicaLabels[] and partial_response.
func (a *API) tsdbStatus(r *http.Request) result {
	limit := statusapi.DefaultLimit
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return errResult(&apiError{errorBadData, errors.New("limit must be a positive number")})
		}
		if limit > statusapi.MaxLimit {
			return errResult(&apiError{errorBadData, fmt.Errorf("limit must not exceed %d", statusapi.MaxLimit)})
		}
	}
	params, apiErr := a.parseFanoutParams(r)
	if apiErr != nil {
		return errResult(apiErr)
	}
	if a.cfg.Status == nil {
		return jsonResult(statusapi.JSON(statusapi.Merge(nil, nil, limit)), nil)
	}
	req := &statuspb.TSDBStatisticsRequest{Limit: int32(limit), PartialResponseStrategy: params.strategy}
	stats, warnings, apiErr := fetchFanout(a, r, "TSDB statistics", func(ctx context.Context) ([]*statuspb.TSDBStatistics, []string, error) {
		return a.cfg.Status.TSDBStatistics(ctx, req)
	})
	if apiErr != nil {
		return errResult(apiErr)
	}
	return jsonResult(statusapi.JSON(statusapi.Merge(stats, params.replicaLabels, limit)), warnings)
}

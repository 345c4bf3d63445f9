package promclient

import (
	"context"
	"net/url"
	"strconv"

	"github.com/vigilhq/vigil/internal/statusapi"
	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
)

// TSDBStatus reads /api/v1/status/tsdb with top lists of at most limit entries (0 or
// less: Prometheus's default). Prometheus before v2.45 ignores limit and always lists
// 10: the lists are cut to limit here.
func (c *Client) TSDBStatus(ctx context.Context, limit int) (*statuspb.TSDBStatisticsEntry, []string, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var data statusapi.Status
	warnings, err := c.getAPI(ctx, "/api/v1/status/tsdb", q, &data)
	if err != nil {
		return nil, warnings, err
	}
	if limit > 0 {
		for _, l := range []*[]statusapi.Stat{&data.SeriesCountByMetricName, &data.LabelValueCountByLabelName,
			&data.MemoryInBytesByLabelName, &data.SeriesCountByLabelValuePair} {
			if len(*l) > limit {
				*l = (*l)[:limit]
			}
		}
	}
	return statusapi.FromJSON(&data), warnings, nil
}

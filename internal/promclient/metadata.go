package promclient

import (
	"context"
	"net/url"
	"strconv"

	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
)

// MetricMetadata reads /api/v1/metadata: the metadata of one metric, or of every metric
// when metric is empty, at most limit metrics (negative: no limit; 0 returns none, as
// in Prometheus).
func (c *Client) MetricMetadata(ctx context.Context, metric string, limit int) (*metadatapb.MetricMetadata, []string, error) {
	q := url.Values{}
	if metric != "" {
		q.Set("metric", metric)
	}
	if limit >= 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var data map[string][]struct {
		Type string `json:"type"`
		Help string `json:"help"`
		Unit string `json:"unit"`
	}
	warnings, err := c.getAPI(ctx, "/api/v1/metadata", q, &data)
	if err != nil {
		return nil, warnings, err
	}
	out := &metadatapb.MetricMetadata{Metadata: make(map[string]*metadatapb.MetricMetadataEntry, len(data))}
	for name, metas := range data {
		e := &metadatapb.MetricMetadataEntry{Metas: make([]*metadatapb.Meta, 0, len(metas))}
		for _, m := range metas {
			e.Metas = append(e.Metas, &metadatapb.Meta{Type: m.Type, Help: m.Help, Unit: m.Unit})
		}
		out.Metadata[name] = e
	}
	return out, warnings, nil
}

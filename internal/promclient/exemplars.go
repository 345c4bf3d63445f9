package promclient

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
)

// Exemplars reads /api/v1/query_exemplars for a PromQL query between start and end
// (milliseconds, inclusive) and converts the answer to the Exemplars API, without
// external labels.
func (c *Client) Exemplars(ctx context.Context, query string, start, end int64) ([]*exemplarspb.ExemplarData, []string, error) {
	q := url.Values{}
	q.Set("query", query)
	q.Set("start", formatTime(time.UnixMilli(start)))
	q.Set("end", formatTime(time.UnixMilli(end)))
	var data []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels    map[string]string `json:"labels"`
			Value     string            `json:"value"`
			Timestamp float64           `json:"timestamp"`
		} `json:"exemplars"`
	}
	warnings, err := c.getAPI(ctx, "/api/v1/query_exemplars", q, &data)
	if err != nil {
		return nil, warnings, err
	}
	out := make([]*exemplarspb.ExemplarData, 0, len(data))
	for _, d := range data {
		ed := &exemplarspb.ExemplarData{SeriesLabels: labelSet(d.SeriesLabels), Exemplars: make([]*exemplarspb.Exemplar, 0, len(d.Exemplars))}
		for _, e := range d.Exemplars {
			v, err := strconv.ParseFloat(e.Value, 64)
			if err != nil {
				return nil, warnings, fmt.Errorf("exemplar value %q: %w", e.Value, err)
			}
			ed.Exemplars = append(ed.Exemplars, &exemplarspb.Exemplar{
				Labels: labelSet(e.Labels), Value: v, Ts: int64(math.Round(e.Timestamp * 1000)),
			})
		}
		out = append(out, ed)
	}
	return out, warnings, nil
}

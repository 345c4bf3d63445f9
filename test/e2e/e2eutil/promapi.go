package e2eutil

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"
)

// RawSample is one sample of a Prometheus API matrix, timestamp in milliseconds.
type RawSample struct {
	T int64
	V float64
}

// MatrixSeries is one series of a Prometheus API matrix result.
type MatrixSeries struct {
	Metric  map[string]string
	Samples []RawSample
}

// QueryMatrix evaluates query (which must return a range vector, such as `up[30s]`) with
// GET /api/v1/query at time at against the Prometheus-compatible API at baseURL, and
// returns the raw samples of each series.
func QueryMatrix(ctx context.Context, baseURL, query string, at time.Time) ([]MatrixSeries, error) {
	q := url.Values{}
	q.Set("query", query)
	q.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	code, body, err := HTTPGet(ctx, baseURL+"/api/v1/query?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string    `json:"metric"`
				Values [][2]json.RawMessage `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, fmt.Errorf("query %q: HTTP %d, decode %.200q: %w", query, code, body, err)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("query %q: HTTP %d: %s", query, code, resp.Error)
	}
	if resp.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("query %q: result type %q, want matrix", query, resp.Data.ResultType)
	}
	out := make([]MatrixSeries, 0, len(resp.Data.Result))
	for _, r := range resp.Data.Result {
		s := MatrixSeries{Metric: r.Metric}
		for _, pair := range r.Values {
			smp, err := decodeSample(pair)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", query, err)
			}
			s.Samples = append(s.Samples, smp)
		}
		out = append(out, s)
	}
	return out, nil
}

// decodeSample decodes [<unix seconds, ms precision>, "<value>"].
func decodeSample(pair [2]json.RawMessage) (RawSample, error) {
	var ts json.Number
	var v string
	if err := json.Unmarshal(pair[0], &ts); err != nil {
		return RawSample{}, fmt.Errorf("decode timestamp %s: %w", pair[0], err)
	}
	if err := json.Unmarshal(pair[1], &v); err != nil {
		return RawSample{}, fmt.Errorf("decode value %s: %w", pair[1], err)
	}
	secs, err := strconv.ParseFloat(ts.String(), 64)
	if err != nil {
		return RawSample{}, fmt.Errorf("parse timestamp %s: %w", ts, err)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return RawSample{}, fmt.Errorf("parse value %q: %w", v, err)
	}
	return RawSample{T: int64(math.Round(secs * 1000)), V: f}, nil
}

package queryapi

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// TestPrometheusClientDecodes runs the Prometheus Go client (what Grafana-like tools
// use) against the API and checks that it decodes every response type.
func TestPrometheusClientDecodes(t *testing.T) {
	f := newFixture(t, nil, nil)
	client, err := api.NewClient(api.Config{Address: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	papi := v1.NewAPI(client)
	ctx := context.Background()
	at := time.Unix(1700000600, 0)

	val, warns, _, err := papi.Query(ctx, "up", at)
	if err != nil || len(warns) != 0 {
		t.Fatalf("query: %v %v", err, warns)
	}
	vec, ok := val.(model.Vector)
	if !ok || len(vec) != 2 || vec[0].Metric["instance"] != "a:9090" || vec[0].Value != 1 || !vec[0].Timestamp.Time().Equal(at) {
		t.Errorf("query decoded as %#v", val)
	}

	val, _, _, err = papi.Query(ctx, "native_hist", at)
	if err != nil {
		t.Fatal(err)
	}
	if vec, ok := val.(model.Vector); !ok || len(vec) != 1 || vec[0].Histogram == nil ||
		vec[0].Histogram.Count != 5 || vec[0].Histogram.Sum != 10.5 || len(vec[0].Histogram.Buckets) != 4 ||
		vec[0].Histogram.Buckets[0].Boundaries != 1 || vec[0].Histogram.Buckets[0].Lower != -1 {
		t.Errorf("histogram query decoded as %#v", val)
	}

	val, _, _, err = papi.Query(ctx, "2 * 21", at)
	if sc, ok := val.(*model.Scalar); err != nil || !ok || sc.Value != 42 || !sc.Timestamp.Time().Equal(at) {
		t.Errorf("scalar decoded as %#v (%v)", val, err)
	}
	// The client has no decoder for string results (neither against Prometheus), so
	// decode that one with the common/model type directly.
	_, body := f.get(t, "/api/v1/query", vals("query", `"hello"`, "time", "1700000600.5"))
	var strResp struct {
		Data struct {
			ResultType string       `json:"resultType"`
			Result     model.String `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &strResp); err != nil || strResp.Data.ResultType != "string" ||
		strResp.Data.Result.Value != "hello" || strResp.Data.Result.Timestamp != model.Time(1700000600500) {
		t.Errorf("string result %s decoded as %+v (%v)", body, strResp, err)
	}

	val, _, _, err = papi.QueryRange(ctx, "http_requests_total", v1.Range{Start: time.Unix(1700000000, 0), End: time.Unix(1700000060, 0), Step: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mat, ok := val.(model.Matrix)
	if !ok || len(mat) != 1 || len(mat[0].Values) != 5 || mat[0].Values[4].Value != 40 || mat[0].Values[4].Timestamp != model.Time(1700000060000) {
		t.Errorf("range query decoded as %#v", val)
	}

	series, _, _, err := papi.Series(ctx, []string{"up"}, time.Time{}, time.Time{})
	if err != nil || len(series) != 2 || series[1]["replica"] != "r1" {
		t.Errorf("series: %v %v", series, err)
	}
	names, _, _, err := papi.LabelNames(ctx, []string{"up"}, time.Unix(1700000000, 0), time.Unix(1700000600, 0))
	if err != nil || !slices.Equal(names, model.LabelNames{"__name__", "instance", "job", "replica"}) {
		t.Errorf("label names: %v %v", names, err)
	}
	values, _, _, err := papi.LabelValues(ctx, "job", nil, time.Time{}, time.Time{})
	if err != nil || len(values) != 3 || values[2] != "prom" {
		t.Errorf("label values: %v %v", values, err)
	}
	bi, err := papi.Buildinfo(ctx)
	if err != nil || bi.Version != "0.1.0" || bi.GoVersion != "go1.26.8" {
		t.Errorf("buildinfo: %+v %v", bi, err)
	}

	f.rec.Warning = "partial response"
	_, warns, _, err = papi.Query(ctx, "up", at)
	if err != nil || len(warns) != 1 || warns[0] != "partial response" {
		t.Errorf("warnings: %v %v", warns, err)
	}

	_, _, _, err = papi.Query(ctx, "up{", at)
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) || apiErr.Type != v1.ErrBadData {
		t.Errorf("bad query error: %#v", err)
	}
}

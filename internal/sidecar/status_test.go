package sidecar

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/statusapi"
	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func TestStatusFromPrometheus(t *testing.T) {
	ext := labels.FromStrings("cluster", "c1", "replica", "r0")
	conn, reqs := apisEnv(t, ext, true)
	ctx := context.Background()
	c := statuspb.NewStatusClient(conn)

	sts, warnings, err := statusapi.Fetch(ctx, c, &statuspb.TSDBStatisticsRequest{Limit: 5})
	if err != nil || len(warnings) != 0 || len(sts) != 1 || len(sts[0].GetStatistics()) != 1 {
		t.Fatalf("status %v %q %v", sts, warnings, err)
	}
	e := sts[0].GetStatistics()[ext.String()]
	if h := e.GetHeadStatistics(); h.GetNumSeries() != 7 || h.GetNumLabelPairs() != 20 || h.GetChunkCount() != 9 || h.GetMinTime() != 1000 || h.GetMaxTime() != 2000 {
		t.Fatalf("head %v (key %q)", h, ext.String())
	}
	if s := e.GetSeriesCountByMetricName(); len(s) != 1 || s[0].GetName() != "up" || s[0].GetValue() != 3 {
		t.Fatalf("series by metric %v", s)
	}
	if len(e.GetMemoryInBytesByLabelName()) != 1 || len(e.GetSeriesCountByLabelValuePair()) != 1 || len(e.GetLabelValueCountByLabelName()) != 0 {
		t.Fatalf("entry %v", e)
	}
	if r := reqs("/api/v1/status/tsdb"); len(r) != 1 || r[0].Get("limit") != "5" {
		t.Fatalf("requests %v", r)
	}
	// No limit: Prometheus's default; a matcher on the external labels that does not
	// hold: Prometheus is not asked.
	if _, _, err := statusapi.Fetch(ctx, c, &statuspb.TSDBStatisticsRequest{}); err != nil {
		t.Fatal(err)
	}
	if r := reqs("/api/v1/status/tsdb"); len(r) != 2 || r[1].Get("limit") != "10" {
		t.Fatalf("requests %v", r)
	}
	sts, _, err = statusapi.Fetch(ctx, c, &statuspb.TSDBStatisticsRequest{Matchers: []*storepb.LabelMatcher{{Name: "replica", Value: "r1"}}})
	if err != nil || len(sts) != 0 || len(reqs("/api/v1/status/tsdb")) != 2 {
		t.Fatalf("other replica: %v %v", sts, err)
	}
	sts, _, err = statusapi.Fetch(ctx, c, &statuspb.TSDBStatisticsRequest{Matchers: []*storepb.LabelMatcher{{Name: "replica", Value: "r0"}, {Name: "job", Value: "x"}}})
	if err != nil || len(sts) != 1 {
		t.Fatalf("own replica: %v %v", sts, err)
	}
}

func TestStatusUnavailableBeforeRefresh(t *testing.T) {
	conn, _ := apisEnv(t, labels.FromStrings("replica", "r0"), false)
	if _, _, err := statusapi.Fetch(context.Background(), statuspb.NewStatusClient(conn), &statuspb.TSDBStatisticsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("want Unavailable before the external labels are known, got %v", err)
	}
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/statusapi"
	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// startStaticExporter serves n series of one gauge, always the same.
func startStaticExporter(t *testing.T, n int) string {
	var b strings.Builder
	b.WriteString("# TYPE vigil_e2e_status_gauge gauge\n")
	for i := range n {
		fmt.Fprintf(&b, "vigil_e2e_status_gauge{shard=\"%d\"} %d\n", i, i)
	}
	body := b.String()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestStatusAPI runs two replicas of one Prometheus (same scrape config, no
// self-scrape, so the same head series) behind sidecars and a querier, and checks
// /api/v1/status/tsdb: with dedup the replicas count once, without twice.
func TestStatusAPI(t *testing.T) {
	t.Parallel()
	exporter := startStaticExporter(t, 20)
	var (
		proms [2]*e2eutil.Prometheus
	)
	for i := range proms {
		proms[i] = e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{
			ExternalLabels: map[string]string{"cluster": "test", replicaLabel: fmt.Sprintf("r%d", i)},
			ScrapeInterval: time.Second, NoSelfScrape: true,
			ScrapeConfigs: []e2eutil.ScrapeConfig{{JobName: "exporter", Targets: []string{exporter}}},
		})
	}
	side, q := sidecarsAndQuerier(t, proms)

	// The exporter's 20 series plus the 5 a scrape adds (up, scrape_*), in both heads.
	const wantSeries = 25
	own := func(p *e2eutil.Prometheus) (statusapi.Status, error) {
		var s statusapi.Status
		_, err := getJSON(p.URL, "/api/v1/status/tsdb", nil, &s)
		return s, err
	}
	// Prometheus caches the top lists for 30s (before v2.45 at least): wait until both
	// replicas list the exporter's metric.
	e2eutil.Poll(t, 90*time.Second, 500*time.Millisecond, func() error {
		for i, p := range proms {
			s, err := own(p)
			if err != nil {
				return err
			}
			if s.HeadStats.NumSeries != wantSeries {
				return fmt.Errorf("prometheus r%d: %d head series, want %d", i, s.HeadStats.NumSeries, wantSeries)
			}
			if l := s.SeriesCountByMetricName; len(l) == 0 || l[0] != (statusapi.Stat{Name: "vigil_e2e_status_gauge", Value: 20}) {
				return fmt.Errorf("prometheus r%d: series count by metric name %v", i, l)
			}
		}
		return nil
	})
	promStatus, err := own(proms[0])
	if err != nil {
		t.Fatal(err)
	}

	t.Run("GRPCFromSidecar", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		info, err := side[0].StoreClient(t, "").Info(ctx)
		if err != nil || info.GetStatus() == nil {
			t.Fatalf("sidecar Info does not advertise the Status API: %v %v", info, err)
		}
		sts, warnings, err := statusapi.Fetch(ctx, statuspb.NewStatusClient(side[0].GRPCConn(t)), &statuspb.TSDBStatisticsRequest{Limit: 5})
		if err != nil || len(warnings) > 0 || len(sts) != 1 {
			t.Fatalf("TSDBStatistics: %v %v, warnings %q", sts, err, warnings)
		}
		key := labels.FromStrings("cluster", "test", replicaLabel, "r0").String()
		e, ok := sts[0].GetStatistics()[key]
		if !ok || len(sts[0].GetStatistics()) != 1 {
			t.Fatalf("want one entry under %s, got %v", key, sts[0])
		}
		h := e.GetHeadStatistics()
		if h.GetNumSeries() != promStatus.HeadStats.NumSeries || h.GetNumLabelPairs() != promStatus.HeadStats.NumLabelPairs ||
			h.GetMinTime() != promStatus.HeadStats.MinTime {
			t.Errorf("head %v, Prometheus says %+v", h, promStatus.HeadStats)
		}
		top := e.GetSeriesCountByMetricName()
		if len(top) == 0 || len(top) > 5 || top[0].GetName() != "vigil_e2e_status_gauge" || top[0].GetValue() != 20 {
			t.Errorf("series count by metric name %v", top)
		}
	})

	t.Run("QueryDedup", func(t *testing.T) {
		var s statusapi.Status
		r, err := getJSON(q.HTTPURL, "/api/v1/status/tsdb", nil, &s)
		if err != nil {
			t.Fatal(err)
		}
		if s.HeadStats.NumSeries != wantSeries || len(r.Warnings) > 0 {
			t.Fatalf("numSeries %d, want one replica's %d: %s", s.HeadStats.NumSeries, wantSeries, r)
		}
		if len(s.SeriesCountByMetricName) != 6 || s.SeriesCountByMetricName[0] != (statusapi.Stat{Name: "vigil_e2e_status_gauge", Value: 20}) {
			t.Errorf("seriesCountByMetricName %v", s.SeriesCountByMetricName)
		}
		if !strings.Contains(string(r.Data), `"headStats":{"numSeries":25,`) {
			t.Errorf("JSON: %s", r.Data)
		}
	})

	t.Run("QueryNoDedup", func(t *testing.T) {
		var s statusapi.Status
		r, err := getJSON(q.HTTPURL, "/api/v1/status/tsdb", url.Values{"dedup": {"false"}, "limit": {"1"}}, &s)
		if err != nil {
			t.Fatal(err)
		}
		if s.HeadStats.NumSeries != 2*wantSeries {
			t.Fatalf("numSeries %d, want both replicas' %d: %s", s.HeadStats.NumSeries, 2*wantSeries, r)
		}
		if len(s.SeriesCountByMetricName) != 1 || s.SeriesCountByMetricName[0].Value != 40 {
			t.Errorf("seriesCountByMetricName %v", s.SeriesCountByMetricName)
		}
	})

	t.Run("BadLimit", func(t *testing.T) {
		r, err := callAPI(q.HTTPURL, "/api/v1/status/tsdb", url.Values{"limit": {"0"}})
		if err != nil || r.HTTPStatus != http.StatusBadRequest {
			t.Fatalf("limit=0: %v %s", err, r)
		}
	})
}

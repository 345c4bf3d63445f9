package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/exemplarsapi"
	"github.com/vigilhq/vigil/internal/metadataapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
	"github.com/vigilhq/vigil/internal/targetsapi"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// The exporter's counter, with metadata and an exemplar carrying its own timestamp, so
// that both replicas store the same exemplar.
const (
	exMetric    = "vigil_e2e_requests_seconds"
	exHelp      = "Time spent serving requests."
	exTraceID   = "4bf92f3577b34da6"
	openMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"
)

// startOpenMetricsExporter serves exMetric in the OpenMetrics format, the only one in
// which Prometheus scrapes exemplars. The exemplar is at exTS (milliseconds).
func startOpenMetricsExporter(t *testing.T, exTS int64) string {
	body := fmt.Sprintf("# TYPE %[1]s counter\n# HELP %[1]s %[2]s\n# UNIT %[1]s seconds\n"+
		"%[1]s_total 17.5 # {trace_id=\"%[3]s\"} 0.25 %[4]d.%03[5]d\n# EOF\n",
		exMetric, exHelp, exTraceID, exTS/1000, exTS%1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", openMetrics)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// JSON of the querier's answers.
type (
	metaJSON    map[string][]struct{ Type, Help, Unit string }
	targetsJSON struct {
		ActiveTargets []struct {
			DiscoveredLabels map[string]string `json:"discoveredLabels"`
			Labels           map[string]string `json:"labels"`
			ScrapePool       string            `json:"scrapePool"`
			ScrapeURL        string            `json:"scrapeUrl"`
			LastScrape       time.Time         `json:"lastScrape"`
			Health           string            `json:"health"`
		} `json:"activeTargets"`
		DroppedTargets []json.RawMessage `json:"droppedTargets"`
	}
	exemplarsJSON []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels    map[string]string `json:"labels"`
			Value     string            `json:"value"`
			Timestamp float64           `json:"timestamp"`
		} `json:"exemplars"`
	}
)

// getJSON calls a querier API and decodes its data into out.
func getJSON(base, path string, params url.Values, out any) (apiResult, error) {
	r, err := callAPI(base, path, params)
	if err == nil {
		err = r.ok()
	}
	if err == nil {
		err = json.Unmarshal(r.Data, out)
	}
	return r, err
}

func TestMetadataAPI(t *testing.T) {
	t.Parallel()
	exTS := time.Now().Add(-time.Minute).UnixMilli()
	exporter := startOpenMetricsExporter(t, exTS)
	var (
		proms [2]*e2eutil.Prometheus
	)
	for i := range proms {
		proms[i] = e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{
			ExternalLabels: map[string]string{"cluster": "test", replicaLabel: fmt.Sprintf("r%d", i)},
			ScrapeInterval: time.Second, NoSelfScrape: true,
			ScrapeConfigs: []e2eutil.ScrapeConfig{{JobName: "exporter", Targets: []string{exporter}}},
			ExtraFlags:    []string{"--enable-feature=exemplar-storage"},
		})
	}
	side, q := sidecarsAndQuerier(t, proms)

	// Wait until both replicas have scraped the exporter, exemplar included.
	exemplarsQuery := url.Values{"query": {exMetric + "_total"}, "dedup": {"false"}}
	e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error {
		var d exemplarsJSON
		r, err := getJSON(q.HTTPURL, "/api/v1/query_exemplars", exemplarsQuery, &d)
		if err != nil {
			return err
		}
		if len(d) != 2 || len(r.Warnings) > 0 {
			return fmt.Errorf("want the exemplar of both replicas, got %s", r)
		}
		return nil
	})

	t.Run("GRPCFromSidecar", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		info, err := side[0].StoreClient(t, "").Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.GetMetricMetadata() == nil || info.GetTargets() == nil || info.GetExemplars() == nil {
			t.Fatalf("sidecar Info does not advertise metadata, targets and exemplars: %v", info)
		}
		conn := side[0].GRPCConn(t)

		mds, warnings, err := metadataapi.Fetch(ctx, metadatapb.NewMetadataClient(conn),
			&metadatapb.MetricMetadataRequest{Metric: exMetric, Limit: -1})
		if err != nil || len(warnings) > 0 || len(mds) != 1 {
			t.Fatalf("MetricMetadata: %v %v, warnings %q", mds, err, warnings)
		}
		metas := mds[0].GetMetadata()[exMetric].GetMetas()
		if len(mds[0].GetMetadata()) != 1 || len(metas) != 1 || metas[0].GetType() != "counter" ||
			metas[0].GetHelp() != exHelp || metas[0].GetUnit() != "seconds" {
			t.Fatalf("metadata %v", mds[0])
		}

		tds, _, err := targetsapi.Fetch(ctx, targetspb.NewTargetsClient(conn), &targetspb.TargetsRequest{State: targetspb.TargetsRequest_ACTIVE})
		if err != nil || len(tds) != 1 || len(tds[0].GetActiveTargets()) != 1 || len(tds[0].GetDroppedTargets()) != 0 {
			t.Fatalf("Targets: %v %v", tds, err)
		}
		at := tds[0].GetActiveTargets()[0]
		want := map[string]string{"cluster": "test", replicaLabel: "r0", "instance": exporter, "job": "exporter"}
		if got := storeapi.LabelsFromProto(at.GetLabels().GetLabels()).Map(); !maps.Equal(got, want) {
			t.Errorf("target labels %v, want %v", got, want)
		}
		disc := storeapi.LabelsFromProto(at.GetDiscoveredLabels().GetLabels())
		if disc.Get("__address__") != exporter || disc.Get(replicaLabel) != "r0" || disc.Get("cluster") != "test" {
			t.Errorf("discovered labels %v", disc)
		}
		if at.GetHealth() != targetspb.TargetHealth_UP || at.GetScrapePool() != "exporter" ||
			at.GetScrapeUrl() != "http://"+exporter+"/metrics" || at.GetLastScrape().AsTime().IsZero() {
			t.Errorf("target %v", at)
		}

		ec := exemplarspb.NewExemplarsClient(conn)
		data, _, err := exemplarsapi.Fetch(ctx, ec, &exemplarspb.ExemplarsRequest{
			Query: exMetric + `_total{replica="r0"}`, Start: exTS - 1000, End: exTS + 1000})
		if err != nil || len(data) != 1 || len(data[0].GetExemplars()) != 1 {
			t.Fatalf("Exemplars: %v %v", data, err)
		}
		wantSeries := map[string]string{"__name__": exMetric + "_total", "cluster": "test", replicaLabel: "r0", "instance": exporter, "job": "exporter"}
		if got := storeapi.LabelsFromProto(data[0].GetSeriesLabels().GetLabels()).Map(); !maps.Equal(got, wantSeries) {
			t.Errorf("series labels %v, want %v", got, wantSeries)
		}
		e := data[0].GetExemplars()[0]
		if e.GetValue() != 0.25 || e.GetTs() != exTS || storeapi.LabelsFromProto(e.GetLabels().GetLabels()).Get("trace_id") != exTraceID {
			t.Errorf("exemplar %v, want 0.25 at %d", e, exTS)
		}
		// The sidecar answers matchers on its external labels itself.
		data, _, err = exemplarsapi.Fetch(ctx, ec, &exemplarspb.ExemplarsRequest{
			Query: exMetric + `_total{replica="r1"}`, Start: exTS - 1000, End: exTS + 1000})
		if err != nil || len(data) != 0 {
			t.Errorf("other replica's selector: want nothing, got %v %v", data, err)
		}
	})

	t.Run("QueryMetadata", func(t *testing.T) {
		var d metaJSON
		r, err := getJSON(q.HTTPURL, "/api/v1/metadata", url.Values{"metric": {exMetric}}, &d)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != 1 || len(d[exMetric]) != 1 || d[exMetric][0].Type != "counter" || d[exMetric][0].Help != exHelp || d[exMetric][0].Unit != "seconds" {
			t.Fatalf("want the exporter's metric once, got %s", r)
		}
		if !strings.Contains(string(r.Data), `"unit":"seconds"`) {
			t.Errorf("JSON field names: %s", r.Data)
		}
		if r, err := callAPI(q.HTTPURL, "/api/v1/metadata", url.Values{"limit": {"0"}}); err != nil || string(r.Data) != "{}" {
			t.Errorf("limit=0: want {}, got %v %s", err, r)
		}
	})

	t.Run("QueryTargets", func(t *testing.T) {
		var d targetsJSON
		r, err := getJSON(q.HTTPURL, "/api/v1/targets", nil, &d)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.ActiveTargets) != 1 || d.DroppedTargets == nil {
			t.Fatalf("dedup: want the exporter once, got %s", r)
		}
		at := d.ActiveTargets[0]
		if !maps.Equal(at.Labels, map[string]string{"cluster": "test", "instance": exporter, "job": "exporter"}) ||
			at.DiscoveredLabels[replicaLabel] != "" || at.Health != "up" || at.ScrapePool != "exporter" || at.LastScrape.IsZero() {
			t.Errorf("target %s", r.Data)
		}
		r, err = getJSON(q.HTTPURL, "/api/v1/targets", url.Values{"dedup": {"false"}, "state": {"active"}}, &d)
		if err != nil || len(d.ActiveTargets) != 2 || d.ActiveTargets[0].Labels[replicaLabel] == d.ActiveTargets[1].Labels[replicaLabel] {
			t.Fatalf("dedup=false: want each replica's target, got %v %s", err, r)
		}
		for params, n := range map[string]int{"state=dropped": 0, "scrapePool=exporter": 1, "scrapePool=nope": 0} {
			v, _ := url.ParseQuery(params)
			d = targetsJSON{}
			if _, err := getJSON(q.HTTPURL, "/api/v1/targets", v, &d); err != nil || len(d.ActiveTargets) != n {
				t.Errorf("%s: %d targets (%v), want %d", params, len(d.ActiveTargets), err, n)
			}
		}
		if r, _ := callAPI(q.HTTPURL, "/api/v1/targets", url.Values{"state": {"sleeping"}}); r.HTTPStatus != http.StatusBadRequest {
			t.Errorf("bad state: %s", r)
		}
	})

	t.Run("QueryExemplars", func(t *testing.T) {
		var d exemplarsJSON
		r, err := getJSON(q.HTTPURL, "/api/v1/query_exemplars", url.Values{"query": {`rate(` + exMetric + `_total{cluster="test"}[1m])`}}, &d)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"__name__": exMetric + "_total", "cluster": "test", "instance": exporter, "job": "exporter"}
		if len(d) != 1 || !maps.Equal(d[0].SeriesLabels, want) || len(d[0].Exemplars) != 1 {
			t.Fatalf("dedup: want one series with one exemplar, got %s", r)
		}
		e := d[0].Exemplars[0]
		if e.Value != "0.25" || int64(e.Timestamp*1000+0.5) != exTS || e.Labels["trace_id"] != exTraceID {
			t.Errorf("exemplar %s", r.Data)
		}
		// A selector on another cluster's external label asks no endpoint.
		d = nil
		if r, err := getJSON(q.HTTPURL, "/api/v1/query_exemplars", url.Values{"query": {exMetric + `_total{cluster="other"}`}}, &d); err != nil || len(d) != 0 {
			t.Errorf("other cluster: %v %s", err, r)
		}
		if r, _ := callAPI(q.HTTPURL, "/api/v1/query_exemplars", url.Values{"query": {"rate("}}); r.HTTPStatus != http.StatusBadRequest {
			t.Errorf("bad query: %s", r)
		}
	})

	t.Run("QuerierAboveQuerier", func(t *testing.T) {
		top := e2eutil.StartVigil(t, "query", "--endpoint="+q.GRPCAddr, "--query.replica-label="+replicaLabel)
		top.MustWaitReady(t)
		var (
			tj targetsJSON
			ej exemplarsJSON
			mj metaJSON
		)
		e2eutil.Poll(t, 20*time.Second, 250*time.Millisecond, func() error {
			r, err := getJSON(top.HTTPURL, "/api/v1/targets", url.Values{"dedup": {"false"}}, &tj)
			if err != nil || len(tj.ActiveTargets) != 2 {
				return fmt.Errorf("targets through two queriers: %v %s", err, r)
			}
			return nil
		})
		if r, err := getJSON(top.HTTPURL, "/api/v1/query_exemplars", url.Values{"query": {exMetric + `_total{replica="r1"}`}}, &ej); err != nil ||
			len(ej) != 1 || ej[0].SeriesLabels["cluster"] != "test" || len(ej[0].Exemplars) != 1 {
			t.Errorf("exemplars through two queriers: %v %s", err, r)
		}
		if r, err := getJSON(top.HTTPURL, "/api/v1/metadata", url.Values{"metric": {exMetric}}, &mj); err != nil || len(mj[exMetric]) != 1 {
			t.Errorf("metadata through two queriers: %v %s", err, r)
		}
	})

	t.Run("OneReplicaDown", func(t *testing.T) {
		if err := proms[1].Stop(e2eutil.DefaultStopTimeout); err != nil {
			t.Fatal(err)
		}
		e2eutil.Poll(t, 20*time.Second, 250*time.Millisecond, func() error {
			var d targetsJSON
			r, err := getJSON(q.HTTPURL, "/api/v1/targets", url.Values{"dedup": {"false"}}, &d)
			if err != nil {
				return err
			}
			if len(r.Warnings) == 0 || len(d.ActiveTargets) != 1 || d.ActiveTargets[0].Labels[replicaLabel] != "r0" {
				return fmt.Errorf("want r0's target and a warning, got %s", r)
			}
			return nil
		})
		r, _ := callAPI(q.HTTPURL, "/api/v1/metadata", url.Values{"partial_response": {"false"}})
		if r.Status != "error" && len(r.Warnings) == 0 {
			// Once the probe has marked the sidecar unhealthy it is skipped with a
			// warning; until then ABORT fails the request.
			t.Errorf("partial_response=false: want an error or a warning, got %s", r)
		}
	})
}

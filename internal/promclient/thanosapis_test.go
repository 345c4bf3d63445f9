package promclient

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
)

// Bodies as Prometheus 2.42 answers them (recorded).
const (
	promMetadataBody = `{"status":"success","data":{"x_seconds":[{"type":"counter","help":"Help \"q\".","unit":"seconds"}],` +
		`"up":[{"type":"gauge","help":"Up.","unit":""},{"type":"gauge","help":"Up 2.","unit":""}]}}`
	promTargetsBody = `{"status":"success","data":{"activeTargets":[{"discoveredLabels":{"__address__":"127.0.0.1:19411",` +
		`"__metrics_path__":"/metrics","__scheme__":"http","__scrape_interval__":"1s","__scrape_timeout__":"1s","job":"exp"},` +
		`"labels":{"instance":"127.0.0.1:19411","job":"exp"},"scrapePool":"exp","scrapeUrl":"http://127.0.0.1:19411/metrics",` +
		`"globalUrl":"http://vm:19411/metrics","lastError":"","lastScrape":"2026-12-06T16:50:12.483152655Z",` +
		`"lastScrapeDuration":0.001298899,"health":"up","scrapeInterval":"1s","scrapeTimeout":"1s"}],` +
		`"droppedTargets":[{"discoveredLabels":{"__address__":"127.0.0.1:19412","__metrics_path__":"/metrics",` +
		`"__scheme__":"http","__scrape_interval__":"1s","__scrape_timeout__":"1s","job":"exp"}}]}}`
	promExemplarsBody = `{"status":"success","data":[{"seriesLabels":{"__name__":"x_seconds_total","instance":"127.0.0.1:19411",` +
		`"job":"exp"},"exemplars":[{"labels":{"trace_id":"abc"},"value":"0.5","timestamp":1796575774.125}]}]}`
)

// recordingClient answers path with body and records the query parameters.
func recordingClient(t *testing.T, path, body string) (*Client, *url.Values) {
	var got url.Values
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		_ = r.ParseForm()
		got = r.Form
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})
	return c, &got
}

func TestMetricMetadata(t *testing.T) {
	c, got := recordingClient(t, "/api/v1/metadata", promMetadataBody)
	md, _, err := c.MetricMetadata(context.Background(), "", -1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Has("metric") || got.Has("limit") {
		t.Fatalf("query %v: want no metric and no limit", got)
	}
	x := md.GetMetadata()["x_seconds"].GetMetas()
	if len(md.GetMetadata()) != 2 || len(x) != 1 || x[0].GetType() != "counter" || x[0].GetHelp() != `Help "q".` || x[0].GetUnit() != "seconds" {
		t.Fatalf("metadata %v", md)
	}
	if len(md.GetMetadata()["up"].GetMetas()) != 2 {
		t.Fatalf("up %v", md.GetMetadata()["up"])
	}
	if _, _, err := c.MetricMetadata(context.Background(), "up", 0); err != nil || got.Get("metric") != "up" || got.Get("limit") != "0" {
		t.Fatalf("query %v, err %v", got, err)
	}
}

func TestTargets(t *testing.T) {
	c, got := recordingClient(t, "/api/v1/targets", promTargetsBody)
	td, _, err := c.Targets(context.Background(), targetspb.TargetsRequest_ANY)
	if err != nil {
		t.Fatal(err)
	}
	if got.Has("state") {
		t.Fatalf("query %v", got)
	}
	if len(td.GetActiveTargets()) != 1 || len(td.GetDroppedTargets()) != 1 {
		t.Fatalf("targets %v", td)
	}
	a := td.GetActiveTargets()[0]
	if a.GetScrapePool() != "exp" || a.GetScrapeUrl() != "http://127.0.0.1:19411/metrics" || a.GetGlobalUrl() != "http://vm:19411/metrics" ||
		a.GetHealth() != targetspb.TargetHealth_UP || a.GetLastScrapeDuration() != 0.001298899 ||
		!a.GetLastScrape().AsTime().Equal(time.Date(2026, 12, 6, 16, 50, 12, 483152655, time.UTC)) {
		t.Fatalf("active target %v", a)
	}
	if ls := storeapi.LabelsFromProto(a.GetLabels().GetLabels()); ls.String() != `{instance="127.0.0.1:19411", job="exp"}` {
		t.Fatalf("labels %v", ls)
	}
	if ls := storeapi.LabelsFromProto(td.GetDroppedTargets()[0].GetDiscoveredLabels().GetLabels()); ls.Get("__address__") != "127.0.0.1:19412" || ls.Len() != 6 {
		t.Fatalf("dropped %v", ls)
	}
	if _, _, err := c.Targets(context.Background(), targetspb.TargetsRequest_DROPPED); err != nil || got.Get("state") != "dropped" {
		t.Fatalf("query %v, err %v", got, err)
	}
}

func TestExemplars(t *testing.T) {
	c, got := recordingClient(t, "/api/v1/query_exemplars", promExemplarsBody)
	data, _, err := c.Exemplars(context.Background(), "x_seconds_total", 1796575774000, 1796575775500)
	if err != nil {
		t.Fatal(err)
	}
	if got.Get("query") != "x_seconds_total" || got.Get("start") != "1796575774.000" || got.Get("end") != "1796575775.500" {
		t.Fatalf("query %v", got)
	}
	if len(data) != 1 || len(data[0].GetExemplars()) != 1 {
		t.Fatalf("data %v", data)
	}
	e := data[0].GetExemplars()[0]
	if e.GetValue() != 0.5 || e.GetTs() != 1796575774125 || storeapi.LabelsFromProto(e.GetLabels().GetLabels()).Get("trace_id") != "abc" {
		t.Fatalf("exemplar %v", e)
	}
	if ls := storeapi.LabelsFromProto(data[0].GetSeriesLabels().GetLabels()); ls.Get("__name__") != "x_seconds_total" || ls.Len() != 3 {
		t.Fatalf("series %v", ls)
	}
	// Unbounded times stay within what Prometheus parses.
	if _, _, err := c.Exemplars(context.Background(), "x", -1<<63, 1<<63-1); err != nil || !strings.HasPrefix(got.Get("start"), "-922337203685") || !strings.HasPrefix(got.Get("end"), "922337203685") {
		t.Fatalf("query %v, err %v", got, err)
	}
}

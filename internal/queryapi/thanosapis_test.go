package queryapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilhq/vigil/internal/exemplarsapi"
	"github.com/vigilhq/vigil/internal/metadataapi"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
	"github.com/vigilhq/vigil/internal/targetsapi"
)

// fakeAPIs answers Metadata, Targets and Exemplars as two HA replicas would, and
// records the requests.
type fakeAPIs struct {
	mu       sync.Mutex
	err      error
	metaReq  *metadatapb.MetricMetadataRequest
	tgtReq   *targetspb.TargetsRequest
	exReq    *exemplarspb.ExemplarsRequest
	warnings []string
}

func (f *fakeAPIs) MetricMetadata(_ context.Context, req *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metaReq = req
	md := func(help string) *metadatapb.MetricMetadata {
		return &metadatapb.MetricMetadata{Metadata: map[string]*metadatapb.MetricMetadataEntry{
			"x_seconds": {Metas: []*metadatapb.Meta{{Type: "counter", Help: "Time.", Unit: "seconds"}}},
			"up":        {Metas: []*metadatapb.Meta{{Type: "gauge", Help: help}}},
		}}
	}
	return []*metadatapb.MetricMetadata{md("Up."), md("Up.")}, f.warnings, f.err
}

func (f *fakeAPIs) Targets(_ context.Context, req *targetspb.TargetsRequest) ([]*targetspb.TargetDiscovery, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tgtReq = req
	td := func(r string, health targetspb.TargetHealth, sec int) *targetspb.TargetDiscovery {
		return &targetspb.TargetDiscovery{
			ActiveTargets: []*targetspb.ActiveTarget{{
				DiscoveredLabels: lset("__address__", "a:1", "job", "j", "replica", r),
				Labels:           lset("instance", "a:1", "job", "j", "replica", r),
				ScrapePool:       "j", ScrapeUrl: "http://a:1/metrics", GlobalUrl: "http://h:1/metrics",
				LastScrape: timestamppb.New(evalTime.Add(time.Duration(sec) * time.Second)), LastScrapeDuration: 0.0125, Health: health,
			}},
			DroppedTargets: []*targetspb.DroppedTarget{{DiscoveredLabels: lset("__address__", "b:1", "job", "j", "replica", r)}},
		}
	}
	return []*targetspb.TargetDiscovery{td("r0", targetspb.TargetHealth_UP, 0), td("r1", targetspb.TargetHealth_UP, 1)}, f.warnings, f.err
}

func (f *fakeAPIs) Exemplars(_ context.Context, req *exemplarspb.ExemplarsRequest) ([]*exemplarspb.ExemplarData, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exReq = req
	d := func(r string) *exemplarspb.ExemplarData {
		return &exemplarspb.ExemplarData{SeriesLabels: lset("__name__", "x_total", "job", "j", "replica", r),
			Exemplars: []*exemplarspb.Exemplar{{Labels: lset("trace_id", "t1"), Value: 0.25, Ts: 1735787045500}}}
	}
	return []*exemplarspb.ExemplarData{d("r0"), d("r1")}, f.warnings, f.err
}

var (
	_ metadataapi.Source  = (*fakeAPIs)(nil)
	_ targetsapi.Source   = (*fakeAPIs)(nil)
	_ exemplarsapi.Source = (*fakeAPIs)(nil)
)

func apisFixture(t *testing.T) (*fixture, *fakeAPIs) {
	src := &fakeAPIs{warnings: []string{"endpoint x is unavailable"}}
	return newFixture(t, nil, func(c *Config) { c.Metadata, c.Targets, c.Exemplars = src, src, src }), src
}

func TestMetadataEndpoint(t *testing.T) {
	f, src := apisFixture(t)
	code, body := f.get(t, "/api/v1/metadata", nil)
	expect(t, code, body, http.StatusOK, `{"status":"success","data":{"up":[{"type":"gauge","help":"Up.","unit":""}],`+
		`"x_seconds":[{"type":"counter","help":"Time.","unit":"seconds"}]},"warnings":["endpoint x is unavailable"]}`)
	if src.metaReq.GetLimit() != -1 || src.metaReq.GetPartialResponseStrategy() != storepb.PartialResponseStrategy_WARN {
		t.Errorf("request %v: want no limit (-1) and WARN", src.metaReq)
	}
	code, body = f.get(t, "/api/v1/metadata", vals("metric", "x_seconds", "limit", "5", "partial_response", "false"))
	if code != http.StatusOK || strings.Contains(body, `"up"`) || !strings.Contains(body, `"x_seconds"`) {
		t.Errorf("metric: %d %s", code, body)
	}
	if src.metaReq.GetMetric() != "x_seconds" || src.metaReq.GetLimit() != 5 || src.metaReq.GetPartialResponseStrategy() != storepb.PartialResponseStrategy_ABORT {
		t.Errorf("request %v", src.metaReq)
	}
	code, body = f.get(t, "/api/v1/metadata", vals("limit", "1"))
	if code != http.StatusOK || strings.Count(body, `"type"`) != 1 {
		t.Errorf("limit=1: %d %s", code, body)
	}
	for _, bad := range []string{"limit=x", "limit_per_metric=1.5", "partial_response=x"} {
		if code, body := f.get(t, "/api/v1/metadata?"+bad, nil); code != http.StatusBadRequest || !strings.Contains(body, `"bad_data"`) {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

func TestTargetsEndpoint(t *testing.T) {
	f, src := apisFixture(t)
	code, body := f.get(t, "/api/v1/targets", nil)
	expect(t, code, body, http.StatusOK, `{"status":"success","data":{"activeTargets":[{`+
		`"discoveredLabels":{"__address__":"a:1","job":"j"},"labels":{"instance":"a:1","job":"j"},"scrapePool":"j",`+
		`"scrapeUrl":"http://a:1/metrics","globalUrl":"http://h:1/metrics","lastError":"","lastScrape":"2025-01-02T03:04:06Z",`+
		`"lastScrapeDuration":0.0125,"health":"up"}],"droppedTargets":[{"discoveredLabels":{"__address__":"b:1","job":"j"}}]},`+
		`"warnings":["endpoint x is unavailable"]}`)
	if src.tgtReq.GetState() != targetspb.TargetsRequest_ANY {
		t.Errorf("request %v", src.tgtReq)
	}
	code, body = f.get(t, "/api/v1/targets", vals("dedup", "false", "state", "active"))
	if code != http.StatusOK || strings.Count(body, `"scrapeUrl"`) != 2 || !strings.Contains(body, `"droppedTargets":[]`) ||
		src.tgtReq.GetState() != targetspb.TargetsRequest_ACTIVE {
		t.Errorf("dedup=false, state=active: %d %s", code, body)
	}
	code, body = f.get(t, "/api/v1/targets", vals("scrapePool", "other"))
	expect(t, code, body, http.StatusOK, `{"status":"success","data":{"activeTargets":[],"droppedTargets":[]},"warnings":["endpoint x is unavailable"]}`)
	if code, body := f.get(t, "/api/v1/targets", vals("state", "sleeping")); code != http.StatusBadRequest || !strings.Contains(body, `"bad_data"`) {
		t.Errorf("bad state: %d %s", code, body)
	}
}

func TestExemplarsEndpoint(t *testing.T) {
	f, src := apisFixture(t)
	code, body := f.get(t, "/api/v1/query_exemplars", vals("query", `rate(x_total[5m])`, "start", "1735787045", "end", "1735787046.5"))
	expect(t, code, body, http.StatusOK, `{"status":"success","data":[{"seriesLabels":{"__name__":"x_total","job":"j"},`+
		`"exemplars":[{"labels":{"trace_id":"t1"},"value":"0.25","timestamp":1735787045.500}]}],"warnings":["endpoint x is unavailable"]}`)
	if src.exReq.GetQuery() != `rate(x_total[5m])` || src.exReq.GetStart() != 1735787045000 || src.exReq.GetEnd() != 1735787046500 {
		t.Errorf("request %v: the query text is forwarded as is", src.exReq)
	}
	code, body = f.get(t, "/api/v1/query_exemplars", vals("query", "x_total", "dedup", "false"))
	if code != http.StatusOK || strings.Count(body, `"seriesLabels"`) != 2 || src.exReq.GetStart() != minTime.UnixMilli() {
		t.Errorf("dedup=false: %d %s (start %d)", code, body, src.exReq.GetStart())
	}
	code, body = f.get(t, "/api/v1/query_exemplars", vals("query", "vector(1)"))
	expect(t, code, body, http.StatusOK, `{"status":"success","data":[]}`)
	for _, bad := range [][]string{{"query", "rate("}, {"query", ""}, {"start", "x"}, {"end", "1", "start", "2"}} {
		params := vals(bad...)
		if !params.Has("query") {
			params.Set("query", "x")
		}
		if code, body := f.get(t, "/api/v1/query_exemplars", params); code != http.StatusBadRequest || !strings.Contains(body, `"bad_data"`) {
			t.Errorf("%v: %d %s", bad, code, body)
		}
	}
}

func TestThanosAPIEndpointsErrors(t *testing.T) {
	src := &fakeAPIs{err: errors.New("fetch targets from a:1: boom")}
	f := newFixture(t, nil, func(c *Config) { c.Metadata, c.Targets, c.Exemplars = src, src, src })
	code, body := f.get(t, "/api/v1/targets", vals("partial_response", "false"))
	expect(t, code, body, http.StatusInternalServerError,
		`{"status":"error","errorType":"internal","error":"error retrieving targets: fetch targets from a:1: boom"}`)

	none := newFixture(t, nil, nil)
	for path, want := range map[string]string{
		"/api/v1/metadata":                `{"status":"success","data":{}}`,
		"/api/v1/targets":                 `{"status":"success","data":{"activeTargets":[],"droppedTargets":[]}}`,
		"/api/v1/query_exemplars?query=x": `{"status":"success","data":[]}`,
	} {
		code, body := none.get(t, path, nil)
		expect(t, code, body, http.StatusOK, want)
	}
}

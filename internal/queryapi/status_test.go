package queryapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// fakeStatus answers thanos.Status as two HA replicas of one Prometheus and a second
// Prometheus would, and records the request.
type fakeStatus struct {
	mu  sync.Mutex
	req *statuspb.TSDBStatisticsRequest
	err error
}

func (f *fakeStatus) TSDBStatistics(_ context.Context, req *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.req = req
	st := func(replica string, cluster string, series uint64) *statuspb.TSDBStatistics {
		return &statuspb.TSDBStatistics{Statistics: map[string]*statuspb.TSDBStatisticsEntry{
			labels.FromStrings("cluster", cluster, "replica", replica).String(): {
				HeadStatistics:          &statuspb.HeadStatistics{NumSeries: series, NumLabelPairs: 4, ChunkCount: int64(series), MinTime: 1000, MaxTime: 2000},
				SeriesCountByMetricName: []*statuspb.Statistic{{Name: "up", Value: series}},
			}}}
	}
	return []*statuspb.TSDBStatistics{st("r0", "a", 10), st("r1", "a", 12), st("r0", "b", 5)}, []string{"endpoint x is unavailable"}, f.err
}

func TestTSDBStatusEndpoint(t *testing.T) {
	src := &fakeStatus{}
	f := newFixture(t, nil, func(c *Config) { c.Status = src; c.ReplicaLabels = []string{"replica"} })
	code, body := f.get(t, "/api/v1/status/tsdb", nil)
	expect(t, code, body, http.StatusOK, `{"status":"success","data":{"headStats":{"numSeries":17,"numLabelPairs":8,"chunkCount":17,`+
		`"minTime":1000,"maxTime":2000},"seriesCountByMetricName":[{"name":"up","value":17}],"labelValueCountByLabelName":[],`+
		`"memoryInBytesByLabelName":[],"seriesCountByLabelValuePair":[]},"warnings":["endpoint x is unavailable"]}`)
	if src.req.GetLimit() != 10 || src.req.GetPartialResponseStrategy() != storepb.PartialResponseStrategy_WARN {
		t.Errorf("request %v: want limit 10 and WARN", src.req)
	}
	code, body = f.get(t, "/api/v1/status/tsdb", vals("dedup", "false", "limit", "3", "partial_response", "false"))
	if code != http.StatusOK || !strings.Contains(body, `"numSeries":27,`) || !strings.Contains(body, `{"name":"up","value":27}`) {
		t.Errorf("dedup=false: %d %s", code, body)
	}
	if src.req.GetLimit() != 3 || src.req.GetPartialResponseStrategy() != storepb.PartialResponseStrategy_ABORT {
		t.Errorf("request %v", src.req)
	}
	for _, bad := range []string{"limit=x", "limit=0", "limit=10001", "dedup=x", "partial_response=x"} {
		if code, body := f.get(t, "/api/v1/status/tsdb?"+bad, nil); code != http.StatusBadRequest || !strings.Contains(body, `"bad_data"`) {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}

	src.err = errors.New("fetch TSDB statistics from a:1: boom")
	code, body = f.get(t, "/api/v1/status/tsdb", vals("partial_response", "false"))
	expect(t, code, body, http.StatusInternalServerError,
		`{"status":"error","errorType":"internal","error":"error retrieving TSDB statistics: fetch TSDB statistics from a:1: boom"}`)

	none := newFixture(t, nil, nil)
	code, body = none.get(t, "/api/v1/status/tsdb", nil)
	expect(t, code, body, http.StatusOK, `{"status":"success","data":{"headStats":{"numSeries":0,"numLabelPairs":0,"chunkCount":0,`+
		`"minTime":9223372036854775807,"maxTime":-9223372036854775808},"seriesCountByMetricName":[],"labelValueCountByLabelName":[],`+
		`"memoryInBytesByLabelName":[],"seriesCountByLabelValuePair":[]}}`)
}

package statusapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
)

func entry(series uint64, minT, maxT int64, byMetric ...*statuspb.Statistic) *statuspb.TSDBStatisticsEntry {
	return &statuspb.TSDBStatisticsEntry{
		HeadStatistics:          &statuspb.HeadStatistics{NumSeries: series, NumLabelPairs: int64(series) * 2, ChunkCount: int64(series) * 3, MinTime: minT, MaxTime: maxT},
		SeriesCountByMetricName: byMetric,
	}
}

func stat(name string, v uint64) *statuspb.Statistic {
	return &statuspb.Statistic{Name: name, Value: v}
}

func stats(key labels.Labels, e *statuspb.TSDBStatisticsEntry) *statuspb.TSDBStatistics {
	return &statuspb.TSDBStatistics{Statistics: map[string]*statuspb.TSDBStatisticsEntry{key.String(): e}}
}

func TestMerge(t *testing.T) {
	in := []*statuspb.TSDBStatistics{
		stats(labels.FromStrings("cluster", "a", "replica", "0"), entry(100, 1000, 5000, stat("up", 10), stat("x", 90))),
		stats(labels.FromStrings("cluster", "a", "replica", "1"), entry(110, 2000, 6000, stat("up", 10), stat("x", 95), stat("y", 5))),
		{Statistics: map[string]*statuspb.TSDBStatisticsEntry{
			labels.FromStrings("cluster", "b", "replica", "0").String(): entry(50, 500, 4000, stat("up", 20), stat("y", 30)),
			"tenant-1": entry(1, math.MaxInt64, math.MinInt64), // an empty head
		}},
	}
	before := proto.Clone(in[0])

	got := Merge(in, []string{"replica"}, 0)
	h := got.GetHeadStatistics()
	if h.GetNumSeries() != 161 || h.GetNumLabelPairs() != 322 || h.GetChunkCount() != 483 || h.GetMinTime() != 500 || h.GetMaxTime() != 6000 {
		t.Fatalf("dedup head %v", h)
	}
	want := []*statuspb.Statistic{stat("x", 95), stat("y", 35), stat("up", 30)}
	if !statsEqual(got.GetSeriesCountByMetricName(), want) {
		t.Fatalf("dedup by metric %v, want %v", got.GetSeriesCountByMetricName(), want)
	}

	got = Merge(in, nil, 2)
	if h := got.GetHeadStatistics(); h.GetNumSeries() != 261 || h.GetMinTime() != 500 {
		t.Fatalf("no dedup head %v", h)
	}
	want = []*statuspb.Statistic{stat("x", 185), stat("up", 40)}
	if !statsEqual(got.GetSeriesCountByMetricName(), want) {
		t.Fatalf("no dedup by metric %v, want %v", got.GetSeriesCountByMetricName(), want)
	}
	if !proto.Equal(before, in[0]) {
		t.Fatal("input modified")
	}

	// Equal keys from two endpoints (one TSDB reached twice) count once with dedup.
	twice := []*statuspb.TSDBStatistics{stats(labels.FromStrings("r", "x"), entry(7, 0, 1)), stats(labels.FromStrings("r", "x"), entry(7, 0, 1))}
	if n := Merge(twice, []string{"replica"}, 0).GetHeadStatistics().GetNumSeries(); n != 7 {
		t.Fatalf("same TSDB twice: %d", n)
	}
	if n := Merge(twice, nil, 0).GetHeadStatistics().GetNumSeries(); n != 14 {
		t.Fatalf("same TSDB twice without dedup: %d", n)
	}
	// Ties: by name.
	tie := Merge([]*statuspb.TSDBStatistics{stats(labels.EmptyLabels(), entry(1, 0, 1, stat("b", 1), stat("a", 1)))}, nil, 0)
	if !statsEqual(tie.GetSeriesCountByMetricName(), []*statuspb.Statistic{stat("a", 1), stat("b", 1)}) {
		t.Fatalf("ties %v", tie.GetSeriesCountByMetricName())
	}
}

func statsEqual(a, b []*statuspb.Statistic) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestJSON(t *testing.T) {
	const body = `{"headStats":{"numSeries":7,"numLabelPairs":20,"chunkCount":9,"minTime":1000,"maxTime":2000},` +
		`"seriesCountByMetricName":[{"name":"up","value":3}],"labelValueCountByLabelName":[],` +
		`"memoryInBytesByLabelName":[{"name":"job","value":40}],"seriesCountByLabelValuePair":[{"name":"job=j","value":7}]}`
	var s Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(JSON(FromJSON(&s)))
	if err != nil || string(b) != body {
		t.Fatalf("round trip:\n%s\nwant\n%s (%v)", b, body, err)
	}
}

func TestServer(t *testing.T) {
	src := SourceFunc(func(_ context.Context, req *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error) {
		if req.GetLimit() < 0 {
			return nil, nil, errors.New("prometheus down")
		}
		return []*statuspb.TSDBStatistics{stats(labels.FromStrings("a", "b"), entry(3, 0, 1))}, []string{"w"}, nil
	})
	srv := NewServer(src)
	call := func(req *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error) {
		return Frames.Local(context.Background(), func(s grpc.ServerStreamingServer[statuspb.TSDBStatisticsResponse]) error {
			return srv.TSDBStatistics(req, s)
		})
	}
	items, warnings, err := call(&statuspb.TSDBStatisticsRequest{})
	if err != nil || len(items) != 1 || len(warnings) != 1 || warnings[0] != "w" {
		t.Fatalf("%v %v %v", items, warnings, err)
	}
	if _, _, err := call(&statuspb.TSDBStatisticsRequest{Limit: -1}); err == nil {
		t.Fatal("want the source's error")
	}
	if Limit(&statuspb.TSDBStatisticsRequest{}) != DefaultLimit || Limit(&statuspb.TSDBStatisticsRequest{Limit: 3}) != 3 {
		t.Fatal("Limit")
	}
}

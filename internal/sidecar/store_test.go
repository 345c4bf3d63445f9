package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

var testExt = labels.FromStrings("cluster", "eu", "replica", "0")

// upSeries returns n stored "up" series with distinct instance labels, 250 samples each.
func upSeries(n int) []fakeSeries {
	out := make([]fakeSeries, n)
	for i := range out {
		out[i] = genSeries(250, "__name__", "up", "instance", fmt.Sprintf("host-%03d:9100", i), "job", "node")
	}
	return out
}

func allTime(ms ...*storepb.LabelMatcher) *storepb.SeriesRequest {
	return &storepb.SeriesRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: ms}
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("error %v (code %v), want code %v", err, status.Code(err), code)
	}
}

func TestInfoUnavailableBeforeRefresh(t *testing.T) {
	fp := newFakeProm(t, testExt, upSeries(1)...)
	fp.lowest = "123456"
	env := startStore(t, fp, Limits{}, false)
	ctx := context.Background()

	_, err := env.info.Info(ctx, &infopb.InfoRequest{})
	wantCode(t, err, codes.Unavailable)
	_, err = env.raw.Info(ctx, &storepb.InfoRequest{})
	wantCode(t, err, codes.Unavailable)
	_, err = env.series(t, allTime(eq("__name__", "up")))
	wantCode(t, err, codes.Unavailable)
	if n := len(fp.readRequests()); n != 0 {
		t.Fatalf("%d remote reads before the first refresh", n)
	}

	if err := env.prom.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	in, err := env.info.Info(ctx, &infopb.InfoRequest{})
	if err != nil {
		t.Fatalf("Info after Refresh: %v", err)
	}
	if in.GetComponentType() != "sidecar" || len(in.GetLabelSets()) != 1 {
		t.Fatalf("Info %v", in)
	}
	if got := storeapi.LabelsFromProto(in.GetLabelSets()[0].GetLabels()); !labels.Equal(got, testExt) {
		t.Errorf("label set %s, want %s", got, testExt)
	}
	st := in.GetStore()
	if st.GetMinTime() != 123456 || st.GetMaxTime() != math.MaxInt64 || !st.GetSupportsSharding() || !st.GetSupportsWithoutReplicaLabels() {
		t.Errorf("StoreInfo %v", st)
	}
	legacy, err := env.raw.Info(ctx, &storepb.InfoRequest{})
	if err != nil {
		t.Fatalf("legacy Store.Info: %v", err)
	}
	if legacy.GetStoreType() != storepb.StoreType_SIDECAR || legacy.GetMinTime() != 123456 || len(legacy.GetLabels()) != 2 {
		t.Errorf("legacy Info %v", legacy)
	}

	// Prometheus becomes unreachable: Info fails again.
	fp.srv.Close()
	if err := env.prom.Refresh(ctx); err == nil {
		t.Fatal("Refresh succeeded against a stopped Prometheus")
	}
	_, err = env.info.Info(ctx, &infopb.InfoRequest{})
	wantCode(t, err, codes.Unavailable)
}

func TestInfoEmptyTSDBAndNoExternalLabels(t *testing.T) {
	fp := newFakeProm(t, testExt)
	fp.lowest = "9.223372036854776e+18" // empty TSDB
	env := startStore(t, fp, Limits{}, true)
	in, err := env.info.Info(context.Background(), &infopb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if in.GetStore().GetMinTime() != math.MinInt64 {
		t.Errorf("empty TSDB: min time %d, want MinInt64", in.GetStore().GetMinTime())
	}

	noExt := newFakeProm(t, labels.EmptyLabels())
	prom := NewPrometheus(noExt.client(), slog.New(slog.DiscardHandler), 0, nil)
	if err := prom.Refresh(context.Background()); !errors.Is(err, ErrNoExternalLabels) {
		t.Fatalf("Refresh without external labels: %v, want ErrNoExternalLabels", err)
	}
	if _, err := NewStore(prom, noExt.client(), Limits{}).Info(context.Background(), nil); status.Code(err) != codes.Unavailable {
		t.Fatalf("Info without external labels: %v, want Unavailable", err)
	}
}

func TestSeriesOnlyExternalMatchers(t *testing.T) {
	env := startStore(t, newFakeProm(t, testExt, upSeries(3)...), Limits{}, true)
	for _, req := range []*storepb.SeriesRequest{
		allTime(eq("cluster", "eu")),
		allTime(eq("cluster", "eu"), re("replica", "0|1")),
		allTime(),
	} {
		_, err := env.series(t, req)
		wantCode(t, err, codes.InvalidArgument)
		if !strings.Contains(err.Error(), "no matchers specified (excluding external labels)") {
			t.Errorf("message %q", err)
		}
	}
}

func TestSeriesNonMatchingExternalMatcher(t *testing.T) {
	fp := newFakeProm(t, testExt, upSeries(3)...)
	env := startStore(t, fp, Limits{}, true)
	for _, m := range []*storepb.LabelMatcher{eq("cluster", "us"), re("replica", "1|2"), {Type: storepb.LabelMatcher_NEQ, Name: "cluster", Value: "eu"}} {
		got, err := env.series(t, allTime(eq("__name__", "up"), m))
		if err != nil || len(got) != 0 {
			t.Fatalf("matcher %v: %d series, err %v; want none and no error", m, len(got), err)
		}
	}
	if n := len(fp.readRequests()); n != 0 {
		t.Errorf("pruned requests still issued %d remote reads", n)
	}
	// The matching ext matcher is removed from the remote-read query.
	got, err := env.series(t, allTime(eq("__name__", "up"), eq("cluster", "eu")))
	if err != nil || len(got) != 3 {
		t.Fatalf("matching ext matcher: %d series, %v", len(got), err)
	}
	reqs := fp.readRequests()
	if len(reqs) != 1 || len(reqs[0].Queries[0].Matchers) != 1 || reqs[0].Queries[0].Matchers[0].Name != "__name__" {
		t.Errorf("remote-read matchers %v, want only __name__", reqs[len(reqs)-1].Queries[0].Matchers)
	}
}

func TestSeriesInvalidMatchers(t *testing.T) {
	env := startStore(t, newFakeProm(t, testExt, upSeries(1)...), Limits{}, true)
	_, err := env.series(t, allTime(re("job", "(unclosed")))
	wantCode(t, err, codes.InvalidArgument)
	_, err = env.series(t, allTime(&storepb.LabelMatcher{Type: 7, Name: "job", Value: "x"}))
	wantCode(t, err, codes.InvalidArgument)
}

// TestSeriesContent checks the answer end to end: sorted, external labels applied, chunks
// carrying the stored samples in StoreAPI encoding with hashes.
func TestSeriesContent(t *testing.T) {
	stored := []fakeSeries{
		genSeries(250, "__name__", "up", "job", "a"),
		genSeries(10, "__name__", "up", "job", "a", "cluster", "own-value"), // series label clashing with ext
		genSeries(130, "__name__", "up", "job", "b", "replica", "x"),
		genSeries(5, "__name__", "down", "job", "a"),
	}
	fp := newFakeProm(t, testExt, stored...)
	env := startStore(t, fp, Limits{}, true)
	got, err := env.series(t, allTime(re("__name__", "up|down")))
	if err != nil {
		t.Fatalf("Series: %v", err)
	}
	want := []string{
		`{__name__="down", cluster="eu", job="a", replica="0"}`,
		`{__name__="up", cluster="eu", job="a", replica="0"}`,
		`{__name__="up", cluster="eu", job="a", replica="0"}`, // the clashing series, now identical labels
		`{__name__="up", cluster="eu", job="b", replica="0"}`,
	}
	if !slices.Equal(labelStrings(got), want) {
		t.Fatalf("series\n %v\nwant\n %v", labelStrings(got), want)
	}
	var total int
	for _, s := range got {
		for _, c := range s.Chunks {
			if c.Raw.GetType() != storepb.Chunk_XOR || c.Raw.GetHash() != xxhash.Sum64(c.Raw.GetData()) {
				t.Errorf("chunk type %v hash %x", c.Raw.GetType(), c.Raw.GetHash())
			}
		}
		smps, err := storeapi.FloatSamples(s, math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		total += len(smps)
	}
	if total != 250+10+130+5 {
		t.Errorf("%d samples in total, want %d", total, 250+10+130+5)
	}

	// skip_chunks: labels only.
	req := allTime(eq("__name__", "up"), eq("job", "b"))
	req.SkipChunks = true
	got, err = env.series(t, req)
	if err != nil || len(got) != 1 || len(got[0].Chunks) != 0 {
		t.Fatalf("skip_chunks: %d series, %v", len(got), err)
	}

	// Time range is passed to Prometheus and respected.
	got, err = env.series(t, &storepb.SeriesRequest{MinTime: 15000 * 100, MaxTime: 15000*100 + 1, Matchers: []*storepb.LabelMatcher{eq("job", "b")}})
	if err != nil || len(got) != 1 {
		t.Fatalf("time range: %d series, %v", len(got), err)
	}
	if smps, _ := storeapi.FloatSamples(got[0], math.MinInt64, math.MaxInt64); len(smps) != 1 || smps[0].T != 1500000 {
		t.Errorf("time range: samples %v, want only t=1500000", smps)
	}
}

func TestSeriesWithoutReplicaLabels(t *testing.T) {
	stored := []fakeSeries{
		genSeries(3, "__name__", "up", "job", "a"),
		genSeries(3, "__name__", "up", "job", "b", "rule_replica", "r1"), // not an external label: data
	}
	env := startStore(t, newFakeProm(t, testExt, stored...), Limits{}, true)
	req := allTime(eq("__name__", "up"))
	req.WithoutReplicaLabels = []string{"replica", "rule_replica"}
	got, err := env.series(t, req)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{__name__="up", cluster="eu", job="a"}`, `{__name__="up", cluster="eu", job="b", rule_replica="r1"}`}
	if !slices.Equal(labelStrings(got), want) {
		t.Fatalf("got %v, want %v", labelStrings(got), want)
	}
}

// TestSeriesResorted: stored order differs from final order once ext labels are added.
func TestSeriesResorted(t *testing.T) {
	ext := labels.FromStrings("c", "e")
	stored := []fakeSeries{
		genSeries(2, "a", "1"),
		genSeries(2, "a", "1", "b", "x"),
		genSeries(2, "a", "1", "b", "x", "bb", "y"),
		genSeries(2, "a", "2"),
	}
	env := startStore(t, newFakeProm(t, ext, stored...), Limits{}, true)
	got, err := env.series(t, allTime(re("a", ".+")))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{a="1", b="x", bb="y", c="e"}`, `{a="1", b="x", c="e"}`, `{a="1", c="e"}`, `{a="2", c="e"}`}
	if !slices.Equal(labelStrings(got), want) {
		t.Fatalf("got %v, want %v", labelStrings(got), want)
	}
}

// TestSeriesClashingLabelOrder is the resort bug through the whole gRPC path.
func TestSeriesClashingLabelOrder(t *testing.T) {
	ext := labels.FromStrings("b", "e")
	stored := []fakeSeries{
		genSeries(2, "a", "1", "b", "1", "c", "1"),
		genSeries(2, "a", "1", "b", "2", "c", "3"),
		genSeries(2, "a", "1", "b", "3"),
	}
	env := startStore(t, newFakeProm(t, ext, stored...), Limits{}, true)
	got, err := env.series(t, allTime(eq("a", "1")))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{a="1", b="e"}`, `{a="1", b="e", c="1"}`, `{a="1", b="e", c="3"}`}
	if !slices.Equal(labelStrings(got), want) {
		t.Fatalf("got %v, want %v (sorted by final labels)", labelStrings(got), want)
	}
}

func TestSeriesRequestLimitStopsAfterN(t *testing.T) {
	env := startStore(t, newFakeProm(t, testExt, upSeries(3)...), Limits{}, true)
	req := allTime(eq("__name__", "up"))
	req.Limit = 2
	got, err := env.series(t, req)
	if err != nil {
		t.Fatalf("limit 2 of 3 series: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("limit 2 of 3 series: %d series", len(got))
	}
	req.Limit = 3
	if got, err := env.series(t, req); err != nil || len(got) != 3 {
		t.Fatalf("limit 3 of 3 series: %d series, %v", len(got), err)
	}
}

// TestSeriesRequestLimitManySeries: more series than limit+1, so the limit is reached
// while the Resorter still receives series.
func TestSeriesRequestLimitManySeries(t *testing.T) {
	env := startStore(t, newFakeProm(t, testExt, upSeries(5)...), Limits{}, true)
	req := allTime(eq("__name__", "up"))
	req.Limit = 2
	got, err := env.series(t, req)
	if err != nil {
		t.Fatalf("limit 2 of 5 series: %v", err)
	}
	want := labelStrings(got)
	if len(got) != 2 || !strings.Contains(want[0], "host-000") || !strings.Contains(want[1], "host-001") {
		t.Fatalf("limit 2 of 5 series: %v, want the first two", want)
	}
}

func TestSeriesLimits(t *testing.T) {
	fp := newFakeProm(t, testExt, upSeries(5)...)
	_, err := startStore(t, fp, Limits{Series: 3}, true).series(t, allTime(eq("__name__", "up")))
	wantCode(t, err, codes.ResourceExhausted)
	if !strings.Contains(err.Error(), "series limit") {
		t.Errorf("message %q", err)
	}
	if got, err := startStore(t, fp, Limits{Series: 5}, true).series(t, allTime(eq("__name__", "up"))); err != nil || len(got) != 5 {
		t.Fatalf("exactly at the series limit: %d series, %v", len(got), err)
	}
	// 5 series × 250 samples; sample counts come from the XOR chunk headers.
	_, err = startStore(t, fp, Limits{Samples: 1249}, true).series(t, allTime(eq("__name__", "up")))
	wantCode(t, err, codes.ResourceExhausted)
	if got, err := startStore(t, fp, Limits{Samples: 1250}, true).series(t, allTime(eq("__name__", "up"))); err != nil || len(got) != 5 {
		t.Fatalf("exactly at the sample limit: %d series, %v", len(got), err)
	}
}

func TestSeriesBatchFrames(t *testing.T) {
	env := startStore(t, newFakeProm(t, testExt, upSeries(7)...), Limits{}, true)
	for _, tc := range []struct {
		batch int64
		shape []int // series per frame, 0 = single-series frame
	}{
		{0, []int{0, 0, 0, 0, 0, 0, 0}},
		{1, []int{0, 0, 0, 0, 0, 0, 0}},
		{3, []int{3, 3, 1}},
		{7, []int{7}},
		{1000, []int{7}},
	} {
		req := allTime(eq("__name__", "up"))
		req.ResponseBatchSize = tc.batch
		st, err := env.raw.Series(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		var shape []int
		var names []string
		for {
			resp, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("batch %d: %v", tc.batch, err)
			}
			switch {
			case resp.GetSeries() != nil:
				shape = append(shape, 0)
				names = append(names, storeapi.LabelsFromProto(resp.GetSeries().Labels).Get("instance"))
			case resp.GetBatch() != nil:
				shape = append(shape, len(resp.GetBatch().GetSeries()))
				for _, s := range resp.GetBatch().GetSeries() {
					names = append(names, storeapi.LabelsFromProto(s.Labels).Get("instance"))
				}
			default:
				t.Fatalf("unexpected frame %v", resp)
			}
		}
		if !slices.Equal(shape, tc.shape) {
			t.Errorf("response_batch_size %d: frames %v, want %v", tc.batch, shape, tc.shape)
		}
		if !slices.IsSorted(names) || len(names) != 7 {
			t.Errorf("response_batch_size %d: series %v", tc.batch, names)
		}
	}
}

func TestSeriesSharding(t *testing.T) {
	var stored []fakeSeries
	for i := range 60 {
		stored = append(stored, genSeries(3, "__name__", "up", "instance", fmt.Sprintf("i%d", i), "job", fmt.Sprintf("j%d", i%4)))
	}
	env := startStore(t, newFakeProm(t, testExt, stored...), Limits{}, true)
	all, err := env.series(t, allTime(eq("__name__", "up")))
	if err != nil || len(all) != 60 {
		t.Fatalf("unsharded: %d series, %v", len(all), err)
	}
	for _, si := range []struct {
		by     bool
		labels []string
	}{{false, nil}, {true, []string{"job"}}, {false, []string{"instance"}}, {true, []string{"cluster"}}} {
		const total = 2
		var union []string
		sizes := make([]int, total)
		for idx := range total {
			req := allTime(eq("__name__", "up"))
			req.ShardInfo = &storepb.ShardInfo{ShardIndex: int64(idx), TotalShards: total, By: si.by, Labels: si.labels}
			got, err := env.series(t, req)
			if err != nil {
				t.Fatal(err)
			}
			sizes[idx] = len(got)
			for _, s := range got {
				// Membership is computed on the final labels, external labels included.
				var buf []byte
				for _, l := range s.Labels {
					if slices.Contains(si.labels, l.Name) == si.by {
						buf = append(append(append(append(buf, l.Name...), 0xff), l.Value...), 0xff)
					}
				}
				if xxhash.Sum64(buf)%total != uint64(idx) {
					t.Errorf("shard %d (by=%v %v) returned %v, which hashes elsewhere", idx, si.by, si.labels, labelStrings([]*storepb.Series{s}))
				}
			}
			union = append(union, labelStrings(got)...)
		}
		slices.Sort(union)
		if !slices.Equal(union, labelStrings(all)) {
			t.Errorf("by=%v %v: shards %v do not partition the %d series", si.by, si.labels, sizes, len(all))
		}
		switch {
		case si.by && slices.Equal(si.labels, []string{"cluster"}):
			if sizes[0] != 60 && sizes[1] != 60 {
				t.Errorf("sharding by the external label only must keep all series together, got %v", sizes)
			}
		case !si.by && si.labels == nil:
			// 60 distinct label sets: both shards must get some.
			if sizes[0] == 0 || sizes[1] == 0 {
				t.Errorf("sharding by all labels: degenerate split %v", sizes)
			}
		}
	}
}

func TestSeriesMinTimeClamped(t *testing.T) {
	fp := newFakeProm(t, testExt, upSeries(1)...)
	fp.lowest = "30000"
	env := startStore(t, fp, Limits{}, true)
	if _, err := env.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: 60000, Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}}); err != nil {
		t.Fatal(err)
	}
	reqs := fp.readRequests()
	if len(reqs) != 1 || reqs[0].Queries[0].StartTimestampMs != 30000 || reqs[0].Queries[0].EndTimestampMs != 60000 {
		t.Fatalf("remote-read range %v, want [30000, 60000]", reqs[0].Queries[0])
	}
	// A request entirely before the oldest sample needs no remote read.
	got, err := env.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: 29999, Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}})
	if err != nil || len(got) != 0 || len(fp.readRequests()) != 1 {
		t.Fatalf("request before min time: %d series, %v, %d remote reads", len(got), err, len(fp.readRequests()))
	}
}

func TestSeriesQueryHintsPassedThrough(t *testing.T) {
	fp := newFakeProm(t, testExt, upSeries(1)...)
	env := startStore(t, fp, Limits{}, true)
	req := allTime(eq("__name__", "up"))
	req.QueryHints = &storepb.QueryHints{StepMillis: 30000, Func: &storepb.Func{Name: "rate"}, Range: &storepb.Range{Millis: 300000},
		Grouping: &storepb.Grouping{By: true, Labels: []string{"job"}}}
	if _, err := env.series(t, req); err != nil {
		t.Fatal(err)
	}
	h := fp.readRequests()[0].Queries[0].Hints
	if h == nil || h.StepMs != 30000 || h.Func != "rate" || h.RangeMs != 300000 || !h.By || !slices.Equal(h.Grouping, []string{"job"}) {
		t.Fatalf("hints %v", h)
	}
}

func TestSeriesSplitFramesAndSampledFallback(t *testing.T) {
	stored := []fakeSeries{genSeries(500, "__name__", "up", "job", "a"), genSeries(130, "__name__", "up", "job", "b")}
	for _, mode := range []string{"split", "sampled"} {
		fp := newFakeProm(t, testExt, stored...)
		if mode == "split" {
			fp.chunksFrame = 1
		} else {
			fp.sampled = true
		}
		got, err := startStore(t, fp, Limits{}, true).series(t, allTime(eq("__name__", "up")))
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if len(got) != 2 || len(got[0].Chunks) != 5 || len(got[1].Chunks) != 2 {
			t.Fatalf("%s: %d series with chunk counts %d/%d, want 2 series of 5 and 2 chunks", mode, len(got), len(got[0].Chunks), len(got[1].Chunks))
		}
		smps, err := storeapi.FloatSamples(got[0], math.MinInt64, math.MaxInt64)
		if err != nil || len(smps) != 500 || smps[499].T != 499*15000 {
			t.Fatalf("%s: %d samples, %v", mode, len(smps), err)
		}
	}
}

func TestSeriesRemoteReadFailure(t *testing.T) {
	fp := newFakeProm(t, testExt, upSeries(1)...)
	fp.readStatus = 503
	_, err := startStore(t, fp, Limits{}, true).series(t, allTime(eq("__name__", "up")))
	wantCode(t, err, codes.Unavailable)
	if !strings.Contains(err.Error(), "remote read failed on purpose") {
		t.Errorf("error %q should carry Prometheus' message", err)
	}
}

// TestSeriesLimitCountsReturnedSeries: --store.limits.request-series is documented as the
// maximum number of series one Series request may return. A sharded request returning
// fewer series than the limit must not fail because of series that belong to other shards.
func TestSeriesLimitCountsReturnedSeries(t *testing.T) {
	// Pick 6 series that the 2-shard split divides 3/3 on their final labels.
	var stored []fakeSeries
	count := [2]int{}
	for i := 0; len(stored) < 6; i++ {
		s := genSeries(3, "__name__", "up", "instance", fmt.Sprintf("i%d", i))
		final := labels.NewBuilder(s.lset)
		testExt.Range(func(l labels.Label) { final.Set(l.Name, l.Value) })
		shard := 0
		if storeapi.NewShardMatcher(&storepb.ShardInfo{ShardIndex: 1, TotalShards: 2}).Matches(storeapi.LabelsToProto(final.Labels())) {
			shard = 1
		}
		if count[shard] < 3 {
			count[shard]++
			stored = append(stored, s)
		}
	}
	env := startStore(t, newFakeProm(t, testExt, stored...), Limits{Series: 3}, true)
	for idx := range 2 {
		req := allTime(eq("__name__", "up"))
		req.ShardInfo = &storepb.ShardInfo{ShardIndex: int64(idx), TotalShards: 2}
		got, err := env.series(t, req)
		if err != nil || len(got) != 3 {
			t.Errorf("shard %d with limit 3: %d series, %v; want 3 series", idx, len(got), err)
		}
	}
}

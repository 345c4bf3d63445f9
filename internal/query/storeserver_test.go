package query

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func TestStoreServerInfo(t *testing.T) {
	a := newFakeStore(labels.FromStrings("cluster", "c1", "replica", "r1"))
	a.minT, a.maxT = 1000, 5000
	b := newFakeStore(labels.FromStrings("cluster", "c1", "replica", "r0"))
	b.minT = 500
	c := newFakeStore(labels.FromStrings("cluster", "c1", "replica", "r0")) // same set as b
	c.minT, c.maxT = 2000, 3000
	set := newSet(t, serveFake(t, a), serveFake(t, b), serveFake(t, c), unreachable)
	info, err := NewStoreServer(NewProxy(set, 0, discard)).Info(context.Background(), &infopb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st := info.GetStore()
	if info.GetComponentType() != "query" || st.GetMinTime() != 500 || st.GetMaxTime() != math.MaxInt64 ||
		!st.GetSupportsWithoutReplicaLabels() || info.GetQuery() != nil { // no gRPC Query API is served
		t.Fatalf("info = %v", info)
	}
	var sets []labels.Labels
	for _, ls := range info.GetLabelSets() {
		sets = append(sets, storeapi.LabelsFromProto(ls.GetLabels()))
	}
	want := []labels.Labels{labels.FromStrings("cluster", "c1", "replica", "r0"), labels.FromStrings("cluster", "c1", "replica", "r1")}
	if !slices.EqualFunc(sets, want, labels.Equal) {
		t.Fatalf("label sets = %v, want %v", sets, want)
	}

	// No healthy endpoint: the widest range, no label sets.
	info, _ = NewStoreServer(NewProxy(newSet(t, unreachable), 0, discard)).Info(context.Background(), &infopb.InfoRequest{})
	if info.GetStore().GetMinTime() != math.MinInt64 || info.GetStore().GetMaxTime() != math.MaxInt64 || len(info.GetLabelSets()) != 0 {
		t.Fatalf("empty info = %v", info)
	}
}

// readSeries calls Series on a StoreAPI address and returns the series and warnings.
func readSeries(t *testing.T, addr string, req *storepb.SeriesRequest) ([]*storepb.Series, []string, error) {
	t.Helper()
	c, err := storeapi.Dial(addr, storeapi.DialOptions(nil, "")...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Series(context.Background(), req)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	var out []*storepb.Series
	for st.Next() {
		out = append(out, st.At())
	}
	return out, st.Warnings(), st.Err()
}

func TestStoreServerSeriesDropsDuplicateChunks(t *testing.T) {
	ext := labels.FromStrings("cluster", "c1")
	up := labels.FromStrings("__name__", "up")
	cs := chunked(t, genSamples(0, 1190, 10, tenth, nil), 40) // [0,390] [400,790] [800,1190]
	dup := &storepb.AggrChunk{MinTime: cs[1].MinTime, MaxTime: cs[1].MaxTime,
		Raw: &storepb.Chunk{Type: storepb.Chunk_XOR, Data: slices.Clone(cs[1].Raw.Data), Hash: cs[1].Raw.Hash}}
	other := xorChunk(t, genSamples(400, 790, 10, func(int64) float64 { return 5 }, nil)) // same range, other data
	a := newFakeStore(ext, fakeSeries{lset: up, chunks: []*storepb.AggrChunk{cs[0], cs[1]}},
		fakeSeries{lset: labels.FromStrings("__name__", "up", "only", "a"), chunks: cs[:1]})
	b := newFakeStore(ext, fakeSeries{lset: up, chunks: []*storepb.AggrChunk{dup, other, cs[2]}})
	b.warnings = []string{"from b"}
	set := newSet(t, serveFake(t, a), serveFake(t, b))
	ss := NewStoreServer(NewProxy(set, 0, discard))
	addr := serve(t, ss, ss)

	for _, batch := range []int64{0, 10} {
		req := seriesReq(eq("__name__", "up"))
		req.ResponseBatchSize = batch
		got, ws, err := readSeries(t, addr, req)
		if err != nil || !slices.Equal(ws, []string{"from b"}) || len(got) != 2 {
			t.Fatalf("batch %d: %d series, warnings %v, err %v", batch, len(got), ws, err)
		}
		if l := storeapi.LabelsFromProto(got[0].Labels); !labels.Equal(l, labels.FromStrings("__name__", "up", "cluster", "c1")) {
			t.Fatalf("first series %v", l)
		}
		want := []*storepb.AggrChunk{cs[0], cs[1], other, cs[2]}
		if g := got[0].Chunks; len(g) != len(want) {
			t.Fatalf("chunks %v, want %v", spans(g), spans(want))
		}
		for i, c := range got[0].Chunks {
			if c.MinTime != want[i].MinTime || c.Raw.GetHash() != want[i].Raw.GetHash() {
				t.Fatalf("chunk %d = [%d,%d] hash %x, want %v", i, c.MinTime, c.MaxTime, c.Raw.GetHash(), spans(want))
			}
		}
		if len(got[1].Chunks) != 1 {
			t.Fatalf("single-source series chunks = %v", spans(got[1].Chunks))
		}
	}

	if _, _, err := readSeries(t, addr, &storepb.SeriesRequest{MaxTime: math.MaxInt64}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no matchers: %v", err)
	}
}

func TestStoreServerStacking(t *testing.T) {
	_, _, addrs, direct := haPair(t, false)
	inner := NewStoreServer(NewProxy(newSet(t, addrs...), 0, discard))
	level1 := newSet(t, serve(t, inner, inner))
	eps, _ := level1.Healthy()
	if len(eps) != 1 || eps[0].ComponentType != "query" || len(eps[0].LabelSets) != 2 || !eps[0].WithoutReplicaLabels {
		t.Fatalf("querier endpoint = %+v", eps)
	}
	middle := NewStoreServer(NewProxy(level1, 0, discard))
	level2 := newSet(t, serve(t, middle, middle))
	for name, set := range map[string]*EndpointSet{"one level": level1, "two levels": level2} {
		stacked := NewQueryableFactory(NewProxy(set, 0, discard), dedup.GapFill)
		for _, opts := range []Options{dedupOn, {ReplicaLabels: []string{"replica"}}} {
			want := rangeQuery(t, direct, opts, `{job="node"}`, 0, hour, 60_000)
			got := rangeQuery(t, stacked, opts, `{job="node"}`, 0, hour, 60_000)
			if len(got) != len(want) || len(want) < 2 || got.String() != want.String() {
				t.Fatalf("%s, dedup %v: stacked\n%v\nwant\n%v", name, opts.Dedup, summary(got), summary(want))
			}
		}
		q, _ := stacked(dedupOn).Querier(0, hour)
		names, _, err := q.LabelNames(context.Background(), nil)
		if err != nil || !slices.Equal(names, []string{"__name__", "cluster", "job"}) {
			t.Fatalf("%s: label names %v, %v", name, names, err)
		}
		vals, _, err := q.LabelValues(context.Background(), "__name__", nil)
		if err != nil || !slices.Equal(vals, []string{"only_r1", "up"}) {
			t.Fatalf("%s: metric names %v, %v", name, vals, err)
		}
	}
}

// summary describes a matrix briefly: per series, labels, points, first and last point.
func summary(m promql.Matrix) string {
	var sb strings.Builder
	for _, s := range m {
		fmt.Fprintf(&sb, "%v: %d points", s.Metric, len(s.Floats))
		if n := len(s.Floats); n > 0 {
			fmt.Fprintf(&sb, " first %v last %v", s.Floats[0], s.Floats[n-1])
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

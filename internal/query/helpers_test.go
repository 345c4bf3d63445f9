package query

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

type sample struct {
	t int64
	v float64
}

// xorChunk encodes samples as one raw XOR chunk with its xxhash, as sidecars send it.
func xorChunk(tb testing.TB, ss []sample) *storepb.AggrChunk {
	tb.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range ss {
		app.Append(0, s.t, s.v)
	}
	data := slices.Clone(c.Bytes())
	return &storepb.AggrChunk{
		MinTime: ss[0].t, MaxTime: ss[len(ss)-1].t,
		Raw: &storepb.Chunk{Type: storepb.Chunk_XOR, Data: data, Hash: xxhash.Sum64(data)},
	}
}

// genSamples returns samples every step in [from, to], valued by f (skipping times where
// skip reports true).
func genSamples(from, to, step int64, f func(t int64) float64, skip func(t int64) bool) []sample {
	var out []sample
	for t := from; t <= to; t += step {
		if skip != nil && skip(t) {
			continue
		}
		out = append(out, sample{t, f(t)})
	}
	return out
}

// chunked cuts samples into XOR chunks of at most per samples.
func chunked(tb testing.TB, ss []sample, per int) []*storepb.AggrChunk {
	var out []*storepb.AggrChunk
	for len(ss) > 0 {
		n := min(per, len(ss))
		out = append(out, xorChunk(tb, ss[:n]))
		ss = ss[n:]
	}
	return out
}

// decodeAll reads every float sample of an iterator.
func decodeAll(tb testing.TB, it chunkenc.Iterator) []sample {
	tb.Helper()
	var out []sample
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		t, v := it.At()
		out = append(out, sample{t, v})
	}
	if err := it.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

type fakeSeries struct {
	lset   labels.Labels
	chunks []*storepb.AggrChunk
}

// fakeStore is a StoreAPI + Info server holding stored series (without external labels).
// It adds its external labels (they win), strips the requested replica labels when they
// are external labels (unless noWRL), sorts, and streams. Configure before serving.
type fakeStore struct {
	infopb.UnimplementedInfoServer
	ext        labels.Labels
	series     []fakeSeries
	minT, maxT int64
	component  string
	noStore    bool // Info without StoreInfo
	noWRL      bool // does not support without_replica_labels (ignores the field)
	infoFail   atomic.Bool

	frameDelay time.Duration // before each series
	err        error         // returned after errAfter series
	errAfter   int
	block      bool // after blockAfter series, wait until the client goes away
	blockAfter int
	warnings   []string
	split      bool // each chunk of a series in its own frame
	unsorted   bool // stream series in stored order, not sorted

	mu     sync.Mutex
	reqs   []*storepb.SeriesRequest
	lnReqs []*storepb.LabelNamesRequest
	lvReqs []*storepb.LabelValuesRequest
}

func newFakeStore(ext labels.Labels, series ...fakeSeries) *fakeStore {
	return &fakeStore{ext: ext, series: series, minT: math.MinInt64, maxT: math.MaxInt64, component: "sidecar"}
}

func (f *fakeStore) Info(context.Context, *infopb.InfoRequest) (*infopb.InfoResponse, error) {
	if f.infoFail.Load() {
		return nil, status.Error(codes.Unavailable, "not ready")
	}
	r := &infopb.InfoResponse{ComponentType: f.component}
	if !f.ext.IsEmpty() {
		r.LabelSets = []*storepb.LabelSet{{Labels: storeapi.LabelsToProto(f.ext)}}
	}
	if !f.noStore {
		r.Store = &infopb.StoreInfo{MinTime: f.minT, MaxTime: f.maxT, SupportsSharding: true, SupportsWithoutReplicaLabels: !f.noWRL}
	}
	return r, nil
}

// view returns the matching series with their final labels.
func (f *fakeStore) view(pms []*storepb.LabelMatcher, without []string) ([]fakeSeries, error) {
	ms, err := storeapi.MatchersFromProto(pms)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if f.noWRL {
		without = nil
	}
	kept, stripped := storeapi.StripSet(f.ext, without)
	var out []fakeSeries
	for _, s := range f.series {
		b := labels.NewBuilder(s.lset)
		f.ext.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
		full := b.Labels()
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(full.Get(m.Name)) }) {
			b = labels.NewBuilder(s.lset)
			kept.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
			for n := range stripped {
				b.Del(n)
			}
			out = append(out, fakeSeries{lset: b.Labels(), chunks: s.chunks})
		}
	}
	if !f.unsorted {
		slices.SortStableFunc(out, func(a, b fakeSeries) int { return labels.Compare(a.lset, b.lset) })
	}
	return out, nil
}

func (f *fakeStore) Series(req *storepb.SeriesRequest, srv storepb.Store_SeriesServer) error {
	f.mu.Lock()
	f.reqs = append(f.reqs, proto.Clone(req).(*storepb.SeriesRequest))
	f.mu.Unlock()
	out, err := f.view(req.GetMatchers(), req.GetWithoutReplicaLabels())
	if err != nil {
		return err
	}
	ctx := srv.Context()
	sender := storeapi.NewSeriesSender(srv, req.GetResponseBatchSize())
	for i := 0; ; i++ {
		if f.err != nil && i == f.errAfter {
			_ = sender.Flush()
			return f.err
		}
		if f.block && i == f.blockAfter {
			_ = sender.Flush()
			<-ctx.Done()
			return ctx.Err()
		}
		if i == len(out) {
			break
		}
		if f.frameDelay > 0 {
			select {
			case <-time.After(f.frameDelay):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		s, chks := out[i], out[i].chunks
		if req.GetSkipChunks() {
			chks = nil
		}
		frames := [][]*storepb.AggrChunk{chks}
		if f.split && len(chks) > 1 {
			frames = frames[:0]
			for _, c := range chks {
				frames = append(frames, []*storepb.AggrChunk{c})
			}
		}
		for _, fc := range frames {
			if err := sender.Send(&storepb.Series{Labels: storeapi.LabelsToProto(s.lset), Chunks: fc}); err != nil {
				return err
			}
		}
	}
	if err := sender.Flush(); err != nil {
		return err
	}
	for _, w := range f.warnings {
		if err := sender.Warning(w); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeStore) LabelNames(_ context.Context, r *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	f.mu.Lock()
	f.lnReqs = append(f.lnReqs, proto.Clone(r).(*storepb.LabelNamesRequest))
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	ss, err := f.view(r.GetMatchers(), r.GetWithoutReplicaLabels())
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range ss {
		s.lset.Range(func(l labels.Label) { names = append(names, l.Name) })
	}
	slices.Sort(names)
	return &storepb.LabelNamesResponse{Names: slices.Compact(names), Warnings: f.warnings}, nil
}

func (f *fakeStore) LabelValues(_ context.Context, r *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	f.mu.Lock()
	f.lvReqs = append(f.lvReqs, proto.Clone(r).(*storepb.LabelValuesRequest))
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	ss, err := f.view(r.GetMatchers(), r.GetWithoutReplicaLabels())
	if err != nil {
		return nil, err
	}
	var vals []string
	for _, s := range ss {
		if v := s.lset.Get(r.GetLabel()); v != "" {
			vals = append(vals, v)
		}
	}
	slices.Sort(vals)
	return &storepb.LabelValuesResponse{Values: slices.Compact(vals), Warnings: f.warnings}, nil
}

func (f *fakeStore) seriesReqs() []*storepb.SeriesRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// listen opens a loopback listener.
func listen(tb testing.TB) net.Listener {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return lis
}

// serve runs a gRPC server on loopback serving s and info; it stops at test end.
func serve(tb testing.TB, s storeapi.StoreAPI, info infopb.InfoServer) string {
	tb.Helper()
	return serveOn(tb, listen(tb), s, info)
}

// serveOn is serve on a given listener.
func serveOn(tb testing.TB, lis net.Listener, s storeapi.StoreAPI, info infopb.InfoServer) string {
	srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}))
	storeapi.Register(srv, s, info, storepb.StoreType_SIDECAR)
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func serveFake(tb testing.TB, f *fakeStore) string { return serve(tb, f, f) }

// newSet returns a probed endpoint set over fixed addresses.
func newSet(tb testing.TB, addrs ...string) *EndpointSet {
	tb.Helper()
	set := NewEndpointSet(EndpointSetConfig{
		Addresses: func() []string { return addrs }, DialOptions: storeapi.DialOptions(nil, ""),
		InfoTimeout: 5 * time.Second,
	}, discard, nil)
	set.Update(context.Background())
	tb.Cleanup(set.Close)
	return set
}

// mustHealthy fails unless the set has exactly n healthy endpoints.
func mustHealthy(tb testing.TB, set *EndpointSet, n int) {
	tb.Helper()
	eps, problems := set.Healthy()
	if len(eps) != n {
		tb.Fatalf("healthy endpoints = %d, want %d (problems %v)", len(eps), n, problems)
	}
}

func eq(name, value string) *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchEqual, name, value)
}

func seriesReq(ms ...*labels.Matcher) *storepb.SeriesRequest {
	return &storepb.SeriesRequest{
		MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: storeapi.MatchersToProto(ms),
		PartialResponseStrategy: storepb.PartialResponseStrategy_WARN,
	}
}

type merged struct {
	lset   labels.Labels
	nsrc   int
	chunks [][]*storepb.AggrChunk
}

// drain reads a merge stream to the end and closes it.
func drain(m *MergeStream) []merged {
	defer m.Close()
	var out []merged
	for m.Next() {
		c := m.At()
		out = append(out, merged{lset: storeapi.LabelsFromProto(c.Labels), nsrc: len(c.Sources), chunks: slices.Clone(c.Sources)})
	}
	return out
}

// waitGoroutines polls until the goroutine count is at most n.
func waitGoroutines(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := runtime.NumGoroutine()
		if g <= n {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			tb.Fatalf("goroutines = %d, want <= %d\n%s", g, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

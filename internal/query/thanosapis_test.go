package query

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/vigilhq/vigil/internal/exemplarsapi"
	"github.com/vigilhq/vigil/internal/metadataapi"
	"github.com/vigilhq/vigil/internal/statusapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
	"github.com/vigilhq/vigil/internal/targetsapi"
)

// apisInfo advertises Metadata, Targets and Exemplars on top of a fake store's Info.
type apisInfo struct{ *fakeStore }

func (a apisInfo) Info(ctx context.Context, req *infopb.InfoRequest) (*infopb.InfoResponse, error) {
	in, err := a.fakeStore.Info(ctx, req)
	if in != nil {
		in.MetricMetadata, in.Targets, in.Exemplars = &infopb.MetricMetadataInfo{}, &infopb.TargetsInfo{}, &infopb.ExemplarsInfo{}
		in.Status = &infopb.StatusInfo{}
	}
	return in, err
}

// apisReplica is a replica's Metadata, Targets and Exemplars, recording the exemplar
// queries it gets.
type apisReplica struct {
	name string
	err  error

	mu      sync.Mutex
	queries []string
}

func (r *apisReplica) lastQueries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.queries...)
}

// serveAPIs runs a StoreAPI endpoint that also serves the replica's three APIs.
func serveAPIs(tb testing.TB, f *fakeStore, r *apisReplica) string {
	tb.Helper()
	lis := listen(tb)
	srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}))
	storeapi.Register(srv, f, apisInfo{f}, storepb.StoreType_SIDECAR)
	metadataapi.Register(srv, metadataapi.SourceFunc(func(context.Context, *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error) {
		return []*metadatapb.MetricMetadata{{Metadata: map[string]*metadatapb.MetricMetadataEntry{
			"up": {Metas: []*metadatapb.Meta{{Type: "gauge", Help: "Up."}}}}}}, nil, r.err
	}))
	targetsapi.Register(srv, targetsapi.SourceFunc(func(context.Context, *targetspb.TargetsRequest) ([]*targetspb.TargetDiscovery, []string, error) {
		return []*targetspb.TargetDiscovery{{ActiveTargets: []*targetspb.ActiveTarget{{
			Labels: storeapi.LabelSet(labels.FromStrings("job", "j", "replica", r.name)), ScrapeUrl: "http://a/metrics"}}}}, nil, r.err
	}))
	exemplarsapi.Register(srv, exemplarsapi.SourceFunc(func(_ context.Context, req *exemplarspb.ExemplarsRequest) ([]*exemplarspb.ExemplarData, []string, error) {
		r.mu.Lock()
		r.queries = append(r.queries, req.GetQuery())
		r.mu.Unlock()
		return []*exemplarspb.ExemplarData{{
			SeriesLabels: storeapi.LabelSet(labels.FromStrings("__name__", "x", "replica", r.name)),
			Exemplars:    []*exemplarspb.Exemplar{{Value: 1, Ts: 1000}}}}, nil, r.err
	}))
	statusapi.Register(srv, statusapi.SourceFunc(func(context.Context, *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error) {
		return []*statuspb.TSDBStatistics{{Statistics: map[string]*statuspb.TSDBStatisticsEntry{
			labels.FromStrings("replica", r.name).String(): {HeadStatistics: &statuspb.HeadStatistics{NumSeries: 10}}}}}, nil, r.err
	}))
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestThanosAPIProxies(t *testing.T) {
	r0, r1 := &apisReplica{name: "r0"}, &apisReplica{name: "r1"}
	plain := newFakeStore(labels.FromStrings("replica", "store")) // serves none of them: must not be asked
	addrs := []string{
		serveAPIs(t, newFakeStore(labels.FromStrings("replica", "r0")), r0),
		serveAPIs(t, newFakeStore(labels.FromStrings("replica", "r1")), r1),
		serveFake(t, plain),
	}
	set := newSet(t, addrs...)
	mustHealthy(t, set, 3)
	apis := NewAPIEndpoints(set, storeapi.DialOptions(nil, ""), time.Second)
	defer apis.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	warn := storepb.PartialResponseStrategy_WARN

	mds, warnings, err := NewMetadataProxy(apis).MetricMetadata(ctx, &metadatapb.MetricMetadataRequest{Limit: -1, PartialResponseStrategy: warn})
	if err != nil || len(warnings) != 0 || len(mds) != 2 {
		t.Fatalf("metadata: %v %v %v", mds, warnings, err)
	}
	if m := metadataapi.Merge(mds, "", -1, -1); len(m["up"]) != 1 {
		t.Fatalf("metadata not united: %v", m)
	}

	tds, _, err := NewTargetsProxy(apis).Targets(ctx, &targetspb.TargetsRequest{PartialResponseStrategy: warn})
	if err != nil || len(tds) != 2 {
		t.Fatalf("targets: %v %v", tds, err)
	}
	if n := len(targetsapi.Merge(tds, []string{"replica"}).GetActiveTargets()); n != 1 {
		t.Fatalf("targets not deduplicated: %d", n)
	}

	sts, _, err := NewStatusProxy(apis).TSDBStatistics(ctx, &statuspb.TSDBStatisticsRequest{PartialResponseStrategy: warn})
	if err != nil || len(sts) != 2 {
		t.Fatalf("status: %v %v", sts, err)
	}
	if n := statusapi.Merge(sts, []string{"replica"}, 0).GetHeadStatistics().GetNumSeries(); n != 10 {
		t.Fatalf("status: %d series with dedup, want 10", n)
	}

	ep := NewExemplarsProxy(apis, nil)
	data, _, err := ep.Exemplars(ctx, &exemplarspb.ExemplarsRequest{Query: `rate(x{replica="r1",job="j"}[5m])`, PartialResponseStrategy: warn})
	if err != nil || len(data) != 1 || storeapi.LabelsFromProto(data[0].GetSeriesLabels().GetLabels()).Get("replica") != "r1" {
		t.Fatalf("exemplars: %v %v", data, err)
	}
	if q := r1.lastQueries(); len(q) != 1 || q[0] != `{job="j",__name__="x"}` {
		t.Fatalf("r1 got %q: want the query without its external label matcher", q)
	}
	if q := r0.lastQueries(); len(q) != 0 {
		t.Fatalf("r0 got %q: its external labels contradict the selector", q)
	}
	if _, _, err := ep.Exemplars(ctx, &exemplarspb.ExemplarsRequest{Query: "rate("}); err == nil {
		t.Fatal("want an error for a bad query")
	}

	// One connection per endpoint that serves an API, shared by the APIs.
	if n := apis.conns.Len(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	apis.Close()
	if n := apis.conns.Len(); n != 0 {
		t.Fatalf("%d connections left after Close", n)
	}
}

func TestThanosAPIProxiesPartialResponse(t *testing.T) {
	ok := &apisReplica{name: "r0"}
	broken := &apisReplica{name: "r1", err: errors.New("prometheus down")}
	okAddr := serveAPIs(t, newFakeStore(labels.FromStrings("replica", "r0")), ok)
	brokenAddr := serveAPIs(t, newFakeStore(labels.FromStrings("replica", "r1")), broken)
	set := newSet(t, okAddr, brokenAddr)
	mustHealthy(t, set, 2)
	apis := NewAPIEndpoints(set, storeapi.DialOptions(nil, ""), time.Second)
	defer apis.Close()
	ctx := context.Background()

	tds, warnings, err := NewTargetsProxy(apis).Targets(ctx, &targetspb.TargetsRequest{PartialResponseStrategy: storepb.PartialResponseStrategy_WARN})
	if err != nil || len(tds) != 1 || len(warnings) != 1 || !strings.Contains(warnings[0], "fetch targets from "+brokenAddr) ||
		!strings.Contains(warnings[0], "prometheus down") {
		t.Fatalf("WARN: %v, warnings %q, err %v", tds, warnings, err)
	}
	_, _, err = NewMetadataProxy(apis).MetricMetadata(ctx, &metadatapb.MetricMetadataRequest{PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT})
	if err == nil || !strings.Contains(err.Error(), "fetch metadata from "+brokenAddr) {
		t.Fatalf("ABORT: want the broken endpoint's error, got %v", err)
	}
	sts, warnings, err := NewStatusProxy(apis).TSDBStatistics(ctx, &statuspb.TSDBStatisticsRequest{PartialResponseStrategy: storepb.PartialResponseStrategy_WARN})
	if err != nil || len(sts) != 1 || len(warnings) != 1 || !strings.Contains(warnings[0], "fetch TSDB statistics from "+brokenAddr) {
		t.Fatalf("status WARN: %v, warnings %q, err %v", sts, warnings, err)
	}
	if _, _, err := NewStatusProxy(apis).TSDBStatistics(ctx, &statuspb.TSDBStatisticsRequest{PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT}); err == nil {
		t.Fatal("status ABORT: want an error")
	}
}

func TestStoreServerInfoAdvertisesAPIs(t *testing.T) {
	in, err := NewStoreServer(NewProxy(newSet(t), 0, discard)).Info(context.Background(), &infopb.InfoRequest{})
	if err != nil || in.GetMetricMetadata() == nil || in.GetTargets() == nil || in.GetExemplars() == nil || in.GetRules() == nil || in.GetStatus() == nil {
		t.Fatalf("querier Info %v, %v: want metadata, targets, exemplars and rules", in, err)
	}
}

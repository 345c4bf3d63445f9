package sidecar

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/vigilhq/vigil/internal/exemplarsapi"
	"github.com/vigilhq/vigil/internal/metadataapi"
	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
	"github.com/vigilhq/vigil/internal/targetsapi"
)

// Prometheus's answers, without external labels (a target labelled replica="own" shows
// that external labels win).
var promAPIBodies = map[string]string{
	"/api/v1/metadata": `{"status":"success","data":{"up":[{"type":"gauge","help":"Up.","unit":""}]}}`,
	"/api/v1/targets": `{"status":"success","data":{"activeTargets":[{"discoveredLabels":{"__address__":"a:1","job":"j"},` +
		`"labels":{"instance":"a:1","job":"j","replica":"own"},"scrapePool":"j","scrapeUrl":"http://a:1/metrics","globalUrl":"http://h:1/metrics",` +
		`"lastError":"","lastScrape":"2025-01-02T03:04:05Z","lastScrapeDuration":0.01,"health":"up"}],` +
		`"droppedTargets":[{"discoveredLabels":{"__address__":"b:1","job":"j"}}]}}`,
	"/api/v1/rules": promRules,
	"/api/v1/status/tsdb": `{"status":"success","data":{"headStats":{"numSeries":7,"numLabelPairs":20,"chunkCount":9,` +
		`"minTime":1000,"maxTime":2000},"seriesCountByMetricName":[{"name":"up","value":3}],"labelValueCountByLabelName":[],` +
		`"memoryInBytesByLabelName":[{"name":"job","value":40}],"seriesCountByLabelValuePair":[{"name":"job=j","value":7}]}}`,
	"/api/v1/query_exemplars": `{"status":"success","data":[{"seriesLabels":{"__name__":"x_total","job":"j"},` +
		`"exemplars":[{"labels":{"trace_id":"t"},"value":"2","timestamp":1735787045.5}]}]}`,
}

// apisEnv serves the sidecar's Info, Metadata, Targets and Exemplars over bufconn in
// front of a fake Prometheus; it returns the connection and the requests Prometheus got.
func apisEnv(t *testing.T, ext labels.Labels, refresh bool) (*grpc.ClientConn, func(path string) []url.Values) {
	t.Helper()
	fp := newFakeProm(t, ext)
	var (
		mu   sync.Mutex
		reqs = map[string][]url.Values{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if body, ok := promAPIBodies[r.URL.Path]; ok {
			_ = r.ParseForm()
			mu.Lock()
			reqs[r.URL.Path] = append(reqs[r.URL.Path], r.Form)
			mu.Unlock()
			_, _ = w.Write([]byte(body))
			return
		}
		fp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	client := promclient.New(u, srv.Client())
	prom := NewPrometheus(client, slog.New(slog.DiscardHandler), math.MinInt64, nil)
	if refresh {
		if err := prom.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	store := NewStore(prom, client, Limits{})
	storeapi.Register(gs, store, store, 0)
	RegisterRules(gs, prom, client)
	RegisterMetadata(gs, client)
	RegisterTargets(gs, prom, client)
	RegisterExemplars(gs, prom, client)
	RegisterStatus(gs, prom, client)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, func(path string) []url.Values {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reqs[path])
	}
}

func TestThanosAPIsFromPrometheus(t *testing.T) {
	ext := labels.FromStrings("cluster", "c1", "replica", "r0")
	conn, reqs := apisEnv(t, ext, true)
	ctx := context.Background()

	in, err := infopb.NewInfoClient(conn).Info(ctx, &infopb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if in.GetMetricMetadata() == nil || in.GetTargets() == nil || in.GetExemplars().GetMaxTime() != math.MaxInt64 || in.GetStatus() == nil {
		t.Fatalf("Info does not advertise the APIs: %v", in)
	}

	mds, _, err := metadataapi.Fetch(ctx, metadatapb.NewMetadataClient(conn), &metadatapb.MetricMetadataRequest{Metric: "up", Limit: 5})
	if err != nil || len(mds) != 1 || mds[0].GetMetadata()["up"].GetMetas()[0].GetHelp() != "Up." {
		t.Fatalf("metadata %v %v", mds, err)
	}
	if r := reqs("/api/v1/metadata"); len(r) != 1 || r[0].Get("metric") != "up" || r[0].Get("limit") != "5" {
		t.Fatalf("metadata requests %v", r)
	}

	tds, _, err := targetsapi.Fetch(ctx, targetspb.NewTargetsClient(conn), &targetspb.TargetsRequest{State: targetspb.TargetsRequest_ACTIVE})
	if err != nil || len(tds) != 1 || len(tds[0].GetActiveTargets()) != 1 || len(tds[0].GetDroppedTargets()) != 0 {
		t.Fatalf("targets %v %v (the fake ignores state: the server filters)", tds, err)
	}
	if r := reqs("/api/v1/targets"); len(r) != 1 || r[0].Get("state") != "active" {
		t.Fatalf("targets requests %v", r)
	}
	a := tds[0].GetActiveTargets()[0]
	if got, want := storeapi.LabelsFromProto(a.GetLabels().GetLabels()), labels.FromStrings("cluster", "c1", "instance", "a:1", "job", "j", "replica", "r0"); !labels.Equal(got, want) {
		t.Fatalf("target labels %v, want %v", got, want)
	}
	if got := storeapi.LabelsFromProto(a.GetDiscoveredLabels().GetLabels()); got.Get("replica") != "r0" || got.Get("__address__") != "a:1" {
		t.Fatalf("discovered labels %v", got)
	}

	ec := exemplarspb.NewExemplarsClient(conn)
	data, _, err := exemplarsapi.Fetch(ctx, ec, &exemplarspb.ExemplarsRequest{Query: `rate(x_total{replica="r0",job="j"}[1m])`, Start: 1000, End: 2500})
	if err != nil || len(data) != 1 || data[0].GetExemplars()[0].GetTs() != 1735787045500 {
		t.Fatalf("exemplars %v %v", data, err)
	}
	if got, want := storeapi.LabelsFromProto(data[0].GetSeriesLabels().GetLabels()), labels.FromStrings("__name__", "x_total", "cluster", "c1", "job", "j", "replica", "r0"); !labels.Equal(got, want) {
		t.Fatalf("series labels %v, want %v", got, want)
	}
	r := reqs("/api/v1/query_exemplars")
	if len(r) != 1 || r[0].Get("query") != `{job="j",__name__="x_total"}` || r[0].Get("start") != "1.000" || r[0].Get("end") != "2.500" {
		t.Fatalf("exemplars requests %v: want the external label matcher removed", r)
	}
	// Another replica's selector: Prometheus is not asked.
	if data, _, err := exemplarsapi.Fetch(ctx, ec, &exemplarspb.ExemplarsRequest{Query: `x_total{replica="r1"}`}); err != nil || len(data) != 0 {
		t.Fatalf("other replica: %v %v", data, err)
	}
	if len(reqs("/api/v1/query_exemplars")) != 1 {
		t.Fatal("Prometheus asked for another replica's exemplars")
	}
	if _, _, err := exemplarsapi.Fetch(ctx, ec, &exemplarspb.ExemplarsRequest{Query: `rate(`}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad query: want InvalidArgument, got %v", err)
	}
}

func TestThanosAPIsUnavailableBeforeRefresh(t *testing.T) {
	conn, _ := apisEnv(t, labels.FromStrings("replica", "r0"), false)
	ctx := context.Background()
	if _, _, err := targetsapi.Fetch(ctx, targetspb.NewTargetsClient(conn), &targetspb.TargetsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("targets: want Unavailable before the external labels are known, got %v", err)
	}
	if _, _, err := exemplarsapi.Fetch(ctx, exemplarspb.NewExemplarsClient(conn), &exemplarspb.ExemplarsRequest{Query: "x"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("exemplars: want Unavailable, got %v", err)
	}
}

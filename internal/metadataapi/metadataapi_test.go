package metadataapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
)

func md(kv ...any) *metadatapb.MetricMetadata {
	out := &metadatapb.MetricMetadata{Metadata: map[string]*metadatapb.MetricMetadataEntry{}}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Metadata[kv[i].(string)] = &metadatapb.MetricMetadataEntry{Metas: kv[i+1].([]*metadatapb.Meta)}
	}
	return out
}

func meta(typ, help, unit string) *metadatapb.Meta {
	return &metadatapb.Meta{Type: typ, Help: help, Unit: unit}
}

func encode(t *testing.T, m map[string][]*metadatapb.Meta) string {
	t.Helper()
	b, err := json.Marshal(JSON(m))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMerge(t *testing.T) {
	// Two replicas scraping the same targets, a third endpoint with other help text.
	in := []*metadatapb.MetricMetadata{
		md("up", []*metadatapb.Meta{meta("gauge", "Up.", "")}, "req_seconds", []*metadatapb.Meta{meta("counter", "Time.", "seconds")}),
		md("up", []*metadatapb.Meta{meta("gauge", "Up.", "")}, "req_seconds", []*metadatapb.Meta{meta("counter", "Time.", "seconds")}),
		md("up", []*metadatapb.Meta{meta("gauge", "Up, differently.", ""), meta("gauge", "Up.", "")}, "build_info", []*metadatapb.Meta{meta("gauge", "Build.", "")}),
	}
	for _, tc := range []struct {
		name                  string
		metric                string
		limit, limitPerMetric int
		want                  string
	}{
		{"all", "", -1, -1, `{"build_info":[{"type":"gauge","help":"Build.","unit":""}],` +
			`"req_seconds":[{"type":"counter","help":"Time.","unit":"seconds"}],` +
			`"up":[{"type":"gauge","help":"Up.","unit":""},{"type":"gauge","help":"Up, differently.","unit":""}]}`},
		{"metric", "req_seconds", -1, -1, `{"req_seconds":[{"type":"counter","help":"Time.","unit":"seconds"}]}`},
		{"unknown metric", "nope", -1, -1, `{}`},
		{"limit", "", 2, -1, `{"build_info":[{"type":"gauge","help":"Build.","unit":""}],"req_seconds":[{"type":"counter","help":"Time.","unit":"seconds"}]}`},
		{"limit 0", "", 0, -1, `{}`},
		{"limit_per_metric", "up", -1, 1, `{"up":[{"type":"gauge","help":"Up.","unit":""}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := encode(t, Merge(in, tc.metric, tc.limit, tc.limitPerMetric)); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	if len(in[2].GetMetadata()["up"].GetMetas()) != 2 || len(in[0].GetMetadata()["up"].GetMetas()) != 1 {
		t.Fatal("Merge modified its input")
	}
}

func TestServerOverGRPC(t *testing.T) {
	serve := func(src Source) metadatapb.MetadataClient {
		lis := bufconn.Listen(1 << 20)
		srv := grpc.NewServer()
		Register(srv, src)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		conn, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return metadatapb.NewMetadataClient(conn)
	}
	var got *metadatapb.MetricMetadataRequest
	c := serve(SourceFunc(func(_ context.Context, req *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error) {
		got = req
		return []*metadatapb.MetricMetadata{md("up", []*metadatapb.Meta{meta("gauge", "Up.", "")})}, []string{"w"}, nil
	}))
	mds, warns, err := Fetch(context.Background(), c, &metadatapb.MetricMetadataRequest{Metric: "up", Limit: -1})
	if err != nil || len(mds) != 1 || mds[0].GetMetadata()["up"].GetMetas()[0].GetHelp() != "Up." || len(warns) != 1 {
		t.Fatalf("got %v %v %v", mds, warns, err)
	}
	if got.GetMetric() != "up" || got.GetLimit() != -1 {
		t.Fatalf("request %v", got)
	}
	failing := serve(SourceFunc(func(context.Context, *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error) {
		return nil, nil, errors.New("prometheus down")
	}))
	if _, _, err := Fetch(context.Background(), failing, &metadatapb.MetricMetadataRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("want Unavailable, got %v", err)
	}
}

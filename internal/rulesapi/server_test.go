package rulesapi

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
)

func TestFilter(t *testing.T) {
	groups := []*rulespb.RuleGroup{
		replicaGroup("r0", t0, rulespb.AlertState_FIRING, t0),
		group("other.yml", "second", t0, recRule("y", t0, labels.FromStrings("team", "b"))),
		group("other.yml", "empty", t0),
	}
	names := func(gs []*rulespb.RuleGroup) string {
		var out []string
		for _, g := range gs {
			var rs []string
			for _, r := range g.GetRules() {
				rs = append(rs, RuleName(r))
			}
			out = append(out, g.GetName()+"["+strings.Join(rs, ",")+"]")
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name string
		req  *rulespb.RulesRequest
		want string
	}{
		{"all", &rulespb.RulesRequest{}, "example[AlwaysFiring,job:up:sum] second[y] empty[]"},
		{"alert", &rulespb.RulesRequest{Type: rulespb.RulesRequest_ALERT}, "example[AlwaysFiring]"},
		{"record", &rulespb.RulesRequest{Type: rulespb.RulesRequest_RECORD}, "example[job:up:sum] second[y]"},
		{"rule_name", &rulespb.RulesRequest{RuleName: []string{"y", "nope"}}, "second[y]"},
		{"rule_group", &rulespb.RulesRequest{RuleGroup: []string{"empty", "example"}}, "example[AlwaysFiring,job:up:sum] empty[]"},
		{"file", &rulespb.RulesRequest{File: []string{"other.yml"}}, "second[y] empty[]"},
		{"match ext label", &rulespb.RulesRequest{MatcherString: []string{`{replica="r0"}`}}, "example[AlwaysFiring,job:up:sum]"},
		{"match or", &rulespb.RulesRequest{MatcherString: []string{`{severity="page"}`, `{team=~"b|c"}`}}, "example[AlwaysFiring] second[y]"},
		{"match none", &rulespb.RulesRequest{MatcherString: []string{`{replica="r9"}`}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Filter(groups, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tc.want {
				t.Fatalf("got %q, want %q", names(got), tc.want)
			}
		})
	}
	if len(groups[0].GetRules()) != 2 {
		t.Fatal("Filter modified its input")
	}
	if _, err := Filter(groups, &rulespb.RulesRequest{MatcherString: []string{"{"}}); err == nil {
		t.Fatal("want an error for a bad matcher")
	}
}

func TestAddExternalLabels(t *testing.T) {
	g := group("f", "g", t0,
		alertRule("A", rulespb.AlertState_FIRING, t0, labels.FromStrings("cluster", "own", "severity", "page"),
			instance(rulespb.AlertState_FIRING, t0, labels.FromStrings("alertname", "A"))),
		recRule("r", t0, labels.EmptyLabels()))
	AddExternalLabels([]*rulespb.RuleGroup{g}, labels.FromStrings("cluster", "c1", "replica", "r0"))
	want := map[string]labels.Labels{
		"alert":    labels.FromStrings("cluster", "c1", "replica", "r0", "severity", "page"),
		"instance": labels.FromStrings("alertname", "A", "cluster", "c1", "replica", "r0"),
		"record":   labels.FromStrings("cluster", "c1", "replica", "r0"),
	}
	got := map[string]labels.Labels{
		"alert":    RuleLabels(g.GetRules()[0]),
		"instance": jsonLabels(g.GetRules()[0].GetAlert().GetAlerts()[0].GetLabels()),
		"record":   RuleLabels(g.GetRules()[1]),
	}
	for k, w := range want {
		if !labels.Equal(got[k], w) {
			t.Errorf("%s labels %v, want %v", k, got[k], w)
		}
	}
}

// serve starts a gRPC server with src as thanos.Rules and returns a client.
func serve(t *testing.T, src Source) rulespb.RulesClient {
	t.Helper()
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
	return rulespb.NewRulesClient(conn)
}

func staticSource(groups []*rulespb.RuleGroup, warnings []string, err error) Source {
	return SourceFunc(func(context.Context, *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
		return groups, warnings, err
	})
}

func TestServerOverGRPC(t *testing.T) {
	groups := []*rulespb.RuleGroup{replicaGroup("r0", t0, rulespb.AlertState_FIRING, t0)}
	c := serve(t, staticSource(groups, []string{"something odd"}, nil))
	ctx := context.Background()
	stream, err := c.Rules(ctx, &rulespb.RulesRequest{Type: rulespb.RulesRequest_ALERT})
	if err != nil {
		t.Fatal(err)
	}
	got, warns, err := Collect(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].GetRules()) != 1 || got[0].GetRules()[0].GetAlert() == nil {
		t.Fatalf("want the alerting rule only, got %v", got)
	}
	if len(warns) != 1 || warns[0] != "something odd" {
		t.Fatalf("warnings %v", warns)
	}
	if a := got[0].GetRules()[0].GetAlert(); !a.GetLastEvaluation().AsTime().Equal(t0) || a.GetAlerts()[0].GetState() != rulespb.AlertState_FIRING {
		t.Fatalf("fields lost on the wire: %v", a)
	}

	stream, err = c.Rules(ctx, &rulespb.RulesRequest{MatcherString: []string{"{"}})
	if err == nil {
		_, _, err = Collect(stream)
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad matcher: want InvalidArgument, got %v", err)
	}

	failing := serve(t, staticSource(nil, nil, errors.New("prometheus down")))
	stream, err = failing.Rules(ctx, &rulespb.RulesRequest{})
	if err == nil {
		_, _, err = Collect(stream)
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("source error: want Unavailable, got %v", err)
	}
}

func TestLocal(t *testing.T) {
	src := Local(NewServer(staticSource([]*rulespb.RuleGroup{replicaGroup("r0", t0, rulespb.AlertState_FIRING, t0)}, []string{"w"}, nil)))
	groups, warns, err := src.RuleGroups(context.Background(), &rulespb.RulesRequest{Type: rulespb.RulesRequest_RECORD})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].GetRules()) != 1 || groups[0].GetRules()[0].GetRecording() == nil || len(warns) != 1 {
		t.Fatalf("got %v %v", groups, warns)
	}
}

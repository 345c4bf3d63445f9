package sidecar

import (
	"context"
	"net/url"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
)

// promRules is /api/v1/rules as Prometheus answers it: no external labels.
const promRules = `{"status":"success","data":{"groups":[{"name":"example","file":"rules.yml","rules":[` +
	`{"state":"firing","name":"AlwaysFiring","query":"vector(1) > 0","duration":0,"keepFiringFor":0,` +
	`"labels":{"severity":"page","replica":"own"},"annotations":{},"alerts":[{"labels":{"alertname":"AlwaysFiring","severity":"page"},` +
	`"annotations":{},"state":"firing","activeAt":"2025-01-02T03:04:05Z","value":"1e+00"}],` +
	`"health":"ok","evaluationTime":0.001,"lastEvaluation":"2025-01-02T03:04:06Z","type":"alerting"},` +
	`{"name":"job:up:sum","query":"sum(up)","labels":{},"health":"ok","evaluationTime":0.001,` +
	`"lastEvaluation":"2025-01-02T03:04:06Z","type":"recording"}],"interval":1,"limit":0,"evaluationTime":0.002,` +
	`"lastEvaluation":"2025-01-02T03:04:06Z"}]}}`

// rulesEnv serves the sidecar's thanos.Rules and Info over bufconn, in front of a fake
// Prometheus that also answers /api/v1/rules (apisEnv).
func rulesEnv(t *testing.T, ext labels.Labels, refresh bool) (rulespb.RulesClient, infopb.InfoClient, func() []url.Values) {
	t.Helper()
	conn, reqs := apisEnv(t, ext, refresh)
	return rulespb.NewRulesClient(conn), infopb.NewInfoClient(conn), func() []url.Values { return reqs("/api/v1/rules") }
}

func TestRulesAddExternalLabels(t *testing.T) {
	ext := labels.FromStrings("cluster", "c1", "replica", "r0")
	c, info, reqs := rulesEnv(t, ext, true)
	ctx := context.Background()
	in, err := info.Info(ctx, &infopb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if in.GetRules() == nil {
		t.Fatal("Info does not advertise the Rules API")
	}

	stream, err := c.Rules(ctx, &rulespb.RulesRequest{Type: rulespb.RulesRequest_ALERT, MatcherString: []string{`{replica="r0"}`}})
	if err != nil {
		t.Fatal(err)
	}
	groups, _, err := rulesapi.Collect(stream)
	if err != nil {
		t.Fatal(err)
	}
	if r := reqs(); len(r) != 1 || r[0].Get("type") != "alert" || r[0].Has("match[]") {
		t.Fatalf("Prometheus requests %v", r)
	}
	if len(groups) != 1 || len(groups[0].GetRules()) != 1 {
		t.Fatalf("want the alerting rule only (type and match[] on an external label), got %v", groups)
	}
	a := groups[0].GetRules()[0].GetAlert()
	if got, want := rulesapi.RuleLabels(groups[0].GetRules()[0]), labels.FromStrings("cluster", "c1", "replica", "r0", "severity", "page"); !labels.Equal(got, want) {
		t.Fatalf("rule labels %v, want %v (external labels override)", got, want)
	}
	if got, want := storeapi.LabelsFromProto(a.GetAlerts()[0].GetLabels().GetLabels()),
		labels.FromStrings("alertname", "AlwaysFiring", "cluster", "c1", "replica", "r0", "severity", "page"); !labels.Equal(got, want) {
		t.Fatalf("alert labels %v, want %v", got, want)
	}

	stream, err = c.Rules(ctx, &rulespb.RulesRequest{MatcherString: []string{`{replica="r1"}`}})
	if err != nil {
		t.Fatal(err)
	}
	if groups, _, err := rulesapi.Collect(stream); err != nil || len(groups) != 0 {
		t.Fatalf("other replica's matcher: got %v, %v", groups, err)
	}
}

func TestRulesUnavailableBeforeRefresh(t *testing.T) {
	c, _, _ := rulesEnv(t, labels.FromStrings("replica", "r0"), false)
	stream, err := c.Rules(context.Background(), &rulespb.RulesRequest{})
	if err == nil {
		_, _, err = rulesapi.Collect(stream)
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("want Unavailable before the external labels are known, got %v", err)
	}
}

package query

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// rulesInfo advertises the Rules API on top of a fake store's Info.
type rulesInfo struct{ *fakeStore }

func (r rulesInfo) Info(ctx context.Context, req *infopb.InfoRequest) (*infopb.InfoResponse, error) {
	in, err := r.fakeStore.Info(ctx, req)
	if in != nil {
		in.Rules = &infopb.RulesInfo{}
	}
	return in, err
}

// serveRules runs a StoreAPI endpoint that also serves src as thanos.Rules.
func serveRules(tb testing.TB, f *fakeStore, src rulesapi.Source) string {
	tb.Helper()
	lis := listen(tb)
	srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}))
	storeapi.Register(srv, f, rulesInfo{f}, storepb.StoreType_SIDECAR)
	rulesapi.Register(srv, src)
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func replicaRules(replica string, err error) rulesapi.Source {
	return rulesapi.SourceFunc(func(context.Context, *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
		if err != nil {
			return nil, nil, err
		}
		g := &rulespb.RuleGroup{Name: "g", File: "f.yml", Rules: []*rulespb.Rule{{Result: &rulespb.Rule_Recording{
			Recording: &rulespb.RecordingRule{Name: "r", Query: "up", Labels: &storepb.LabelSet{
				Labels: storeapi.LabelsToProto(labels.FromStrings("replica", replica))}},
		}}}}
		return []*rulespb.RuleGroup{g}, nil, nil
	})
}

func TestRulesProxy(t *testing.T) {
	r0 := newFakeStore(labels.FromStrings("replica", "r0"))
	r1 := newFakeStore(labels.FromStrings("replica", "r1"))
	plain := newFakeStore(labels.FromStrings("replica", "store")) // no Rules API: must not be asked
	broken := newFakeStore(labels.FromStrings("replica", "broken"))
	addrs := []string{
		serveRules(t, r0, replicaRules("r0", nil)),
		serveRules(t, r1, replicaRules("r1", nil)),
		serveFake(t, plain),
	}
	brokenAddr := serveRules(t, broken, replicaRules("broken", errors.New("prometheus down")))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	set := newSet(t, addrs...)
	mustHealthy(t, set, 3)
	p := newRulesProxy(t, set)
	for _, strategy := range []storepb.PartialResponseStrategy{storepb.PartialResponseStrategy_WARN, storepb.PartialResponseStrategy_ABORT} {
		groups, warnings, err := p.RuleGroups(ctx, &rulespb.RulesRequest{PartialResponseStrategy: strategy})
		if err != nil || len(warnings) != 0 {
			t.Fatalf("%v: err %v, warnings %v", strategy, err, warnings)
		}
		merged := rulesapi.Merge(groups, nil)
		if len(groups) != 2 || len(merged) != 1 || len(merged[0].GetRules()) != 2 {
			t.Fatalf("%v: want r0's and r1's group, got %v", strategy, groups)
		}
		if len(rulesapi.Merge(groups, []string{"replica"})[0].GetRules()) != 1 {
			t.Fatalf("%v: replicas not deduplicated", strategy)
		}
	}

	set = newSet(t, append(addrs, brokenAddr)...)
	mustHealthy(t, set, 4)
	p2 := newRulesProxy(t, set)
	groups, warnings, err := p2.RuleGroups(ctx, &rulespb.RulesRequest{PartialResponseStrategy: storepb.PartialResponseStrategy_WARN})
	if err != nil || len(groups) != 2 || len(warnings) != 1 || !strings.Contains(warnings[0], brokenAddr) || !strings.Contains(warnings[0], "prometheus down") {
		t.Fatalf("WARN: groups %d, warnings %v, err %v", len(groups), warnings, err)
	}
	_, _, err = p2.RuleGroups(ctx, &rulespb.RulesRequest{PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT})
	if err == nil || !strings.Contains(err.Error(), brokenAddr) {
		t.Fatalf("ABORT: want the broken endpoint's error, got %v", err)
	}

	// An endpoint whose Info fails between probes: a failure like any other.
	r1.infoFail.Store(true)
	set = newSet(t, addrs...)
	r1.infoFail.Store(false)
	mustHealthy(t, set, 2)
	r0.infoFail.Store(true)
	defer r0.infoFail.Store(false)
	p3 := newRulesProxy(t, set)
	groups, warnings, err = p3.RuleGroups(ctx, &rulespb.RulesRequest{PartialResponseStrategy: storepb.PartialResponseStrategy_WARN})
	if err != nil || len(groups) != 0 || len(warnings) != 2 {
		// r0: Info failed now; r1: unhealthy at the last probe.
		t.Fatalf("Info failure, WARN: groups %v, warnings %v, err %v", groups, warnings, err)
	}
	if _, _, err := p3.RuleGroups(ctx, &rulespb.RulesRequest{PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT}); err == nil {
		t.Fatal("Info failure, ABORT: want an error")
	}
}

func newRulesProxy(t *testing.T, set *EndpointSet) *RulesProxy {
	apis := NewAPIEndpoints(set, storeapi.DialOptions(nil, ""), time.Second)
	t.Cleanup(apis.Close)
	return NewRulesProxy(apis)
}

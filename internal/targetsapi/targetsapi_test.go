package targetsapi

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func active(replica, pool, url string, health targetspb.TargetHealth, last time.Time) *targetspb.ActiveTarget {
	return &targetspb.ActiveTarget{
		DiscoveredLabels: storeapi.LabelSet(labels.FromStrings("__address__", url, "job", pool, "replica", replica)),
		Labels:           storeapi.LabelSet(labels.FromStrings("instance", url, "job", pool, "replica", replica)),
		ScrapePool:       pool, ScrapeUrl: "http://" + url + "/metrics", Health: health, LastScrape: timestamppb.New(last),
	}
}

func dropped(replica, pool, addr string) *targetspb.DroppedTarget {
	return &targetspb.DroppedTarget{DiscoveredLabels: storeapi.LabelSet(labels.FromStrings("__address__", addr, "job", pool, "replica", replica))}
}

// replica is what replica r reports: two active targets and a dropped one.
func replica(r string, health targetspb.TargetHealth, last time.Time) *targetspb.TargetDiscovery {
	return &targetspb.TargetDiscovery{
		ActiveTargets: []*targetspb.ActiveTarget{
			active(r, "node", "b:9100", health, last),
			active(r, "app", "a:8080", targetspb.TargetHealth_UP, last),
		},
		DroppedTargets: []*targetspb.DroppedTarget{dropped(r, "node", "c:9100")},
	}
}

func summary(td *targetspb.TargetDiscovery) (act []string, drop []string) {
	for _, t := range td.GetActiveTargets() {
		act = append(act, t.GetScrapeUrl()+" "+storeapi.LabelsFromProto(t.GetLabels().GetLabels()).Get("replica")+" "+
			Health(t.GetHealth())+" "+t.GetLastScrape().AsTime().Format("05"))
	}
	for _, t := range td.GetDroppedTargets() {
		drop = append(drop, storeapi.LabelsFromProto(t.GetDiscoveredLabels().GetLabels()).String())
	}
	return act, drop
}

func TestMerge(t *testing.T) {
	in := []*targetspb.TargetDiscovery{
		replica("r0", targetspb.TargetHealth_UP, t0),
		replica("r1", targetspb.TargetHealth_DOWN, t0.Add(time.Second)),
		replica("r2", targetspb.TargetHealth_UP, t0.Add(2*time.Second)),
	}
	act, drop := summary(Merge(in, []string{"replica"}))
	// The node target is down on r1: the worst health wins; the app target is the one
	// scraped last (r2's, at :07).
	want := []string{"http://a:8080/metrics  up 07", "http://b:9100/metrics  down 06"}
	if !equal(act, want) {
		t.Fatalf("active %q, want %q", act, want)
	}
	if !equal(drop, []string{`{__address__="c:9100", job="node"}`}) {
		t.Fatalf("dropped %q", drop)
	}

	// dedup=false: every replica's copy, sorted; identical copies still once.
	act, drop = summary(Merge(append(in, replica("r0", targetspb.TargetHealth_UP, t0)), nil))
	if len(act) != 6 || act[0] != "http://a:8080/metrics r0 up 05" || act[5] != "http://b:9100/metrics r2 up 07" || len(drop) != 3 {
		t.Fatalf("without dedup: active %q, dropped %q", act, drop)
	}
	if storeapi.LabelsFromProto(in[0].GetActiveTargets()[0].GetLabels().GetLabels()).Get("replica") != "r0" {
		t.Fatal("Merge modified its input")
	}
	if td := Merge(nil, nil); td.GetActiveTargets() == nil || td.GetDroppedTargets() == nil {
		t.Fatal("want empty lists, not nil (JSON [])")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFilterAndState(t *testing.T) {
	td := replica("r0", targetspb.TargetHealth_UP, t0)
	for _, tc := range []struct {
		state         string
		pool          string
		active, dropd int
	}{
		{"", "", 2, 1}, {"any", "", 2, 1}, {"Active", "", 2, 0}, {"dropped", "", 0, 1},
		{"", "node", 1, 1}, {"active", "app", 1, 0}, {"", "nope", 0, 0},
	} {
		st, err := ParseState(tc.state)
		if err != nil {
			t.Fatal(err)
		}
		got := Filter(td, st, tc.pool)
		if len(got.GetActiveTargets()) != tc.active || len(got.GetDroppedTargets()) != tc.dropd {
			t.Errorf("state %q pool %q: %d active, %d dropped, want %d, %d", tc.state, tc.pool,
				len(got.GetActiveTargets()), len(got.GetDroppedTargets()), tc.active, tc.dropd)
		}
	}
	if Filter(td, targetspb.TargetsRequest_ANY, "") != td {
		t.Error("Filter copied without need")
	}
	if _, err := ParseState("sleeping"); err == nil {
		t.Error("want an error for an unknown state")
	}
	if StateParam(targetspb.TargetsRequest_DROPPED) != "dropped" || StateParam(targetspb.TargetsRequest_ANY) != "" {
		t.Error("StateParam")
	}
	for _, h := range []string{"up", "down", "unknown"} {
		if Health(ParseHealth(h)) != h {
			t.Errorf("health %q does not round-trip", h)
		}
	}
}

func TestAddExternalLabels(t *testing.T) {
	td := &targetspb.TargetDiscovery{
		ActiveTargets:  []*targetspb.ActiveTarget{active("own", "app", "a:1", targetspb.TargetHealth_UP, t0)},
		DroppedTargets: []*targetspb.DroppedTarget{dropped("own", "app", "b:1")},
	}
	AddExternalLabels(td, labels.FromStrings("cluster", "c1", "replica", "r0"))
	a := td.GetActiveTargets()[0]
	if got := storeapi.LabelsFromProto(a.GetLabels().GetLabels()); !labels.Equal(got, labels.FromStrings("cluster", "c1", "instance", "a:1", "job", "app", "replica", "r0")) {
		t.Errorf("labels %v (external labels win)", got)
	}
	if got := storeapi.LabelsFromProto(a.GetDiscoveredLabels().GetLabels()); got.Get("cluster") != "c1" || got.Get("replica") != "r0" {
		t.Errorf("discovered labels %v", got)
	}
	if got := storeapi.LabelsFromProto(td.GetDroppedTargets()[0].GetDiscoveredLabels().GetLabels()); got.Get("cluster") != "c1" {
		t.Errorf("dropped target labels %v", got)
	}
}

func TestServerFiltersState(t *testing.T) {
	src := SourceFunc(func(context.Context, *targetspb.TargetsRequest) ([]*targetspb.TargetDiscovery, []string, error) {
		return []*targetspb.TargetDiscovery{replica("r0", targetspb.TargetHealth_UP, t0)}, nil, nil // ignores the state
	})
	srv := NewServer(src)
	tds, _, err := Frames.Local(context.Background(), func(s grpc.ServerStreamingServer[targetspb.TargetsResponse]) error {
		return srv.Targets(&targetspb.TargetsRequest{State: targetspb.TargetsRequest_DROPPED}, s)
	})
	if err != nil || len(tds) != 1 || len(tds[0].GetActiveTargets()) != 0 || len(tds[0].GetDroppedTargets()) != 1 {
		t.Fatalf("got %v %v", tds, err)
	}
}

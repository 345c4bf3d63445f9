package sidecar

import (
	"context"
	"math"
	"slices"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func labelStore(t *testing.T) (*storeEnv, *fakeProm) {
	fp := newFakeProm(t, testExt,
		genSeries(1, "__name__", "up", "job", "a", "instance", "i1"),
		genSeries(1, "__name__", "up", "job", "b", "instance", "i2", "replica", "own"), // series label named like ext
		genSeries(1, "__name__", "down", "job", "c", "zone", "z1"),
	)
	fp.labelWarnings = []string{"from prometheus"}
	return startStore(t, fp, Limits{}, true), fp
}

func TestLabelNames(t *testing.T) {
	env, fp := labelStore(t)
	ctx := context.Background()
	resp, err := env.raw.LabelNames(ctx, &storepb.LabelNamesRequest{Start: 1000, End: 2000, Matchers: []*storepb.LabelMatcher{eq("__name__", "up"), eq("cluster", "eu")}})
	if err != nil {
		t.Fatal(err)
	}
	// Prometheus' names plus the external label names, sorted and unique.
	want := []string{"__name__", "cluster", "instance", "job", "replica"}
	if !slices.Equal(resp.GetNames(), want) {
		t.Errorf("names %v, want %v", resp.GetNames(), want)
	}
	if !slices.Equal(resp.GetWarnings(), []string{"from prometheus"}) {
		t.Errorf("warnings %v", resp.GetWarnings())
	}
	q := fp.labelRequests()[0]
	if !slices.Equal(q["match[]"], []string{`{__name__="up"}`}) {
		t.Errorf("match[] %v: the external-label matcher must be removed", q["match[]"])
	}
	if q.Get("start") != "1.000" || q.Get("end") != "2.000" {
		t.Errorf("start %s end %s, want 1.000 and 2.000 (seconds)", q.Get("start"), q.Get("end"))
	}

	// without_replica_labels strips the external replica label name.
	resp, err = env.raw.LabelNames(ctx, &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{eq("job", "c")}, WithoutReplicaLabels: []string{"replica"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"__name__", "cluster", "job", "zone"}; !slices.Equal(resp.GetNames(), want) {
		t.Errorf("without replica: names %v, want %v", resp.GetNames(), want)
	}
	// end=0 means no upper bound.
	if end, _ := strconv.ParseFloat(fp.labelRequests()[1].Get("end"), 64); end < 1e11 {
		t.Errorf("unset end sent as %v, want a far-future time", end)
	}

	// Limit.
	resp, err = env.raw.LabelNames(ctx, &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{re("job", ".+")}, Limit: 2})
	if err != nil || len(resp.GetNames()) != 2 {
		t.Errorf("limit 2: %v, %v", resp.GetNames(), err)
	}

	// Nothing matches: no names at all, not even the external ones.
	resp, err = env.raw.LabelNames(ctx, &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{eq("job", "nope")}})
	if err != nil || len(resp.GetNames()) != 0 {
		t.Errorf("no match: %v, %v", resp.GetNames(), err)
	}
	// Pruned by an external label: empty, and Prometheus is not asked.
	n := len(fp.labelRequests())
	resp, err = env.raw.LabelNames(ctx, &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{eq("cluster", "us")}})
	if err != nil || len(resp.GetNames()) != 0 || len(fp.labelRequests()) != n {
		t.Errorf("pruned: %v, %v, %d new requests", resp.GetNames(), err, len(fp.labelRequests())-n)
	}
}

func TestLabelValues(t *testing.T) {
	env, fp := labelStore(t)
	ctx := context.Background()
	get := func(req *storepb.LabelValuesRequest) []string {
		t.Helper()
		resp, err := env.raw.LabelValues(ctx, req)
		if err != nil {
			t.Fatalf("LabelValues(%s): %v", req.GetLabel(), err)
		}
		return resp.GetValues()
	}
	if got := get(&storepb.LabelValuesRequest{Label: "job", Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}}); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("job values %v, want [a b]", got)
	}
	if got := get(&storepb.LabelValuesRequest{Label: "job", Limit: 1}); len(got) != 1 {
		t.Errorf("limit 1: %v", got)
	}
	// An external label has exactly its external value, overriding the series' own "replica=own".
	if got := get(&storepb.LabelValuesRequest{Label: "replica", Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}}); !slices.Equal(got, []string{"0"}) {
		t.Errorf("replica values %v, want [0]", got)
	}
	if got := get(&storepb.LabelValuesRequest{Label: "cluster"}); !slices.Equal(got, []string{"eu"}) {
		t.Errorf("cluster values %v, want [eu]", got)
	}
	// ... but only when some series match.
	if got := get(&storepb.LabelValuesRequest{Label: "cluster", Matchers: []*storepb.LabelMatcher{eq("job", "nope")}}); len(got) != 0 {
		t.Errorf("cluster values without matching series %v, want none", got)
	}
	// A stripped replica label has no values.
	if got := get(&storepb.LabelValuesRequest{Label: "replica", WithoutReplicaLabels: []string{"replica"}}); len(got) != 0 {
		t.Errorf("stripped replica values %v, want none", got)
	}
	// Pruned by an external label matcher.
	if got := get(&storepb.LabelValuesRequest{Label: "job", Matchers: []*storepb.LabelMatcher{eq("cluster", "us")}}); len(got) != 0 {
		t.Errorf("pruned: %v", got)
	}
	_, err := env.raw.LabelValues(ctx, &storepb.LabelValuesRequest{Label: ""})
	wantCode(t, err, codes.InvalidArgument)
	_, err = env.raw.LabelValues(ctx, &storepb.LabelValuesRequest{Label: "job", Matchers: []*storepb.LabelMatcher{re("x", "(")}})
	wantCode(t, err, codes.InvalidArgument)

	// Prometheus failing is Unavailable.
	fp.srv.Close()
	_, err = env.raw.LabelValues(ctx, &storepb.LabelValuesRequest{Label: "job", Start: 0, End: math.MaxInt64 / 2})
	wantCode(t, err, codes.Unavailable)
	_, err = env.raw.LabelNames(ctx, &storepb.LabelNamesRequest{})
	wantCode(t, err, codes.Unavailable)
}

package tsdbstore

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// labelsStore holds up{job,instance} and node_cpu{job,cpu} from t=0, an old series only
// before t=1000s, and one series with its own "replica" label.
func labelsStore(t *testing.T) *storeapi.Client {
	db := openDB(t, "", nil)
	appendSeries(t, db, labels.FromStrings("__name__", "old", "legacy", "yes"), floats(0, 2, 0))
	for _, ls := range []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "node", "instance", "a"),
		labels.FromStrings("__name__", "up", "job", "api", "instance", "b"),
		labels.FromStrings("__name__", "node_cpu", "job", "node", "cpu", "0"),
		labels.FromStrings("__name__", "dup", "replica", "own"),
	} {
		appendSeries(t, db, ls, floats(1_000_000, 3, 1))
	}
	return serveStore(t, New(db, labels.FromStrings("replica", "r0", "tenant_id", "a"), Options{}))
}

func TestLabelNames(t *testing.T) {
	c := labelsStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  *storepb.LabelNamesRequest
		want []string
	}{
		{"all", &storepb.LabelNamesRequest{Start: 0, End: math.MaxInt64},
			[]string{"__name__", "cpu", "instance", "job", "legacy", "replica", "tenant_id"}},
		{"matchers", &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}},
			[]string{"__name__", "instance", "job", "replica", "tenant_id"}},
		// Like Prometheus' label APIs, the range selects blocks and the head, not series.
		{"time range", &storepb.LabelNamesRequest{Start: 500_000},
			[]string{"__name__", "cpu", "instance", "job", "legacy", "replica", "tenant_id"}},
		{"time range after the data", &storepb.LabelNamesRequest{Start: 10_000_000}, nil},
		{"no match: no external names", &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{eq("__name__", "nope")}}, nil},
		{"external label mismatch", &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{eq("tenant_id", "b")}}, nil},
		{"external label match", &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{eq("tenant_id", "a"), eq("job", "api")}},
			[]string{"__name__", "instance", "job", "replica", "tenant_id"}},
		{"without replica", &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{re("__name__", "up|dup")}, WithoutReplicaLabels: []string{"replica", "job"}},
			[]string{"__name__", "instance", "job", "tenant_id"}},
		{"limit", &storepb.LabelNamesRequest{Limit: 3}, []string{"__name__", "cpu", "instance"}},
		{"limit past stripped", &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{eq("__name__", "dup")}, WithoutReplicaLabels: []string{"replica"}, Limit: 2},
			[]string{"__name__", "tenant_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.LabelNames(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(resp.GetNames(), tc.want) {
				t.Errorf("names %q, want %q", resp.GetNames(), tc.want)
			}
		})
	}
	_, err := c.LabelNames(ctx, &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{re("job", "(")}})
	wantCode(t, err, codes.InvalidArgument)
}

func TestLabelValues(t *testing.T) {
	c := labelsStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  *storepb.LabelValuesRequest
		want []string
	}{
		{"all", &storepb.LabelValuesRequest{Label: "job"}, []string{"api", "node"}},
		{"matchers", &storepb.LabelValuesRequest{Label: "instance", Matchers: []*storepb.LabelMatcher{eq("job", "node")}}, []string{"a"}},
		{"time range after the data", &storepb.LabelValuesRequest{Label: "__name__", Start: 10_000_000, End: math.MaxInt64}, nil},
		{"external label after the data", &storepb.LabelValuesRequest{Label: "tenant_id", Start: 10_000_000}, nil},
		{"limit", &storepb.LabelValuesRequest{Label: "__name__", Limit: 2}, []string{"dup", "node_cpu"}},
		{"external label", &storepb.LabelValuesRequest{Label: "tenant_id", Matchers: []*storepb.LabelMatcher{eq("job", "api")}}, []string{"a"}},
		// The external replica label replaces the series' own.
		{"overridden label", &storepb.LabelValuesRequest{Label: "replica"}, []string{"r0"}},
		{"external label, no series", &storepb.LabelValuesRequest{Label: "tenant_id", Matchers: []*storepb.LabelMatcher{eq("job", "nope")}}, nil},
		{"external label mismatch", &storepb.LabelValuesRequest{Label: "job", Matchers: []*storepb.LabelMatcher{eq("tenant_id", "b")}}, nil},
		{"stripped", &storepb.LabelValuesRequest{Label: "replica", WithoutReplicaLabels: []string{"replica"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.LabelValues(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(resp.GetValues(), tc.want) {
				t.Errorf("values %q, want %q", resp.GetValues(), tc.want)
			}
		})
	}
	_, err := c.LabelValues(ctx, &storepb.LabelValuesRequest{})
	wantCode(t, err, codes.InvalidArgument)
}

package sidecar

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
)

// TestSeriesSkipChunksUsesSeriesAPI: a skip_chunks request is answered from Prometheus'
// series API without a remote read. Its unordered answer comes back sorted by final
// labels, with external labels overriding the series' own, stripped replica labels, and
// series that became equal sent once.
func TestSeriesSkipChunksUsesSeriesAPI(t *testing.T) {
	stored := []fakeSeries{
		genSeries(3, "__name__", "up", "instance", "b"),
		genSeries(3, "__name__", "up", "instance", "a"),
		genSeries(3, "__name__", "up", "cluster", "own", "instance", "c"), // ext cluster="eu" wins
		genSeries(3, "__name__", "up", "instance", "d", "replica", "x"),   // equal to the next once replica is stripped
		genSeries(3, "__name__", "up", "instance", "d"),
		genSeries(3, "__name__", "other", "instance", "a"),
	}
	fp := newFakeProm(t, testExt, stored...)
	env := startStore(t, fp, Limits{}, true)
	req := allTime(eq("__name__", "up"))
	req.SkipChunks = true
	req.WithoutReplicaLabels = []string{"replica"}
	got, err := env.series(t, req)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{__name__="up", cluster="eu", instance="a"}`,
		`{__name__="up", cluster="eu", instance="b"}`,
		`{__name__="up", cluster="eu", instance="c"}`,
		`{__name__="up", cluster="eu", instance="d"}`,
	}
	if gotS := labelStrings(got); strings.Join(gotS, " ") != strings.Join(want, " ") {
		t.Fatalf("skip_chunks series:\n got %q\nwant %q", gotS, want)
	}
	for _, s := range got {
		if len(s.Chunks) != 0 {
			t.Fatalf("%s has chunks", storeapi.LabelsFromProto(s.Labels))
		}
	}
	if n := len(fp.readRequests()); n != 0 {
		t.Fatalf("%d remote reads for a skip_chunks request, want none", n)
	}

	// The series limit applies; the request's own limit cuts quietly.
	if _, err := startStore(t, fp, Limits{Series: 3}, true).series(t, req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over --store.limits.request-series: %v, want ResourceExhausted", err)
	}
	req.Limit = 2
	if got, err := env.series(t, req); err != nil || len(got) != 2 {
		t.Fatalf("limit 2: %d series, %v", len(got), err)
	}
}

package query

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// TestProxyRequestLimits: the series, samples and bytes received from all endpoints
// together are bounded per request; at the bound the request succeeds, one over it fails
// with ResourceExhausted naming the flag, with partial response too.
func TestProxyRequestLimits(t *testing.T) {
	a := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 10, 1, 0)...)
	b := newFakeStore(labels.FromStrings("replica", "b"), numbered(t, "up", 10, 1, 0)...)
	for _, tc := range []struct {
		limits storeapi.RequestLimits
		flag   string // "" = must succeed
	}{
		{storeapi.RequestLimits{Series: 20}, ""},
		{storeapi.RequestLimits{Series: 19}, "--store.limits.request-series"},
		{storeapi.RequestLimits{Samples: 20}, ""}, // one sample per series
		{storeapi.RequestLimits{Samples: 19}, "--store.limits.request-samples"},
		{storeapi.RequestLimits{Bytes: 1 << 20}, ""},
		{storeapi.RequestLimits{Bytes: 100}, "--query.max-fetched-bytes"},
	} {
		p, _ := proxyOver(t, 0, a, b)
		p.WithLimits(tc.limits)
		req := seriesReq(eq("__name__", "up"))
		req.PartialResponseStrategy = storepb.PartialResponseStrategy_WARN
		m := mustSeries(t, p, req)
		got := drain(m)
		switch {
		case tc.flag == "" && (m.Err() != nil || len(got) != 20):
			t.Errorf("%+v: %d series, err %v; want 20 and no error", tc.limits, len(got), m.Err())
		case tc.flag != "" && (status.Code(m.Err()) != codes.ResourceExhausted || !strings.Contains(m.Err().Error(), tc.flag)):
			t.Errorf("%+v: err %v; want ResourceExhausted naming %s", tc.limits, m.Err(), tc.flag)
		}
	}
}

// TestQueryFetchedBytesLimit: through the engine the bound is a query error, not a
// partial answer.
func TestQueryFetchedBytesLimit(t *testing.T) {
	_, _, addrs, _ := haPair(t, false)
	set := newSet(t, addrs...)
	mustHealthy(t, set, 2)
	qf := NewQueryableFactory(NewProxy(set, 0, discard).WithLimits(storeapi.RequestLimits{Bytes: 64}), dedup.GapFill)
	opts := dedupOn
	opts.PartialResponse = true
	qry, err := testEngine.NewRangeQuery(context.Background(), qf(opts), nil, "up", time.UnixMilli(0), time.UnixMilli(hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err == nil || !strings.Contains(res.Err.Error(), "--query.max-fetched-bytes") {
		t.Fatalf("err = %v, want the fetched bytes limit", res.Err)
	}
}

package receive

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/hashring"
	"github.com/vigilhq/vigil/internal/storeapi/writepb"
)

func TestWriteQuorum(t *testing.T) {
	for rf, want := range map[int]int{1: 1, 2: 1, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		if got := writeQuorum(rf); got != want {
			t.Errorf("writeQuorum(%d) = %d, want %d", rf, got, want)
		}
	}
}

func TestCauseOf(t *testing.T) {
	cases := []struct {
		err  error
		want Cause
	}{
		{writeErr(CauseTooMany, "x"), CauseTooMany},
		{fmt.Errorf("wrapped: %w", writeErr(CauseTooLarge, "x")), CauseTooLarge},
		{fmt.Errorf("append: %w", storage.ErrOutOfOrderSample), CauseConflict},
		{storage.ErrDuplicateSampleForTimestamp, CauseConflict},
		{storage.ErrOutOfBounds, CauseConflict},
		{storage.ErrTooOldSample, CauseConflict},
		{context.DeadlineExceeded, CauseUnavailable},
		{fmt.Errorf("x: %w", context.Canceled), CauseUnavailable},
		{status.Error(codes.InvalidArgument, "x"), CauseBadRequest},
		{status.Error(codes.AlreadyExists, "x"), CauseConflict},
		{status.Error(codes.OutOfRange, "x"), CauseTooLarge},
		{status.Error(codes.ResourceExhausted, "x"), CauseTooMany},
		{status.Error(codes.Unavailable, "x"), CauseUnavailable},
		{status.Error(codes.DeadlineExceeded, "x"), CauseUnavailable},
		{status.Error(codes.Unimplemented, "x"), CauseUnavailable},
		{fmt.Errorf("forward: %w", status.Error(codes.AlreadyExists, "x")), CauseConflict},
		{status.Error(codes.Internal, "x"), CauseInternal},
		{errors.New("disk on fire"), CauseInternal},
	}
	for _, tc := range cases {
		if got := CauseOf(tc.err); got != tc.want {
			t.Errorf("CauseOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	// Every cause survives the trip through a gRPC status, and has its HTTP status.
	wantHTTP := map[Cause]int{CauseInternal: 500, CauseBadRequest: 400, CauseConflict: 409, CauseTooLarge: 413, CauseTooMany: 429, CauseUnavailable: 503}
	for c, code := range wantHTTP {
		if got := CauseOf(status.Error(c.grpcCode(), "x")); got != c {
			t.Errorf("cause %d through gRPC became %d", c, got)
		}
		if got := CauseOf((&WriteError{Cause: c, Err: errors.New("x")}).GRPCStatus().Err()); got != c {
			t.Errorf("cause %d through GRPCStatus became %d", c, got)
		}
		if got := c.HTTPStatus(); got != code {
			t.Errorf("cause %d: HTTP %d, want %d", c, got, code)
		}
	}
}

func TestQuorumErrorDominantCause(t *testing.T) {
	conflict := status.Error(codes.AlreadyExists, "conflict")
	unavail := status.Error(codes.Unavailable, "down")
	bad := writeErr(CauseBadRequest, "bad")
	cases := []struct {
		name string
		errs []error
		want Cause
	}{
		{"all conflicts", []error{conflict, conflict, conflict}, CauseConflict},
		{"majority conflict", []error{conflict, unavail, conflict}, CauseConflict},
		{"majority unavailable", []error{unavail, conflict, unavail}, CauseUnavailable},
		{"tie goes to the retried cause", []error{conflict, unavail}, CauseUnavailable},
		{"tie internal vs bad request", []error{bad, errors.New("x")}, CauseInternal},
		{"majority bad request", []error{bad, bad, errors.New("x")}, CauseBadRequest},
		{"no errors", nil, CauseUnavailable},
	}
	for _, tc := range cases {
		err := quorumError(tc.errs, 2, 3)
		if got := CauseOf(err); got != tc.want {
			t.Errorf("%s: cause %d, want %d (%v)", tc.name, got, tc.want, err)
		}
	}
}

// clusterFront serves HTTP remote write over node's distributor.
func clusterFront(t *testing.T, nd *ringNode) string {
	t.Helper()
	_, url := serveHTTP(t, prometheus.NewRegistry(), nd.dist, HandlerOptions{DefaultTenant: "default-tenant"})
	return url
}

func clusterWrite(t *testing.T, url, tenant string, series ...prompb.TimeSeries) (int, string) {
	t.Helper()
	code, body, _ := post(t, url+"/api/v1/receive", encodeV1(t, series...), rw1Headers(tenant))
	return code, body
}

func TestReplicationReachesAllReplicas(t *testing.T) {
	nodes := newCluster(t, 3, 3)
	in := append(mixedSeries(nowMs()), manySeries("spread", 20, 2)...)
	if code, body := clusterWrite(t, clusterFront(t, nodes[0]), "team", in...); code != http.StatusOK {
		t.Fatalf("status %d (%s)", code, body)
	}
	want := expected(in...)
	for i, nd := range nodes {
		eventually(t, 5*time.Second, func() string {
			if d := diffDumps(dump(t, nd.tenants, "team"), want); d != "" {
				return fmt.Sprintf("node %d: %s", i, d)
			}
			return ""
		})
		if got := exemplarCount(t, nd.tenants, "team"); got != 1 {
			t.Errorf("node %d: %d exemplars, want 1", i, got)
		}
	}
	// A conflict on every replica comes back as 409 through the forwards.
	stale := floatSeries("spread_0", nowMs()-30_000, 1, 1)
	if code, body := clusterWrite(t, clusterFront(t, nodes[1]), "team", stale); code != http.StatusConflict {
		t.Errorf("out-of-order write through the ring: status %d (%s), want 409", code, body)
	}
}

func TestReplicationOnePeerDown(t *testing.T) {
	nodes := newCluster(t, 3, 3)
	nodes[2].srv.Stop()
	in := manySeries("s", 30, 3)
	if code, body := clusterWrite(t, clusterFront(t, nodes[0]), "team", in...); code != http.StatusOK {
		t.Fatalf("status %d (%s), want 200 with 2 of 3 replicas", code, body)
	}
	want := expected(in...)
	// The quorum was met by the two live receivers, so both hold everything already.
	for _, i := range []int{0, 1} {
		if d := diffDumps(dump(t, nodes[i].tenants, "team"), want); d != "" {
			t.Errorf("node %d: %s", i, d)
		}
	}
	if got := len(dump(t, nodes[2].tenants, "team")); got != 0 {
		t.Errorf("stopped node holds %d series", got)
	}
}

func TestReplicationTwoPeersDown(t *testing.T) {
	nodes := newCluster(t, 3, 3)
	nodes[1].srv.Stop()
	nodes[2].srv.Stop()
	in := manySeries("s", 5, 1)
	if code, body := clusterWrite(t, clusterFront(t, nodes[0]), "team", in...); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d (%s), want 503", code, body)
	}
	err := nodes[0].dist.Write(context.Background(), "team", manySeries("t", 2, 1), 0)
	if err == nil || CauseOf(err) != CauseUnavailable {
		t.Fatalf("Write = %v (cause %d), want CauseUnavailable", err, CauseOf(err))
	}
}

func TestForwardedWriteStoredLocallyOnly(t *testing.T) {
	nodes := newCluster(t, 3, 3)
	c := dialWriteable(t, nodes[1].addr)
	in := manySeries("fwd", 10, 2)
	if _, err := c.RemoteWrite(context.Background(), &writepb.WriteRequest{Timeseries: in, Tenant: "team", Replica: 2}); err != nil {
		t.Fatal(err)
	}
	if d := diffDumps(dump(t, nodes[1].tenants, "team"), expected(in...)); d != "" {
		t.Error(d)
	}
	time.Sleep(100 * time.Millisecond)
	for _, i := range []int{0, 2} {
		if got := len(dump(t, nodes[i].tenants, "team")); got != 0 {
			t.Errorf("node %d got %d series of a forwarded write", i, got)
		}
	}
	// Without a replica number the gRPC write is a fresh one, replicated to all; an
	// empty tenant is the default tenant.
	fresh := manySeries("fresh", 3, 1)
	if _, err := c.RemoteWrite(context.Background(), &writepb.WriteRequest{Timeseries: fresh}); err != nil {
		t.Fatal(err)
	}
	for i, nd := range nodes {
		eventually(t, 5*time.Second, func() string {
			if d := diffDumps(dump(t, nd.tenants, "default-tenant"), expected(fresh...)); d != "" {
				return fmt.Sprintf("node %d: %s", i, d)
			}
			return ""
		})
	}
	// Causes travel as gRPC codes.
	_, err := c.RemoteWrite(context.Background(), &writepb.WriteRequest{Timeseries: in, Tenant: "../x", Replica: 1})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad tenant: %v, want InvalidArgument", err)
	}
	_, err = c.RemoteWrite(context.Background(), &writepb.WriteRequest{Timeseries: []prompb.TimeSeries{floatSeries("fwd_0", nowMs()-30_000, 1, 1)}, Tenant: "team", Replica: 1})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("out-of-order forward: %v, want AlreadyExists", err)
	}
}

// TestPlacementFollowsRing: with RF 2 of 3, each series is stored exactly on the two
// endpoints the ring names for it.
func TestPlacementFollowsRing(t *testing.T) {
	nodes := newCluster(t, 3, 2)
	in := manySeries("p", 40, 1)
	if code, body := clusterWrite(t, clusterFront(t, nodes[0]), "team", in...); code != http.StatusOK {
		t.Fatalf("status %d (%s)", code, body)
	}
	byAddr := map[string]*ringNode{}
	for _, nd := range nodes {
		byAddr[nd.addr] = nd
	}
	ring := nodes[0].dist.Ring()
	want := map[string]map[string][]point{}
	for _, s := range in {
		h := hashring.HashSeries("team", s.Labels)
		for n := range 2 {
			ep, err := ring.GetN("team", h, uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			if want[ep.Address] == nil {
				want[ep.Address] = map[string][]point{}
			}
			for k, v := range expected(s) {
				want[ep.Address][k] = v
			}
		}
	}
	for addr, w := range want {
		eventually(t, 5*time.Second, func() string {
			return diffDumps(dump(t, byAddr[addr].tenants, "team"), w)
		})
	}
}

// TestEmptyGRPCWriteWithRing: a fresh RemoteWrite without series stores nothing and
// succeeds, as it does without a ring and over HTTP.
func TestEmptyGRPCWriteWithRing(t *testing.T) {
	nodes := newCluster(t, 3, 3)
	_, err := dialWriteable(t, nodes[0].addr).RemoteWrite(context.Background(), &writepb.WriteRequest{Tenant: "team"})
	if err != nil {
		t.Fatalf("an empty fresh write over a ring failed: %v", err)
	}
}

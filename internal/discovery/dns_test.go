package discovery

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func resolveOK(t *testing.T, d *DNS, specs ...string) []string {
	t.Helper()
	got, err := d.Resolve(context.Background(), specs)
	if err != nil {
		t.Fatalf("Resolve(%q): unexpected error %v", specs, err)
	}
	return got
}

func assertAddrs(t *testing.T, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("addresses = %q, want %q", got, want)
	}
}

func TestDNSResolveA(t *testing.T) {
	r := newFakeResolver()
	r.setIPs("store.ns.svc", "10.0.0.2", "::1", "10.0.0.1", "fe80::1%eth0")
	d := NewDNS(r, nil, nil)

	want := []string{"10.0.0.1:10901", "10.0.0.2:10901", "[::1]:10901", "[fe80::1%eth0]:10901"}
	assertAddrs(t, resolveOK(t, d, "dns+store.ns.svc:10901"), want...)
	assertAddrs(t, resolveOK(t, d, "dnsdualstack+store.ns.svc:10901"), want...)
}

func TestDNSResolveSRV(t *testing.T) {
	r := newFakeResolver()
	r.setSRV("_grpc._tcp.store.ns",
		&net.SRV{Target: "store-0.store.ns.svc.", Port: 10901},
		&net.SRV{Target: "store-1.store.ns.svc.", Port: 10902},
	)
	r.setIPs("store-0.store.ns.svc", "10.0.0.1")
	r.setIPs("store-1.store.ns.svc", "10.0.0.3", "10.0.0.2")
	d := NewDNS(r, nil, nil)

	assertAddrs(t, resolveOK(t, d, "dnssrv+_grpc._tcp.store.ns"),
		"10.0.0.1:10901", "10.0.0.2:10902", "10.0.0.3:10902")
	// An explicit port overrides the SRV ports.
	assertAddrs(t, resolveOK(t, d, "dnssrv+_grpc._tcp.store.ns:19000"),
		"10.0.0.1:19000", "10.0.0.2:19000", "10.0.0.3:19000")
	// dnssrvnoa+ returns the SRV targets as they are, without A lookups.
	assertAddrs(t, resolveOK(t, d, "dnssrvnoa+_grpc._tcp.store.ns"),
		"store-0.store.ns.svc.:10901", "store-1.store.ns.svc.:10902")

	// A target whose A lookup fails makes the whole spec fail.
	r.setErr("store-1.store.ns.svc", timeoutErr("store-1.store.ns.svc"))
	d2 := NewDNS(r, nil, nil)
	got, err := d2.Resolve(context.Background(), []string{"dnssrv+_grpc._tcp.store.ns"})
	if err == nil || !strings.Contains(err.Error(), "store-1.store.ns.svc") {
		t.Fatalf("Resolve error = %v, want one naming store-1.store.ns.svc", err)
	}
	assertAddrs(t, got)
}

func TestDNSResolveStaticDedupSorted(t *testing.T) {
	r := newFakeResolver()
	r.setIPs("store", "10.0.0.1", "10.0.0.2")
	d := NewDNS(r, nil, nil)
	got := resolveOK(t, d, "z:1", "10.0.0.2:10901", "dns+store:10901", "z:1", "a:1", "dnsdualstack+store:10901")
	assertAddrs(t, got, "10.0.0.1:10901", "10.0.0.2:10901", "a:1", "z:1")
}

func TestDNSFailureKeepsLastGood(t *testing.T) {
	r := newFakeResolver()
	r.setIPs("store", "10.0.0.1", "10.0.0.2")
	r.setSRV("_grpc._tcp.rule", &net.SRV{Target: "rule-0.", Port: 10901})
	reg := prometheus.NewPedanticRegistry()
	d := NewDNS(r, nil, reg)
	specs := []string{"dns+store:10901", "dnssrvnoa+_grpc._tcp.rule", "static:1"}

	assertAddrs(t, resolveOK(t, d, specs...), "10.0.0.1:10901", "10.0.0.2:10901", "rule-0.:10901", "static:1")

	r.setErr("store", timeoutErr("store"))
	r.setErr("_grpc._tcp.rule", errors.New("server misbehaving"))
	got, err := d.Resolve(context.Background(), specs)
	if err == nil {
		t.Fatal("Resolve: want an error for the failed lookups")
	}
	for _, w := range []string{`"dns+store:10901"`, `"dnssrvnoa+_grpc._tcp.rule"`, "i/o timeout", "server misbehaving"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	assertAddrs(t, got, "10.0.0.1:10901", "10.0.0.2:10901", "rule-0.:10901", "static:1")

	// It keeps the last good result across several failures, too.
	got, _ = d.Resolve(context.Background(), specs)
	assertAddrs(t, got, "10.0.0.1:10901", "10.0.0.2:10901", "rule-0.:10901", "static:1")

	// Recovery replaces the cached result.
	r.setIPs("store", "10.0.0.9")
	r.setSRV("_grpc._tcp.rule", &net.SRV{Target: "rule-1.", Port: 10903})
	assertAddrs(t, resolveOK(t, d, specs...), "10.0.0.9:10901", "rule-1.:10903", "static:1")

	if got := testutil.ToFloat64(d.lookups); got != 8 {
		t.Errorf("vigil_dns_lookups_total = %v, want 8", got)
	}
	if got := testutil.ToFloat64(d.failures); got != 4 {
		t.Errorf("vigil_dns_failures_total = %v, want 4", got)
	}
	if n, err := testutil.GatherAndCount(reg, "vigil_dns_lookups_total", "vigil_dns_failures_total"); err != nil || n != 2 {
		t.Errorf("registered metrics = %d (%v), want 2", n, err)
	}
}

func TestDNSFailureWithoutHistoryYieldsNothing(t *testing.T) {
	r := newFakeResolver()
	r.setIPs("store", "10.0.0.1")
	d := NewDNS(r, nil, nil)
	assertAddrs(t, resolveOK(t, d, "dns+store:1"), "10.0.0.1:1")

	// A spec not asked for in the last call is forgotten.
	assertAddrs(t, resolveOK(t, d, "static:1"), "static:1")
	r.setErr("store", timeoutErr("store"))
	got, err := d.Resolve(context.Background(), []string{"dns+store:1", "static:1"})
	if err == nil {
		t.Fatal("want error")
	}
	assertAddrs(t, got, "static:1")
}

func TestDNSNotFoundIsEmptyNotFailure(t *testing.T) {
	r := newFakeResolver()
	r.setIPs("store", "10.0.0.1")
	d := NewDNS(r, nil, nil)
	assertAddrs(t, resolveOK(t, d, "dns+store:1"), "10.0.0.1:1")

	// As in Thanos, NXDOMAIN means "no addresses" rather than a failure.
	r.setErr("store", &net.DNSError{Err: "no such host", Name: "store", IsNotFound: true})
	assertAddrs(t, resolveOK(t, d, "dns+store:1", "dnssrv+_grpc._tcp.gone"))
	if got := testutil.ToFloat64(d.failures); got != 0 {
		t.Errorf("vigil_dns_failures_total = %v, want 0", got)
	}
}

func TestDNSInvalidSpecReported(t *testing.T) {
	d := NewDNS(newFakeResolver(), nil, nil)
	got, err := d.Resolve(context.Background(), []string{"foo+x:1", "a:1", "dns+nopport"})
	if err == nil || !strings.Contains(err.Error(), `unknown prefix "foo+"`) || !strings.Contains(err.Error(), `"dns+nopport": missing port`) {
		t.Fatalf("error = %v, want both invalid specs reported", err)
	}
	assertAddrs(t, got, "a:1")
}

func TestDNSMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newFakeResolver()
	r.setIPs("store", "10.0.0.1")
	d1 := NewDNS(r, nil, reg)
	d2 := NewDNS(r, nil, reg) // must not panic
	resolveOK(t, d1, "dns+store:1")
	resolveOK(t, d2, "dns+store:1")
	if got := testutil.ToFloat64(d1.lookups); got != 2 {
		t.Errorf("shared vigil_dns_lookups_total = %v, want 2", got)
	}
}

func TestDNSRealLocalhost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := NewDNS(net.DefaultResolver, nil, nil)
	got, err := d.Resolve(ctx, []string{"dns+localhost:10901"})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if len(got) == 0 {
		t.Fatal("dns+localhost:10901 resolved to nothing")
	}
	for _, a := range got {
		if a != "127.0.0.1:10901" && a != "[::1]:10901" {
			t.Errorf("unexpected address %q for localhost", a)
		}
	}
}

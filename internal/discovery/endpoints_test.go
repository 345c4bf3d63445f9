package discovery

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestEndpointsRefreshCombinesSources(t *testing.T) {
	r := newFakeResolver()
	r.setIPs("store.ns.svc", "10.0.0.2", "10.0.0.1")
	r.setSRV("_grpc._tcp.rule.ns", &net.SRV{Target: "rule-0.rule.ns.svc.", Port: 10901})
	r.setIPs("rule-0.rule.ns.svc", "10.0.1.1", "fd00::1")

	dir := t.TempDir()
	path := filepath.Join(dir, "sd.json")
	writeFile(t, path, `[{"targets": ["a:1", "dns+store.ns.svc:10901", "dnssrv+_grpc._tcp.rule.ns"]}]`)
	fsd := NewFileSD([]string{path}, 0, nil, nil)

	e := NewEndpoints([]string{"z:1", "dns+store.ns.svc:10901", "a:1", "10.0.0.1:10901"}, fsd, NewDNS(r, nil, nil), time.Hour, nil)
	if got := e.Addresses(); len(got) != 0 {
		t.Fatalf("Addresses before Refresh = %q, want none", got)
	}
	// Refresh reads the files itself if they were never read.
	if err := e.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	want := []string{"10.0.0.1:10901", "10.0.0.2:10901", "10.0.1.1:10901", "[fd00::1]:10901", "a:1", "z:1"}
	if got := e.Addresses(); !slices.Equal(got, want) {
		t.Fatalf("Addresses = %q, want %q", got, want)
	}

	// Failures keep last good results and are reported.
	r.setErr("store.ns.svc", timeoutErr("store.ns.svc"))
	writeFile(t, path, `not json`)
	if err := fsd.Refresh(context.Background()); err == nil {
		t.Fatal("want a file error")
	}
	err := e.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "dns+store.ns.svc:10901") {
		t.Fatalf("Refresh = %v, want an error naming dns+store.ns.svc:10901", err)
	}
	if got := e.Addresses(); !slices.Equal(got, want) {
		t.Fatalf("Addresses after failures = %q, want %q", got, want)
	}
}

func TestEndpointsWithoutFileSD(t *testing.T) {
	r := newFakeResolver()
	r.setIPs("store", "10.0.0.1")
	e := NewEndpoints([]string{"dns+store:1", "b:2"}, nil, NewDNS(r, nil, nil), time.Hour, nil)
	if err := e.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := e.Addresses(), []string{"10.0.0.1:1", "b:2"}; !slices.Equal(got, want) {
		t.Fatalf("Addresses = %q, want %q", got, want)
	}
}

func runEndpoints(t *testing.T, e *Endpoints) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func TestEndpointsRunFollowsFileChanges(t *testing.T) {
	r := newFakeResolver()
	r.setIPs("store", "10.0.0.1")
	r.setIPs("other", "10.0.0.7", "::7")
	path := filepath.Join(t.TempDir(), "sd.yaml")
	writeFile(t, path, "- targets: [dns+store:10901]\n")
	fsd := NewFileSD([]string{path}, time.Hour, nil, nil)
	// Long DNS interval: only file changes can trigger the later updates.
	e := NewEndpoints([]string{"static:1"}, fsd, NewDNS(r, nil, nil), time.Hour, nil)
	runEndpoints(t, e)

	has := func(want ...string) func() bool {
		return func() bool { return slices.Equal(e.Addresses(), want) }
	}
	waitFor(t, "initial addresses", has("10.0.0.1:10901", "static:1"))

	replaceFile(t, path, "- targets: [dns+store:10901, dns+other:10902]\n")
	waitFor(t, "addresses from the changed file", has("10.0.0.1:10901", "10.0.0.7:10902", "[::7]:10902", "static:1"))

	replaceFile(t, path, "[]\n")
	waitFor(t, "addresses after emptying the file", has("static:1"))
}

func TestEndpointsRunReResolvesEveryInterval(t *testing.T) {
	r := newFakeResolver()
	r.setIPs("store", "10.0.0.1")
	e := NewEndpoints([]string{"dns+store:10901"}, nil, NewDNS(r, nil, nil), 10*time.Millisecond, nil)
	runEndpoints(t, e)
	waitFor(t, "initial resolution", func() bool { return slices.Equal(e.Addresses(), []string{"10.0.0.1:10901"}) })

	r.setIPs("store", "10.0.0.2", "10.0.0.3")
	waitFor(t, "re-resolution", func() bool {
		return slices.Equal(e.Addresses(), []string{"10.0.0.2:10901", "10.0.0.3:10901"})
	})

	// A failing lookup keeps the last good addresses while re-resolving.
	r.setErr("store", timeoutErr("store"))
	waitFor(t, "failed re-resolutions", func() bool { return testutil.ToFloat64(e.dns.failures) >= 2 })
	if got, want := e.Addresses(), []string{"10.0.0.2:10901", "10.0.0.3:10901"}; !slices.Equal(got, want) {
		t.Fatalf("Addresses after failures = %q, want %q", got, want)
	}
}

package up

import (
	"net"
	"slices"
	"strings"
	"testing"
)

// flagValues returns the values of --name=value in args.
func flagValues(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func partByName(t *testing.T, parts []Part, name string) Part {
	t.Helper()
	for _, p := range parts {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no part %q", name)
	return Part{}
}

func TestLayoutListensOnLoopbackOnly(t *testing.T) {
	seen := map[string]string{}
	for _, p := range testLayout(t).parts() {
		for _, flag := range []string{"http-address", "grpc-address", "web.listen-address"} {
			for _, addr := range flagValues(p.Args, flag) {
				host, _, err := net.SplitHostPort(addr)
				if err != nil || host != "127.0.0.1" {
					t.Errorf("%s: --%s=%s, want 127.0.0.1:<port>", p.Name, flag, addr)
				}
				if other, dup := seen[addr]; dup {
					t.Errorf("%s and %s both listen on %s", other, p.Name, addr)
				}
				seen[addr] = p.Name
			}
		}
		if p.Name == "alertmanager" && !slices.Contains(p.Args, "--cluster.listen-address=") {
			t.Errorf("alertmanager without --cluster.listen-address= would listen on 0.0.0.0:9094: %v", p.Args)
		}
	}
	if len(seen) != portsNeeded(testLayout(t).bins)+1 {
		t.Errorf("%d listen addresses, want %d", len(seen), portsNeeded(testLayout(t).bins)+1)
	}
}

func TestLayoutWiring(t *testing.T) {
	l := testLayout(t)
	parts := l.parts()
	if parts[0].Name != "query" || parts[0].HTTPAddr != "127.0.0.1:9090" {
		t.Errorf("first part %s on %s, want the querier on --http-address", parts[0].Name, parts[0].HTTPAddr)
	}
	q := partByName(t, parts, "query")
	wantEndpoints := []string{l.sidecar[0].grpc, l.sidecar[1].grpc, l.store.grpc, l.rule.grpc}
	if got := flagValues(q.Args, "endpoint"); !slices.Equal(got, wantEndpoints) {
		t.Errorf("query endpoints %v, want %v", got, wantEndpoints)
	}
	if got := flagValues(q.Args, "query.replica-label"); !slices.Equal(got, []string{"replica"}) {
		t.Errorf("query replica labels %v", got)
	}
	for i := range 2 {
		p := partByName(t, parts, promName(i))
		for _, want := range []string{"--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h", "--web.enable-lifecycle"} {
			if !slices.Contains(p.Args, want) {
				t.Errorf("%s lacks %s: %v", p.Name, want, p.Args)
			}
		}
		s := partByName(t, parts, sidecarName(i))
		if got := flagValues(s.Args, "prometheus.url"); !slices.Equal(got, []string{"http://" + l.prometheus[i]}) {
			t.Errorf("%s: --prometheus.url %v", s.Name, got)
		}
		if got, want := flagValues(s.Args, "tsdb.path"), flagValues(p.Args, "storage.tsdb.path"); !slices.Equal(got, want) {
			t.Errorf("%s: --tsdb.path %v, Prometheus stores in %v", s.Name, got, want)
		}
	}
	for _, name := range []string{"sidecar-0", "sidecar-1", "store", "compact", "rule"} {
		p := partByName(t, parts, name)
		if got := flagValues(p.Args, "objstore.config-file"); !slices.Equal(got, []string{"/data/bucket.yml"}) {
			t.Errorf("%s: --objstore.config-file %v", name, got)
		}
		if p.Path != "/bin/vigil" || p.Args[0] != strings.SplitN(name, "-", 2)[0] {
			t.Errorf("%s runs %s %v", name, p.Path, p.Args)
		}
	}
	if !slices.Contains(partByName(t, parts, "compact").Args, "--wait") {
		t.Error("compact runs without --wait")
	}
	r := partByName(t, parts, "rule")
	if got := flagValues(r.Args, "query"); !slices.Equal(got, []string{"127.0.0.1:9090"}) {
		t.Errorf("rule --query %v", got)
	}
	if got := flagValues(r.Args, "alertmanagers.url"); !slices.Equal(got, []string{"http://" + l.alertmanager}) {
		t.Errorf("rule --alertmanagers.url %v", got)
	}
}

func TestLayoutWithoutOptionalParts(t *testing.T) {
	b := binaries{vigil: "v", prometheus: "p"}
	ports := make([]int, portsNeeded(b))
	for i := range ports {
		ports[i] = 30000 + i
	}
	l, err := newLayout(b, "/d", "/d/b.yml", "info", "0.0.0.0:9090", ports)
	if err != nil {
		t.Fatal(err)
	}
	parts := l.parts()
	if len(parts) != 8 {
		t.Errorf("%d parts, want 8", len(parts))
	}
	r := partByName(t, parts, "rule")
	if got := flagValues(r.Args, "alertmanagers.url"); len(got) != 0 {
		t.Errorf("rule sends to %v with no Alertmanager", got)
	}
	// The querier listens on every address; the others reach it on loopback.
	if got := flagValues(r.Args, "query"); !slices.Equal(got, []string{"127.0.0.1:9090"}) {
		t.Errorf("rule --query %v", got)
	}
	if _, err := newLayout(b, "/d", "/d/b.yml", "info", ":9090", ports[1:]); err == nil {
		t.Error("newLayout accepted too few ports")
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		":9090": "127.0.0.1:9090", "0.0.0.0:9090": "127.0.0.1:9090", "[::]:9090": "127.0.0.1:9090",
		"127.0.0.1:9090": "127.0.0.1:9090", "10.0.0.1:80": "10.0.0.1:80", "localhost:1": "localhost:1", "junk": "junk",
	} {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := freePorts(20, 9090)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] || slices.Contains(wellKnownPorts, p) {
			t.Errorf("port %d handed out twice or well known: %v", p, ports)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p)))
		if err != nil {
			t.Errorf("port %d is not free: %v", p, err)
			continue
		}
		ln.Close()
	}
}

func TestCheckListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := checkListen(ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "--http-address") {
		t.Errorf("checkListen on a taken port: %v", err)
	}
	for _, bad := range []string{"127.0.0.1:0", "nohost", "127.0.0.1:http"} {
		if _, err := checkListen(bad); err == nil {
			t.Errorf("checkListen(%q) accepted", bad)
		}
	}
}

func TestMissingPrometheus(t *testing.T) {
	_, err := findBinaries(Config{PrometheusBinary: "no-such-prometheus-binary", VigilBinary: "v"})
	if err == nil {
		t.Fatal("no error for a missing Prometheus")
	}
	for _, want := range []string{"apt-get install prometheus", "https://prometheus.io/download/", "--prometheus.binary"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestOptionalBinaries(t *testing.T) {
	if p, err := optional("none", []string{"sh"}); p != "" || err != nil {
		t.Errorf(`optional("none") = %q, %v`, p, err)
	}
	if p, err := optional("", []string{"no-such-binary-1", "sh"}); !strings.HasSuffix(p, "/sh") || err != nil {
		t.Errorf(`optional("") = %q, %v; want the first name found`, p, err)
	}
	if p, err := optional("", []string{"no-such-binary-1"}); p != "" || err != nil {
		t.Errorf(`optional("") with nothing installed = %q, %v`, p, err)
	}
	if _, err := optional("no-such-binary-2", nil); err == nil {
		t.Error("optional with a named binary that is missing: no error")
	}
}

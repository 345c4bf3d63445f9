package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// targets is what each Prometheus scrapes: the generator and both Prometheus servers.
// count(up) is 3 per replica, 3 deduplicated and 6 with dedup=false.
const targets = 3

// querier is one `vigil query` or `thanos query`.
type querier struct {
	name      string
	p         *benchkit.Proc
	url       string
	endpoints []string // the sidecars it must see healthy
	ready     time.Duration
}

// stack is everything the program started.
type stack struct {
	work     string
	gen      *http.Server
	genAddr  string
	hole     *benchkit.Blackhole
	procs    []*benchkit.Proc // in start order
	prom     [2]*benchkit.Proc
	promURL  [2]string
	side     [2]*benchkit.Proc // vigil sidecars of r0 and r1
	sideGRPC [2]string
	thSide   *benchkit.Proc // thanos sidecar of r0
	thGRPC   string

	vq, tq     *querier // vigil and thanos querier over both vigil sidecars
	vqBH, tqBH *querier // the same plus the blackhole endpoint
	vqInterop  *querier // vigil querier over the thanos sidecar (r0) and the vigil sidecar of r1
}

var replicas = [2]string{"r0", "r1"}

// stop thaws and stops every process, newest first, and closes the listeners.
func (s *stack) stop() {
	for _, p := range s.procs {
		p.Thaw() // a stopped process would not act on SIGTERM
	}
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop(15 * time.Second)
	}
	if s.gen != nil {
		s.gen.Close()
	}
	if s.hole != nil {
		s.hole.Close()
	}
}

// running lists processes that are still alive (none after stop).
func (s *stack) running() []string {
	var out []string
	for _, p := range s.procs {
		if !p.Exited() {
			out = append(out, fmt.Sprintf("%s (pid %d)", p.Name, p.Cmd.Process.Pid))
		}
	}
	return out
}

func (s *stack) startProc(name, bin string, args ...string) (*benchkit.Proc, error) {
	p, err := benchkit.StartProc(s.work, name, bin, args...)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return p, nil
}

func freeAddrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := benchkit.FreeAddr()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// serveGenerator serves n gauges in the text exposition format on a free port: the
// series of the heavy selector.
func (s *stack) serveGenerator(n int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.genAddr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		now := time.Now().Unix()
		var b strings.Builder
		b.WriteString("# HELP reliability_gauge A generated series of the heavy selector.\n# TYPE reliability_gauge gauge\n")
		for i := range n {
			fmt.Fprintf(&b, "reliability_gauge{group=\"g%03d\",idx=\"%05d\"} %d\n", i/100, i, now%1000+int64(i))
		}
		w.Write([]byte(b.String()))
	})
	s.gen = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.gen.Serve(ln)
	return nil
}

// start brings everything up and waits until every querier answers with both replicas.
func (s *stack) start(ctx context.Context, o options) error {
	if err := s.serveGenerator(o.series); err != nil {
		return err
	}
	var err error
	if s.hole, err = benchkit.StartBlackhole(); err != nil {
		return err
	}
	promAddrs, err := freeAddrs(2)
	if err != nil {
		return err
	}
	for i, r := range replicas {
		cfg := filepath.Join(s.work, "prometheus-"+r+".yml")
		yml := fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: 15s
  external_labels: {cluster: reliability, replica: %s}
scrape_configs:
  - job_name: gen
    static_configs: [{targets: ['%s']}]
  - job_name: prometheus
    static_configs: [{targets: ['%s', '%s']}]
`, o.scrape, r, s.genAddr, promAddrs[0], promAddrs[1])
		if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
			return err
		}
		p, err := s.startProc("prometheus-"+r, o.prom, "--config.file="+cfg,
			"--storage.tsdb.path="+filepath.Join(s.work, "data-"+r), "--web.listen-address="+promAddrs[i],
			"--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h")
		if err != nil {
			return err
		}
		s.prom[i], s.promURL[i] = p, "http://"+promAddrs[i]
	}
	for i, p := range s.prom {
		u := s.promURL[i]
		if err := benchkit.WaitFor(ctx, p.Name+" ready", 2*time.Minute, p, func() error { return benchkit.HTTPOK(ctx, u+"/-/ready") }); err != nil {
			return err
		}
		if err := benchkit.WaitFor(ctx, p.Name+" scraped every target", 2*time.Minute, p, func() error {
			return expectValue(ctx, u, url.Values{"query": {`count(reliability_gauge) + count(up == 1)`}}, float64(o.series+targets))
		}); err != nil {
			return err
		}
	}

	// Vigil sidecars beside both, a Thanos sidecar beside r0.
	for i, r := range replicas {
		a, err := freeAddrs(2)
		if err != nil {
			return err
		}
		p, err := s.startProc("vigil-sidecar-"+r, o.vigil, "sidecar", "--prometheus.url="+s.promURL[i],
			"--tsdb.path="+filepath.Join(s.work, "data-"+r), "--grpc-address="+a[0], "--http-address="+a[1])
		if err != nil {
			return err
		}
		s.side[i], s.sideGRPC[i] = p, a[0]
		if err := benchkit.WaitFor(ctx, p.Name+" ready", time.Minute, p, func() error { return benchkit.HTTPOK(ctx, "http://"+a[1]+"/-/ready") }); err != nil {
			return err
		}
	}
	a, err := freeAddrs(2)
	if err != nil {
		return err
	}
	if s.thSide, err = s.startProc("thanos-sidecar-r0", o.thanos, "sidecar", "--prometheus.url="+s.promURL[0],
		"--tsdb.path="+filepath.Join(s.work, "data-r0"), "--grpc-address="+a[0], "--http-address="+a[1]); err != nil {
		return err
	}
	s.thGRPC = a[0]
	if err := benchkit.WaitFor(ctx, "thanos-sidecar-r0 ready", time.Minute, s.thSide, func() error { return benchkit.HTTPOK(ctx, "http://"+a[1]+"/-/ready") }); err != nil {
		return err
	}

	// The queriers, all started before any is waited for: a querier with the blackhole
	// may take one Info timeout to become ready.
	both := s.sideGRPC[:]
	specs := []struct {
		dst             **querier
		name, bin       string
		endpoints, wait []string
	}{
		{&s.vq, "vigil-query", o.vigil, both, both},
		{&s.tq, "thanos-query", o.thanos, both, both},
		{&s.vqBH, "vigil-query-blackhole", o.vigil, append(both[:2:2], s.hole.Addr), both},
		{&s.tqBH, "thanos-query-blackhole", o.thanos, append(both[:2:2], s.hole.Addr), both},
		{&s.vqInterop, "vigil-query-interop", o.vigil, []string{s.thGRPC, s.sideGRPC[1]}, []string{s.thGRPC, s.sideGRPC[1]}},
	}
	began := make([]time.Time, len(specs))
	for i, sp := range specs {
		a, err := freeAddrs(2)
		if err != nil {
			return err
		}
		args := []string{"query", "--http-address=" + a[1], "--grpc-address=" + a[0], "--query.replica-label=replica"}
		for _, e := range sp.endpoints {
			args = append(args, "--endpoint="+e)
		}
		p, err := s.startProc(sp.name, sp.bin, args...)
		if err != nil {
			return err
		}
		began[i] = time.Now()
		*sp.dst = &querier{name: sp.name, p: p, url: "http://" + a[1], endpoints: sp.wait}
	}
	for i, sp := range specs {
		q := *sp.dst
		if err := benchkit.WaitFor(ctx, q.name+" ready", 2*time.Minute, q.p, func() error { return benchkit.HTTPOK(ctx, q.url+"/-/ready") }); err != nil {
			return err
		}
		q.ready = time.Since(began[i])
	}
	for _, sp := range specs {
		if err := s.waitComplete(ctx, *sp.dst, time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// waitComplete waits until q lists its sidecars as healthy and count(up) with
// dedup=false counts both replicas' targets.
func (s *stack) waitComplete(ctx context.Context, q *querier, timeout time.Duration) error {
	return benchkit.WaitFor(ctx, q.name+" sees both replicas", timeout, q.p, func() error {
		if err := healthy(ctx, q.url, q.endpoints...); err != nil {
			return err
		}
		return expectValue(ctx, q.url, url.Values{"query": {"count(up)"}, "dedup": {"false"}}, 2*targets)
	})
}

// expectValue runs an instant query and checks the value of its first sample.
func expectValue(ctx context.Context, base string, params url.Values, want float64) error {
	a := call(ctx, 30*time.Second, http.MethodGet, base, "/api/v1/query", params)
	if a.Code != http.StatusOK || !a.HasValue {
		return fmt.Errorf("%s: HTTP %d %s %s%s", params.Get("query"), a.Code, a.ErrorType, a.Error, a.Body)
	}
	if a.Value != want {
		return fmt.Errorf("%s = %g, want %g", params.Get("query"), a.Value, want)
	}
	return nil
}

package main

// The processes: store gateways (one per bucket, per set) and the two queriers.

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// querier is one of the two queriers and the store gateways behind it.
type querier struct {
	name   string // "vigil" or "thanos"
	url    string
	proc   *benchkit.Proc
	stores *storeSet
}

// storeSet is one store gateway per bucket, all of one kind.
type storeSet struct {
	kind  string // "vigil" or "thanos"
	procs []*benchkit.Proc
	grpc  []string
}

// stack is everything fanoutbench started.
type stack struct {
	work          string
	vigil, thanos *querier
	sets          []*storeSet // the vigil stores, then (--thanos-stores) the thanos stores
	mu            sync.Mutex
	all           []*benchkit.Proc // in start order
}

func (s *stack) track(p *benchkit.Proc) {
	s.mu.Lock()
	s.all = append(s.all, p)
	s.mu.Unlock()
}

// start brings up the stores and both queriers and waits until each querier answers over
// every store.
func (s *stack) start(ctx context.Context, o options, ds *dataSet) error {
	for i := range ds.Buckets {
		if err := os.WriteFile(s.objstoreFile(i), ds.objstoreYAML(i), 0o644); err != nil {
			return err
		}
	}
	began := time.Now()
	vs, err := s.startStores(ctx, "vigil", o.vigil, ds.Buckets)
	if err != nil {
		return err
	}
	ts := vs
	if o.thanosStores {
		if ts, err = s.startStores(ctx, "thanos", o.thanos, ds.Buckets); err != nil {
			return err
		}
	}
	fmt.Printf("store gateways ready in %s: %d × vigil store", time.Since(began).Round(100*time.Millisecond), ds.Buckets)
	if o.thanosStores {
		fmt.Printf(" (vigil query), %d × thanos store (thanos query)\n", ds.Buckets)
	} else {
		fmt.Println(", shared by both queriers")
	}
	if s.vigil, err = s.startQuerier(ctx, "vigil", o.vigil, vs); err != nil {
		return err
	}
	if s.thanos, err = s.startQuerier(ctx, "thanos", o.thanos, ts); err != nil {
		return err
	}
	for _, q := range []*querier{s.vigil, s.thanos} {
		if err := waitAllStores(ctx, q, ds); err != nil {
			return err
		}
	}
	fmt.Printf("both queriers see all %d stores (%s since the stores started)\n", ds.Buckets, time.Since(began).Round(100*time.Millisecond))
	return nil
}

func (s *stack) objstoreFile(i int) string {
	return filepath.Join(s.work, fmt.Sprintf("objstore-s%02d.yml", i))
}

// startStores starts one store gateway of kind per bucket, all at once, and waits until
// every one has loaded its blocks (/-/ready).
func (s *stack) startStores(ctx context.Context, kind, bin string, n int) (*storeSet, error) {
	set := &storeSet{kind: kind}
	s.sets = append(s.sets, set)
	addrs, err := freeAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	var https []string
	for i := range n {
		grpcAddr, httpAddr := addrs[2*i], addrs[2*i+1]
		name := fmt.Sprintf("%s-store-s%02d", kind, i)
		// Short grace periods: on SIGTERM both would otherwise wait up to 2m for the
		// querier's open streams, and the querier is stopped just before anyway.
		p, err := benchkit.StartProc(s.work, name, bin, "store",
			"--objstore.config-file="+s.objstoreFile(i), "--data-dir="+filepath.Join(s.work, name),
			"--grpc-address="+grpcAddr, "--http-address="+httpAddr,
			"--grpc-grace-period=1s", "--http-grace-period=1s")
		if err != nil {
			return nil, err
		}
		s.track(p)
		set.procs = append(set.procs, p)
		set.grpc = append(set.grpc, grpcAddr)
		https = append(https, httpAddr)
	}
	for i, p := range set.procs {
		if err := benchkit.WaitFor(ctx, p.Name+" ready", 5*time.Minute, p, func() error {
			return benchkit.HTTPOK(ctx, "http://"+https[i]+"/-/ready")
		}); err != nil {
			return nil, err
		}
	}
	// A store that lost its port to another process exits, but /-/ready on that port may
	// still answer (another store's): make sure every one of ours is still alive.
	time.Sleep(500 * time.Millisecond)
	for _, p := range set.procs {
		if p.Exited() {
			return nil, fmt.Errorf("%s exited after start: %s", p.Name, p.Tail(3))
		}
	}
	return set, nil
}

// freeAddrs returns n distinct 127.0.0.1 addresses whose ports were free a moment ago.
// benchkit.FreeAddr one at a time may return the same port twice, as each listener is
// closed before the next is opened: with a hundred ports that happens.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	out := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// startQuerier starts `<bin> query` over the stores of set, with the flags both queriers
// take alike.
func (s *stack) startQuerier(ctx context.Context, name, bin string, set *storeSet) (*querier, error) {
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	grpcAddr, httpAddr := addrs[0], addrs[1]
	args := []string{"query", "--query.replica-label=replica", "--grpc-address=" + grpcAddr,
		"--http-address=" + httpAddr, "--grpc-grace-period=1s", "--http-grace-period=1s"}
	for _, e := range set.grpc {
		args = append(args, "--endpoint="+e)
	}
	p, err := benchkit.StartProc(s.work, name+"-query", bin, args...)
	if err != nil {
		return nil, err
	}
	s.track(p)
	q := &querier{name: name, url: "http://" + httpAddr, proc: p, stores: set}
	if err := benchkit.WaitFor(ctx, name+" query ready", 2*time.Minute, p, func() error {
		return benchkit.HTTPOK(ctx, q.url+"/-/ready")
	}); err != nil {
		return nil, err
	}
	return q, nil
}

// waitAllStores waits until q answers with data from every bucket: each shard's external
// label shows up in `up` at the end of the data.
func waitAllStores(ctx context.Context, q *querier, ds *dataSet) error {
	params := url.Values{"query": {"count(count by (shard) (up))"}, "time": {fmtTime(ds.EndMS)}, "dedup": {"true"}}
	return benchkit.WaitFor(ctx, q.name+" query sees all stores", 3*time.Minute, q.proc, func() error {
		body, _, err := benchkit.Get(ctx, q.url, "/api/v1/query", params)
		if err != nil {
			return err
		}
		m, warns, err := benchkit.Decode(body)
		if err != nil {
			return err
		}
		n := 0.0
		for _, pts := range m {
			n = pts[0].V
		}
		if int(n) != ds.Buckets {
			return fmt.Errorf("%s sees %v of %d shards (warnings %v)", q.name, n, ds.Buckets, warns)
		}
		return nil
	})
}

// stop stops the queriers first (so that no stream holds a store open), then every store
// at once.
func (s *stack) stop() {
	for _, q := range []*querier{s.vigil, s.thanos} {
		if q != nil {
			q.proc.Stop(15 * time.Second)
		}
	}
	var wg sync.WaitGroup
	for _, p := range s.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop(15 * time.Second)
		}()
	}
	wg.Wait()
}

// dumpLogs prints the end of the log of every process that exited and of the queriers.
func (s *stack) dumpLogs() {
	for _, p := range s.all {
		if p.Exited() || p.Name == "vigil-query" || p.Name == "thanos-query" {
			fmt.Fprintf(os.Stderr, "--- %s (%s) ---\n%s\n", p.Name, p.Log, p.Tail(15))
		}
	}
}

// cpu returns the CPU seconds of every store of the set.
func (set *storeSet) cpu() float64 {
	var t float64
	for _, p := range set.procs {
		t += p.CPUSeconds()
	}
	return t
}

// mem returns the sum of the stores' memory (kB): HWM since the last resetPeak, RSS now.
func (set *storeSet) mem() (hwm, rss int64) {
	for _, p := range set.procs {
		m := p.Mem()
		hwm += m.HWM
		rss += m.RSS
	}
	return hwm, rss
}

func (set *storeSet) resetPeak() {
	for _, p := range set.procs {
		p.ResetPeak()
	}
}

func fmtTime(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }

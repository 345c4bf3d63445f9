package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// ringSeries builds n series of one step: counter-like values that tell step and series
// apart, so that any lost or misplaced sample shows in the sums.
func ringSeries(n, step int, t0 time.Time) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, n)
	ts := t0.Add(time.Duration(step) * time.Second).UnixMilli()
	for i := range out {
		out[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "ring_load"}, {Name: "instance", Value: fmt.Sprintf("host-%04d", i)}, {Name: "job", Value: "ring"},
			},
			Samples: []prompb.Sample{{Value: float64(i*1000 + step), Timestamp: ts}},
		}
	}
	return out
}

type ringNode struct {
	v       *e2eutil.Vigil
	rwURL   string
	grpc    string
	dataDir string
}

// startRing starts three receivers sharing one hashring file, replication factor 3.
func startRing(t *testing.T) []*ringNode {
	t.Helper()
	nodes := make([]*ringNode, 3)
	var eps []string
	for i := range nodes {
		nodes[i] = &ringNode{grpc: e2eutil.FreeAddr(t), dataDir: t.TempDir()}
		eps = append(eps, nodes[i].grpc)
	}
	ring, _ := json.Marshal([]map[string]any{{"endpoints": eps}})
	ringFile := filepath.Join(t.TempDir(), "hashrings.json")
	if err := os.WriteFile(ringFile, ring, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		rwAddr := e2eutil.FreeAddr(t)
		n.rwURL = "http://" + rwAddr + "/api/v1/receive"
		n.v = e2eutil.StartVigil(t, "receive", "--tsdb.path="+n.dataDir, "--remote-write.address="+rwAddr,
			"--grpc-address="+n.grpc, fmt.Sprintf(`--label=receive_replica="r%d"`, i),
			"--receive.hashrings-file="+ringFile, "--receive.local-endpoint="+n.grpc,
			"--receive.replication-factor=3")
	}
	for _, n := range nodes {
		n.v.MustWaitReady(t)
	}
	return nodes
}

// sendSteps writes steps [from, to) of n series, spreading requests over the URLs that
// urls() returns at each step; every request must succeed.
func sendSteps(t *testing.T, urls func() []string, n, from, to int, t0 time.Time, onStep func(step int)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const batch = 250
	for step := from; step < to; step++ {
		if onStep != nil {
			onStep(step)
		}
		series := ringSeries(n, step, t0)
		live := urls()
		var wg sync.WaitGroup
		for b := 0; b*batch < n; b++ {
			wg.Go(func() {
				end := min((b+1)*batch, n)
				u := live[b%len(live)]
				r, err := e2eutil.RemoteWrite(ctx, u, "", series[b*batch:end])
				if err != nil || r.Code != 200 {
					t.Errorf("step %d batch %d to %s: %v HTTP %d %s", step, b, u, err, r.Code, r.Body)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
}

// wantRingSum is what sum(ring_load) must be at a step: every series present once.
func wantRingSum(n, step int) float64 { return float64(1000*n*(n-1)/2 + n*step) }

// checkRingQuery asks a querier for count and sum of ring_load at each step.
func checkRingQuery(t *testing.T, base string, n, from, to int, t0 time.Time) {
	t.Helper()
	for step := from; step < to; step++ {
		at := unixParam(t0.Add(time.Duration(step) * time.Second))
		r := mustAPI(t, base, "/api/v1/query", url.Values{"query": {"count(ring_load) * 1e9 + sum(ring_load)"}, "time": {at}})
		vec := mustSeriesResult(t, r, "vector")
		want := float64(n)*1e9 + wantRingSum(n, step)
		if len(vec) != 1 || math.Abs(vec[0].value(t).V-want) > 0.5 {
			t.Fatalf("step %d: count*1e9+sum = %v, want %v (%d series)", step, vec, want, n)
		}
	}
}

// TestReceiveRingKill: three receivers, RF=3. Every write succeeds while one of them is
// killed with kill -9 in the middle of the load; the deduplicated view holds every
// sample; the killed one replays its WAL and keeps every sample it had acknowledged.
func TestReceiveRingKill(t *testing.T) {
	t.Parallel()
	nodes := startRing(t)
	const n = 1000
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	all := func() []string { return []string{nodes[0].rwURL, nodes[1].rwURL, nodes[2].rwURL} }
	sendSteps(t, all, n, 0, 10, t0, nil)

	// Every node holds every series: RF=3 over three nodes. Background replication may
	// still be finishing right after the quorum answered.
	var own [3]*e2eutil.Vigil // a querier over each receiver alone
	for i, nd := range nodes {
		q := e2eutil.StartVigil(t, "query", "--endpoint="+nd.grpc)
		own[i] = q
		q.MustWaitReady(t)
		e2eutil.Poll(t, 10*time.Second, 200*time.Millisecond, func() error {
			r := mustAPI(t, q.HTTPURL, "/api/v1/query", url.Values{"query": {"count(ring_load)"}, "time": {unixParam(t0.Add(9 * time.Second))}})
			if vec := mustSeriesResult(t, r, "vector"); len(vec) != 1 || vec[0].value(t).V != n {
				return fmt.Errorf("receiver r%d holds %v series at step 9, want %d", i, vec, n)
			}
			return nil
		})
		checkRingQuery(t, q.HTTPURL, n, 0, 10, t0)
	}

	// kill -9 r2 in the middle of the next phase; writes go on to r0 and r1.
	var killedAt time.Time
	var mu sync.Mutex
	live := all()
	urls := func() []string { mu.Lock(); defer mu.Unlock(); return live }
	sendSteps(t, urls, n, 10, 30, t0, func(step int) {
		if step == 20 {
			// r2 has acknowledged steps 0..19 once it serves them (replication to the
			// third replica may finish after the client's quorum answered).
			e2eutil.Poll(t, 10*time.Second, 100*time.Millisecond, func() error {
				r := mustAPI(t, own[2].HTTPURL, "/api/v1/query", url.Values{"query": {"count(ring_load)"}, "time": {unixParam(t0.Add(19 * time.Second))}})
				if vec := mustSeriesResult(t, r, "vector"); len(vec) != 1 || vec[0].value(t).V != n {
					return fmt.Errorf("r2 holds %v series at step 19, want %d", vec, n)
				}
				return nil
			})
			if err := nodes[2].v.Kill(); err != nil {
				t.Fatal(err)
			}
			killedAt = time.Now()
			mu.Lock()
			live = live[:2]
			mu.Unlock()
		}
	})
	t.Logf("killed r2 with kill -9 at step 20 (%s); steps 20..29 written to r0 and r1 without an error", killedAt.Format(time.RFC3339Nano))

	q := e2eutil.StartVigil(t, "query", "--query.replica-label=receive_replica",
		"--endpoint="+nodes[0].grpc, "--endpoint="+nodes[1].grpc, "--endpoint="+nodes[2].grpc)
	q.MustWaitReady(t)
	checkRingQuery(t, q.HTTPURL, n, 0, 30, t0)

	// r2 restarts on its data directory: its WAL brings back everything it had stored
	// (steps 0..19, which it acknowledged before the kill).
	if err := nodes[2].v.Start(); err != nil {
		t.Fatal(err)
	}
	nodes[2].v.MustWaitReady(t)
	e2eutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() error { return storesHealthy(own[2].HTTPURL, "receive", nodes[2].grpc) })
	checkRingQuery(t, own[2].HTTPURL, n, 0, 20, t0)
	t.Logf("r2 replayed its WAL: steps 0..19 of all %d series intact", n)
	sendSteps(t, all, n, 30, 32, t0, nil)
	checkRingQuery(t, q.HTTPURL, n, 30, 32, t0)
}

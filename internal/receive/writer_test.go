package receive

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
)

// stressSeries are the series of request i of writer g: label values long and distinct,
// so that a label still pointing into a reused request buffer shows as wrong labels.
func stressSeries(g, i int, ts int64) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, 5)
	for j := range out {
		v := fmt.Sprintf("%02d-%03d-%d-", g, i, j)
		out[j] = floatSeries("stress", ts, float64(i*10+j), 2, "instance", strings.Repeat(v, 8), "writer", fmt.Sprint(g))
	}
	return out
}

// writeConcurrently sends writers×requests requests to url and returns the expected dump.
func writeConcurrently(t *testing.T, url string, writers, requests int) map[string][]point {
	t.Helper()
	ts := nowMs()
	var mu sync.Mutex
	var all []prompb.TimeSeries
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range requests {
				in := stressSeries(g, i, ts)
				code, body, _ := post(t, url+"/api/v1/receive", encodeV1(t, in...), rw1Headers("stress"))
				if code != http.StatusOK {
					t.Errorf("writer %d request %d: status %d (%s)", g, i, code, body)
					return
				}
				mu.Lock()
				all = append(all, in...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return expected(all...)
}

// TestConcurrentWritesKeepTheirLabels: request buffers are reused from one request to the
// next; what was stored must keep exactly the labels and samples that were sent.
func TestConcurrentWritesKeepTheirLabels(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{})
	want := writeConcurrently(t, n.url, 6, 20)
	if d := diffDumps(dump(t, n.tenants, "stress"), want); d != "" {
		t.Fatal(d)
	}
}

// TestConcurrentWritesThroughRing: the same through a ring of three, where the forwards
// to the other replicas may still run after the client has its answer.
func TestConcurrentWritesThroughRing(t *testing.T) {
	nodes := newCluster(t, 3, 3)
	want := writeConcurrently(t, clusterFront(t, nodes[0]), 4, 10)
	for i, nd := range nodes {
		eventually(t, 5*time.Second, func() string {
			if d := diffDumps(dump(t, nd.tenants, "stress"), want); d != "" {
				return fmt.Sprintf("node %d: %s", i, d)
			}
			return ""
		})
	}
}

// TestSeriesWrittenAgainAfterHeadCompaction: once a series has left the head (compacted
// into a block, garbage-collected), writing it again must store it under its labels.
func TestSeriesWrittenAgainAfterHeadCompaction(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "t"})
	ts := time.Now().Add(-3 * time.Hour).UnixMilli()
	first := []prompb.TimeSeries{floatSeries("a", ts, 1, 3, "k", "v"), histogramSeries("h", ts, 2)}
	if code, body := n.writeV1(t, "t", first...); code != http.StatusOK {
		t.Fatalf("status %d (%s)", code, body)
	}
	tn, err := n.tenants.Get("t")
	if err != nil {
		t.Fatal(err)
	}
	head := tn.db.Head()
	if err := tn.db.CompactHead(tsdb.NewRangeHead(head, head.MinTime(), head.MaxTime())); err != nil {
		t.Fatal(err)
	}
	if got := head.NumSeries(); got != 0 {
		t.Fatalf("%d series still in the head after compacting it", got)
	}
	// Another series first, so that the head hands out new references.
	later := ts + 3600_000
	second := []prompb.TimeSeries{floatSeries("b", later, 5, 1), floatSeries("a", later, 4, 2, "k", "v"), histogramSeries("h", later, 1)}
	if code, body := n.writeV1(t, "t", second...); code != http.StatusOK {
		t.Fatalf("status %d (%s)", code, body)
	}
	want := expected(append(first, second...)...)
	want[`{__name__="a", k="v"}`] = append(expected(first[0])[`{__name__="a", k="v"}`], expected(second[1])[`{__name__="a", k="v"}`]...)
	want[`{__name__="h"}`] = append(expected(first[1])[`{__name__="h"}`], expected(second[2])[`{__name__="h"}`]...)
	if d := diffDumps(dump(t, n.tenants, "t"), want); d != "" {
		t.Fatal(d)
	}
	if got := head.NumSeries(); got != 3 {
		t.Errorf("%d series in the head, want 3", got)
	}
}

// TestWriteToClosedTenants: once the tenants are closed (shutdown), writes get 503, which
// clients retry, not a 500.
func TestWriteToClosedTenants(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "t"})
	if code, _ := n.writeV1(t, "t", floatSeries("a", nowMs(), 1, 1)); code != http.StatusOK {
		t.Fatal(code)
	}
	if err := n.tenants.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"t", "new-tenant"} {
		if code, body := n.writeV1(t, tenant, floatSeries("a", nowMs()+1000, 1, 1)); code != http.StatusServiceUnavailable {
			t.Errorf("tenant %s after Close: status %d (%s), want 503", tenant, code, body)
		}
	}
}

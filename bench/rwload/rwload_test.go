package rwload

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// fakeReceiver decodes remote-write requests like a receiver and keeps, per series, the
// last timestamp, rejecting out-of-order samples with 409 as a TSDB would.
type fakeReceiver struct {
	t *testing.T
	// answer, when set, decides the status of the n-th request (from 0) before it is
	// decoded; 0 means go on.
	answer func(n int) int
	jitter bool // sleep up to 2ms per request, to shuffle the senders

	mu       sync.Mutex
	requests int
	last     map[string]int64
	samples  int64
	sum      float64
	ooo      int // out-of-order samples seen
	tenants  map[string]int
}

func newFakeReceiver(t *testing.T) *fakeReceiver {
	return &fakeReceiver{t: t, last: map[string]int64{}, tenants: map[string]int{}}
}

func (f *fakeReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := f.requests
	f.requests++
	f.mu.Unlock()
	if f.answer != nil {
		if code := f.answer(n); code != 0 {
			http.Error(w, "injected", code)
			return
		}
	}
	if f.jitter {
		time.Sleep(time.Duration(rand.N(2000)) * time.Microsecond)
	}
	for h, want := range map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0"} {
		if got := r.Header.Get(h); got != want {
			http.Error(w, fmt.Sprintf("header %s = %q, want %q", h, got, want), http.StatusBadRequest)
			return
		}
	}
	wr, err := decode(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tenants[r.Header.Get("THANOS-TENANT")]++
	for _, ts := range wr.Timeseries {
		key := labelKey(ts.Labels)
		for _, s := range ts.Samples {
			if last, ok := f.last[key]; ok && s.Timestamp <= last {
				f.ooo++
				http.Error(w, "out of order sample", http.StatusConflict)
				return
			}
			f.last[key] = s.Timestamp
			f.samples++
			f.sum += s.Value
		}
	}
}

func decode(body io.Reader) (*prompb.WriteRequest, error) {
	comp, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	raw, err := snappy.Decode(nil, comp)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("protobuf: %w", err)
	}
	return &wr, nil
}

func labelKey(ls []prompb.Label) string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 && ls[i-1].Name >= l.Name {
			b.WriteString("UNSORTED!")
		}
		b.WriteString(l.Name + "=" + l.Value + ",")
	}
	return b.String()
}

func smallShape() Shape {
	return Shape{Series: 1000, Steps: 20, Batch: 300, Concurrency: 4, Interval: 15 * time.Second, Seed: 7}
}

func runAgainst(t *testing.T, f *fakeReceiver, s Shape, tgt Target) (*Plan, *Result) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	tgt.URLs = []string{srv.URL + "/api/v1/receive"}
	tgt.MinBackoff, tgt.MaxBackoff = time.Millisecond, 5*time.Millisecond
	res, err := Run(context.Background(), p, tgt)
	if err != nil {
		t.Fatal(err)
	}
	return p, res
}

// TestDeliversEverythingInOrder checks the exact sample count and sum delivered and that
// no series ever sees a sample at or before its last one, with senders shuffled by the
// receiver's random delays and batches spanning step boundaries.
func TestDeliversEverythingInOrder(t *testing.T) {
	for _, s := range []Shape{smallShape(), {Series: 10, Steps: 50, Batch: 7, Concurrency: 3, Interval: time.Second}} {
		t.Run(fmt.Sprintf("%dx%d/b%d/c%d", s.Series, s.Steps, s.Batch, s.Concurrency), func(t *testing.T) {
			f := newFakeReceiver(t)
			f.jitter = true
			p, res := runAgainst(t, f, s, Target{Tenant: "team-a"})
			want := int64(s.Series * s.Steps)
			if p.Samples != want || res.Samples != want || f.samples != want {
				t.Errorf("samples: plan %d, acknowledged %d, received %d; want %d", p.Samples, res.Samples, f.samples, want)
			}
			if f.ooo != 0 || len(res.Errors) != 0 {
				t.Errorf("out of order: %d; errors %v %v", f.ooo, res.Errors, res.ErrorText)
			}
			if len(f.last) != s.Series {
				t.Errorf("distinct series received: %d, want %d", len(f.last), s.Series)
			}
			for k, last := range f.last {
				if strings.Contains(k, "UNSORTED") || last != p.MaxT {
					t.Fatalf("series %s: last timestamp %d, want %d (or unsorted labels)", k, last, p.MaxT)
				}
			}
			if math.Abs(f.sum-p.Sum) > 1e-9*math.Abs(p.Sum) || math.Abs(res.Sum-p.Sum) > 1e-9*math.Abs(p.Sum) {
				t.Errorf("sum: plan %g, acknowledged %g, received %g", p.Sum, res.Sum, f.sum)
			}
			if f.tenants["team-a"] != p.Requests() {
				t.Errorf("tenant header on %d of %d requests", f.tenants["team-a"], p.Requests())
			}
			if res.Requests != int64(p.Requests()) || len(res.Latencies) != p.Requests() {
				t.Errorf("attempts %d, latencies %d, want %d", res.Requests, len(res.Latencies), p.Requests())
			}
		})
	}
}

// TestRetries503 checks that 503s are retried until they pass, and counted.
func TestRetries503(t *testing.T) {
	f := newFakeReceiver(t)
	f.answer = func(n int) int {
		if n%3 == 0 && n < 60 { // every third of the first 60 attempts
			return http.StatusServiceUnavailable
		}
		return 0
	}
	p, res := runAgainst(t, f, smallShape(), Target{})
	if res.Samples != p.Samples || f.samples != p.Samples || res.Failed != 0 {
		t.Errorf("acknowledged %d, received %d, failed %d; want %d", res.Samples, f.samples, res.Failed, p.Samples)
	}
	if res.Retries != 20 || res.Errors[503] != 20 || res.Requests != int64(p.Requests())+20 {
		t.Errorf("retries %d, 503s %d, attempts %d; want 20, 20, %d", res.Retries, res.Errors[503], res.Requests, p.Requests()+20)
	}
	if f.ooo != 0 {
		t.Errorf("out of order after retries: %d", f.ooo)
	}
}

// TestRetriesBounded checks that a request that keeps failing is given up after
// MaxRetries retries.
func TestRetriesBounded(t *testing.T) {
	f := newFakeReceiver(t)
	f.answer = func(int) int { return http.StatusTooManyRequests }
	s := Shape{Series: 10, Steps: 2, Batch: 10, Concurrency: 1, Interval: time.Second}
	_, res := runAgainst(t, f, s, Target{MaxRetries: 3})
	if res.Failed != 2 || res.FailedSmp != 20 || res.Retries != 6 || res.Errors[429] != 8 || res.Samples != 0 {
		t.Errorf("failed %d (%d samples), retries %d, 429s %d, acknowledged %d; want 2 (20), 6, 8, 0",
			res.Failed, res.FailedSmp, res.Retries, res.Errors[429], res.Samples)
	}
}

// TestError400 checks that a 400 is not retried and is counted as an error.
func TestError400(t *testing.T) {
	f := newFakeReceiver(t)
	f.answer = func(n int) int {
		if n < 5 {
			return http.StatusBadRequest
		}
		return 0
	}
	s := smallShape()
	s.Concurrency = 1 // so that the first 5 requests are the first 5 of the plan
	p, res := runAgainst(t, f, s, Target{})
	if res.Errors[400] != 5 || res.Failed != 5 || res.Retries != 0 || res.Requests != int64(p.Requests()) {
		t.Errorf("400s %d, failed %d, retries %d, attempts %d; want 5, 5, 0, %d",
			res.Errors[400], res.Failed, res.Retries, res.Requests, p.Requests())
	}
	if res.FailedSmp != 5*int64(s.Batch) || res.Samples != p.Samples-res.FailedSmp || f.samples != res.Samples {
		t.Errorf("lost %d, acknowledged %d, received %d of %d", res.FailedSmp, res.Samples, f.samples, p.Samples)
	}
	if !strings.Contains(res.ErrorText[400], "injected") {
		t.Errorf("error text %q", res.ErrorText[400])
	}
}

// TestLabels checks the label sets: 7 labels, sorted, unique across series.
func TestLabels(t *testing.T) {
	seen := map[string]bool{}
	for i := range 100000 {
		ls := seriesLabels(i)
		k := labelKey(ls)
		if len(ls) != 7 || strings.Contains(k, "UNSORTED") || seen[k] {
			t.Fatalf("series %d: %s (duplicate: %v)", i, k, seen[k])
		}
		seen[k] = true
	}
}

// TestCountersIncrease checks that counters never decrease over a sender's plan.
func TestCountersIncrease(t *testing.T) {
	s := Shape{Series: 50, Steps: 30, Batch: 40, Concurrency: 2, Interval: time.Second}
	p, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]float64{}
	for _, reqs := range p.Senders {
		for _, r := range reqs {
			wr, err := decode(strings.NewReader(string(r.Body)))
			if err != nil {
				t.Fatal(err)
			}
			for _, ts := range wr.Timeseries {
				counter := strings.HasSuffix(ts.Labels[0].Value, "_total") || strings.HasSuffix(ts.Labels[0].Value, "_sum") ||
					strings.HasSuffix(ts.Labels[0].Value, "_count")
				k := labelKey(ts.Labels)
				for _, smp := range ts.Samples {
					if counter && smp.Value < last[k] {
						t.Fatalf("%s decreased: %g after %g", k, smp.Value, last[k])
					}
					last[k] = smp.Value
				}
			}
		}
	}
}

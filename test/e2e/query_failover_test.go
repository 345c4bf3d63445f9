package e2e

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// The failover phases of TestQueryHA: replica r0 and its sidecar are killed after at
// least 15s of data, stay down at least 15s, and come back.

// nodeUp is the series followed across the failover: the node exporter's up, scraped by
// both replicas.
const nodeUp = `up{job="node"}`

// nodeCounter is a counter both replicas read from the node exporter: its metrics
// handler's request count, which both scrapes increase (about 2/s with both replicas
// up, 1/s with one). A false counter reset at a replica switch would add the whole
// counter value to rate() and increase().
const nodeCounter = `promhttp_metric_handler_requests_total{job="node",code="200"}`

// maxSpacing returns the largest distance between consecutive samples, in ms.
func maxSpacing(ss []sample) int64 {
	var m int64
	for i := 1; i < len(ss); i++ {
		m = max(m, ss[i].T-ss[i-1].T)
	}
	return m
}

// steps is the number of points of a range query from start to end.
func steps(start, end time.Time, step time.Duration) int {
	return int(end.Sub(start)/step) + 1
}

func testReplicaDown(t *testing.T, f *haFixture) {
	dead, alive := f.side[0].GRPCAddr, f.side[1].GRPCAddr
	start := time.Now()
	e2eutil.Poll(t, 20*time.Second, 250*time.Millisecond, func() error {
		all, err := stores(f.q.HTTPURL)
		if err != nil {
			return err
		}
		if s, _, ok := findStore(all, dead); !ok || s.LastError == nil {
			return fmt.Errorf("stores: want %s listed with a lastError, got %+v", dead, all)
		}
		if s, _, ok := findStore(all, alive); !ok || s.LastError != nil {
			return fmt.Errorf("stores: want %s healthy, got %+v", alive, all)
		}
		return nil
	})
	t.Logf("querier noticed the dead sidecar after %s", time.Since(start).Round(time.Millisecond))
	wantQueryInfo(t, f.q, replicaExtLabels(1))

	// Queries go on with r1's data and say what is missing.
	r, vec := instant(t, f.q.HTTPURL, nodeUp, time.Time{}, nil)
	if len(vec) != 1 || vec[0].value(t).V != 1 || vec[0].Metric[replicaLabel] != "" {
		t.Errorf("%s with r0 down = %q %+v, want one series without replica label, value 1", nodeUp, metricKeys(vec), vec)
	}
	warningsMention(t, nodeUp+" with r0 down", r.Warnings, dead)
	// r1 sees r0's Prometheus down.
	e2eutil.Poll(t, 10*time.Second, 250*time.Millisecond, func() error {
		q := fmt.Sprintf(`up{instance=%q}`, f.prom[0].Addr)
		_, vec := instant(t, f.q.HTTPURL, q, time.Time{}, nil)
		if len(vec) != 1 || vec[0].value(t).V != 0 {
			return fmt.Errorf("%s = %+v, want one series with value 0", q, vec)
		}
		return nil
	})
}

// testNoGapWhileDown: over the whole window (both up, then only r1), a range query at
// 1s steps with a 3s lookback has a value at every step.
func testNoGapWhileDown(t *testing.T, f *haFixture) {
	start := f.t0.Truncate(time.Second).Add(time.Second)
	end := time.Now().Add(-500 * time.Millisecond).Truncate(time.Millisecond)
	wantNoGap(t, f, start, end)

	raw := rawSamples(t, f.q.HTTPURL, nodeUp, start, end, nil)
	if len(raw) != 1 {
		t.Fatalf("raw %s: %d series %q, want 1", nodeUp, len(raw), metricKeys(raw))
	}
	ss := raw[0].samples(t)
	if m := maxSpacing(ss); m > 2500 {
		t.Errorf("raw %s over the window: a %dms gap between samples", nodeUp, m)
	}
}

// wantNoGap runs query_range of nodeUp from start to end at 1s steps with a 3s
// lookback, and checks that it is one deduplicated series with value 1 at every step.
// The short lookback makes a gap of more than 3s in the merged data show; with the 5m
// default any gap would be papered over.
func wantNoGap(t *testing.T, f *haFixture, start, end time.Time) {
	t.Helper()
	r, m := rangeQuery(t, f.q.HTTPURL, nodeUp, start, end, time.Second, url.Values{"lookback_delta": {"3s"}})
	if len(m) != 1 {
		t.Fatalf("query_range %s: %d series %q, want 1", nodeUp, len(m), metricKeys(m))
	}
	if _, ok := m[0].Metric[replicaLabel]; ok {
		t.Errorf("query_range %s: series %s keeps the replica label", nodeUp, metricKey(m[0].Metric))
	}
	ss := m[0].samples(t)
	want := steps(start, end, time.Second)
	if len(ss) != want {
		var missing []string
		for ts := start; !ts.After(end); ts = ts.Add(time.Second) {
			if !slices.ContainsFunc(ss, func(s sample) bool { return s.T == ts.UnixMilli() }) {
				missing = append(missing, fmt.Sprintf("t0+%s", ts.Sub(f.t0).Round(time.Millisecond)))
			}
		}
		t.Errorf("query_range %s over %s: %d points, want %d; missing steps: %v", nodeUp, end.Sub(start).Round(time.Second), len(ss), want, missing)
	}
	for _, s := range ss {
		if s.V != 1 {
			t.Errorf("query_range %s: value %v at %d, want 1", nodeUp, s.V, s.T)
		}
	}
	t.Logf("query_range %s over %s: %d/%d points, warnings %q", nodeUp, end.Sub(start).Round(time.Second), len(ss), want, r.Warnings)
}

// testDedupFillsGap runs after r0 came back: r0's data now has a hole around the kill,
// r1's is complete, and the deduplicated series must have no gap. The query windows
// start just before one of r0's samples, so the merge starts on r0 and has to switch
// to r1 at the hole.
func testDedupFillsGap(t *testing.T, f *haFixture, killed, restarted time.Time) {
	e2eutil.Poll(t, 20*time.Second, 250*time.Millisecond, func() error {
		if err := storesHealthy(f.q.HTTPURL, "sidecar", f.side[0].GRPCAddr, f.side[1].GRPCAddr); err != nil {
			return err
		}
		raw := rawSamples(t, f.q.HTTPURL, `up{job="node",replica="r0"}`, time.Now().Add(-5*time.Second), time.Now(), url.Values{"dedup": {"false"}})
		if len(raw) != 1 || len(raw[0].Values) < 2 {
			return fmt.Errorf("r0 has no fresh samples yet: %+v", raw)
		}
		return nil
	})

	end := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	perReplica := map[string][]sample{}
	for _, s := range rawSamples(t, f.q.HTTPURL, nodeUp, f.t0, end, url.Values{"dedup": {"false"}}) {
		perReplica[s.Metric[replicaLabel]] = s.samples(t)
	}
	r0, r1 := perReplica["r0"], perReplica["r1"]
	if len(perReplica) != 2 || len(r0) < 10 || len(r1) < 10 {
		t.Fatalf("raw %s per replica since t0: %d series, r0 %d samples, r1 %d; want both with data", nodeUp, len(perReplica), len(r0), len(r1))
	}
	// r0's hole spans the kill and is at least 10s long: the scenario really happened.
	hole := -1
	for i := 1; i < len(r0); i++ {
		if hole < 0 || r0[i].T-r0[i-1].T > r0[hole].T-r0[hole-1].T {
			hole = i
		}
	}
	holeStart, holeEnd := r0[hole-1].T, r0[hole].T
	if holeEnd-holeStart < 10000 || holeStart > killed.UnixMilli() || holeEnd < killed.UnixMilli() || holeEnd > restarted.Add(10*time.Second).UnixMilli() {
		t.Fatalf("r0's largest gap is (t0+%dms, t0+%dms), want >= 10s from the kill at t0+%dms to the restart at t0+%dms",
			holeStart-f.t0.UnixMilli(), holeEnd-f.t0.UnixMilli(), killed.UnixMilli()-f.t0.UnixMilli(), restarted.UnixMilli()-f.t0.UnixMilli())
	}
	t.Logf("r0 has a %dms hole from t0+%dms; r1 max spacing %dms", holeEnd-holeStart, holeStart-f.t0.UnixMilli(), maxSpacing(r1))

	// Start the windows halfway between an r1 sample and the next r0 sample, early in
	// the data, so that r0 has the first sample and the merge follows r0 first.
	var ta, tb int64 = -1, -1
	for _, s := range r0 {
		if s.T > f.t0.UnixMilli()+2000 {
			ta = s.T
			break
		}
	}
	for _, s := range r1 {
		if s.T < ta {
			tb = s.T
		}
	}
	mid := time.UnixMilli(tb + (ta-tb)/2)
	engineered := ta-tb >= 4
	if !engineered {
		t.Logf("r0 and r1 scrape the node exporter within %dms of each other: cannot make the merge start on r0", ta-tb)
	}
	r0set, r1set := map[int64]bool{}, map[int64]bool{}
	for _, s := range r0 {
		r0set[s.T] = true
	}
	var r1InWindow []sample
	for _, s := range r1 {
		r1set[s.T] = true
		if s.T > mid.UnixMilli() {
			r1InWindow = append(r1InWindow, s)
		}
	}

	t.Run("RawSamples", func(t *testing.T) {
		raw := rawSamples(t, f.q.HTTPURL, nodeUp, mid, end, nil)
		if len(raw) != 1 {
			t.Fatalf("raw %s with dedup: %d series %q, want 1", nodeUp, len(raw), metricKeys(raw))
		}
		ss := raw[0].samples(t)
		bound := max(2500, maxSpacing(r1InWindow)+100)
		if m := maxSpacing(ss); m > bound {
			t.Errorf("raw %s with dedup: a %dms gap between samples, want at most %dms", nodeUp, m, bound)
		}
		if len(ss) < len(r1InWindow)-2 {
			t.Errorf("raw %s with dedup: %d samples, r1 alone has %d", nodeUp, len(ss), len(r1InWindow))
		}
		var fromR0, fromR1 int
		var lastR0 int64
		for _, s := range ss {
			switch {
			case r0set[s.T]:
				fromR0++
				lastR0 = s.T
			case r1set[s.T]:
				fromR1++
			default:
				t.Errorf("deduplicated sample at %d is from neither replica", s.T)
			}
		}
		t.Logf("deduplicated: %d samples, %d from r0 (last at t0+%dms), %d from r1, max spacing %dms",
			len(ss), fromR0, lastR0-f.t0.UnixMilli(), fromR1, maxSpacing(ss))
		if engineered {
			if ss[0].T != ta {
				t.Errorf("deduplicated series starts at %d, want r0's first sample %d (the earliest in the window)", ss[0].T, ta)
			}
			if fromR0 == 0 || fromR1 == 0 {
				t.Errorf("deduplicated series has %d samples from r0 and %d from r1, want both: a switch at r0's hole", fromR0, fromR1)
			}
		}
	})

	t.Run("RangeQuery", func(t *testing.T) {
		// 3s lookback: the first step reads (mid, mid+3s].
		wantNoGap(t, f, mid.Add(3*time.Second), end)
	})

	t.Run("CounterAcrossSwitch", func(t *testing.T) {
		// rate over 5s windows: the first step reads (mid, mid+5s].
		start := mid.Add(5 * time.Second)
		q := "rate(" + nodeCounter + "[5s])"
		_, m := rangeQuery(t, f.q.HTTPURL, q, start, end, time.Second, nil)
		if len(m) != 1 {
			t.Fatalf("%s: %d series %q, want 1", q, len(m), metricKeys(m))
		}
		ss := m[0].samples(t)
		if want := steps(start, end, time.Second); len(ss) != want {
			t.Errorf("%s: %d points, want %d", q, len(ss), want)
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, s := range ss {
			lo, hi = min(lo, s.V), max(hi, s.V)
			if s.V <= 0 || s.V > 4 {
				t.Errorf("%s at t0+%dms = %v, want within (0, 4]: each replica sees 1-2 requests/s", q, s.T-f.t0.UnixMilli(), s.V)
			}
		}
		t.Logf("%s: %d points within [%.3f, %.3f]", q, len(ss), lo, hi)

		// increase over the whole window matches what r1 alone says.
		w := fmt.Sprintf("[%dms]", end.Sub(mid).Milliseconds())
		_, dd := instant(t, f.q.HTTPURL, "increase("+nodeCounter+w+")", end, nil)
		_, one := instant(t, f.q.HTTPURL, `increase(promhttp_metric_handler_requests_total{job="node",code="200",replica="r1"}`+w+")", end, url.Values{"dedup": {"false"}})
		if len(dd) != 1 || len(one) != 1 {
			t.Fatalf("increase over the window: %d deduplicated series, %d from r1; want 1 each", len(dd), len(one))
		}
		got, want := dd[0].value(t).V, one[0].value(t).V
		if want <= 0 || !closeTo(got, want, 0.1) {
			t.Errorf("increase(%s%s) deduplicated = %v, r1 alone = %v; want within 10%%", nodeCounter, w, got, want)
		}
		t.Logf("increase over %s: deduplicated %.2f, r1 alone %.2f", end.Sub(mid).Round(time.Second), got, want)
	})
}

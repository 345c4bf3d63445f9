package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// compactCounts returns, per deduplicated series, the number of raw samples over the whole
// data range, and the number of series: what a compaction must keep exactly.
func compactCounts(t *testing.T, base string, end int64) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, name := range []string{"e2e_requests_total", "e2e_gauge"} {
		_, vec := instant(t, base, "count_over_time("+name+"[53h])", time.UnixMilli(end),
			url.Values{"dedup": {"true"}, "max_source_resolution": {"0s"}})
		for _, s := range vec {
			out[name+metricKey(s.Metric)] = s.value(t).V
		}
	}
	return out
}

// testObjstoreFaultsCompact: the HA pair of TestCompactDedupDownsample (26 2h blocks per
// replica, 50 series) in MinIO; `vigil compact --wait` runs over it while MinIO is frozen
// for 8s once compaction is under way, later killed for 12s, and later frozen and killed
// while frozen (each fault after a few more compactions), and started again. The
// compactor must keep running without halting, retry, and end with the bucket fully
// compacted: no two visible blocks of a group overlap, and the deduplicated raw samples
// (every sample of some series, the sample count of every series) are exactly those of
// before.
func testObjstoreFaultsCompact(t *testing.T) {
	m := e2eutil.StartMinIO(t)
	t.Cleanup(func() { _ = m.Signal(syscall.SIGCONT) })
	start, end := compactWindow()
	dirs, nsamples := writeCompactBlocks(t, t.TempDir(), start, end)
	cfg := uploadCompactBlocks(t, m, "", dirs)

	st, q := startStoreQuery(t, cfg)
	before := runQueries(t, q.HTTPURL, start, end-1)
	countsBefore := compactCounts(t, q.HTTPURL, end)
	if len(countsBefore) != compactSeries {
		t.Fatalf("before compaction: %d series, want %d", len(countsBefore), compactSeries)
	}
	for _, v := range []*e2eutil.Vigil{q, st} {
		if err := v.Stop(e2eutil.DefaultStopTimeout); err != nil {
			t.Fatal(err)
		}
	}

	c := e2eutil.StartVigilWith(t, e2eutil.VigilOptions{NoGRPC: true,
		Args: append(compactArgs(t, cfg), "--wait", "--wait-interval=5s", "--compact.cleanup-interval=0")})
	began := time.Now()
	pid := c.Pid()
	metric := func(name string) float64 {
		v, _, err := metricValue(c.HTTPURL, name)
		if err != nil {
			t.Fatalf("compactor metrics: %v", err)
		}
		return v
	}
	waitMetric := func(name string, atLeast float64) {
		t.Helper()
		e2eutil.Poll(t, 3*time.Minute, 50*time.Millisecond, func() error {
			if c.Exited() {
				t.Fatalf("the compactor exited")
			}
			if v := metric(name); v < atLeast {
				return fmt.Errorf("%s = %v, waiting for %v", name, v, atLeast)
			}
			return nil
		})
	}
	e2eutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() error { return c.WaitReady(time.Second) })

	// Freeze once compaction is under way.
	waitMetric("vigil_compact_compactions_total", 2)
	if err := m.Freeze(t); err != nil {
		t.Fatal(err)
	}
	frozeAt := time.Since(began)
	n := metric("vigil_compact_compactions_total")
	time.Sleep(8 * time.Second)
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	t.Logf("MinIO frozen for 8s at %s into the run, after %v compactions", frozeAt.Round(time.Millisecond), n)

	// Kill after some more progress.
	waitMetric("vigil_compact_compactions_total", n+3)
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("MinIO killed at %s into the run, after %v compactions; down 12s", time.Since(began).Round(time.Millisecond), metric("vigil_compact_compactions_total"))
	time.Sleep(12 * time.Second)
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}

	// Frozen, then killed while frozen: the connections the compactor waits on are reset.
	waitMetric("vigil_compact_compactions_total", metric("vigil_compact_compactions_total")+3)
	if err := m.Freeze(t); err != nil {
		t.Fatal(err)
	}
	t.Logf("MinIO frozen at %s into the run, after %v compactions; killed 3s later, down 8s", time.Since(began).Round(time.Millisecond), metric("vigil_compact_compactions_total"))
	time.Sleep(3 * time.Second)
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()

	// Converged: an iteration without errors ended after MinIO came back, then one more
	// (which must find nothing left to do).
	e2eutil.Poll(t, 3*time.Minute, 200*time.Millisecond, func() error {
		if c.Exited() {
			t.Fatalf("the compactor exited")
		}
		if v := metric("vigil_compact_last_successful_iteration_timestamp_seconds"); v < float64(restarted.Unix()) {
			return fmt.Errorf("no successful iteration since MinIO restarted (last %v)", v)
		}
		return nil
	})
	converged := time.Since(restarted)
	iters := metric("vigil_compact_iterations_total")
	waitMetric("vigil_compact_iterations_total", iters+1)
	t.Logf("compactor: converged %s after MinIO restarted; %v iterations, %v failed; %v compactions; halted=%v",
		converged.Round(time.Millisecond), metric("vigil_compact_iterations_total"), metric("vigil_compact_iteration_failures_total"),
		metric("vigil_compact_compactions_total"), metric("vigil_compact_halted"))
	if v := metric("vigil_compact_halted"); v != 0 {
		t.Errorf("vigil_compact_halted = %v: the compactor halted on an object storage fault", v)
	}
	if c.Exited() || c.Pid() != pid {
		t.Errorf("the compactor exited or was restarted")
	}
	var problems []string
	for _, l := range strings.Split(c.Log(), "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			problems = append(problems, l)
		}
	}
	if len(problems) > 12 {
		problems = append(problems[:12], fmt.Sprintf("... and %d more", len(problems)-12))
	}
	t.Logf("compactor: %v failed bucket operations (retried); its errors and warnings during the faults:\n%s",
		metric("vigil_objstore_bucket_operation_failures_total"), strings.Join(problems, "\n"))
	if l := grepLines(c.Log(), "halted"); l != "" {
		t.Errorf("the compactor halted:\n%s", l)
	}
	if err := c.Stop(e2eutil.DefaultStopTimeout); err != nil {
		t.Fatal(err)
	}

	bs := listBucketBlocks(t, m, "")
	checkCompacted(t, "after compaction under MinIO faults", bs)
	var partial, marked int
	for _, b := range bs {
		if b.meta == nil {
			partial++
		} else if b.marked {
			marked++
		}
	}
	t.Logf("bucket: %d block dirs, %d partial uploads (left by the faults, deleted after 48h), %d marked for deletion; %d samples before",
		len(bs), partial, marked, nsamples)

	_, q2 := startStoreQuery(t, cfg)
	checkQueries(t, "after compaction under MinIO faults", before, runQueries(t, q2.HTTPURL, start, end-1), start)
	countsAfter := compactCounts(t, q2.HTTPURL, end)
	var total float64
	for k, v := range countsBefore {
		total += v
		if countsAfter[k] != v {
			t.Errorf("series %s: %v deduplicated samples after compaction, %v before", k, countsAfter[k], v)
		}
	}
	for k, v := range countsAfter {
		if _, ok := countsBefore[k]; !ok {
			t.Errorf("series %s (%v samples) is new after compaction", k, v)
		}
	}
	t.Logf("deduplicated samples: %v in %d series before, the same after", total, len(countsBefore))
}

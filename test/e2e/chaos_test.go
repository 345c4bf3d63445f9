package e2e

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestChaos: the HA pair (two Prometheus replicas scraping each other and a node
// exporter, a sidecar beside each), a store gateway over MinIO holding two hours of
// history per replica (test_metric, 10 series, same external labels as the sidecars),
// and a querier over all three that deduplicates on replica. A query loop (instant and
// range queries over the replicas' recent data, over the history only, and over both)
// runs throughout while each component in turn is killed with SIGKILL and started again,
// or frozen with SIGSTOP and thawed: a Prometheus replica, a sidecar, the store gateway,
// MinIO, the querier.
//
// It asserts:
//   - while one replica of the pair is up (every Prometheus and sidecar fault), every
//     deduplicated answer is complete: every series, a point at every 1s step with a 3s
//     lookback (no gap beyond the scrape cadence), the exact history;
//   - while the store gateway or MinIO is faulted, the history is an error or a partial
//     answer with a warning, never a wrong answer without one; with
//     partial_response=false never a partial answer, but for the documented skip of an
//     endpoint the querier's last probe found unhealthy; the replicas' recent data stays
//     complete;
//   - while the querier is down clients see connection errors, and it answers again
//     within 30s of its restart;
//   - no answer ever takes longer than the query timeout (10s) plus 5s slack, except those
//     sent to the frozen querier itself;
//   - after each restart or thaw every query is complete again within 60s, and stays so;
//   - over the whole run the deduplicated recent data has no gap.
//
// The errors clients saw per phase, the latencies and the time to recover are logged as
// a table.
func TestChaos(t *testing.T) {
	t.Parallel()
	const (
		queryTimeout = 10 * time.Second
		slack        = 5 * time.Second
		faultFor     = 4 * time.Second
		nHist        = 10
	)
	replicasWindow := chaosReplicasWindow
	f := startHAFixture(t)
	if err := f.q.Stop(e2eutil.DefaultStopTimeout); err != nil { // the fixture's own querier is not used
		t.Fatal(err)
	}

	// History: two 2h blocks per replica, ending 10 minutes ago, labelled as the sidecars.
	m := e2eutil.StartMinIO(t)
	bkt := openBucket(t, m)
	histEnd := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	hist := histEnd - 4*hourMs
	var histBlocks []testBlock
	for r := range 2 {
		for i := range 2 {
			histBlocks = append(histBlocks, uploadTestBlock(t, bkt, hist+int64(i)*2*hourMs, hist+int64(i+1)*2*hourMs, nHist, replicaExtLabels(r)))
		}
	}
	st := e2eutil.StartVigil(t, "store", "--objstore.config-file="+m.WriteObjstoreConfig(t, ""),
		"--data-dir="+t.TempDir(), "--sync-block-duration=5s")
	st.MustWaitReady(t)
	q := e2eutil.StartVigil(t, "query", "--endpoint="+f.side[0].GRPCAddr, "--endpoint="+f.side[1].GRPCAddr,
		"--endpoint="+st.GRPCAddr, "--query.replica-label="+replicaLabel)
	q.MustWaitReady(t)
	e2eutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() error {
		if err := storesHealthy(q.HTTPURL, "sidecar", f.side[0].GRPCAddr, f.side[1].GRPCAddr); err != nil {
			return err
		}
		return storesHealthy(q.HTTPURL, "store", st.GRPCAddr)
	})

	// The range query looks 12s back: let both replicas scrape that long first.
	sleepUntil(f.t0.Add(chaosReplicasWindow + 5*time.Second))
	queries := chaosQueries(f, histBlocks[:2], queryTimeout)
	loop := &chaosLoop{base: q.HTTPURL, queries: queries}
	// Everything answers completely before the chaos starts.
	for _, cq := range queries {
		if r := runFaultQuery("q", q.HTTPURL, cq.build(time.Now())); r.out != outComplete {
			t.Fatalf("before the chaos: %s", r)
		}
	}

	restart := func(p *e2eutil.Process, ready func(time.Duration) error) func() error {
		return func() error {
			if err := p.Start(); err != nil {
				return err
			}
			return ready(60 * time.Second)
		}
	}
	kill := func(p *e2eutil.Process) func() error { return p.Kill }
	freeze := func(p *e2eutil.Process) func() error { return func() error { return p.Freeze(t) } }
	// A Prometheus fault leaves a hole in that replica's data. A later fault on the other
	// replica's path (its Prometheus or its sidecar) waits until the hole has left the
	// window of the range query, so that one replica of the pair always covers it: the
	// phases of the two replicas are interleaved with the others to keep that wait short.
	phases := []*chaosPhase{
		{name: "prometheus r0 kill -9", comp: "prometheus", replica: 0, inject: kill(f.prom[0].Process), restore: restart(f.prom[0].Process, f.prom[0].WaitReady)},
		{name: "store SIGSTOP", comp: "store", replica: -1, inject: freeze(st.Process), restore: st.Thaw},
		{name: "store kill -9", comp: "store", replica: -1, inject: kill(st.Process), restore: restart(st.Process, st.WaitReady)},
		{name: "prometheus r1 SIGSTOP", comp: "prometheus", replica: 1, inject: freeze(f.prom[1].Process), restore: f.prom[1].Thaw},
		{name: "minio SIGSTOP", comp: "minio", replica: -1, inject: freeze(m.Process), restore: m.Thaw},
		{name: "minio kill -9", comp: "minio", replica: -1, inject: kill(m.Process), restore: m.Restart},
		{name: "sidecar r0 SIGSTOP", comp: "sidecar", replica: 0, inject: freeze(f.side[0].Process), restore: f.side[0].Thaw},
		{name: "sidecar r1 kill -9", comp: "sidecar", replica: 1, inject: kill(f.side[1].Process), restore: restart(f.side[1].Process, f.side[1].WaitReady)},
		{name: "querier SIGSTOP", comp: "querier", replica: -1, inject: freeze(q.Process), restore: q.Thaw},
		{name: "querier kill -9", comp: "querier", replica: -1, inject: kill(q.Process), restore: restart(q.Process, q.WaitReady)},
	}
	// holeEnd[r]: when replica r scraped again after its last Prometheus fault.
	var holeEnd [2]time.Time
	// scraping waits until replica r has a sample of the node exporter's up from the last
	// second (dedup off) and returns when that sample was taken.
	scraping := func(r int) time.Time {
		var at time.Time
		e2eutil.Poll(t, 60*time.Second, 100*time.Millisecond, func() error {
			now := time.Now()
			res, err := callAPI(q.HTTPURL, "/api/v1/query", url.Values{"query": {fmt.Sprintf(`timestamp(up{job="node",replica="r%d"})`, r)},
				"dedup": {"false"}, "lookback_delta": {"1s"}, "time": {unixParam(now)}})
			if err != nil {
				return err
			}
			vec, err := res.series("vector")
			if err != nil || len(vec) != 1 {
				return fmt.Errorf("replica r%d not scraping yet: %v %v", r, err, res)
			}
			ts := vec[0].value(t)
			at = time.UnixMilli(int64(ts.V * 1000))
			return nil
		})
		return at
	}

	chaosStart := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	loop.start(ctx, &workers)
	defer func() { cancel(); workers.Wait() }() // also when a restore fails the test
	// A steady start, then the faults one after another.
	time.Sleep(2 * time.Second)
	for _, ph := range phases {
		if ph.replica >= 0 {
			sleepUntil(holeEnd[1-ph.replica].Add(replicasWindow + 2*time.Second))
		}
		ph.start = time.Now()
		loop.setPhase(ph)
		if err := ph.inject(); err != nil {
			t.Fatalf("%s: inject: %v", ph.name, err)
		}
		time.Sleep(faultFor)
		ph.restoreAt = time.Now()
		if err := ph.restore(); err != nil {
			t.Fatalf("%s: restore: %v", ph.name, err)
		}
		ph.restored = time.Now()
		// Recovered once every query has answered completely, sent after the restore.
		deadline := ph.restoreAt.Add(60 * time.Second)
		for !loop.recovered(ph) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		ph.recovery = loop.recoveryTime(ph)
		if ph.comp == "prometheus" {
			holeEnd[ph.replica] = scraping(ph.replica)
			ph.note = fmt.Sprintf("(r%d scraping again %s after the restore began)", ph.replica, max(0, holeEnd[ph.replica].Sub(ph.restoreAt)).Round(time.Millisecond))
		}
		time.Sleep(2 * time.Second) // steady state: must stay complete
	}
	cancel()
	workers.Wait()
	chaosEnd := time.Now()
	t.Logf("chaos loop: %d phases, %d requests in %s", len(phases), len(loop.records), chaosEnd.Sub(chaosStart).Round(time.Second))

	loop.check(t, queryTimeout+slack)
	loop.report(t)

	// Over the whole run, with every fault behind it, the deduplicated recent data has a
	// point at every 1s step (3s lookback) and raw samples never more than 2.5s apart.
	e2eutil.Poll(t, 30*time.Second, 500*time.Millisecond, func() error {
		return storesHealthy(q.HTTPURL, "sidecar", f.side[0].GRPCAddr, f.side[1].GRPCAddr)
	})
	from, to := chaosStart.Add(-5*time.Second).Truncate(time.Second), chaosEnd.Add(-2*time.Second).Truncate(time.Second)
	r, mtx := rangeQuery(t, q.HTTPURL, "up", from, to, time.Second, url.Values{"lookback_delta": {"3s"}})
	wantPoints := steps(from, to, time.Second)
	if len(mtx) != 3 {
		t.Errorf("up over the chaos run: %d series %v, want 3", len(mtx), metricKeys(mtx))
	}
	for _, s := range mtx {
		if _, ok := s.Metric[replicaLabel]; ok {
			t.Errorf("up over the chaos run: series %s keeps the replica label", metricKey(s.Metric))
		}
		if len(s.Values) != wantPoints {
			t.Errorf("up over the chaos run (%s): series %s has %d points, want %d: a gap in the deduplicated data",
				to.Sub(from).Round(time.Second), metricKey(s.Metric), len(s.Values), wantPoints)
		}
	}
	raw := rawSamples(t, q.HTTPURL, nodeUp, from, to, nil)
	if len(raw) != 1 {
		t.Fatalf("raw %s over the chaos run: %d series, want 1", nodeUp, len(raw))
	}
	spacing := maxSpacing(raw[0].samples(t))
	if spacing > 2500 {
		t.Errorf("raw %s over the chaos run: a %dms gap between deduplicated samples", nodeUp, spacing)
	}
	if t.Failed() {
		// Where each replica has holes, and where the deduplicated series has them.
		gaps := func(ss []sample) string {
			var out []string
			for i := 1; i < len(ss); i++ {
				if d := ss[i].T - ss[i-1].T; d > 1500 {
					out = append(out, fmt.Sprintf("(+%.3fs, +%.3fs]", float64(ss[i-1].T-chaosStart.UnixMilli())/1000, float64(ss[i].T-chaosStart.UnixMilli())/1000))
				}
			}
			return strings.Join(out, " ")
		}
		var phs []string
		for _, ph := range phases {
			phs = append(phs, fmt.Sprintf("%s +%.3fs..+%.3fs", ph.name, ph.start.Sub(chaosStart).Seconds(), ph.restored.Sub(chaosStart).Seconds()))
		}
		t.Logf("phases: %s", strings.Join(phs, "; "))
		t.Logf("gaps over 1.5s in the deduplicated %s: %s", nodeUp, gaps(raw[0].samples(t)))
		for _, s := range rawSamples(t, q.HTTPURL, nodeUp, from, to, url.Values{"dedup": {"false"}}) {
			t.Logf("gaps over 1.5s in replica %s: %s", s.Metric[replicaLabel], gaps(s.samples(t)))
		}
	}
	t.Logf("up over the whole run (%s): %d series × %d points at 1s, warnings %q; raw %s: max spacing %dms",
		to.Sub(from).Round(time.Second), len(mtx), wantPoints, r.Warnings, nodeUp, spacing)
}

// chaosReplicasWindow is the range of the loop's range query over the replicas' data.
const chaosReplicasWindow = 10 * time.Second

// chaosQuery is one query of the loop: src says where its data lives ("replicas": both
// sidecars; "history": the store gateway only; "mixed": both), which decides what a
// fault may do to it.
type chaosQuery struct {
	name  string
	src   string
	abort bool // partial_response=false
	build func(now time.Time) faultQuery
}

// chaosQueries builds the loop's queries; hist are the two blocks of one replica (both
// replicas hold the same samples).
func chaosQueries(f *haFixture, hist []testBlock, timeout time.Duration) []chaosQuery {
	to := timeout.String()
	targets := f.targets()
	var wantUp []string
	for job, insts := range targets {
		for _, in := range insts {
			wantUp = append(wantUp, job+"/"+in)
		}
	}
	slices.Sort(wantUp)
	upSeries := func(ss []promSeries) error {
		var got []string
		for _, s := range ss {
			if _, ok := s.Metric[replicaLabel]; ok {
				return fmt.Errorf("series %s keeps the replica label", metricKey(s.Metric))
			}
			got = append(got, s.Metric["job"]+"/"+s.Metric["instance"])
		}
		slices.Sort(got)
		if !slices.Equal(got, wantUp) {
			return fmt.Errorf("series %v, want %v", got, wantUp)
		}
		return nil
	}
	h0, h1 := hist[0], hist[1]
	wantSum := 0.0
	for i := range h0.series {
		wantSum += float64(i*1000) + 240 // at h0.mint + 1h
	}
	histSum := func(now time.Time) faultQuery {
		return faultQuery{name: "history-instant", path: "/api/v1/query",
			params: url.Values{"query": {"sum(test_metric)"}, "time": {unixParam(time.UnixMilli(h0.mint + hourMs))}, "timeout": {to}},
			check: func(r apiResult) error {
				smp, err := r.single()
				if err != nil {
					return err
				}
				if smp.V != wantSum {
					return fmt.Errorf("sum %v, want %v", smp.V, wantSum)
				}
				return nil
			}}
	}
	mixed := func(now time.Time) faultQuery {
		return faultQuery{name: "mixed-instant", path: "/api/v1/query",
			params: url.Values{"query": {`count(count_over_time({__name__=~"up|test_metric"}[5h]))`},
				"time": {unixParam(now.Add(-time.Second))}, "timeout": {to}},
			check: func(r apiResult) error {
				smp, err := r.single()
				if err != nil {
					return err
				}
				if want := float64(len(wantUp) + h0.series); smp.V != want {
					return fmt.Errorf("%v series of up and test_metric over 5h, want %v", smp.V, want)
				}
				return nil
			}}
	}
	return []chaosQuery{
		{name: "replicas-instant", src: "replicas", build: func(now time.Time) faultQuery {
			return faultQuery{name: "replicas-instant", path: "/api/v1/query",
				params: url.Values{"query": {"up"}, "time": {unixParam(now.Add(-time.Second))}, "timeout": {to}},
				check: func(r apiResult) error {
					vec, err := r.series("vector")
					if err != nil {
						return err
					}
					return upSeries(vec)
				}}
		}},
		{name: "replicas-range", src: "replicas", build: func(now time.Time) faultQuery {
			end := now.Add(-2 * time.Second).Truncate(time.Second)
			start := end.Add(-chaosReplicasWindow)
			return faultQuery{name: "replicas-range", path: "/api/v1/query_range",
				params: url.Values{"query": {"up"}, "start": {unixParam(start)}, "end": {unixParam(end)}, "step": {"1"},
					"lookback_delta": {"3s"}, "timeout": {to}},
				check: func(r apiResult) error {
					mtx, err := r.series("matrix")
					if err != nil {
						return err
					}
					if err := upSeries(mtx); err != nil {
						return err
					}
					for _, s := range mtx {
						if want := int(chaosReplicasWindow/time.Second) + 1; len(s.Values) != want {
							return fmt.Errorf("series %s: %d points over %s at 1s steps, want %d (a gap)", metricKey(s.Metric), len(s.Values), chaosReplicasWindow, want)
						}
					}
					return nil
				}}
		}},
		{name: "history-instant", src: "history", build: histSum},
		{name: "history-range", src: "history", build: func(now time.Time) faultQuery {
			return faultQuery{name: "history-range", path: "/api/v1/query_range",
				params: url.Values{"query": {"count(test_metric)"}, "start": {unixParam(time.UnixMilli(h0.mint))},
					"end": {unixParam(time.UnixMilli(h1.maxt - 1))}, "step": {"600"}, "timeout": {to}},
				check: func(r apiResult) error {
					mtx, err := r.series("matrix")
					if err != nil {
						return err
					}
					want := int((h1.maxt-1-h0.mint)/600_000) + 1
					if len(mtx) != 1 || len(mtx[0].Values) != want {
						return fmt.Errorf("%d series, want 1 with %d points", len(mtx), want)
					}
					for _, p := range mtx[0].Values {
						smp, err := decodePair(p)
						if err != nil {
							return err
						}
						if smp.V != float64(h0.series) {
							return fmt.Errorf("count %v at %d, want %d", smp.V, smp.T, h0.series)
						}
					}
					return nil
				}}
		}},
		{name: "mixed-instant", src: "mixed", build: mixed},
		{name: "mixed-instant/abort", src: "mixed", abort: true, build: func(now time.Time) faultQuery {
			fq := mixed(now)
			fq.name += "/abort"
			fq.params.Set("partial_response", "false")
			return fq
		}},
	}
}

// chaosPhase is one fault: injected at start, restored at restoreAt (restored once the
// component is ready again), recovered when every query answered completely again.
type chaosPhase struct {
	name, comp      string
	replica         int // the replica whose data path the fault cuts, or -1
	inject, restore func() error
	note            string

	start, restoreAt, restored time.Time
	recovery                   time.Duration // -1: not recovered within the bound
}

// chaosRecord is one request of the loop.
type chaosRecord struct {
	query      chaosQuery
	phase      *chaosPhase // in effect when the answer came; nil before the first
	start, end time.Time
	res        faultResult
}

type chaosLoop struct {
	base    string
	queries []chaosQuery

	mu      sync.Mutex
	phase   *chaosPhase
	records []chaosRecord
}

func (l *chaosLoop) setPhase(ph *chaosPhase) {
	l.mu.Lock()
	l.phase = ph
	l.mu.Unlock()
}

// start runs one worker per query, each sending its query again 100ms after the last
// answer, until ctx is done.
func (l *chaosLoop) start(ctx context.Context, wg *sync.WaitGroup) {
	for _, cq := range l.queries {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				res := runFaultQuery("q", l.base, cq.build(start))
				// A request belongs to the phase in effect when it ended: one sent just
				// before a fault and answered under it shows that fault.
				l.mu.Lock()
				l.records = append(l.records, chaosRecord{query: cq, phase: l.phase, start: start, end: time.Now(), res: res})
				l.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
}

// firstComplete returns, per query, the end of its first complete answer sent at or
// after ph.restoreAt.
func (l *chaosLoop) firstComplete(ph *chaosPhase) map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]time.Time{}
	for _, r := range l.records {
		if r.phase != ph || r.start.Before(ph.restoreAt) || r.res.out != outComplete {
			continue
		}
		if t, ok := out[r.query.name]; !ok || r.end.Before(t) {
			out[r.query.name] = r.end
		}
	}
	return out
}

func (l *chaosLoop) recovered(ph *chaosPhase) bool {
	return len(l.firstComplete(ph)) == len(l.queries)
}

// recoveryTime is how long after the restore action the last query answered completely
// again; -1 if some query did not.
func (l *chaosLoop) recoveryTime(ph *chaosPhase) time.Duration {
	fc := l.firstComplete(ph)
	if len(fc) < len(l.queries) {
		return -1
	}
	var d time.Duration
	for _, t := range fc {
		d = max(d, t.Sub(ph.restoreAt))
	}
	return d
}

// check applies the assertions of TestChaos to every record.
func (l *chaosLoop) check(t *testing.T, maxLatency time.Duration) {
	t.Helper()
	recovered := map[*chaosPhase]map[string]time.Time{}
	for _, ph := range l.phaseList() {
		recovered[ph] = l.firstComplete(ph)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := 0
	fail := func(format string, args ...any) {
		if errs < 30 {
			t.Errorf(format, args...)
		}
		errs++
	}
	for _, r := range l.records {
		ph := r.phase
		if ph == nil { // before the first fault
			if r.res.out != outComplete {
				fail("before the first fault: %s", r.res)
			}
			continue
		}
		what := fmt.Sprintf("%s (+%s): %s", ph.name, r.start.Sub(ph.start).Round(time.Millisecond), r.res)
		// Sent to (or in flight at) the frozen or dead querier: only the querier's phase.
		atQuerier := ph.comp == "querier" && r.start.Before(ph.restored)
		if r.res.took > maxLatency && !atQuerier {
			fail("%s: took %s, more than the query timeout plus slack (%s)", what, r.res.took.Round(time.Millisecond), maxLatency)
		}
		if r.res.out == outSilent {
			fail("%s: an incomplete answer without a warning", what)
			continue
		}
		// With partial_response=false the only partial answer allowed is one that
		// leaves out an endpoint the querier's last Info probe found unhealthy: those
		// are skipped with a warning and never fail a request (docs/components/query.md).
		// A partial answer for any other reason (hedging a store gateway as if it were a
		// replica, an endpoint error) must be an error.
		if r.query.abort && r.res.out == outPartial && !slices.ContainsFunc(r.res.warnings, func(w string) bool {
			return strings.Contains(w, "is unavailable and was not queried")
		}) {
			fail("%s: a partial answer although partial_response=false", what)
		}
		if r.res.out == outComplete {
			continue
		}
		// Once a query answered completely after the restore, it must stay complete.
		if fc, ok := recovered[ph][r.query.name]; ok && r.start.After(fc) {
			fail("%s: failed again after it had recovered", what)
			continue
		}
		switch ph.comp {
		case "prometheus", "sidecar":
			// One replica of the pair is always up: everything stays complete. With
			// partial_response=false, an endpoint that fails outright fails the query
			// until the querier's next Info probe (every 5s) marks it unhealthy and
			// skips it: an error, never a partial answer.
			if r.query.abort && r.res.out == outError {
				continue
			}
			fail("%s: not complete while the other replica was up", what)
		case "store", "minio":
			if r.query.src == "replicas" {
				fail("%s: the replicas' data is not complete while only the history was unavailable", what)
			}
			if r.res.out == outTransport {
				fail("%s: the querier did not answer", what)
			}
		case "querier":
			// Connection errors, client timeouts: expected while it is down.
		}
	}
	if errs > 30 {
		t.Errorf("... and %d more", errs-30)
	}
	for ph := range recovered {
		switch {
		case ph.recovery < 0:
			t.Errorf("%s: not every query was complete again within 60s of the restore", ph.name)
		case ph.comp == "querier" && ph.recovery > 30*time.Second:
			t.Errorf("%s: the querier answered again only %s after its restart, want within 30s", ph.name, ph.recovery)
		}
	}
}

func (l *chaosLoop) phaseList() []*chaosPhase {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.phaseListLocked()
}

func (l *chaosLoop) phaseListLocked() []*chaosPhase {
	var out []*chaosPhase
	for _, r := range l.records {
		if r.phase != nil && !slices.Contains(out, r.phase) {
			out = append(out, r.phase)
		}
	}
	return out
}

// report logs, per phase, what clients saw: outcomes per query, latencies, the first
// error of each kind, and the time to recover.
func (l *chaosLoop) report(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-24s %-21s %5s %8s %7s %5s %9s %6s %9s %9s\n", "phase", "query", "reqs", "complete", "partial", "error", "transport", "SILENT", "max", "median")
	var recov strings.Builder
	examples := map[string]string{}
	for _, ph := range l.phaseListLocked() {
		for _, cq := range l.queries {
			var n int
			counts := map[outcome]int{}
			var lat []time.Duration
			for _, r := range l.records {
				if r.phase != ph || r.query.name != cq.name {
					continue
				}
				n++
				counts[r.res.out]++
				lat = append(lat, r.res.took)
				if r.res.out != outComplete {
					k := ph.name + " / " + string(r.res.out)
					if _, ok := examples[k]; !ok {
						examples[k] = fmt.Sprintf("%s (HTTP %d, %s): %.240s", cq.name, r.res.status, r.res.took.Round(time.Millisecond), r.res.detail)
					}
				}
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			var mx, med time.Duration
			if len(lat) > 0 {
				mx, med = lat[len(lat)-1], lat[len(lat)/2]
			}
			fmt.Fprintf(&sb, "%-24s %-21s %5d %8d %7d %5d %9d %6d %9s %9s\n", ph.name, cq.name, n, counts[outComplete], counts[outPartial],
				counts[outError], counts[outTransport], counts[outSilent], mx.Round(time.Millisecond), med.Round(time.Millisecond))
		}
		rec := "not recovered"
		if ph.recovery >= 0 {
			rec = ph.recovery.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&recov, "%-24s restore took %-8s complete again %s after the restore began %s\n", ph.name,
			ph.restored.Sub(ph.restoreAt).Round(time.Millisecond), rec, ph.note)
	}
	keys := make([]string, 0, len(examples))
	for k := range examples {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ex strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&ex, "%s: %s\n", k, examples[k])
	}
	t.Logf("what clients saw, per phase and query:\n%s", sb.String())
	t.Logf("recovery:\n%s", recov.String())
	t.Logf("first answer of each kind that was not complete:\n%s", ex.String())
}

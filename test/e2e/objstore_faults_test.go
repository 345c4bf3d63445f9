package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestObjstoreFaults: real MinIO is frozen (SIGSTOP) and killed (SIGKILL, then started
// again on the same data directory and port) under each of Vigil's users of object
// storage, and nothing that uses it is restarted:
//
//   - StoreGateway: queries through vigil query → vigil store answer within the query
//     timeout with an error or a partial answer that carries a warning, never a hang and
//     never a wrong answer without a warning; once MinIO is back they are complete again.
//   - Compact: vigil compact --wait with MinIO frozen and killed mid-pass retries, does
//     not halt, loses no sample and leaves no duplicate visible block.
//   - Upload: the sidecar's shipper with MinIO frozen or killed in the middle of a block's
//     upload retries and uploads every block once, complete, meta.json last.
//
// Every figure (latencies under faults, time to recover) is in the test log.
func TestObjstoreFaults(t *testing.T) {
	t.Parallel()
	t.Run("StoreGateway", func(t *testing.T) { t.Parallel(); testObjstoreFaultsStore(t) })
	t.Run("Upload", func(t *testing.T) { t.Parallel(); testObjstoreFaultsUpload(t) })
	t.Run("Compact", func(t *testing.T) { t.Parallel(); testObjstoreFaultsCompact(t) })
}

// --- store gateway ---------------------------------------------------------------------

// faultQuery is a query with a check of its answer: check returns nil when the answer is
// complete and right.
type faultQuery struct {
	name   string
	path   string
	params url.Values
	check  func(r apiResult) error
}

// outcome classifies an answer as a user sees it.
type outcome string

const (
	outComplete  outcome = "complete"  // 200, the right answer
	outPartial   outcome = "partial"   // 200 with warnings, the answer incomplete
	outError     outcome = "error"     // an error envelope (4xx, 5xx)
	outTransport outcome = "transport" // no HTTP answer: connection refused, reset, client timeout
	outSilent    outcome = "SILENT"    // 200 without a warning, and the answer is wrong
)

// faultResult is one query's answer under a fault.
type faultResult struct {
	querier  string
	query    string
	out      outcome
	status   int
	took     time.Duration
	detail   string // the error, the first warning or what was wrong
	warnings []string
}

func (r faultResult) String() string {
	return fmt.Sprintf("%s %s: %s (HTTP %d) in %s: %.200s", r.querier, r.query, r.out, r.status, r.took.Round(time.Millisecond), r.detail)
}

// runFaultQuery sends q and classifies the answer.
func runFaultQuery(querier, base string, q faultQuery) faultResult {
	start := time.Now()
	r, err := callAPI(base, q.path, q.params)
	res := faultResult{querier: querier, query: q.name, status: r.HTTPStatus, took: time.Since(start), warnings: r.Warnings}
	switch {
	case err != nil && r.HTTPStatus == 0:
		res.out, res.detail = outTransport, err.Error()
	case err != nil:
		res.out, res.detail = outError, err.Error()
	case r.HTTPStatus != http.StatusOK || r.Status != "success":
		res.out, res.detail = outError, r.ErrorType+": "+r.Error
	default:
		cerr := q.check(r)
		switch {
		case cerr == nil:
			res.out = outComplete
			if len(r.Warnings) > 0 {
				res.detail = "warnings: " + strings.Join(r.Warnings, "; ")
			}
		case len(r.Warnings) > 0:
			res.out, res.detail = outPartial, r.Warnings[0]+" (answer: "+cerr.Error()+")"
		default:
			res.out, res.detail = outSilent, cerr.Error()
		}
	}
	return res
}

// storeFaultQueries are the queries of one round against the blocks bs, aimed at block k
// so that consecutive rounds read different index and chunk ranges. timeout is the
// query's own deadline.
func storeFaultQueries(bs []testBlock, k int, timeout time.Duration) []faultQuery {
	b := bs[k%len(bs)]
	n := b.series
	at := b.mint + 30*60*1000 // a sample of every series: value i*1000 + 120
	wantSum := 0.0
	for i := range n {
		wantSum += float64(i*1000) + 120
	}
	to := timeout.String()
	rawAt := b.mint + 90*60*1000
	return []faultQuery{
		{name: "instant-sum", path: "/api/v1/query",
			params: url.Values{"query": {"sum(test_metric)"}, "time": {unixParam(time.UnixMilli(at))}, "timeout": {to}},
			check: func(r apiResult) error {
				smp, err := r.single()
				if err != nil {
					return err
				}
				if smp.V != wantSum {
					return fmt.Errorf("sum %v, want %v", smp.V, wantSum)
				}
				return nil
			}},
		{name: "range-count", path: "/api/v1/query_range",
			params: url.Values{"query": {"count(test_metric)"}, "start": {unixParam(time.UnixMilli(b.mint))},
				"end": {unixParam(time.UnixMilli(b.maxt - 1))}, "step": {"600"}, "timeout": {to}},
			check: func(r apiResult) error {
				m, err := r.series("matrix")
				if err != nil {
					return err
				}
				if len(m) != 1 || len(m[0].Values) != 12 {
					return fmt.Errorf("%d series (%v), want 1 with 12 points", len(m), metricKeys(m))
				}
				for _, p := range m[0].Values {
					smp, err := decodePair(p)
					if err != nil {
						return err
					}
					if smp.V != float64(n) {
						return fmt.Errorf("count %v at %d, want %d", smp.V, smp.T, n)
					}
				}
				return nil
			}},
		{name: "raw-1h", path: "/api/v1/query",
			params: url.Values{"query": {`test_metric{series="7"}[1h]`}, "time": {unixParam(time.UnixMilli(rawAt))}, "timeout": {to}},
			check: func(r apiResult) error {
				m, err := r.series("matrix")
				if err != nil {
					return err
				}
				if len(m) != 1 {
					return fmt.Errorf("%d series, want 1", len(m))
				}
				var got []e2eutil.RawSample
				for _, p := range m[0].Values {
					smp, err := decodePair(p)
					if err != nil {
						return err
					}
					got = append(got, e2eutil.RawSample{T: smp.T, V: smp.V})
				}
				want := b.expectedSamples(7, rawAt-hourMs+1, rawAt)
				if !sameSamples(want, got) {
					return fmt.Errorf("%d samples, want %d", len(got), len(want))
				}
				return nil
			}},
	}
}

// storeRound runs every query against every querier concurrently.
func storeRound(queriers map[string]string, qs []faultQuery) []faultResult {
	var (
		mu  sync.Mutex
		out []faultResult
		wg  sync.WaitGroup
	)
	for name, base := range queriers {
		for _, q := range qs {
			wg.Go(func() {
				r := runFaultQuery(name, base, q)
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		return out[i].querier+out[i].query < out[j].querier+out[j].query
	})
	return out
}

// waitComplete runs rounds until one is complete on every querier, without warnings,
// and returns how long that took from since.
func waitComplete(t *testing.T, what string, since time.Time, queriers map[string]string, queries func(round int) []faultQuery) time.Duration {
	t.Helper()
	var last []faultResult
	for round := 0; time.Since(since) < 90*time.Second; round++ {
		last = storeRound(queriers, queries(round))
		ok := true
		for _, r := range last {
			if r.out != outComplete || r.detail != "" {
				ok = false
			}
		}
		if ok {
			took := time.Since(since)
			t.Logf("%s: complete again %s after MinIO returned (%d rounds)", what, took.Round(time.Millisecond), round+1)
			return took
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, r := range last {
		t.Logf("  last round: %s", r)
	}
	t.Fatalf("%s: queries not complete 90s after MinIO returned", what)
	return 0
}

// testObjstoreFaultsStore: eight blocks in MinIO served by vigil store with the index
// cache off (--index-cache-size=0; chunks are never cached), so every query reads
// postings, series and chunks from MinIO. Two queriers: qa bounded only by the query's
// own timeout (8s), qb with --store.response-timeout=2s. MinIO is frozen, thawed, frozen
// again and killed while frozen, and started again.
func testObjstoreFaultsStore(t *testing.T) {
	const (
		queryTimeout    = 8 * time.Second
		responseTimeout = 2 * time.Second
		// slack for a loaded 2-core machine on top of the query timeout: an answer later
		// than queryTimeout+slack is a hang.
		slack = 5 * time.Second
	)
	m := e2eutil.StartMinIO(t)
	bkt := openBucket(t, m)
	ext := map[string]string{"cluster": "objfault"}
	base := time.Now().Add(-30 * time.Hour).Truncate(2 * time.Hour).UnixMilli()
	var bs []testBlock
	for i := range 8 {
		bs = append(bs, uploadTestBlock(t, bkt, base+int64(i)*2*hourMs, base+int64(i+1)*2*hourMs, 20, ext))
	}
	st := e2eutil.StartVigil(t, "store", "--objstore.config-file="+m.WriteObjstoreConfig(t, ""),
		"--data-dir="+filepath.Join(t.TempDir(), "store"), "--index-cache-size=0", "--sync-block-duration=1s")
	st.MustWaitReady(t)
	qa := e2eutil.StartVigil(t, "query", "--endpoint="+st.GRPCAddr, "--query.timeout="+queryTimeout.String())
	qb := e2eutil.StartVigil(t, "query", "--endpoint="+st.GRPCAddr, "--store.response-timeout="+responseTimeout.String())
	for _, q := range []*e2eutil.Vigil{qa, qb} {
		q.MustWaitReady(t)
		e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error { return storesHealthy(q.HTTPURL, "store", st.GRPCAddr) })
	}
	vigils := map[string]*e2eutil.Vigil{"store": st, "qa": qa, "qb": qb}
	pids := map[string]int{}
	for n, v := range vigils {
		pids[n] = v.Pid()
	}
	queriers := map[string]string{"qa": qa.HTTPURL, "qb": qb.HTTPURL}
	k := 0
	next := func(int) []faultQuery { k++; return storeFaultQueries(bs, k, queryTimeout) }
	abort := func() faultQuery { // partial_response=false: an incomplete answer must be an error
		q := storeFaultQueries(bs, k+3, queryTimeout)[0]
		q.name += "/abort"
		q.params.Set("partial_response", "false")
		return q
	}

	var table []string
	report := func(phase string, rs []faultResult) {
		for _, r := range rs {
			table = append(table, fmt.Sprintf("%-22s %s", phase, r))
		}
	}
	// checkFault asserts what a fault may do to a round: no silent wrong answer, no
	// transport error (the querier is up), no answer later than the query's deadline
	// plus slack, and a partial_response=false query is never a 200 with missing data.
	checkFault := func(phase string, rs []faultResult) {
		t.Helper()
		report(phase, rs)
		for _, r := range rs {
			switch {
			case r.out == outSilent:
				t.Errorf("%s: %s: an incomplete answer without a warning", phase, r)
			case r.out == outTransport:
				t.Errorf("%s: %s: the querier did not answer", phase, r)
			case r.took > queryTimeout+slack:
				t.Errorf("%s: %s: answered after %s, later than the %s query timeout + %s", phase, r, r.took.Round(time.Millisecond), queryTimeout, slack)
			case strings.HasSuffix(r.query, "/abort") && r.out != outError && r.out != outComplete:
				t.Errorf("%s: %s: with partial_response=false an incomplete answer must be an error", phase, r)
			}
		}
	}

	// Healthy.
	rs := storeRound(queriers, next(0))
	report("healthy", rs)
	for _, r := range rs {
		if r.out != outComplete || r.detail != "" {
			t.Fatalf("healthy: %s", r)
		}
	}

	// 1. MinIO frozen: connections are accepted by the kernel and never answered.
	if err := m.Freeze(t); err != nil {
		t.Fatal(err)
	}
	rs = storeRound(queriers, append(next(0), abort()))
	checkFault("frozen", rs)
	for _, r := range rs {
		if r.querier == "qb" && r.out == outComplete {
			t.Errorf("frozen: %s: complete although MinIO is frozen: the query did not reach MinIO", r)
		}
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawRecovery := waitComplete(t, "thawed", time.Now(), queriers, next)

	// 2. Frozen again, queries in flight, then killed while frozen: the frozen connections
	// are reset. MinIO stays down for a while, then starts again on the same data
	// directory and port.
	if err := m.Freeze(t); err != nil {
		t.Fatal(err)
	}
	inflight := make(chan []faultResult, 1)
	go func() { inflight <- storeRound(queriers, next(0)) }()
	time.Sleep(time.Second)
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	checkFault("frozen-then-killed", <-inflight)
	checkFault("down", storeRound(queriers, append(next(0), abort())))
	sleepUntil(killed.Add(10 * time.Second))
	checkFault("down-10s", storeRound(queriers, next(0)))
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	restartRecovery := waitComplete(t, "restarted", time.Now(), queriers, next)

	sort.Strings(table)
	t.Logf("store gateway under MinIO faults (phase, querier, query, outcome, latency):\n%s", strings.Join(table, "\n"))
	t.Logf("recovery: %s after SIGCONT, %s after MinIO restarted (down %s)", thawRecovery.Round(time.Millisecond),
		restartRecovery.Round(time.Millisecond), time.Since(killed).Round(time.Second))

	// Nothing was restarted, and the store still serves every block.
	for n, v := range vigils {
		if v.Exited() || v.Pid() != pids[n] {
			t.Errorf("%s exited or was restarted during the MinIO faults", n)
		}
	}
	if n := mustMetric(t, st.HTTPURL, "vigil_store_blocks_loaded"); int(n) != len(bs) {
		t.Errorf("vigil_store_blocks_loaded = %v after the faults, want %d", n, len(bs))
	}
	t.Logf("store: %v block read failures, %v sync failures, %v syncs", mustMetric(t, st.HTTPURL, "vigil_store_block_read_failures_total"),
		mustMetric(t, st.HTTPURL, "vigil_store_sync_failures_total"), mustMetric(t, st.HTTPURL, "vigil_store_syncs_total"))
	// A sync that cannot reach the bucket must not unload the blocks it serves: the store
	// would then answer without them, and without a warning, until a later sync.
	if l := grepLines(st.Log(), "dropped block"); l != "" {
		t.Errorf("the store dropped blocks during the MinIO faults:\n%s", l)
	}
	t.Logf("store: %d checks of a served block's meta.json failed during the faults; the blocks stayed served",
		strings.Count(st.Log(), "still serving it"))
}

// --- upload ----------------------------------------------------------------------------

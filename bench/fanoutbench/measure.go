package main

// The queries, the answer check and the two measured phases.

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// query is one timed request.
type query struct {
	name, expr string
	path       string // /api/v1/query or /api/v1/query_range
	params     url.Values
}

// queries returns the issue row's two queries: count(up) at the end of the data, and
// sum(rate(x[5m])) over the whole window at window/points.
func queries(ds *dataSet, points int) []query {
	window := time.Duration(ds.EndMS-ds.StartMS) * time.Millisecond
	step := max((window / time.Duration(points)).Truncate(time.Second), time.Duration(ds.IntervalMS)*time.Millisecond)
	count := `count(up)`
	rate := `sum(rate(http_requests_total[5m]))`
	return []query{
		{"count_up", count, "/api/v1/query", url.Values{"query": {count}, "time": {fmtTime(ds.EndMS)}, "dedup": {"true"}}},
		{"sum_rate_4h", rate, "/api/v1/query_range", url.Values{"query": {rate}, "start": {fmtTime(ds.StartMS)},
			"end": {fmtTime(ds.EndMS)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}, "dedup": {"true"}}},
	}
}

// sameAnswer checks that both queriers return the same series, timestamps and values
// (within tol, relative: the sums may add in another order).
func sameAnswer(ctx context.Context, q query, a, b *querier, tol float64) error {
	var ms [2]benchkit.Matrix
	for i, t := range []*querier{a, b} {
		body, _, err := benchkit.Get(ctx, t.url, q.path, q.params)
		if err != nil {
			return fmt.Errorf("%s via %s: %w", q.name, t.name, err)
		}
		var warns []string
		if ms[i], warns, err = benchkit.Decode(body); err != nil {
			return fmt.Errorf("%s via %s: %w", q.name, t.name, err)
		}
		if len(warns) > 0 {
			return fmt.Errorf("%s via %s: warnings %v", q.name, t.name, warns)
		}
	}
	if len(ms[0]) == 0 || len(ms[0]) != len(ms[1]) {
		return fmt.Errorf("%s: %s returned %d series, %s %d", q.name, a.name, len(ms[0]), b.name, len(ms[1]))
	}
	for k, pa := range ms[0] {
		pb, ok := ms[1][k]
		if !ok || len(pa) != len(pb) {
			return fmt.Errorf("%s: series %s: %s has %d points, %s %d", q.name, k, a.name, len(pa), b.name, len(pb))
		}
		for i := range pa {
			d := math.Abs(pa[i].V - pb[i].V)
			if pa[i].T != pb[i].T || d > tol*math.Max(math.Abs(pa[i].V), math.Abs(pb[i].V)) {
				return fmt.Errorf("%s: series %s point %d: %s %v@%d, %s %v@%d", q.name, k, i, a.name, pa[i].V, pa[i].T, b.name, pb[i].V, pb[i].T)
			}
		}
	}
	fmt.Printf("  %s and %s agree: %d series, %d points\n", a.name, b.name, len(ms[0]), ms[0].Points())
	return nil
}

// instantScalar returns the single value of an instant query.
func instantScalar(ctx context.Context, q *querier, qu query) (float64, error) {
	body, _, err := benchkit.Get(ctx, q.url, qu.path, qu.params)
	if err != nil {
		return 0, err
	}
	m, _, err := benchkit.Decode(body)
	if err != nil {
		return 0, err
	}
	if len(m) != 1 {
		return 0, fmt.Errorf("%d series", len(m))
	}
	for _, pts := range m {
		return pts[0].V, nil
	}
	return 0, nil
}

// result is one query's figures for one querier in one phase.
type result struct {
	query, querier string
	benchkit.Tally
	cpu         float64 // querier CPU seconds
	storeCPU    float64 // CPU seconds of the store gateways behind it
	startKB     int64   // querier VmRSS when the phase began: what earlier queries left
	peakKB      int64   // querier VmHWM in the phase
	storePeakKB int64   // sum of the stores' VmHWM in the phase
	storeShared bool    // the stores also served the other querier in the phase
}

func (r *result) cpuPerQuery() float64      { return 1000 * r.cpu / float64(max(r.OK, 1)) }
func (r *result) storeCPUPerQuery() float64 { return 1000 * r.storeCPU / float64(max(r.OK, 1)) }

// sequential runs each query o.warmup times untimed and then o.runs times per querier,
// one request at a time, alternating the querier that goes first in each run. CPU is
// read right before and after each request, so the stores' CPU is attributed to the
// querier whose request caused it even when both share them.
func sequential(ctx context.Context, o options, st *stack, qs []query) ([][2]*result, error) {
	qrs := [2]*querier{st.vigil, st.thanos}
	var out [][2]*result
	for _, q := range qs {
		for range o.warmup {
			for _, t := range qrs {
				if _, _, err := benchkit.Get(ctx, t.url, q.path, q.params); err != nil {
					return nil, fmt.Errorf("warm-up %s via %s: %w", q.name, t.name, err)
				}
			}
		}
		var rs [2]*result
		for i, t := range qrs {
			rs[i] = &result{query: q.name, querier: t.name, storeShared: qrs[0].stores == qrs[1].stores,
				startKB: t.proc.Mem().RSS}
			t.proc.ResetPeak()
			t.stores.resetPeak()
		}
		for r := range o.runs {
			for k := range 2 {
				i := (r + k) % 2
				t := qrs[i]
				c0, s0 := t.proc.CPUSeconds(), t.stores.cpu()
				_, took, err := benchkit.Get(ctx, t.url, q.path, q.params)
				c1, s1 := t.proc.CPUSeconds(), t.stores.cpu()
				if err != nil {
					return nil, fmt.Errorf("%s via %s: %w", q.name, t.name, err)
				}
				rs[i].Lat = append(rs[i].Lat, took)
				rs[i].OK++
				rs[i].cpu += c1 - c0
				rs[i].storeCPU += s1 - s0
			}
		}
		for i, t := range qrs {
			rs[i].peakKB = t.proc.Mem().HWM
			rs[i].storePeakKB, _ = t.stores.mem()
		}
		out = append(out, rs)
	}
	return out, nil
}

// concurrent loads each querier in turn with o.clients clients sending one query for
// o.duration (after o.concWarmup of untimed load), query by query. With o.profileDir
// each querier's CPU profile is taken in each of its phases.
func concurrent(ctx context.Context, o options, st *stack, qs []query) ([][2]*result, error) {
	var out [][2]*result
	for _, q := range qs {
		var rs [2]*result
		for i, t := range []*querier{st.vigil, st.thanos} {
			hc := benchkit.LoadClient(o.clients)
			load(ctx, hc, t, q, o.clients, o.concWarmup)
			startKB := t.proc.Mem().RSS
			t.proc.ResetPeak()
			t.stores.resetPeak()
			var prof chan error
			if o.profileDir != "" {
				prof = make(chan error, 1)
				go func() { prof <- cpuProfile(ctx, t, o.profileDir, q.name, min(10*time.Second, o.duration)) }()
			}
			c0, s0 := t.proc.CPUSeconds(), t.stores.cpu()
			r := load(ctx, hc, t, q, o.clients, o.duration)
			r.cpu, r.storeCPU = t.proc.CPUSeconds()-c0, t.stores.cpu()-s0
			r.startKB, r.peakKB = startKB, t.proc.Mem().HWM
			r.storePeakKB, _ = t.stores.mem()
			if prof != nil {
				if err := <-prof; err != nil {
					fmt.Fprintf(os.Stderr, "profile %s: %v\n", t.name, err)
				}
			}
			hc.CloseIdleConnections()
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rs[i] = r
		}
		out = append(out, rs)
	}
	return out, nil
}

// load sends q from clients goroutines, each with one request in flight, for d.
func load(ctx context.Context, hc *http.Client, t *querier, q query, clients int, d time.Duration) *result {
	u := t.url + q.path + "?" + q.params.Encode()
	return &result{query: q.name, querier: t.name, Tally: benchkit.ClosedLoop(ctx, hc, clients, d, func(int, int) (string, string) { return u, "" })}
}

// cpuProfile saves a CPU profile of t's process taken over d.
func cpuProfile(ctx context.Context, t *querier, dir, name string, d time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	body, _, err := benchkit.Get(ctx, t.url, "/debug/pprof/profile", url.Values{"seconds": {strconv.Itoa(max(1, int(d.Seconds())))}})
	if err != nil {
		return fmt.Errorf("get profile: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s-query.pprof", name, t.name))
	fmt.Fprintf(os.Stderr, "CPU profile of %s query: %s\n", t.name, path)
	return os.WriteFile(path, body, 0o644)
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
	"github.com/vigilhq/vigil/bench/rwload"
)

// stored is what one receiver holds according to the querier.
type stored struct {
	series, samples int64
	sum             float64
}

// startQuerier starts `vigil query` over the receivers' StoreAPIs, without a replica
// label (so nothing is deduplicated and each receiver's data keeps its replica label),
// and waits until it has checked every receiver without error.
func startQuerier(ctx context.Context, o options, work string, rs []*receiver) (*benchkit.Proc, string, error) {
	grpc, err1 := benchkit.FreeAddr()
	http, err2 := benchkit.FreeAddr()
	if err1 != nil || err2 != nil {
		return nil, "", fmt.Errorf("free port: %v %v", err1, err2)
	}
	args := []string{"query", "--grpc-address=" + grpc, "--http-address=" + http}
	for _, r := range rs {
		args = append(args, "--endpoint="+r.grpc)
	}
	p, err := benchkit.StartProc(work, "query", o.vigil, args...)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + http
	err = benchkit.WaitFor(ctx, "query sees the receivers", 2*time.Minute, p, func() error {
		return storesHealthy(ctx, base, rs)
	})
	return p, base, err
}

// storesHealthy returns nil if the querier lists every receiver and its last check had
// no error.
func storesHealthy(ctx context.Context, base string, rs []*receiver) error {
	body, _, err := benchkit.Get(ctx, base, "/api/v1/stores", nil)
	if err != nil {
		return err
	}
	var resp struct {
		Data map[string][]struct {
			Name      string  `json:"name"`
			LastError *string `json:"lastError"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("/api/v1/stores: %w", err)
	}
	seen := map[string]bool{}
	for _, sts := range resp.Data {
		for _, st := range sts {
			if st.LastError != nil {
				return fmt.Errorf("store %s: %s", st.Name, *st.LastError)
			}
			seen[st.Name] = true
		}
	}
	for _, r := range rs {
		if !seen[r.grpc] {
			return fmt.Errorf("receiver %s (%s) not listed yet", r.name, r.grpc)
		}
	}
	return nil
}

// queryStored asks the querier, metric name by metric name, how many series and samples
// each replica holds in the load's window and what the values sum to. It goes by name
// because *_over_time drops __name__, and the load's series of one target differ only
// in it: over {__name__=~".+"} the engine would fail on duplicate label sets.
func queryStored(ctx context.Context, base string, p *rwload.Plan) (map[string]*stored, error) {
	window := fmt.Sprintf("%dms", int64(p.Shape.Steps)*p.Shape.Interval.Milliseconds())
	at := strconv.FormatFloat(float64(p.MaxT)/1000, 'f', 3, 64)
	out := map[string]*stored{}
	for _, name := range rwload.MetricNames() {
		for _, q := range []struct {
			expr string
			add  func(*stored, float64)
		}{
			{`count by (replica) (count_over_time(%s[%s]))`, func(s *stored, v float64) { s.series += int64(v) }},
			{`sum by (replica) (count_over_time(%s[%s]))`, func(s *stored, v float64) { s.samples += int64(v) }},
			{`sum by (replica) (sum_over_time(%s[%s]))`, func(s *stored, v float64) { s.sum += v }},
		} {
			expr := fmt.Sprintf(q.expr, name, window)
			body, _, err := benchkit.Get(ctx, base, "/api/v1/query", url.Values{"query": {expr}, "time": {at},
				"dedup": {"false"}, "partial_response": {"false"}})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", expr, err)
			}
			m, warns, err := benchkit.Decode(body)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", expr, err)
			}
			if len(warns) > 0 {
				return nil, fmt.Errorf("%s: warnings %v", expr, warns)
			}
			for key, pts := range m {
				if out[key] == nil {
					out[key] = &stored{}
				}
				q.add(out[key], pts[0].V)
			}
		}
	}
	return out, nil
}

// check compares what a replica holds with what the load delivered.
func (s *stored) check(series int, res *rwload.Result) error {
	if s.series != int64(series) || s.samples != res.Samples {
		return fmt.Errorf("series %d, samples %d; want %d, %d", s.series, s.samples, series, res.Samples)
	}
	if d := math.Abs(s.sum - res.Sum); d > 1e-9*math.Abs(res.Sum) {
		return fmt.Errorf("sum of values %.17g, want %.17g (relative difference %.2g)", s.sum, res.Sum, d/math.Abs(res.Sum))
	}
	return nil
}

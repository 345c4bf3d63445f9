package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// smallQueries are the small single queries, over the end of the data set
// (bench/gen, 10k series × 24h): a dashboard is many of these.
func smallQueries(m benchkit.Manifest) []loadQuery {
	end := time.UnixMilli(m.EndMS)
	day := benchkit.RangeParams{Start: end.Add(-24 * time.Hour), End: end, Step: 2 * time.Minute}
	six := benchkit.RangeParams{Start: end.Add(-6 * time.Hour), End: end, Step: 30 * time.Second}
	hour := benchkit.RangeParams{Start: end.Add(-time.Hour), End: end, Step: 15 * time.Second}
	return []loadQuery{
		{"one_series_rate_24h", day.Values(`rate(`+m.SingleSeries+`[5m])`, nil)},
		{"max_gauge_6h_30s", six.Values(`max(bench_gauge{instance="10.0.0.7:8080"})`, nil)},
		// Even slots of shard 0: 250 series.
		{"raw_250_series_1h", hour.Values(`bench_gauge{shard="0",slot=~".*[02468]"}`, nil)},
	}
}

// smallMode times each small query sequentially against the two queriers and Prometheus
// r0, interleaved, and prints the medians and the ratios to Prometheus.
func smallMode(ctx context.Context, o options, m benchkit.Manifest, a target, others []target, prom target, sidecar string) error {
	b := others[0]
	sc, err := storeapi.Dial(sidecar, storeapi.DialOptions(nil, "none")...)
	if err != nil {
		return err
	}
	defer sc.Close()
	runs := max(o.runs, 5) * o.conc.rounds * 2
	fmt.Printf("mode small: %d sequential runs per query and target (interleaved), after 3 warm-ups\n", runs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := "query\tseries\tprom p50\tsidecar Series p50\tvigil p50\tthanos p50\tvigil/prom\tthanos/prom\tvigil/thanos\tvigil CPU/q\tthanos CPU/q\t"
	for _, t := range others[1:] {
		hdr += t.name + " p50\t" + t.name + "/prom\t" + t.name + " CPU/q\t"
	}
	fmt.Fprintln(tw, hdr)
	hc := benchkit.LoadClient(1)
	targets := append([]target{a, b, prom}, others[1:]...)
	for _, q := range smallQueries(m) {
		if !o.only.MatchString(q.name) {
			continue
		}
		for _, b := range others {
			if err := sameAnswer(ctx, q, a, b); err != nil {
				return err
			}
		}
		body, _, err := benchkit.Get(ctx, prom.url, "/api/v1/query_range", q.params)
		if err != nil {
			return err
		}
		res, _, err := benchkit.Decode(body)
		if err != nil {
			return err
		}
		lat := make([][]time.Duration, len(targets))
		cpu := make([]float64, len(targets))
		var side []time.Duration
		for i := range runs + 3 {
			took, err := sidecarSeries(ctx, sc, q.params)
			if err != nil {
				return fmt.Errorf("%s via the sidecar's Series: %w", q.name, err)
			}
			if i >= 3 {
				side = append(side, took)
			}
			for j, t := range targets {
				if i == 3 {
					cpu[j] -= t.proc.CPUSeconds()
				}
				params := url.Values{}
				for k, v := range q.params {
					params[k] = v
				}
				for k, v := range t.extra {
					params[k] = v
				}
				took, err := benchkit.Time(ctx, hc, t.url+"/api/v1/query_range?"+params.Encode())
				if err != nil {
					return fmt.Errorf("%s via %s: %w", q.name, t.name, err)
				}
				if i >= 3 {
					lat[j] = append(lat[j], took)
				}
				if i == runs+2 {
					cpu[j] += t.proc.CPUSeconds()
				}
			}
		}
		cpuMS := func(j int) string { return fmt.Sprintf("%.2fms", 1000*cpu[j]/float64(runs)) }
		v, th, p := benchkit.Median(lat[0]), benchkit.Median(lat[1]), benchkit.Median(lat[2])
		line := fmt.Sprintf("%s\t%d\t%s\t%s\t%s\t%s\t%.2f×\t%.2f×\t%.2f×\t%s\t%s\t", q.name, len(res), benchkit.FmtDur(p), benchkit.FmtDur(benchkit.Median(side)),
			benchkit.FmtDur(v), benchkit.FmtDur(th), float64(v)/float64(p), float64(th)/float64(p), float64(v)/float64(th), cpuMS(0), cpuMS(1))
		for j := 3; j < len(targets); j++ {
			x := benchkit.Median(lat[j])
			line += fmt.Sprintf("%s\t%.2f×\t%s\t", benchkit.FmtDur(x), float64(x)/float64(p), cpuMS(j))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	return nil
}

// sidecarSeries calls one sidecar's Series for every selector of expr over the query's
// range (plus its range or the 5m lookback before), as the deduplicating querier asks,
// and drains the streams: the sidecar's (and its Prometheus's) share of a query.
func sidecarSeries(ctx context.Context, c *storeapi.Client, params url.Values) (time.Duration, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(params.Get("query"))
	if err != nil {
		return 0, err
	}
	start, err1 := strconv.ParseFloat(params.Get("start"), 64)
	end, err2 := strconv.ParseFloat(params.Get("end"), 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("start/end: %v %v", err1, err2)
	}
	type sel struct {
		ms   []*labels.Matcher
		back time.Duration
	}
	var sels []sel
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			back := 5 * time.Minute
			if len(path) > 0 {
				if m, ok := path[len(path)-1].(*parser.MatrixSelector); ok {
					back = m.Range
				}
			}
			sels = append(sels, sel{vs.LabelMatchers, back})
		}
		return nil
	})
	began := time.Now()
	for _, s := range sels {
		st, err := c.Series(ctx, &storepb.SeriesRequest{
			MinTime: int64(start*1000) - s.back.Milliseconds(), MaxTime: int64(end * 1000),
			Matchers: storeapi.MatchersToProto(s.ms), WithoutReplicaLabels: []string{"replica"},
			PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT, ResponseBatchSize: 64,
		})
		if err != nil {
			return 0, err
		}
		for st.Next() {
		}
		if err := st.Err(); err != nil {
			return 0, err
		}
	}
	return time.Since(began), nil
}

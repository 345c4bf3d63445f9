package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// benchQuery is one query of the fixed set.
type benchQuery struct {
	name string
	expr string
}

// querySet returns the fixed benchmark queries for a data set whose single-series
// selector is single.
func querySet(single string) []benchQuery {
	return []benchQuery{
		{"sum_rate", `sum(rate(http_requests_total[5m]))`},
		{"sum_by_job_rate", `sum by (job) (rate(http_requests_total[5m]))`},
		{"single_series_rate", `rate(` + single + `[5m])`},
		{"raw_500_series", `bench_gauge{shard="0"}`},
		{"max_over_time_by_job", `max by (job) (max_over_time(bench_gauge[10m]))`},
		{"histogram_quantile_p90", `histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`},
		{"sum_by_code_increase_1h", `sum by (code) (increase(http_requests_total[1h]))`},
	}
}

// rangeParams are the query_range parameters shared by all queries.
type rangeParams struct {
	start, end time.Time
	step       time.Duration
}

func (r rangeParams) values(expr string, extra url.Values) url.Values {
	v := url.Values{
		"query": {expr},
		"start": {strconv.FormatFloat(float64(r.start.UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(r.end.UnixMilli())/1000, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(r.step.Seconds(), 'f', -1, 64)},
	}
	for k, vs := range extra {
		v[k] = vs
	}
	return v
}

// client is shared by all requests; like Grafana it asks for gzip (Go's transport does
// so by default and decompresses transparently).
var client = &http.Client{Timeout: 5 * time.Minute}

// get issues GET base+path?params and returns the body and how long the request took
// until the last byte of the body was read.
func get(ctx context.Context, base, path string, params url.Values) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		return nil, 0, err
	}
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(began)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s%s: HTTP %d: %.300s", base, path, resp.StatusCode, body)
	}
	return body, took, nil
}

// apiResponse is the envelope of the Prometheus HTTP API.
type apiResponse struct {
	Status   string   `json:"status"`
	Error    string   `json:"error"`
	Warnings []string `json:"warnings"`
	Data     struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

type sampleJSON [2]json.RawMessage // [unix seconds, "value"]

type seriesJSON struct {
	Metric map[string]string `json:"metric"`
	Values []sampleJSON      `json:"values"`
	Value  sampleJSON        `json:"value"`
}

// matrix is a decoded query result: label set (as a canonical string) → points.
type matrix map[string][]point

type point struct {
	t int64 // ms
	v float64
}

// decode parses a matrix or vector response, dropping the labels in drop (external
// labels, which the querier adds and Prometheus's own API does not).
func decode(body []byte, drop ...string) (matrix, []string, error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, nil, err
	}
	if r.Status != "success" {
		return nil, r.Warnings, fmt.Errorf("status %s: %s", r.Status, r.Error)
	}
	var ss []seriesJSON
	if err := json.Unmarshal(r.Data.Result, &ss); err != nil {
		return nil, r.Warnings, fmt.Errorf("%s result: %w", r.Data.ResultType, err)
	}
	m := matrix{}
	for _, s := range ss {
		for _, l := range drop {
			delete(s.Metric, l)
		}
		if s.Values == nil {
			s.Values = []sampleJSON{s.Value}
		}
		pts := make([]point, 0, len(s.Values))
		for _, sv := range s.Values {
			var ts float64
			var vs string
			if err := json.Unmarshal(sv[0], &ts); err != nil {
				return nil, r.Warnings, err
			}
			if err := json.Unmarshal(sv[1], &vs); err != nil {
				return nil, r.Warnings, err
			}
			v, err := strconv.ParseFloat(vs, 64)
			if err != nil {
				return nil, r.Warnings, err
			}
			pts = append(pts, point{int64(math.Round(ts * 1000)), v})
		}
		key := labelKey(s.Metric)
		if _, dup := m[key]; dup {
			return nil, r.Warnings, fmt.Errorf("two series with labels %s after dropping %v", key, drop)
		}
		m[key] = pts
	}
	return m, r.Warnings, nil
}

func labelKey(ls map[string]string) string {
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", n, ls[n])
	}
	b.WriteByte('}')
	return b.String()
}

func (m matrix) points() int {
	n := 0
	for _, p := range m {
		n += len(p)
	}
	return n
}

// diff compares a result (got, from the querier) with the answers of both replicas
// queried directly (r0 is the reference; r1 gives the spread between the replicas).
type diff struct {
	missing, extra int     // series only in r0's answer / only in got
	tsMismatch     int     // series present in both whose timestamps differ
	maxRel         float64 // largest relative difference from r0 at the same timestamp
	spread         float64 // largest relative difference between r1 and r0
	settledRel     float64 // maxRel over the points at or after settle
	settledSpread  float64 // spread over the points at or after settle
	differing      int     // points whose relative difference from r0 exceeds 1e-9
	outside        int     // points outside [min(r0,r1), max(r0,r1)] widened by the tolerance
	edgeOutside    int     // of those, points before settle (windows reaching before the data)
	compared       int     // points compared
	worst          string  // series and time of maxRel
	worstOutside   string  // series and time of the settled point farthest outside the envelope
	outsideBy      float64 // how far (relative) that point lies outside
}

// At points before settle the range selectors' windows reach before the first sample, so
// each series' rate is extrapolated from a few samples and the replicas disagree a lot;
// an aggregation of per-series values each taken from one replica can then fall outside
// the envelope of the replicas' aggregates. Those points are counted apart.
func compare(got, r0, r1 matrix, tol float64, settle int64) diff {
	var d diff
	for k, wp := range r0 {
		gp, ok := got[k]
		if !ok {
			d.missing++
			continue
		}
		alt := pointsByTime(r1[k])
		gi := 0
		mismatch := len(gp) != len(wp)
		for _, w := range wp {
			for gi < len(gp) && gp[gi].t < w.t {
				gi++
			}
			if gi == len(gp) || gp[gi].t != w.t {
				mismatch = true
				continue
			}
			g := gp[gi].v
			r := relDiff(g, w.v)
			d.compared++
			if r > 1e-9 {
				d.differing++
			}
			if r > d.maxRel {
				d.maxRel = r
				d.worst = fmt.Sprintf("%s @%s: %g, r0 %g", k, time.UnixMilli(w.t).UTC().Format("15:04:05"), g, w.v)
				if a, ok := alt[w.t]; ok {
					d.worst += fmt.Sprintf(", r1 %g", a)
				}
			}
			a, ok := alt[w.t]
			if !ok {
				a = w.v
			}
			d.spread = math.Max(d.spread, relDiff(a, w.v))
			if w.t >= settle {
				d.settledRel = math.Max(d.settledRel, r)
				d.settledSpread = math.Max(d.settledSpread, relDiff(a, w.v))
			}
			if r > tol && !within(g, w.v, a, tol) {
				d.outside++
				if w.t < settle {
					d.edgeOutside++
				} else if by := outsideBy(g, w.v, a); by > d.outsideBy {
					d.outsideBy = by
					d.worstOutside = fmt.Sprintf("%s @%s: %g, r0 %g, r1 %g", k, time.UnixMilli(w.t).UTC().Format("15:04:05"), g, w.v, a)
				}
			}
		}
		if mismatch {
			d.tsMismatch++
		}
	}
	for k := range got {
		if _, ok := r0[k]; !ok {
			d.extra++
		}
	}
	return d
}

// within reports whether v lies between a and b, widened by tol relative to the larger.
func within(v, a, b, tol float64) bool {
	if math.IsNaN(v) || math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(v) && (math.IsNaN(a) || math.IsNaN(b))
	}
	slack := tol * math.Max(math.Abs(a), math.Abs(b))
	return v >= math.Min(a, b)-slack && v <= math.Max(a, b)+slack
}

// outsideBy returns how far v lies outside [min(a,b), max(a,b)], relative to the larger.
func outsideBy(v, a, b float64) float64 {
	if math.IsNaN(v) || math.IsNaN(a) || math.IsNaN(b) {
		return math.Inf(1)
	}
	lo, hi := math.Min(a, b), math.Max(a, b)
	return math.Max(lo-v, v-hi) / math.Max(math.Max(math.Abs(a), math.Abs(b)), 1e-300)
}

func pointsByTime(ps []point) map[int64]float64 {
	m := make(map[int64]float64, len(ps))
	for _, p := range ps {
		m[p.t] = p.v
	}
	return m
}

func relDiff(a, b float64) float64 {
	switch {
	case math.IsNaN(a) && math.IsNaN(b), a == b:
		return 0
	case math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0):
		return math.Inf(1)
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

// ok reports whether the querier returned the same series and timestamps as r0 and every
// value within the replicas' envelope (see within).
func (d diff) ok() bool {
	return d.missing == 0 && d.extra == 0 && d.tsMismatch == 0 && d.outside == d.edgeOutside
}

func (d diff) String() string {
	s := fmt.Sprintf("max rel diff from r0 %.3g, after the first hour %.3g (r1 vs r0: %.3g, %.3g); %d/%d points differ from r0; %d outside the replicas' envelope (%d in the first hour)",
		d.maxRel, d.settledRel, d.spread, d.settledSpread, d.differing, d.compared, d.outside, d.edgeOutside)
	if d.missing+d.extra+d.tsMismatch > 0 {
		s += fmt.Sprintf("; %d series missing, %d extra, %d with other timestamps", d.missing, d.extra, d.tsMismatch)
	}
	return s
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

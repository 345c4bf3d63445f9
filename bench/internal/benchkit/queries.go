package benchkit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Manifest mirrors bench/gen's bench.json (the fields the benchmarks use).
type Manifest struct {
	Series       int      `json:"series"`
	Hours        float64  `json:"hours"`
	IntervalMS   int64    `json:"intervalMs"`
	StartMS      int64    `json:"startMs"`
	EndMS        int64    `json:"endMs"`
	Replicas     []string `json:"replicas"`
	SingleSeries string   `json:"singleSeries"`
	Counters     int      `json:"counters"`
}

// ReadManifest reads dir/bench.json.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		return m, fmt.Errorf("read data set description (run bench/gen first): %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("bench.json: %w", err)
	}
	return m, nil
}

// Query is one query of the fixed set.
type Query struct {
	Name string
	Expr string
}

// QuerySet returns the fixed benchmark queries for a data set whose single-series
// selector is single.
func QuerySet(single string) []Query {
	return []Query{
		{"sum_rate", `sum(rate(http_requests_total[5m]))`},
		{"sum_by_job_rate", `sum by (job) (rate(http_requests_total[5m]))`},
		{"single_series_rate", `rate(` + single + `[5m])`},
		{"raw_500_series", `bench_gauge{shard="0"}`},
		{"max_over_time_by_job", `max by (job) (max_over_time(bench_gauge[10m]))`},
		{"histogram_quantile_p90", `histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`},
		{"sum_by_code_increase_1h", `sum by (code) (increase(http_requests_total[1h]))`},
	}
}

// RangeParams are the query_range parameters shared by all queries.
type RangeParams struct {
	Start, End time.Time
	Step       time.Duration
}

// Values returns the query_range parameters for expr plus extra.
func (r RangeParams) Values(expr string, extra url.Values) url.Values {
	v := url.Values{
		"query": {expr},
		"start": {strconv.FormatFloat(float64(r.Start.UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(r.End.UnixMilli())/1000, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(r.Step.Seconds(), 'f', -1, 64)},
	}
	for k, vs := range extra {
		v[k] = vs
	}
	return v
}

// Client is shared by all requests; like Grafana it asks for gzip (Go's transport does
// so by default and decompresses transparently).
var Client = &http.Client{Timeout: 5 * time.Minute}

// HTTPError is a response other than 200.
type HTTPError struct {
	URL        string
	StatusCode int
	Body       []byte
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d: %.300s", e.URL, e.StatusCode, e.Body)
}

// Get issues GET base+path?params and returns the body and how long the request took
// until the last byte of the body was read. A status other than 200 is an *HTTPError.
func Get(ctx context.Context, base, path string, params url.Values) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		return nil, 0, err
	}
	began := time.Now()
	resp, err := Client.Do(req)
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
		return nil, took, &HTTPError{URL: base + path, StatusCode: resp.StatusCode, Body: body}
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

// Matrix is a decoded query result: label set (as a canonical string) → points.
type Matrix map[string][]Point

// Point is one sample of a result.
type Point struct {
	T int64 // ms
	V float64
}

// Decode parses a matrix or vector response, dropping the labels in drop (external
// labels, which the querier adds and Prometheus's own API does not).
func Decode(body []byte, drop ...string) (Matrix, []string, error) {
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
	m := Matrix{}
	for _, s := range ss {
		for _, l := range drop {
			delete(s.Metric, l)
		}
		if s.Values == nil {
			s.Values = []sampleJSON{s.Value}
		}
		pts := make([]Point, 0, len(s.Values))
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
			pts = append(pts, Point{int64(math.Round(ts * 1000)), v})
		}
		key := LabelKey(s.Metric)
		if _, dup := m[key]; dup {
			return nil, r.Warnings, fmt.Errorf("two series with labels %s after dropping %v", key, drop)
		}
		m[key] = pts
	}
	return m, r.Warnings, nil
}

// LabelKey renders a label set canonically: {a="1",b="2"}.
func LabelKey(ls map[string]string) string {
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

// Points counts the points of every series.
func (m Matrix) Points() int {
	n := 0
	for _, p := range m {
		n += len(p)
	}
	return n
}

// Median returns the median of ds (0 when empty).
func Median(ds []time.Duration) time.Duration {
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

// FmtDur formats d in milliseconds with one decimal.
func FmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
}

package rule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// Querier evaluates rule expressions through the Prometheus HTTP API of the query
// endpoints (vigil query or any Prometheus-compatible API). Each evaluation tries the
// groups of endpoints in a fresh random order, and the endpoints of each group in a fresh
// random order, and the first answer wins, so that one querier down changes nothing and
// the load spreads over all of them.
type Querier struct {
	groups []QueryEndpoints
	method string // http.MethodPost or http.MethodGet
	// failures counts evaluations that no endpoint answered.
	failures prometheus.Counter
	attempts *prometheus.CounterVec
}

// NewQuerier returns a querier over groups, each query bounded by timeout and sent with
// method (POST when empty, or GET).
func NewQuerier(groups []QueryEndpoints, method string, timeout time.Duration, reg prometheus.Registerer) *Querier {
	f := promauto.With(reg)
	gs := make([]QueryEndpoints, len(groups))
	for i, g := range groups {
		if g.Client == nil {
			g.Client = &http.Client{}
		} else {
			c := *g.Client
			g.Client = &c
		}
		g.Client.Timeout = timeout
		gs[i] = g
	}
	if method == "" {
		method = http.MethodPost
	}
	return &Querier{
		groups: gs,
		method: method,
		failures: f.NewCounter(prometheus.CounterOpts{Name: "vigil_rule_query_failures_total",
			Help: "Rule evaluations whose query no --query endpoint answered."}),
		attempts: f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_rule_query_attempts_total",
			Help: "Queries sent to --query endpoints, by result (success, error, unavailable)."}, []string{"result"}),
	}
}

// QueryError is an answer of a query endpoint that says the query itself is wrong: no
// other endpoint would answer it differently.
type QueryError struct {
	Status int
	Type   string
	Msg    string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("query refused (HTTP %d, %s): %s", e.Status, e.Type, e.Msg)
}

// Query runs an instant query at t. partialResponse is the rule group's strategy (warn:
// true). Endpoints that cannot be reached, time out or fail on their side are skipped
// for the next; a refused query (HTTP 4xx) is final.
func (q *Querier) Query(ctx context.Context, expr string, t time.Time, partialResponse bool) (promql.Vector, error) {
	var v promql.Vector
	err := q.instant(ctx, expr, t, partialResponse, func(r *apiResponse) (err error) {
		v, err = resultVector(r, t)
		return err
	})
	return v, err
}

// instant sends an instant query to the endpoints in a fresh random order until one
// answers and decode accepts its result.
func (q *Querier) instant(ctx context.Context, expr string, t time.Time, partialResponse bool, decode func(*apiResponse) error) error {
	var errs []error
	tried := 0
	for _, gi := range rand.Perm(len(q.groups)) {
		g := q.groups[gi]
		addrs := g.Addrs()
		for _, i := range rand.Perm(len(addrs)) {
			tried++
			err := q.queryOne(ctx, g.Client, g.baseURL(addrs[i]), expr, t, partialResponse, decode)
			var qe *QueryError
			switch {
			case err == nil:
				q.attempts.WithLabelValues("success").Inc()
				return nil
			case errors.As(err, &qe):
				q.attempts.WithLabelValues("error").Inc()
				return err
			}
			q.attempts.WithLabelValues("unavailable").Inc()
			errs = append(errs, fmt.Errorf("%s: %w", addrs[i], err))
			if ctx.Err() != nil {
				q.failures.Inc()
				return fmt.Errorf("no query endpoint answered: %w", errors.Join(errs...))
			}
		}
	}
	q.failures.Inc()
	if tried == 0 {
		return errors.New("no query endpoint to evaluate rules with")
	}
	return fmt.Errorf("no query endpoint answered: %w", errors.Join(errs...))
}

func (q *Querier) queryOne(ctx context.Context, client *http.Client, base, expr string, t time.Time, partialResponse bool, decode func(*apiResponse) error) error {
	form := url.Values{
		"query":            {expr},
		"time":             {strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)},
		"dedup":            {"true"},
		"partial_response": {strconv.FormatBool(partialResponse)},
	}
	var (
		req *http.Request
		err error
	)
	if q.method == http.MethodGet {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+form.Encode(), nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/query", strings.NewReader(form.Encode()))
	}
	if err != nil {
		return fmt.Errorf("build query request: %w", err)
	}
	if req.Method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("read query response: %w", err)
	}
	r, err := decodeEnvelope(resp.StatusCode, body)
	if err != nil {
		return err
	}
	return decode(r)
}

// apiResponse is the Prometheus API envelope of an instant query.
type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// decodeEnvelope decodes an API answer and its status. Timeouts (503) and the
// endpoint's own failures (5xx) are errors worth another endpoint; other refusals are a
// QueryError.
func decodeEnvelope(code int, body []byte) (*apiResponse, error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		if code/100 == 5 {
			return nil, fmt.Errorf("HTTP %d: %.200s", code, body)
		}
		return nil, fmt.Errorf("decode query response (HTTP %d): %w", code, err)
	}
	if r.Status != "success" {
		if code/100 == 5 || code == http.StatusTooManyRequests || code == 499 {
			return nil, fmt.Errorf("HTTP %d %s: %s", code, r.ErrorType, r.Error)
		}
		return nil, &QueryError{Status: code, Type: r.ErrorType, Msg: r.Error}
	}
	return &r, nil
}

// resultVector is the result of a successful answer as a vector: a scalar becomes a
// vector of one sample at t; other result types are a QueryError.
func resultVector(r *apiResponse, t time.Time) (promql.Vector, error) {
	code := http.StatusOK
	switch r.Data.ResultType {
	case "vector":
		return decodeVector(r.Data.Result)
	case "scalar":
		var pair [2]json.RawMessage
		if err := json.Unmarshal(r.Data.Result, &pair); err != nil {
			return nil, fmt.Errorf("decode scalar result: %w", err)
		}
		v, err := parseValue(pair[1])
		if err != nil {
			return nil, err
		}
		return promql.Vector{{T: t.UnixMilli(), F: v, Metric: labels.EmptyLabels()}}, nil
	}
	return nil, &QueryError{Status: code, Type: "bad_data", Msg: fmt.Sprintf("rule expressions must give a vector or a scalar, got %s", r.Data.ResultType)}
}

type vectorSample struct {
	Metric    map[string]string  `json:"metric"`
	Value     [2]json.RawMessage `json:"value"`
	Histogram json.RawMessage    `json:"histogram"`
}

func decodeVector(raw json.RawMessage) (promql.Vector, error) {
	var in []vectorSample
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("decode vector result: %w", err)
	}
	out := make(promql.Vector, 0, len(in))
	for _, s := range in {
		if s.Histogram != nil {
			// The JSON form of a native histogram (buckets with boundaries) cannot be
			// turned back into the histogram exactly.
			return nil, &QueryError{Status: http.StatusOK, Type: "bad_data", Msg: "native histogram results are not supported in rules evaluated over the HTTP API"}
		}
		ts, err := parseTime(s.Value[0])
		if err != nil {
			return nil, err
		}
		v, err := parseValue(s.Value[1])
		if err != nil {
			return nil, err
		}
		out = append(out, promql.Sample{Metric: labels.FromMap(s.Metric), T: ts, F: v})
	}
	return out, nil
}

func parseTime(raw json.RawMessage) (int64, error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fmt.Errorf("decode sample time %s: %w", raw, err)
	}
	return int64(f*1000 + 0.5), nil
}

func parseValue(raw json.RawMessage) (float64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("decode sample value %s: %w", raw, err)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("decode sample value %q: %w", s, err)
	}
	return v, nil
}

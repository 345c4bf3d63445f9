package main

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// badRequest is one malformed query-API request.
type badRequest struct {
	name, method, path string
	params             url.Values
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// badRequests are the 17 malformed requests of issue 15, in the shapes of the unit table
// internal/queryapi/errors_test.go (TestErrors, the cases that are plain Prometheus API,
// not Thanos-only parameters) and the e2e test testInvalidPromQL in
// test/e2e/query_api_test.go (GET and POST parse errors). Each is malformed for
// Prometheus, Thanos and Vigil alike.
func badRequests(now time.Time) []badRequest {
	t := strconv.FormatInt(now.Unix(), 10)
	return []badRequest{
		{"unclosed brace", http.MethodGet, "/api/v1/query", vals("query", "up{")},
		{"unknown function", http.MethodGet, "/api/v1/query", vals("query", "no_such_function(up)")},
		{"unclosed paren (POST)", http.MethodPost, "/api/v1/query", vals("query", "sum(up")},
		{"rate of an instant vector", http.MethodGet, "/api/v1/query_range", vals("query", "rate(up)", "start", t, "end", t, "step", "1")},
		{"dangling operator (POST)", http.MethodPost, "/api/v1/query_range", vals("query", "up +", "start", t, "end", t, "step", "1")},
		{"bad time", http.MethodGet, "/api/v1/query", vals("query", "up", "time", "yesterday")},
		{"negative timeout", http.MethodGet, "/api/v1/query", vals("query", "up", "timeout", "-1")},
		{"range: no start", http.MethodGet, "/api/v1/query_range", vals("query", "up", "end", "10", "step", "1")},
		{"range: negative step", http.MethodGet, "/api/v1/query_range", vals("query", "up", "start", "0", "end", "10", "step", "-1")},
		{"range: step x", http.MethodGet, "/api/v1/query_range", vals("query", "up", "start", "0", "end", "10", "step", "x")},
		{"range: 11001 points", http.MethodGet, "/api/v1/query_range", vals("query", "up", "start", "0", "end", "11001", "step", "1")},
		{"range: end before start", http.MethodGet, "/api/v1/query_range", vals("query", "up", "start", "10", "end", "5", "step", "1")},
		{"series: no match[]", http.MethodGet, "/api/v1/series", nil},
		{"series: bad match[]", http.MethodGet, "/api/v1/series", vals("match[]", "up{")},
		{"series: matches everything", http.MethodGet, "/api/v1/series", vals("match[]", `{job=~".*"}`)},
		{"series: bad start", http.MethodGet, "/api/v1/series", vals("match[]", "up", "start", "x")},
		{"values: invalid label name", http.MethodGet, "/api/v1/label/%ff/values", nil},
	}
}

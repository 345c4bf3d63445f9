package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// answer is one HTTP API response as the table reports it.
type answer struct {
	Code       int      // HTTP status; 0 if the request itself failed
	Status     string   // envelope "status"
	ErrorType  string   // envelope "errorType"
	Error      string   // envelope "error", or the transport error
	Warnings   []string // envelope "warnings"
	ResultType string
	Series     int     // entries of data.result (matrix/vector) or of data (series, labels)
	Value      float64 // the first sample's value of a vector or scalar result
	HasValue   bool
	Took       time.Duration
	Body       string // the first bytes of a body that is not a JSON envelope
}

// clear4xx reports whether the answer rejects the request as Prometheus rejects a bad
// parameter: HTTP 400 with the error envelope, errorType bad_data and a message. A 422
// "execution" error (the request was run and failed) does not count.
func (a answer) clear4xx() bool {
	return a.Code == 400 && a.Status == "error" && a.ErrorType == "bad_data" && a.Error != ""
}

// envelope is the Prometheus HTTP API response envelope.
type envelope struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Data      json.RawMessage `json:"data"`
}

// call sends one request (GET with a query string, POST with a form body) and decodes
// what it can of the answer. A transport error is reported in the answer, with Code 0.
func call(ctx context.Context, limit time.Duration, method, base, path string, params url.Values) answer {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(params.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u := base + path
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
		req, err = http.NewRequestWithContext(ctx, method, u, nil)
	}
	if err != nil {
		return answer{Error: err.Error()}
	}
	began := time.Now()
	resp, err := benchkit.Client.Do(req)
	if err != nil {
		return answer{Error: err.Error(), Took: time.Since(began)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	a := answer{Code: resp.StatusCode, Took: time.Since(began)}
	if err != nil {
		a.Error = "reading the body: " + err.Error()
		return a
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || env.Status == "" {
		a.Body = fmt.Sprintf("%.120s", strings.TrimSpace(string(body)))
		return a
	}
	a.Status, a.ErrorType, a.Error, a.Warnings = env.Status, env.ErrorType, env.Error, env.Warnings
	decodeData(&a, env.Data)
	return a
}

// decodeData fills ResultType, Series and Value from the envelope's data.
func decodeData(a *answer, data json.RawMessage) {
	if len(data) == 0 || string(data) == "null" {
		return
	}
	var list []json.RawMessage // /series, /labels, /label/x/values
	if json.Unmarshal(data, &list) == nil {
		a.Series = len(list)
		return
	}
	var res struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if json.Unmarshal(data, &res) != nil {
		return
	}
	a.ResultType = res.ResultType
	switch res.ResultType {
	case "matrix", "vector":
		var ss []struct {
			Value [2]json.RawMessage `json:"value"`
		}
		if json.Unmarshal(res.Result, &ss) != nil {
			return
		}
		a.Series = len(ss)
		if len(ss) > 0 && res.ResultType == "vector" {
			a.Value, a.HasValue = sampleValue(ss[0].Value)
		}
	case "scalar":
		var v [2]json.RawMessage
		if json.Unmarshal(res.Result, &v) == nil {
			a.Value, a.HasValue = sampleValue(v)
		}
	}
}

func sampleValue(v [2]json.RawMessage) (float64, bool) {
	var s string
	if json.Unmarshal(v[1], &s) != nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// storeEntry is one endpoint of /api/v1/stores (Thanos's format, which Vigil mirrors).
type storeEntry struct {
	Name      string              `json:"name"`
	LastError *string             `json:"lastError"`
	LabelSets []map[string]string `json:"labelSets"`
	MinTime   int64               `json:"minTime"`
	MaxTime   int64               `json:"maxTime"`
}

// stores returns a querier's /api/v1/stores: component type → endpoints.
func stores(ctx context.Context, base string) (map[string][]storeEntry, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/stores", nil)
	if err != nil {
		return nil, err
	}
	resp, err := benchkit.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/api/v1/stores: HTTP %d: %.200s", base, resp.StatusCode, body)
	}
	var out map[string][]storeEntry
	if err := json.Unmarshal(env.Data, &out); err != nil {
		return nil, fmt.Errorf("/api/v1/stores: %w: %.200s", err, env.Data)
	}
	return out, nil
}

// findStore returns the endpoint named addr and its component type.
func findStore(all map[string][]storeEntry, addr string) (storeEntry, string, bool) {
	for typ, l := range all {
		for _, s := range l {
			if s.Name == addr {
				return s, typ, true
			}
		}
	}
	return storeEntry{}, "", false
}

// healthy returns nil if every addr is listed without an error.
func healthy(ctx context.Context, base string, addrs ...string) error {
	all, err := stores(ctx, base)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		s, _, ok := findStore(all, a)
		if !ok {
			return fmt.Errorf("%s not listed in %s/api/v1/stores", a, base)
		}
		if s.LastError != nil && *s.LastError != "" {
			return fmt.Errorf("%s: lastError %q", a, *s.LastError)
		}
	}
	return nil
}

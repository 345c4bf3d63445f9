package queryapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
)

func TestErrors(t *testing.T) {
	f := newFixture(t, nil, nil)
	tests := []struct {
		name, path string
		params     []string
		code       int
		errType    string
		msg        string
	}{
		{"invalid promql", "/api/v1/query", []string{"query", "up{", "time", "1"}, 400, "bad_data",
			`invalid parameter \"query\": 1:4: parse error: unexpected end of input inside braces`},
		{"bad time", "/api/v1/query", []string{"query", "up", "time", "yesterday"}, 400, "bad_data",
			`invalid parameter \"time\": invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp`},
		{"bad timeout", "/api/v1/query", []string{"query", "up", "timeout", "-1"}, 400, "bad_data",
			`invalid parameter \"timeout\": timeout must be positive, got -1s`},
		{"bad limit", "/api/v1/query", []string{"query", "up", "limit", "-1"}, 400, "bad_data",
			`invalid parameter \"limit\": limit must be non-negative`},
		{"missing start", "/api/v1/query_range", []string{"query", "up", "end", "10", "step", "1"}, 400, "bad_data",
			`invalid parameter \"start\": cannot parse \"\" to a valid timestamp`},
		{"negative step", "/api/v1/query_range", []string{"query", "up", "start", "0", "end", "10", "step", "-1"}, 400, "bad_data",
			`invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer`},
		{"bad step", "/api/v1/query_range", []string{"query", "up", "start", "0", "end", "10", "step", "x"}, 400, "bad_data",
			`invalid parameter \"step\": cannot parse \"x\" to a valid duration`},
		{"too many points", "/api/v1/query_range", []string{"query", "up", "start", "0", "end", "11001", "step", "1"}, 400, "bad_data",
			`exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)`},
		{"end before start", "/api/v1/query_range", []string{"query", "up", "start", "10", "end", "5", "step", "1"}, 400, "bad_data",
			`invalid parameter \"end\": end timestamp must not be before start time`},
		{"missing match", "/api/v1/series", nil, 400, "bad_data", `no match[] parameter provided`},
		{"bad match", "/api/v1/series", []string{"match[]", "up{"}, 400, "bad_data",
			`invalid parameter \"match[]\": 1:4: parse error: unexpected end of input inside braces`},
		{"empty matcher", "/api/v1/labels", []string{"match[]", `{job=~".*"}`}, 400, "bad_data",
			`match[] must contain at least one non-empty matcher`},
		{"bad series start", "/api/v1/series", []string{"match[]", "up", "start", "x"}, 400, "bad_data",
			`invalid parameter \"start\": invalid time value for 'start': cannot parse \"x\" to a valid timestamp`},
		{"invalid label name", "/api/v1/label/%ff/values", nil, 400, "bad_data", `invalid label name: \"\\xff\"`},
		{"bad dedup", "/api/v1/query", []string{"query", "up", "dedup", "maybe"}, 400, "bad_data",
			`'dedup' parameter: strconv.ParseBool: parsing \"maybe\": invalid syntax`},
		{"bad partial_response", "/api/v1/series", []string{"match[]", "up", "partial_response", "x"}, 400, "bad_data",
			`'partial_response' parameter: strconv.ParseBool: parsing \"x\": invalid syntax`},
		{"negative max_source_resolution", "/api/v1/query", []string{"query", "up", "max_source_resolution", "-300"}, 400, "bad_data",
			`negative 'max_source_resolution' is not accepted. Try a positive integer`},
		{"negative max_source_resolution duration", "/api/v1/query_range", []string{"query", "up", "start", "0", "end", "1", "max_source_resolution", "-5m"}, 400, "bad_data",
			`param max_source_resolution: cannot parse \"-5m\" to a valid duration`},
		{"bad max_source_resolution", "/api/v1/query", []string{"query", "up", "max_source_resolution", "fast"}, 400, "bad_data",
			`param max_source_resolution: cannot parse \"fast\" to a valid duration`},
		{"bad lookback_delta", "/api/v1/query", []string{"query", "up", "lookback_delta", "z"}, 400, "bad_data",
			`error parsing lookback delta duration: cannot parse \"z\" to a valid duration`},
		{"bad storeMatch", "/api/v1/query", []string{"query", "up", "storeMatch[]", "{"}, 400, "bad_data",
			`1:2: parse error: unexpected end of input inside braces`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := `{"status":"error","errorType":"` + tc.errType + `","error":"` + tc.msg + `"}`
			code, body := f.get(t, tc.path, vals(tc.params...))
			expect(t, code, body, tc.code, want)
			code, body = f.post(t, tc.path, vals(tc.params...))
			expect(t, code, body, tc.code, want)
			var decoded map[string]any
			if err := json.Unmarshal([]byte(body), &decoded); err != nil {
				t.Errorf("error body is not JSON: %v", err)
			}
		})
	}
}

func TestMaxSamplesExceeded(t *testing.T) {
	f := newFixture(t, &promql.EngineOpts{MaxSamples: 1, Timeout: time.Minute}, nil)
	code, body := f.get(t, "/api/v1/query", vals("query", "up", "time", "1700000600"))
	expect(t, code, body, 422, `{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}`)
}

func TestTimeout(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.rec.Block = true
	start := time.Now()
	code, body := f.get(t, "/api/v1/query", vals("query", "up", "time", "1700000600", "timeout", "0.05"))
	if code != 503 || !strings.HasPrefix(body, `{"status":"error","errorType":"timeout","error":"`) {
		t.Errorf("got %d %s, want 503 timeout", code, body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timeout took %v", d)
	}

	// Config.Timeout bounds requests without (or with a larger) timeout parameter.
	g := newFixture(t, nil, func(c *Config) { c.Timeout = 50 * time.Millisecond })
	g.rec.Block = true
	code, body = g.get(t, "/api/v1/query", vals("query", "up", "time", "1700000600", "timeout", "1h"))
	if code != 503 || !strings.HasPrefix(body, `{"status":"error","errorType":"timeout","error":"`) {
		t.Errorf("got %d %s, want 503 timeout", code, body)
	}
	code, body = g.get(t, "/api/v1/series", vals("match[]", "up"))
	if code != 503 || !strings.HasPrefix(body, `{"status":"error","errorType":"timeout","error":"`) {
		t.Errorf("series: got %d %s, want 503 timeout", code, body)
	}
}

func TestStorageErrors(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.rec.SelectErr = errors.New("store a:10901: connection refused")
	code, body := f.get(t, "/api/v1/series", vals("match[]", "up"))
	expect(t, code, body, 422, `{"status":"error","errorType":"execution","error":"store a:10901: connection refused"}`)
	code, body = f.get(t, "/api/v1/labels", nil)
	expect(t, code, body, 422, `{"status":"error","errorType":"execution","error":"store a:10901: connection refused"}`)
	code, _ = f.get(t, "/api/v1/query", vals("query", "up", "time", "1700000600"))
	if code < 400 {
		t.Errorf("query with failing storage: status %d", code)
	}
}

func TestErrorTypeStatusCodes(t *testing.T) {
	want := map[errorType]int{
		errorBadData: 400, errorExec: 422, errorCanceled: 499, errorTimeout: 503,
		errorInternal: 500, errorUnavailable: 503, errorNotFound: 404, errorCostLimit: 422,
	}
	for typ, code := range want {
		if got := typ.httpStatus(); got != code {
			t.Errorf("%s: status %d, want %d", typ, got, code)
		}
	}
	cases := []struct {
		err  error
		want errorType
	}{
		{promql.ErrQueryTimeout("query execution"), errorTimeout},
		{promql.ErrQueryCanceled("query execution"), errorCanceled},
		{promql.ErrStorage{Err: errors.New("x")}, errorInternal},
		{promql.ErrTooManySamples("query execution"), errorExec},
		{errors.New("other"), errorExec},
	}
	for _, c := range cases {
		if got := toAPIError(c.err).typ; got != c.want {
			t.Errorf("%T: %s, want %s", c.err, got, c.want)
		}
	}
}

// A storage that gives up at the deadline with a warning and no error (partial response)
// must not turn into a 200 with no data: the request timed out, and says so as
// Prometheus does.
func TestDeadlineIsTimeoutWithPartialResponse(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.rec.BlockThenWarn = true
	want := `{"status":"error","errorType":"timeout","error":"timeout: context deadline exceeded"}`
	for _, c := range []struct {
		path   string
		params []string
	}{
		{"/api/v1/query", []string{"query", "up", "time", "1700000600", "timeout", "50ms"}},
		{"/api/v1/query_range", []string{"query", "up", "start", "1700000000", "end", "1700000600", "step", "15", "timeout", "50ms"}},
		{"/api/v1/series", []string{"match[]", "up", "timeout", "50ms"}},
		{"/api/v1/labels", []string{"timeout", "50ms"}},
	} {
		code, body := f.get(t, c.path, vals(c.params...))
		if code != 503 || !strings.Contains(body, `"errorType":"timeout"`) {
			t.Errorf("%s past its timeout: %d %s; want 503 %s", c.path, code, body, want)
		}
	}
}

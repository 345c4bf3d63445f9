package rule

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

func newTestQuerier(reg *prometheus.Registry, timeout time.Duration, addrs ...string) *Querier {
	return NewQuerier([]QueryEndpoints{{Addrs: func() []string { return addrs }}}, "", timeout, reg)
}

func TestQuerierVectorDecoding(t *testing.T) {
	api := newFakeQueryAPI(t, func(url.Values) (int, string) {
		return http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"__name__":"up","job":"api","instance":"a:1"},"value":[1700000000.123,"1.5"]},
			{"metric":{"job":"nan"},"value":[1700000000.001,"NaN"]},
			{"metric":{"job":"inf"},"value":[1700000000.999,"+Inf"]},
			{"metric":{"job":"neginf"},"value":[1700000001,"-Inf"]},
			{"metric":{},"value":[1700000000.5,"-2e-3"]}]}}`
	})
	q := newTestQuerier(prometheus.NewRegistry(), 5*time.Second, api.URL)
	v, err := q.Query(context.Background(), "up", time.UnixMilli(1700000000123), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 5 {
		t.Fatalf("got %d samples, want 5: %v", len(v), v)
	}
	want := []struct {
		lbls labels.Labels
		ts   int64
		f    float64
	}{
		{labels.FromStrings("__name__", "up", "instance", "a:1", "job", "api"), 1700000000123, 1.5},
		{labels.FromStrings("job", "nan"), 1700000000001, math.NaN()},
		{labels.FromStrings("job", "inf"), 1700000000999, math.Inf(1)},
		{labels.FromStrings("job", "neginf"), 1700000001000, math.Inf(-1)},
		{labels.EmptyLabels(), 1700000000500, -0.002},
	}
	for i, w := range want {
		s := v[i]
		if !labels.Equal(s.Metric, w.lbls) {
			t.Errorf("sample %d: labels %v, want %v", i, s.Metric, w.lbls)
		}
		if s.T != w.ts {
			t.Errorf("sample %d: time %d, want %d", i, s.T, w.ts)
		}
		if math.IsNaN(w.f) != math.IsNaN(s.F) || (!math.IsNaN(w.f) && s.F != w.f) {
			t.Errorf("sample %d: value %v, want %v", i, s.F, w.f)
		}
		if s.H != nil {
			t.Errorf("sample %d: unexpected histogram", i)
		}
	}
}

func TestQuerierScalarDecoding(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want float64
	}{{"42.25", 42.25}, {"+Inf", math.Inf(1)}, {"NaN", math.NaN()}} {
		api := newFakeQueryAPI(t, func(url.Values) (int, string) {
			return http.StatusOK, `{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"` + tc.val + `"]}}`
		})
		q := newTestQuerier(prometheus.NewRegistry(), 5*time.Second, api.URL)
		at := time.UnixMilli(1700000000777)
		v, err := q.Query(context.Background(), "scalar(up)", at, false)
		if err != nil {
			t.Fatalf("%s: %v", tc.val, err)
		}
		if len(v) != 1 || !v[0].Metric.IsEmpty() || v[0].T != at.UnixMilli() {
			t.Fatalf("%s: got %v, want one unlabelled sample at %d", tc.val, v, at.UnixMilli())
		}
		if got := v[0].F; math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && got != tc.want) {
			t.Errorf("%s: value %v, want %v", tc.val, got, tc.want)
		}
	}
}

func TestQuerierRequestForm(t *testing.T) {
	api := newFakeQueryAPI(t, func(f url.Values) (int, string) { return vectorAnswer(f, "1") })
	for _, addr := range []string{api.hostPort(), api.URL + "/"} {
		q := newTestQuerier(prometheus.NewRegistry(), 5*time.Second, addr)
		for _, partial := range []bool{true, false} {
			if _, err := q.Query(context.Background(), `sum(rate(x{a="b c"}[5m]))`, time.UnixMilli(1700000000123), partial); err != nil {
				t.Fatal(err)
			}
		}
	}
	reqs := api.requests()
	if len(reqs) != 4 {
		t.Fatalf("got %d requests, want 4", len(reqs))
	}
	for i, r := range reqs {
		if r.Method != http.MethodPost || r.Path != "/api/v1/query" || r.ContentType != "application/x-www-form-urlencoded" {
			t.Errorf("request %d: %s %s (%s), want POST /api/v1/query form-encoded", i, r.Method, r.Path, r.ContentType)
		}
		wantPartial := []string{"true", "false"}[i%2]
		for k, want := range map[string]string{
			"query": `sum(rate(x{a="b c"}[5m]))`, "time": "1700000000.123", "dedup": "true", "partial_response": wantPartial,
		} {
			if got := r.Form.Get(k); got != want {
				t.Errorf("request %d: %s=%q, want %q", i, k, got, want)
			}
		}
	}
}

func TestQuerierPathPrefix(t *testing.T) {
	api := newFakeQueryAPI(t, func(f url.Values) (int, string) { return vectorAnswer(f, "1", map[string]string{"a": "b"}) })
	q := newTestQuerier(prometheus.NewRegistry(), 5*time.Second, api.URL+"/thanos")
	if _, err := q.Query(context.Background(), "up", time.Now(), false); err != nil {
		t.Fatal(err)
	}
	if p := api.requests()[0].Path; p != "/thanos/api/v1/query" {
		t.Errorf("path %q, want /thanos/api/v1/query", p)
	}
}

func TestQuerierFailover(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bad    func(t *testing.T) (addr string, hits func() int)
		client time.Duration
	}{
		{name: "connection refused", bad: func(t *testing.T) (string, func() int) { return closedAddr(t), nil }},
		{name: "503 timeout", bad: func(t *testing.T) (string, func() int) {
			a := newFakeQueryAPI(t, func(url.Values) (int, string) {
				return errorAnswer(http.StatusServiceUnavailable, "timeout", "query timed out in expression evaluation")
			})
			return a.URL, a.count
		}},
		{name: "500 internal", bad: func(t *testing.T) (string, func() int) {
			a := newFakeQueryAPI(t, func(url.Values) (int, string) { return errorAnswer(http.StatusInternalServerError, "internal", "boom") })
			return a.URL, a.count
		}},
		{name: "502 not JSON", bad: func(t *testing.T) (string, func() int) {
			a := newFakeQueryAPI(t, func(url.Values) (int, string) { return http.StatusBadGateway, "<html>bad gateway</html>" })
			return a.URL, a.count
		}},
		{name: "429 too many requests", bad: func(t *testing.T) (string, func() int) {
			a := newFakeQueryAPI(t, func(url.Values) (int, string) {
				return errorAnswer(http.StatusTooManyRequests, "unavailable", "slow down")
			})
			return a.URL, a.count
		}},
		{name: "client timeout", client: 200 * time.Millisecond, bad: func(t *testing.T) (string, func() int) {
			a := newSlowQueryAPI(t, 2*time.Second, func(f url.Values) (int, string) { return vectorAnswer(f, "9") })
			return a.URL, a.count
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			badAddr, badHits := tc.bad(t)
			good := newFakeQueryAPI(t, func(f url.Values) (int, string) { return vectorAnswer(f, "7", map[string]string{"ok": "1"}) })
			timeout := tc.client
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			reg := prometheus.NewRegistry()
			q := newTestQuerier(reg, timeout, badAddr, good.URL)
			calls := 20
			if tc.client > 0 {
				calls = 4
			}
			for i := 0; i < calls; i++ {
				v, err := q.Query(context.Background(), "up", time.Now(), false)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if len(v) != 1 || v[0].F != 7 {
					t.Fatalf("call %d: got %v, want the good endpoint's answer", i, v)
				}
			}
			if good.count() != calls {
				t.Errorf("good endpoint answered %d of %d calls", good.count(), calls)
			}
			unavailable := metricValue(t, reg, "vigil_rule_query_attempts_total", map[string]string{"result": "unavailable"})
			if badHits != nil && float64(badHits()) != unavailable {
				t.Errorf("bad endpoint hit %d times but %v attempts counted unavailable", badHits(), unavailable)
			}
			if tc.client == 0 && unavailable == 0 {
				t.Errorf("bad endpoint never tried first in %d calls: order not random?", calls)
			}
			if f := metricValue(t, reg, "vigil_rule_query_failures_total", nil); f != 0 {
				t.Errorf("failures = %v, want 0", f)
			}
		})
	}
}

func TestQuerierRefusalIsFinal(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusUnprocessableEntity} {
		// Both endpoints refuse: whichever is asked first, the other must not be.
		a := newFakeQueryAPI(t, func(url.Values) (int, string) { return errorAnswer(code, "bad_data", "parse error at char 3") })
		b := newFakeQueryAPI(t, func(url.Values) (int, string) { return errorAnswer(code, "bad_data", "parse error at char 3") })
		reg := prometheus.NewRegistry()
		q := newTestQuerier(reg, 5*time.Second, a.URL, b.URL)
		for i := 0; i < 6; i++ {
			_, err := q.Query(context.Background(), "up{", time.Now(), false)
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("HTTP %d: error %v (%T), want *QueryError", code, err, err)
			}
			if qe.Status != code || qe.Type != "bad_data" || !strings.Contains(qe.Error(), "parse error at char 3") {
				t.Errorf("HTTP %d: QueryError %+v", code, qe)
			}
		}
		if n := a.count() + b.count(); n != 6 {
			t.Errorf("HTTP %d: %d requests for 6 queries; a refused query must not be retried elsewhere", code, n)
		}
		if e := metricValue(t, reg, "vigil_rule_query_attempts_total", map[string]string{"result": "error"}); e != 6 {
			t.Errorf("HTTP %d: error attempts = %v, want 6", code, e)
		}
	}
}

func TestQuerierAllDown(t *testing.T) {
	bad := newFakeQueryAPI(t, func(url.Values) (int, string) {
		return errorAnswer(http.StatusServiceUnavailable, "unavailable", "no store")
	})
	reg := prometheus.NewRegistry()
	q := newTestQuerier(reg, 5*time.Second, closedAddr(t), bad.URL)
	for i := 1; i <= 3; i++ {
		_, err := q.Query(context.Background(), "up", time.Now(), true)
		if err == nil {
			t.Fatal("want an error with every endpoint down")
		}
		var qe *QueryError
		if errors.As(err, &qe) {
			t.Fatalf("unavailability reported as a query error: %v", err)
		}
		if !strings.Contains(err.Error(), "no query endpoint answered") || !strings.Contains(err.Error(), "no store") {
			t.Errorf("error %q should say no endpoint answered and carry each endpoint's error", err)
		}
		if f := metricValue(t, reg, "vigil_rule_query_failures_total", nil); f != float64(i) {
			t.Errorf("after %d failed queries failures_total = %v", i, f)
		}
	}
	if bad.count() != 3 {
		t.Errorf("reachable endpoint tried %d times, want 3 (every endpoint once per query)", bad.count())
	}

	// No endpoint at all is a failure too.
	reg = prometheus.NewRegistry()
	q = newTestQuerier(reg, time.Second)
	if _, err := q.Query(context.Background(), "up", time.Now(), false); err == nil {
		t.Fatal("want an error without endpoints")
	}
	if f := metricValue(t, reg, "vigil_rule_query_failures_total", nil); f != 1 {
		t.Errorf("failures_total = %v, want 1", f)
	}
}

func TestQuerierRandomOrderSpreadsLoad(t *testing.T) {
	ok := func(f url.Values) (int, string) { return vectorAnswer(f, "1") }
	a, b := newFakeQueryAPI(t, ok), newFakeQueryAPI(t, ok)
	q := newTestQuerier(prometheus.NewRegistry(), 5*time.Second, a.URL, b.URL)
	const n = 200
	for i := 0; i < n; i++ {
		if _, err := q.Query(context.Background(), "up", time.Now(), false); err != nil {
			t.Fatal(err)
		}
	}
	if a.count()+b.count() != n {
		t.Fatalf("%d+%d requests for %d queries; the first answer must win", a.count(), b.count(), n)
	}
	for name, c := range map[string]int{"a": a.count(), "b": b.count()} {
		if c <= n/4 {
			t.Errorf("endpoint %s got %d of %d queries (want > 25%%)", name, c, n)
		}
	}
}

func TestQuerierHistogramResultIsQueryError(t *testing.T) {
	api := newFakeQueryAPI(t, func(url.Values) (int, string) {
		return http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"__name__":"h"},"histogram":[1700000000,{"count":"3","sum":"4","buckets":[[0,"0","1","3"]]}]}]}}`
	})
	other := newFakeQueryAPI(t, func(url.Values) (int, string) {
		return http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1700000000,{"count":"1","sum":"1"}]}]}}`
	})
	q := newTestQuerier(prometheus.NewRegistry(), 5*time.Second, api.URL, other.URL)
	_, err := q.Query(context.Background(), "h", time.Now(), false)
	var qe *QueryError
	if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "histogram") {
		t.Fatalf("got %v, want a QueryError about native histograms", err)
	}
	if n := api.count() + other.count(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}

	for _, rt := range []string{"matrix", "string"} {
		m := newFakeQueryAPI(t, func(url.Values) (int, string) {
			return http.StatusOK, `{"status":"success","data":{"resultType":"` + rt + `","result":[]}}`
		})
		_, err := newTestQuerier(prometheus.NewRegistry(), time.Second, m.URL).Query(context.Background(), "x", time.Now(), false)
		if !errors.As(err, &qe) || !strings.Contains(qe.Msg, rt) {
			t.Errorf("%s result: got %v, want a QueryError naming it", rt, err)
		}
	}
}

func TestQuerierContextDeadlineStopsLoop(t *testing.T) {
	hang := func(url.Values) (int, string) { return errorAnswer(503, "timeout", "late") }
	apis := []*fakeQueryAPI{newSlowQueryAPI(t, time.Minute, hang), newSlowQueryAPI(t, time.Minute, hang), newSlowQueryAPI(t, time.Minute, hang)}
	reg := prometheus.NewRegistry()
	q := newTestQuerier(reg, time.Minute, apis[0].URL, apis[1].URL, apis[2].URL)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := q.Query(ctx, "up", time.Now(), false)
	if err == nil {
		t.Fatal("want an error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v should wrap context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Errorf("Query took %v after a 200ms deadline", el)
	}
	if n := apis[0].count() + apis[1].count() + apis[2].count(); n != 1 {
		t.Errorf("%d endpoints asked after the deadline passed, want 1", n)
	}
	if f := metricValue(t, reg, "vigil_rule_query_failures_total", nil); f != 1 {
		t.Errorf("failures_total = %v, want 1", f)
	}
}

func TestDecodeQueryResponseEdgeCases(t *testing.T) {
	at := time.UnixMilli(1000)
	for _, tc := range []struct {
		name      string
		code      int
		body      string
		queryErr  bool
		wantInErr string
	}{
		{"bad JSON 200", 200, "not json", false, "decode query response"},
		{"bad value", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}`, false, `"abc"`},
		{"number value", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,1]}]}}`, false, "sample value"},
		{"bad time", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":["x","1"]}]}}`, false, "sample time"},
		{"422 execution", 422, `{"status":"error","errorType":"execution","error":"many-to-many"}`, true, "many-to-many"},
		{"499 canceled", 499, `{"status":"error","errorType":"canceled","error":"canceled"}`, false, "canceled"},
	} {
		_, err := decodeQueryResponse(tc.code, []byte(tc.body), at)
		var qe *QueryError
		if err == nil || errors.As(err, &qe) != tc.queryErr || !strings.Contains(err.Error(), tc.wantInErr) {
			t.Errorf("%s: error %v; want QueryError=%v containing %q", tc.name, err, tc.queryErr, tc.wantInErr)
		}
	}
	v, err := decodeQueryResponse(200, []byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`), at)
	if err != nil || len(v) != 0 {
		t.Errorf("empty vector: %v, %v", v, err)
	}
}

// decodeQueryResponse turns an API answer into a vector, as Querier.Query does.
func decodeQueryResponse(code int, body []byte, t time.Time) (promql.Vector, error) {
	r, err := decodeEnvelope(code, body)
	if err != nil {
		return nil, err
	}
	return resultVector(r, t)
}

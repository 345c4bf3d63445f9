package federate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/query/querytest"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/queryapi"
)

// floatSeries are the float series of most tests, with what /federate must make of them
// at now with a 5m lookback.
func floatSeries() []testSeries {
	up := func(inst string) labels.Labels {
		return labels.FromStrings("__name__", "up", "job", "prom", "instance", inst)
	}
	return []testSeries{
		// latest of two: 2 at now-30s
		{up("a"), []point{at(-90*time.Second, 1), at(-30*time.Second, 2)}},
		// older than the lookback: left out
		{up("b"), []point{at(-400*time.Second, 1)}},
		// exactly now-5m: left out (the lookback window is open at its start)
		{up("c"), []point{at(-5*time.Minute, 1)}},
		// a sample after now does not count: 3 at now-60s
		{up("d"), []point{at(-60*time.Second, 3), at(10*time.Second, 4)}},
		// went stale: left out
		{up("e"), []point{at(-60*time.Second, 1), at(-30*time.Second, stale)}},
		// stale, then back: 5 at now-15s
		{up("f"), []point{at(-60*time.Second, stale), at(-15*time.Second, 5)}},
		// a recording rule's series without instance
		{labels.FromStrings("__name__", "job:up:sum", "job", "prom"), []point{at(-15*time.Second, 2)}},
		{labels.FromStrings("__name__", "unmatched", "job", "prom"), []point{at(-15*time.Second, 7)}},
	}
}

func TestFederateText(t *testing.T) {
	rec := &querytest.Recorder{DB: openDB(t, floatSeries()...)}
	e := newEnv(t, rec.Factory, nil)

	// Overlapping selectors: each series once.
	r := e.get(t, matches(`up`, `{__name__=~"job:.*"}`, `up{instance="a"}`))
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	want := `# TYPE job:up:sum untyped
job:up:sum{job="prom",instance=""} 2 1700000585000
# TYPE up untyped
up{instance="a",job="prom"} 2 1700000570000
up{instance="d",job="prom"} 3 1700000540000
up{instance="f",job="prom"} 5 1700000585000
`
	if r.body != want {
		t.Errorf("body:\n%s\nwant:\n%s", r.body, want)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	// The defaults of the query API: deduplication and partial response on, raw data.
	if o := rec.Last(t); !o.Dedup || !o.PartialResponse || !slices.Equal(o.ReplicaLabels, []string{"replica"}) || o.MaxSourceResolution != 0 {
		t.Errorf("options %+v", o)
	}

	// POST with a form body answers the same.
	if p := e.post(t, matches(`up`, `{__name__=~"job:.*"}`)); p.code != http.StatusOK || p.body != want {
		t.Errorf("POST: %d\n%s", p.code, p.body)
	}
	// Nothing matches: an empty 200.
	if r := e.get(t, matches(`nothing_here`)); r.code != http.StatusOK || r.body != "" {
		t.Errorf("no match: %d %q", r.code, r.body)
	}
}

func TestFederateLookbackDelta(t *testing.T) {
	db := openDB(t, floatSeries()...)
	e := newEnv(t, (&querytest.Recorder{DB: db}).Factory, func(c *Config, _ *queryapi.Config) { c.LookbackDelta = 10 * time.Minute })
	r := e.get(t, matches(`up{instance=~"b|c"}`))
	want := `# TYPE up untyped
up{instance="b",job="prom"} 1 1700000200000
up{instance="c",job="prom"} 1 1700000300000
`
	if r.code != http.StatusOK || r.body != want {
		t.Errorf("10m lookback: %d\n%s\nwant:\n%s", r.code, r.body, want)
	}
}

func TestFederateParams(t *testing.T) {
	rec := &querytest.Recorder{DB: openDB(t, floatSeries()...)}
	e := newEnv(t, rec.Factory, nil)
	r := e.get(t, url.Values{"match[]": {"up"}, "dedup": {"false"}, "partial_response": {"false"},
		"replicaLabels[]": {"rule_replica"}, "storeMatch[]": {`{__address__="a:1"}`}})
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	o := rec.Last(t)
	if o.Dedup || o.PartialResponse || !slices.Equal(o.ReplicaLabels, []string{"rule_replica"}) || len(o.StoreMatchers) != 1 {
		t.Errorf("options %+v", o)
	}
}

func TestFederateBadInput(t *testing.T) {
	e := newEnv(t, (&querytest.Recorder{DB: openDB(t, floatSeries()...)}).Factory, nil)
	for name, c := range map[string]struct {
		params url.Values
		want   string
	}{
		"no match[]":       {url.Values{}, "no match[] parameter provided"},
		"empty match[]":    {matches(""), `invalid parameter "match[]"`},
		"bad selector":     {matches(`up{`), `invalid parameter "match[]"`},
		"not a selector":   {matches(`rate(up[5m])`), `invalid parameter "match[]"`},
		"matches anything": {matches(`{job=~".*"}`), "at least one non-empty matcher"},
		"one bad of two":   {matches(`up`, `up{job=}`), `invalid parameter "match[]"`},
		"bad dedup":        {url.Values{"match[]": {"up"}, "dedup": {"maybe"}}, "'dedup' parameter"},
		"bad partial":      {url.Values{"match[]": {"up"}, "partial_response": {"x"}}, "'partial_response' parameter"},
		"bad timeout":      {url.Values{"match[]": {"up"}, "timeout": {"soon"}}, `invalid parameter "timeout"`},
		"bad storeMatch":   {url.Values{"match[]": {"up"}, "storeMatch[]": {"{"}}, "parse error"},
	} {
		r := e.get(t, c.params)
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, c.want) {
			t.Errorf("%s: %d %q, want 400 with %q", name, r.code, r.body, c.want)
		}
	}
	// Other methods are not allowed.
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/federate?match[]=up", nil)
	if r := e.do(t, req); r.code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", r.code)
	}
}

// TestFederateFamilyOrder checks that every metric family is written once and in name
// order, also for series with a label name that sorts before __name__ (which the
// querier's label order puts before all others).
func TestFederateFamilyOrder(t *testing.T) {
	p := []point{at(-10*time.Second, 1)}
	db := openDB(t,
		testSeries{labels.FromStrings("__name__", "m2", "Zone", "z"), p},
		testSeries{labels.FromStrings("__name__", "m9", "A", "x"), p},
		testSeries{labels.FromStrings("__name__", "m1", "job", "j"), p},
		testSeries{labels.FromStrings("__name__", "m2", "job", "j"), p},
		testSeries{labels.FromStrings("__name__", "m3", "job", "j"), p},
		testSeries{labels.FromStrings("job", "nameless"), p},
	)
	e := newEnv(t, (&querytest.Recorder{DB: db}).Factory, nil)
	r := e.get(t, matches(`{job=~".+"}`, `{Zone="z"}`, `{A="x"}`))
	want := `# TYPE m1 untyped
m1{job="j",instance=""} 1 1700000590000
# TYPE m2 untyped
m2{Zone="z",instance=""} 1 1700000590000
m2{job="j",instance=""} 1 1700000590000
# TYPE m3 untyped
m3{job="j",instance=""} 1 1700000590000
# TYPE m9 untyped
m9{A="x",instance=""} 1 1700000590000
`
	if r.code != http.StatusOK || r.body != want {
		t.Errorf("%d\n%s\nwant:\n%s", r.code, r.body, want)
	}
}

// histogramSeries holds a native histogram and one with custom buckets (NHCB).
func histogramSeries() []testSeries {
	native := &histogram.Histogram{
		Schema: 0, Count: 5, Sum: 10.5, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, -1},
		NegativeSpans: []histogram.Span{{Offset: 0, Length: 1}}, NegativeBuckets: []int64{1},
	}
	gauge := native.Copy()
	gauge.CounterResetHint = histogram.GaugeType
	nhcb := &histogram.Histogram{
		Schema: histogram.CustomBucketsSchema, Count: 4, Sum: 7,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{2, -1, 0}, // 2, 1, 1
		CustomValues: []float64{1, 5},
	}
	ts := now - 15_000
	return []testSeries{
		{labels.FromStrings("__name__", "hist", "job", "h"), []point{{t: ts, h: native}}},
		{labels.FromStrings("__name__", "hist_gauge", "job", "h"), []point{{t: ts, h: gauge}}},
		{labels.FromStrings("__name__", "nhcb", "job", "h"), []point{{t: ts, h: nhcb}}},
		{labels.FromStrings("__name__", "plain", "job", "h"), []point{{t: ts, f: 1}}},
	}
}

func TestFederateHistograms(t *testing.T) {
	e := newEnv(t, (&querytest.Recorder{DB: openDB(t, histogramSeries()...)}).Factory, nil)
	params := matches(`{job="h"}`)

	// Text: native histograms are left out, NHCB becomes a classic histogram.
	r := e.get(t, params)
	want := `# TYPE nhcb histogram
nhcb_bucket{job="h",instance="",le="1"} 2 1700000585000
nhcb_bucket{job="h",instance="",le="5"} 3 1700000585000
nhcb_bucket{job="h",instance="",le="+Inf"} 4 1700000585000
nhcb_sum{job="h",instance=""} 7 1700000585000
nhcb_count{job="h",instance=""} 4 1700000585000
# TYPE plain untyped
plain{job="h",instance=""} 1 1700000585000
`
	if r.code != http.StatusOK || r.body != want {
		t.Errorf("text: %d\n%s\nwant:\n%s", r.code, r.body, want)
	}

	// Delimited protobuf, as a Prometheus scraping with native histograms asks for it.
	r = e.get(t, params, "Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
	if ct := r.header.Get("Content-Type"); r.code != http.StatusOK || !strings.HasPrefix(ct, "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited") {
		t.Fatalf("protobuf: %d %q", r.code, ct)
	}
	fams := decode(t, r)
	var got []string
	for _, f := range fams {
		got = append(got, f.GetName()+":"+f.GetType().String())
	}
	if wantFams := []string{"hist:HISTOGRAM", "hist_gauge:GAUGE_HISTOGRAM", "nhcb:HISTOGRAM", "plain:UNTYPED"}; !slices.Equal(got, wantFams) {
		t.Fatalf("families %v, want %v", got, wantFams)
	}
	h := fams[0].GetMetric()[0].GetHistogram()
	if h.GetSchema() != 0 || h.GetSampleCountFloat() != 5 || h.GetSampleSum() != 10.5 || h.GetZeroCountFloat() != 1 ||
		h.GetZeroThreshold() != 0.001 || !slices.Equal(h.GetPositiveCount(), []float64{2, 1}) || !slices.Equal(h.GetNegativeCount(), []float64{1}) ||
		len(h.GetPositiveSpan()) != 1 || h.GetPositiveSpan()[0].GetLength() != 2 {
		t.Errorf("native histogram %v", h)
	}
	if m := fams[0].GetMetric()[0]; m.GetTimestampMs() != now-15_000 || metricKey("hist", m) != `{__name__="hist", instance="", job="h"}` {
		t.Errorf("native histogram metric %v", m)
	}
	c := fams[2].GetMetric()[0].GetHistogram()
	if b := c.GetBucket(); len(b) != 2 || b[0].GetUpperBound() != 1 || b[0].GetCumulativeCountFloat() != 2 || b[1].GetUpperBound() != 5 || b[1].GetCumulativeCountFloat() != 3 {
		t.Errorf("NHCB as classic histogram: %v", c)
	}
}

func TestFederateNegotiation(t *testing.T) {
	e := newEnv(t, (&querytest.Recorder{DB: openDB(t, floatSeries()...)}).Factory, nil)
	params := matches(`up`)
	text := e.get(t, params)
	want := decode(t, text)
	for name, accept := range map[string]string{
		"protobuf delimited": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
		"protobuf text":      "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
		"protobuf compact":   "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text",
		"text":               "text/plain;version=0.0.4",
		"openmetrics":        "application/openmetrics-text;version=1.0.0", // not offered: text
		"anything":           "*/*",
	} {
		r := e.get(t, params, "Accept", accept)
		if r.code != http.StatusOK {
			t.Errorf("%s: %d %s", name, r.code, r.body)
			continue
		}
		ft := expfmt.Format(r.header.Get("Content-Type")).FormatType()
		wantType := map[string]expfmt.FormatType{
			"protobuf delimited": expfmt.TypeProtoDelim, "protobuf text": expfmt.TypeProtoText,
			"protobuf compact": expfmt.TypeProtoCompact,
		}[name]
		if wantType == 0 {
			wantType = expfmt.TypeTextPlain
		}
		if ft != wantType {
			t.Errorf("%s: Content-Type %q", name, r.header.Get("Content-Type"))
		}
		if ft == expfmt.TypeProtoText || ft == expfmt.TypeProtoCompact {
			continue // expfmt has no decoder for these
		}
		if got := decode(t, r); !sameFamilies(got, want) {
			t.Errorf("%s: families %v, want %v", name, got, want)
		}
	}

	// gzip when the client accepts it (as Prometheus's scraper does).
	r := e.get(t, params, "Accept-Encoding", "gzip")
	if r.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", r.header.Get("Content-Encoding"))
	}
	if got := decode(t, r); !sameFamilies(got, want) {
		t.Errorf("gzip: families %v, want %v", got, want)
	}
}

func sameFamilies(a, b []*dto.MetricFamily) bool {
	render := func(fs []*dto.MetricFamily) []string {
		var out []string
		for _, f := range fs {
			for _, m := range f.GetMetric() {
				out = append(out, fmt.Sprintf("%s %v@%d", metricKey(f.GetName(), m), m.GetUntyped().GetValue(), m.GetTimestampMs()))
			}
		}
		return out
	}
	return slices.Equal(render(a), render(b))
}

// TestFederateDedup federates two replicas of the same targets through the querier's own
// storage (StoreAPI endpoints over gRPC, merge and deduplication).
func TestFederateDedup(t *testing.T) {
	var dbs []*tsdb.DB
	for r := range 2 {
		var series []testSeries
		for _, inst := range []string{"a", "b", "c"} {
			ls := labels.FromStrings("__name__", "up", "job", "node", "instance", inst)
			series = append(series, testSeries{ls, []point{at(-40*time.Second, 1), at(time.Duration(-20-r)*time.Second, float64(10+r))}})
		}
		// A series only replica b has.
		if r == 1 {
			series = append(series, testSeries{labels.FromStrings("__name__", "up", "job", "node", "instance", "d"), []point{at(-20*time.Second, 1)}})
		}
		dbs = append(dbs, openDB(t, series...))
	}
	ext := []labels.Labels{
		labels.FromStrings("cluster", "eu", "replica", "a"),
		labels.FromStrings("cluster", "eu", "replica", "b"),
	}
	e := newEnv(t, dedupQuerier(t, dbs, ext), nil)

	r := e.get(t, matches(`up{job="node"}`))
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	// One series per target, external labels kept, replica label gone.
	var got []string
	for _, f := range decode(t, r) {
		for _, m := range f.GetMetric() {
			got = append(got, metricKey(f.GetName(), m))
		}
	}
	want := []string{
		`{__name__="up", cluster="eu", instance="a", job="node"}`,
		`{__name__="up", cluster="eu", instance="b", job="node"}`,
		`{__name__="up", cluster="eu", instance="c", job="node"}`,
		`{__name__="up", cluster="eu", instance="d", job="node"}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("deduplicated: %q\nwant %q", got, want)
	}
	if strings.Count(r.body, "# TYPE up ") != 1 {
		t.Errorf("family written more than once:\n%s", r.body)
	}

	// dedup=false: every replica's copy, with its replica label.
	r = e.get(t, url.Values{"match[]": {`up{job="node"}`}, "dedup": {"false"}})
	got = nil
	for _, f := range decode(t, r) {
		for _, m := range f.GetMetric() {
			got = append(got, metricKey(f.GetName(), m))
		}
	}
	want = []string{
		`{__name__="up", cluster="eu", instance="a", job="node", replica="a"}`,
		`{__name__="up", cluster="eu", instance="a", job="node", replica="b"}`,
		`{__name__="up", cluster="eu", instance="b", job="node", replica="a"}`,
		`{__name__="up", cluster="eu", instance="b", job="node", replica="b"}`,
		`{__name__="up", cluster="eu", instance="c", job="node", replica="a"}`,
		`{__name__="up", cluster="eu", instance="c", job="node", replica="b"}`,
		`{__name__="up", cluster="eu", instance="d", job="node", replica="b"}`,
	}
	if r.code != http.StatusOK || !slices.Equal(got, want) {
		t.Errorf("dedup=false: %d %q\nwant %q", r.code, got, want)
	}
	if !strings.Contains(r.body, `up{cluster="eu",instance="a",job="node",replica="b"} 11 1700000579000`) {
		t.Errorf("dedup=false: replica b's own latest sample missing:\n%s", r.body)
	}
}

// blockingQueryable answers Select only when its context ends, with the context's
// error, or, with warnOnly, with nothing and a warning, as partial response might.
type blockingQueryable struct{ warnOnly bool }

func (b blockingQueryable) Querier(int64, int64) (storage.Querier, error) {
	return blockingQuerier(b), nil
}

type blockingQuerier blockingQueryable

func (b blockingQuerier) Select(ctx context.Context, _ bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
	<-ctx.Done()
	if b.warnOnly {
		return storage.EmptySeriesSet()
	}
	return storage.ErrSeriesSet(ctx.Err())
}
func (blockingQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (blockingQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (blockingQuerier) Close() error { return nil }

func TestFederateDeadline(t *testing.T) {
	for _, warnOnly := range []bool{false, true} {
		factory := func(query.Options) storage.Queryable { return blockingQueryable{warnOnly: warnOnly} }
		e := newEnv(t, factory, func(_ *Config, a *queryapi.Config) { a.Timeout = 100 * time.Millisecond })
		start := time.Now()
		r := e.get(t, matches("up"))
		if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "federation timed out") {
			t.Errorf("warnOnly=%v: %d %q, want 503 timed out", warnOnly, r.code, r.body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("answered after %s", d)
		}
		// The timeout parameter can only lower --query.timeout.
		e = newEnv(t, factory, nil)
		start = time.Now()
		if r := e.get(t, url.Values{"match[]": {"up"}, "timeout": {"50ms"}}); r.code != http.StatusServiceUnavailable {
			t.Errorf("timeout=50ms: %d %q", r.code, r.body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("timeout=50ms answered after %s", d)
		}
	}
}

// failingQueryable wraps a storage whose series sets fail with err after n series.
type failingQueryable struct {
	storage.Queryable
	n   int
	err error
}

func (f failingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := f.Queryable.Querier(mint, maxt)
	return failingQuerier{q, f}, err
}

type failingQuerier struct {
	storage.Querier
	f failingQueryable
}

func (q failingQuerier) Select(ctx context.Context, sorted bool, h *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &failingSet{SeriesSet: q.Querier.Select(ctx, sorted, h, ms...), left: q.f.n, err: q.f.err}
}

type failingSet struct {
	storage.SeriesSet
	left int
	err  error
}

func (s *failingSet) Next() bool {
	if s.left == 0 {
		return false
	}
	s.left--
	return s.SeriesSet.Next()
}

func (s *failingSet) Err() error {
	if s.left == 0 {
		return s.err
	}
	return s.SeriesSet.Err()
}

// manySeries returns n series of metric m<i/per> with long labels.
func manySeries(n, per int) []testSeries {
	out := make([]testSeries, 0, n)
	pad := strings.Repeat("x", 100)
	for i := range n {
		ls := labels.FromStrings("__name__", fmt.Sprintf("metric_%04d", i/per), "instance", fmt.Sprintf("host-%05d:9100", i), "job", "node", "pad", pad)
		out = append(out, testSeries{ls, []point{at(-45*time.Second, float64(i)), at(-30*time.Second, float64(i)), at(-15*time.Second, float64(i))}})
	}
	return out
}

func TestFederateErrors(t *testing.T) {
	db := openDB(t, manySeries(4000, 100)...)
	storeErr := errors.New("endpoint 10.0.0.1:10901: connection reset")

	// Failing before much was written: an error status.
	e := newEnv(t, func(query.Options) storage.Queryable { return failingQueryable{db, 10, storeErr} }, nil)
	if r := e.get(t, matches(`{job="node"}`)); r.code != http.StatusUnprocessableEntity || !strings.Contains(r.body, "connection reset") {
		t.Errorf("early failure: %d %.200q", r.code, r.body)
	}

	// Failing after the answer began: the connection is cut, never a short 200 read to
	// its end.
	e = newEnv(t, func(query.Options) storage.Queryable { return failingQueryable{db, 3900, storeErr} }, nil)
	if r := e.get(t, matches(`{job="node"}`)); r.readErr == nil {
		t.Errorf("late failure: %d with %d bytes read without an error", r.code, len(r.body))
	}
	// The same without a failure is read whole.
	e = newEnv(t, func(query.Options) storage.Queryable { return db }, nil)
	r := e.get(t, matches(`{job="node"}`))
	if r.readErr != nil || r.code != http.StatusOK || strings.Count(r.body, "# TYPE") != 40 || strings.Count(r.body, "\n") != 4040 {
		t.Errorf("no failure: %d, err %v, %d bytes", r.code, r.readErr, len(r.body))
	}

	// Over --query.max-samples: one family of 100 series does not fit into 50.
	e = newEnv(t, func(query.Options) storage.Queryable { return db }, func(c *Config, _ *queryapi.Config) { c.MaxSamples = 50 })
	r = e.get(t, matches(`{job="node"}`))
	if r.code != http.StatusUnprocessableEntity || !strings.Contains(r.body, "--query.max-samples") || !strings.Contains(r.body, `"metric_0000"`) {
		t.Errorf("sample limit: %d %q", r.code, r.body)
	}
	e = newEnv(t, func(query.Options) storage.Queryable { return db }, func(c *Config, _ *queryapi.Config) { c.MaxSamples = 100 })
	if r := e.get(t, matches(`{job="node"}`)); r.code != http.StatusOK || r.readErr != nil {
		t.Errorf("families of exactly the limit: %d %v", r.code, r.readErr)
	}
}

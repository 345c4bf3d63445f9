package queryapi

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/query"
)

func TestThanosOptions(t *testing.T) {
	f := newFixture(t, nil, nil)
	check := func(name string, got, want query.Options) {
		t.Helper()
		if got.Dedup != want.Dedup || got.PartialResponse != want.PartialResponse ||
			got.MaxSourceResolution != want.MaxSourceResolution ||
			strings.Join(got.ReplicaLabels, ",") != strings.Join(want.ReplicaLabels, ",") ||
			len(got.StoreMatchers) != len(want.StoreMatchers) {
			t.Errorf("%s: options %+v, want %+v", name, got, want)
		}
	}

	f.get(t, "/api/v1/query", vals("query", "up", "time", "1700000600"))
	check("instant defaults", f.rec.Last(t), query.Options{Dedup: true, ReplicaLabels: []string{"replica"}, PartialResponse: true})

	f.post(t, "/api/v1/query", vals("query", "up", "time", "1700000600", "dedup", "false",
		"replicaLabels[]", "rep", "replicaLabels[]", "prometheus_replica", "partial_response", "0",
		"max_source_resolution", "5m", "storeMatch[]", `{__address__=~"10.0.0.1:.*"}`, "storeMatch[]", `{__address__="x"}`))
	got := f.rec.Last(t)
	check("instant overrides", got, query.Options{ReplicaLabels: []string{"rep", "prometheus_replica"},
		MaxSourceResolution: 300_000, StoreMatchers: make([][]*labels.Matcher, 2)})
	if m := got.StoreMatchers[0]; len(m) != 1 || m[0].Name != "__address__" || m[0].Type != labels.MatchRegexp || !m[0].Matches("10.0.0.1:10901") {
		t.Errorf("storeMatch[] parsed as %v", got.StoreMatchers)
	}

	f.get(t, "/api/v1/query", vals("query", "up", "time", "1700000600", "max_source_resolution", "auto"))
	check("instant auto", f.rec.Last(t), query.Options{Dedup: true, ReplicaLabels: []string{"replica"}, PartialResponse: true})

	f.get(t, "/api/v1/query", vals("query", "up", "time", "1700000600", "max_source_resolution", "300"))
	check("instant 300s", f.rec.Last(t), query.Options{Dedup: true, ReplicaLabels: []string{"replica"}, PartialResponse: true, MaxSourceResolution: 300_000})

	f.get(t, "/api/v1/query_range", vals("query", "up", "start", "1700000000", "end", "1700000600", "step", "60", "max_source_resolution", "auto"))
	check("range auto", f.rec.Last(t), query.Options{Dedup: true, ReplicaLabels: []string{"replica"}, PartialResponse: true, MaxSourceResolution: 12_000})

	f.get(t, "/api/v1/query_range", vals("query", "up", "start", "1700000000", "end", "1700000600", "step", "60", "max_source_resolution", "1h"))
	check("range 1h", f.rec.Last(t), query.Options{Dedup: true, ReplicaLabels: []string{"replica"}, PartialResponse: true, MaxSourceResolution: 3_600_000})

	f.get(t, "/api/v1/query_range", vals("query", "up", "start", "1700000000", "end", "1700000600", "step", "60"))
	check("range default", f.rec.Last(t), query.Options{Dedup: true, ReplicaLabels: []string{"replica"}, PartialResponse: true})

	f.get(t, "/api/v1/series", vals("match[]", "up", "dedup", "false", "partial_response", "false"))
	check("series", f.rec.Last(t), query.Options{ReplicaLabels: []string{"replica"}, MaxSourceResolution: math.MaxInt64})

	f.get(t, "/api/v1/labels", vals("replicaLabels[]", "x"))
	check("labels", f.rec.Last(t), query.Options{Dedup: true, ReplicaLabels: []string{"x"}, PartialResponse: true, MaxSourceResolution: math.MaxInt64})

	g := newFixture(t, nil, func(c *Config) { c.PartialResponse = false; c.ReplicaLabels = nil })
	g.get(t, "/api/v1/label/job/values", vals("partial_response", "true"))
	check("label values override", g.rec.Last(t), query.Options{Dedup: true, PartialResponse: true, MaxSourceResolution: math.MaxInt64})
	g.get(t, "/api/v1/query", vals("query", "up"))
	check("flag default", g.rec.Last(t), query.Options{Dedup: true})
}

func TestLookbackDelta(t *testing.T) {
	f := newFixture(t, nil, nil)
	// The last sample is at 1700000600; 10 minutes later it is outside the default 5m
	// lookback but inside a 15m one.
	code, body := f.get(t, "/api/v1/query", vals("query", `up{instance="a:9090"}`, "time", "1700001200"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	code, body = f.get(t, "/api/v1/query", vals("query", `up{instance="a:9090"}`, "time", "1700001200", "lookback_delta", "15m"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"up","instance":"a:9090","job":"prom"},"value":[1700001200,"1"]}]}}`)
	// A max_source_resolution above 5m raises the lookback delta to 1h (Thanos's
	// dynamic lookback delta).
	code, body = f.get(t, "/api/v1/query", vals("query", `up{instance="a:9090"}`, "time", "1700001200", "max_source_resolution", "1h"))
	expect(t, code, body, 200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"up","instance":"a:9090","job":"prom"},"value":[1700001200,"1"]}]}}`)

	a := New(Config{})
	cases := []struct {
		base time.Duration
		msr  int64
		want time.Duration
	}{
		{0, 0, 0}, {0, 300_000, 0}, {0, 300_001, time.Hour}, {0, 3_600_000, time.Hour},
		{time.Minute, 60_001, 5 * time.Minute}, {time.Minute, 300_001, time.Hour},
		{2 * time.Hour, 3_600_000, 2 * time.Hour},
	}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	_ = r.ParseForm()
	for _, c := range cases {
		a.cfg.LookbackDelta = c.base
		if got, _ := a.lookbackDelta(r, c.msr); got != c.want {
			t.Errorf("lookbackDelta(base %v, msr %d) = %v, want %v", c.base, c.msr, got, c.want)
		}
	}
}

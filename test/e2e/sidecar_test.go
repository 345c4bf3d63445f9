// Package e2e holds Vigil's end-to-end tests: real Prometheus and vigil processes on
// loopback ports, driven through their public APIs. Run with `make test-e2e`.
package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

var extLabels = map[string]string{"cluster": "test", "replica": "r0"}

// startSidecar starts a Prometheus scraping itself every second with extLabels and a
// vigil sidecar in front of it, and waits until the sidecar is ready.
func startSidecar(t *testing.T) (*e2eutil.Prometheus, *e2eutil.Vigil) {
	t.Helper()
	prom := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{ExternalLabels: extLabels, ScrapeInterval: time.Second})
	sc := e2eutil.StartVigil(t, "sidecar",
		"--prometheus.url="+prom.URL,
		"--tsdb.path="+prom.DataDir,
		"--prometheus.get_config_interval=1s",
		"--prometheus.ready_timeout=30s",
		"--log.level=debug")
	sc.MustWaitReady(t)
	return prom, sc
}

// waitForData waits until Prometheus holds at least n samples of `up`.
func waitForData(t *testing.T, prom *e2eutil.Prometheus, n int) {
	t.Helper()
	e2eutil.Poll(t, 30*time.Second, 500*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ms, err := e2eutil.QueryMatrix(ctx, prom.URL, "up[1m]", time.Now())
		if err != nil {
			return err
		}
		if len(ms) != 1 || len(ms[0].Samples) < n {
			return fmt.Errorf("want 1 up series with %d samples, got %+v", n, ms)
		}
		return nil
	})
}

func TestSidecar(t *testing.T) {
	t.Parallel()
	prom, sc := startSidecar(t)
	c := sc.StoreClient(t, "snappy")
	waitForData(t, prom, 8)

	t.Run("SeriesMatchPrometheus", func(t *testing.T) {
		// Compare with the raw samples of a range selector (no lookback or step
		// alignment). The window ends in the past so no scrape can land in it between the
		// two reads.
		const window = 20 * time.Second
		end := time.Now().Add(-2 * time.Second).Truncate(time.Millisecond)
		mint, maxt := end.Add(-window).UnixMilli()+1, end.UnixMilli()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ms, err := e2eutil.QueryMatrix(ctx, prom.URL, `{__name__=~"up|prometheus_.+"}[20s]`, end)
		if err != nil {
			t.Fatal(err)
		}
		ss := mustSeries(t, c, &storepb.SeriesRequest{MinTime: mint, MaxTime: maxt,
			Matchers: []*storepb.LabelMatcher{re("__name__", "up|prometheus_.+")}})
		for _, s := range ss {
			ls := storeapi.LabelsFromProto(s.Labels)
			if ls.Get("cluster") != "test" || ls.Get("replica") != "r0" {
				t.Errorf("series %s lacks external labels cluster=test, replica=r0", ls)
			}
		}
		assertSorted(t, ss)
		want, got := promSamples(ms, extLabels, mint, maxt), storeSamples(t, ss, mint, maxt)
		if d := diffSamples(want, got); d != "" {
			t.Errorf("StoreAPI samples differ from Prometheus /api/v1/query over (%d, %d]:\n%s", mint-1, maxt, d)
		}
		n := 0
		for _, smp := range got {
			n += len(smp)
		}
		t.Logf("compared %d series, %d samples in (%d, %d]", len(got), n, mint-1, maxt)
		// Guard against comparing two empty results.
		up := labels.FromStrings("__name__", "up", "cluster", "test", "instance", prom.Addr, "job", "prometheus", "replica", "r0")
		if n := len(got[up.String()]); n < 5 {
			t.Errorf("StoreAPI returned %d samples of %s in the window, want >= 5", n, up)
		}
		if len(got) < 100 {
			t.Errorf("StoreAPI returned %d series with samples, want up and >= 100 prometheus_* series", len(got))
		}
	})

	t.Run("SeriesSorted", func(t *testing.T) {
		// Many series whose external labels sort between their own labels.
		for _, without := range [][]string{nil, {"replica"}} {
			ss := mustSeries(t, c, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64,
				Matchers: []*storepb.LabelMatcher{re("__name__", "prometheus_.+|up")}, WithoutReplicaLabels: without})
			if len(ss) < 50 {
				t.Errorf("WithoutReplicaLabels=%v: got %d series, want >= 50", without, len(ss))
			}
			assertSorted(t, ss)
		}
	})

	t.Run("SkipChunks", func(t *testing.T) {
		req := &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: []*storepb.LabelMatcher{re("__name__", "up|prometheus_http_.+")}}
		full := mustSeries(t, c, req)
		req.SkipChunks = true
		bare := mustSeries(t, c, req)
		if len(full) == 0 || len(bare) != len(full) {
			t.Fatalf("SkipChunks returned %d series, full request %d; want the same, non-zero", len(bare), len(full))
		}
		for i := range bare {
			if len(bare[i].Chunks) != 0 {
				t.Errorf("SkipChunks series %s has %d chunks, want none", storeapi.LabelsFromProto(bare[i].Labels), len(bare[i].Chunks))
			}
			if storeapi.CompareLabels(bare[i].Labels, full[i].Labels) != 0 {
				t.Errorf("SkipChunks series %d is %s, full request has %s", i, storeapi.LabelsFromProto(bare[i].Labels), storeapi.LabelsFromProto(full[i].Labels))
			}
		}
	})

	t.Run("ExternalLabelOnlyMatchersRejected", func(t *testing.T) {
		for _, ms := range [][]*storepb.LabelMatcher{
			{eq("cluster", "test")},
			{eq("cluster", "test"), eq("replica", "r0")},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, _, err := collectSeries(ctx, c, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: ms})
			cancel()
			wantCode(t, fmt.Sprintf("Series(%v)", ms), err, codes.InvalidArgument)
		}
	})

	t.Run("ExternalLabelMatchers", func(t *testing.T) {
		for _, tc := range []struct {
			ms        []*storepb.LabelMatcher
			wantSome  bool
			wantEmpty bool
		}{
			{ms: []*storepb.LabelMatcher{eq("cluster", "other")}, wantEmpty: true},
			{ms: []*storepb.LabelMatcher{eq("cluster", "other"), eq("__name__", "up")}, wantEmpty: true},
			{ms: []*storepb.LabelMatcher{neq("cluster", "test"), eq("__name__", "up")}, wantEmpty: true},
			{ms: []*storepb.LabelMatcher{eq("cluster", "test"), eq("__name__", "up")}, wantSome: true},
			{ms: []*storepb.LabelMatcher{re("cluster", "te.*"), eq("replica", "r0"), eq("__name__", "up")}, wantSome: true},
		} {
			ss := mustSeries(t, c, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: tc.ms})
			if tc.wantEmpty && len(ss) != 0 {
				t.Errorf("Series(%v): got %d series, want none", tc.ms, len(ss))
			}
			if tc.wantSome && len(ss) != 1 {
				t.Errorf("Series(%v): got %d series, want the one up series", tc.ms, len(ss))
			}
		}
	})

	t.Run("Labels", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		now := time.Now().UnixMilli()
		start := now - time.Hour.Milliseconds()
		values := func(name string, without []string, ms ...*storepb.LabelMatcher) []string {
			t.Helper()
			r, err := c.LabelValues(ctx, &storepb.LabelValuesRequest{Label: name, Start: start, End: now, Matchers: ms, WithoutReplicaLabels: without})
			if err != nil {
				t.Fatalf("LabelValues(%s): %v", name, err)
			}
			return r.GetValues()
		}
		if got := values("cluster", nil); !slices.Equal(got, []string{"test"}) {
			t.Errorf("LabelValues(cluster) = %q, want [test]", got)
		}
		if got := values("replica", nil); !slices.Equal(got, []string{"r0"}) {
			t.Errorf("LabelValues(replica) = %q, want [r0]", got)
		}
		if got := values("replica", []string{"replica"}); len(got) != 0 {
			t.Errorf("LabelValues(replica) without replica labels = %q, want none", got)
		}
		if got := values("cluster", nil, eq("cluster", "other"), eq("__name__", "up")); len(got) != 0 {
			t.Errorf(`LabelValues(cluster) for cluster="other" = %q, want none`, got)
		}
		if got := values("job", nil); !slices.Contains(got, "prometheus") {
			t.Errorf("LabelValues(job) = %q, want it to contain prometheus", got)
		}

		names := func(without []string) []string {
			t.Helper()
			r, err := c.LabelNames(ctx, &storepb.LabelNamesRequest{Start: start, End: now, WithoutReplicaLabels: without})
			if err != nil {
				t.Fatalf("LabelNames: %v", err)
			}
			if !slices.IsSorted(r.GetNames()) {
				t.Errorf("LabelNames not sorted: %q", r.GetNames())
			}
			return r.GetNames()
		}
		all := names(nil)
		for _, n := range []string{"__name__", "cluster", "instance", "job", "replica"} {
			if !slices.Contains(all, n) {
				t.Errorf("LabelNames = %q, want it to contain %q", all, n)
			}
		}
		noReplica := names([]string{"replica"})
		if slices.Contains(noReplica, "replica") || !slices.Contains(noReplica, "cluster") {
			t.Errorf("LabelNames without replica labels = %q, want cluster but not replica", noReplica)
		}

		ss := mustSeries(t, c, &storepb.SeriesRequest{MinTime: start, MaxTime: now,
			Matchers: []*storepb.LabelMatcher{re("__name__", "up|prometheus_http_requests_total")}, WithoutReplicaLabels: []string{"replica"}})
		if len(ss) < 2 {
			t.Fatalf("Series without replica labels: got %d series, want >= 2", len(ss))
		}
		for _, s := range ss {
			ls := storeapi.LabelsFromProto(s.Labels)
			if ls.Has("replica") || ls.Get("cluster") != "test" {
				t.Errorf("Series without replica labels returned %s; want cluster=test and no replica", ls)
			}
		}
		assertSorted(t, ss)
	})

	t.Run("MalformedMatchers", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		bad := []*storepb.LabelMatcher{re("job", "((")}
		_, _, err := collectSeries(ctx, c, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: bad})
		wantCode(t, `Series(job=~"((")`, err, codes.InvalidArgument)
		_, err = c.LabelNames(ctx, &storepb.LabelNamesRequest{Start: 0, End: math.MaxInt64, Matchers: bad})
		wantCode(t, `LabelNames(job=~"((")`, err, codes.InvalidArgument)
		_, err = c.LabelValues(ctx, &storepb.LabelValuesRequest{Label: "job", Start: 0, End: math.MaxInt64, Matchers: bad})
		wantCode(t, `LabelValues(job=~"((")`, err, codes.InvalidArgument)
		_, _, err = collectSeries(ctx, c, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64,
			Matchers: []*storepb.LabelMatcher{{Type: storepb.LabelMatcher_Type(42), Name: "job", Value: "x"}}})
		wantCode(t, "Series(unknown matcher type)", err, codes.InvalidArgument)
		_, err = c.LabelValues(ctx, &storepb.LabelValuesRequest{Start: 0, End: math.MaxInt64})
		wantCode(t, "LabelValues(empty label)", err, codes.InvalidArgument)

		// The sidecar keeps serving.
		if _, err := c.Info(ctx); err != nil {
			t.Errorf("Info after malformed requests: %v", err)
		}
		if ss := mustSeries(t, c, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64,
			Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}}); len(ss) != 1 {
			t.Errorf("Series(up) after malformed requests: got %d series, want 1", len(ss))
		}
		if sc.Exited() {
			t.Errorf("sidecar exited after malformed requests")
		}
	})

	t.Run("Info", func(t *testing.T) {
		var minTime int64
		e2eutil.Poll(t, 15*time.Second, 250*time.Millisecond, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			if info.GetComponentType() != "sidecar" {
				t.Fatalf("Info.ComponentType = %q, want sidecar", info.GetComponentType())
			}
			if n := len(info.GetLabelSets()); n != 1 {
				t.Fatalf("Info.LabelSets has %d sets, want 1: %v", n, info.GetLabelSets())
			}
			if got, want := storeapi.LabelsFromProto(info.GetLabelSets()[0].GetLabels()), labels.FromMap(extLabels); !labels.Equal(got, want) {
				t.Fatalf("Info label set = %s, want %s", got, want)
			}
			if got := info.GetStore().GetMaxTime(); got != math.MaxInt64 {
				t.Fatalf("Info.Store.MaxTime = %d, want math.MaxInt64", got)
			}
			if minTime = info.GetStore().GetMinTime(); minTime <= 0 {
				return fmt.Errorf("Info.Store.MinTime = %d, want > 0 once Prometheus has data", minTime)
			}
			return nil
		})
		if now := time.Now().UnixMilli(); minTime > now || minTime < now-5*time.Minute.Milliseconds() {
			t.Errorf("Info.Store.MinTime = %d, want within the last 5 minutes (now %d): the TSDB is new", minTime, now)
		}
		// No sample the sidecar serves is older than the advertised min time.
		ss := mustSeries(t, c, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}})
		if len(ss) != 1 {
			t.Fatalf("Series(up): got %d series, want 1", len(ss))
		}
		smp, err := storeapi.FloatSamples(ss[0], math.MinInt64, math.MaxInt64)
		if err != nil || len(smp) == 0 {
			t.Fatalf("decode up samples: %d samples, err %v", len(smp), err)
		}
		if smp[0].T < minTime {
			t.Errorf("oldest up sample at %d is older than Info.Store.MinTime %d", smp[0].T, minTime)
		}
	})

	t.Run("GRPCHealth", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := e2eutil.HealthStatus(ctx, sc.GRPCConn(t))
		if err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health = %v, %v; want SERVING", st, err)
		}
		if code := sc.ReadyStatus(); code != http.StatusOK {
			t.Errorf("/-/ready = %d while gRPC health is checked, want 200", code)
		}
	})

	t.Run("Compression", func(t *testing.T) {
		// A request with a large, highly compressible matcher shows on the wire whether it
		// was compressed. Both clients must get the same answer.
		big := strings.Repeat("x", 128<<10)
		req := &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64,
			Matchers: []*storepb.LabelMatcher{eq("__name__", "up"), neq("job", big)}}
		written := map[string]int64{}
		for _, comp := range []string{"snappy", ""} {
			var bc byteCounter
			client := sc.StoreClient(t, comp, bc.dialOption())
			ss := mustSeries(t, client, req)
			if len(ss) != 1 || storeapi.LabelsFromProto(ss[0].Labels).Get("__name__") != "up" {
				t.Errorf("compression %q: got %d series, want the up series", comp, len(ss))
			}
			written[comp] = bc.written.Load()
		}
		if written[""] < int64(len(big)) {
			t.Errorf("uncompressed client wrote %d bytes, want >= %d (the matcher alone)", written[""], len(big))
		}
		if written["snappy"] > int64(len(big))/4 {
			t.Errorf("snappy client wrote %d bytes for a %d-byte matcher; the request was not compressed", written["snappy"], len(big))
		}
		t.Logf("bytes written: snappy %d, uncompressed %d", written["snappy"], written[""])
	})
}

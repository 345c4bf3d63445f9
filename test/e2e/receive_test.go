package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// startReceiver starts `vigil receive` with a remote-write port of its own; its
// remote-write URL is returned too.
func startReceiver(t *testing.T, dataDir string, args ...string) (*e2eutil.Vigil, string) {
	t.Helper()
	rwAddr := e2eutil.FreeAddr(t)
	all := append([]string{"receive", "--tsdb.path=" + dataDir, "--remote-write.address=" + rwAddr}, args...)
	r := e2eutil.StartVigil(t, all...)
	r.MustWaitReady(t)
	return r, "http://" + rwAddr + "/api/v1/receive"
}

// TestReceiveFromPrometheus: a real Prometheus remote-writes to `vigil receive`; the
// receiver's StoreAPI holds exactly Prometheus' own samples, `vigil query` over it
// answers like Prometheus, and after kill -9 the WAL brings every sample back.
func TestReceiveFromPrometheus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recv, rwURL := startReceiver(t, dir, `--label=receive_replica="r0"`)
	prom := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{
		ExternalLabels: map[string]string{"cluster": "rw"},
		ExtraYAML:      fmt.Sprintf("remote_write:\n- url: %s\n  queue_config:\n    batch_send_deadline: 500ms\n    max_shards: 2\n", rwURL),
	})
	if err := prom.WaitReady(e2eutil.PrometheusStartTimeout); err != nil {
		t.Fatal(err)
	}
	q := e2eutil.StartVigil(t, "query", "--endpoint="+recv.GRPCAddr)
	q.MustWaitReady(t)

	ext := map[string]string{"cluster": "rw", "receive_replica": "r0", "tenant_id": "default-tenant"}
	start := time.Now()
	e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error { // a few scrapes
		r, err := callAPI(prom.URL, "/api/v1/query", map[string][]string{"query": {"count_over_time(up[10s]) >= 4"}})
		if err != nil {
			return err
		}
		if vec, err := r.series("vector"); err != nil || len(vec) == 0 {
			return fmt.Errorf("Prometheus has not scraped itself 4 times yet (%v)", err)
		}
		return nil
	})
	at := time.Now().Add(-2 * time.Second)
	mint, maxt := at.Add(-time.Minute).UnixMilli(), at.UnixMilli()
	want := func() seriesSamples {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ms, err := e2eutil.QueryMatrix(ctx, prom.URL, `{__name__=~".+"}[1m]`, at)
		if err != nil {
			t.Fatal(err)
		}
		return promSamples(ms, ext, mint, maxt)
	}()
	if len(want) < 50 {
		t.Fatalf("Prometheus holds only %d series; the test needs its self-scrape", len(want))
	}
	req := &storepb.SeriesRequest{MinTime: mint, MaxTime: maxt, Matchers: []*storepb.LabelMatcher{re("__name__", ".+")}}
	c := recv.StoreClient(t, "snappy")
	var diff string
	e2eutil.Poll(t, 20*time.Second, 250*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ss, _, err := collectSeries(ctx, c, req)
		if err != nil {
			return err
		}
		if diff = diffSamples(want, storeSamples(t, ss, mint, maxt)); diff != "" {
			return fmt.Errorf("receiver differs from Prometheus:\n%.3000s", diff)
		}
		return nil
	})
	t.Logf("receiver holds Prometheus' %d series exactly, %s after the first scrape", len(want), time.Since(start).Round(time.Millisecond))

	// The querier over the receiver answers as Prometheus does.
	atParam := unixParam(at)
	pr := mustAPI(t, prom.URL, "/api/v1/query", map[string][]string{"query": {"count by (job) (up)"}, "time": {atParam}})
	qr := mustAPI(t, q.HTTPURL, "/api/v1/query", map[string][]string{"query": {"count by (job) (up)"}, "time": {atParam}})
	if string(pr.Data) != string(qr.Data) {
		t.Errorf("count by (job) (up): Prometheus %s, querier over receiver %s", pr.Data, qr.Data)
	}

	// kill -9: every acknowledged sample comes back from the WAL.
	if err := prom.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := recv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	recv.MustWaitReady(t)
	c = recv.StoreClient(t, "snappy")
	ss := mustSeries(t, c, req)
	if diff := diffSamples(want, storeSamples(t, ss, mint, maxt)); diff != "" {
		t.Fatalf("after kill -9 and restart the receiver lost samples:\n%.3000s", diff)
	}
	t.Logf("after kill -9 and restart: all %d series and their samples replayed from the WAL", len(want))
}

package e2e

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// Series that carry their own label named like an external label get the external value
// (as in Thanos). That rewrite changes their order, and the sidecar must still stream
// them sorted.
func TestSidecarExternalLabelOverridesSeriesLabel(t *testing.T) {
	t.Parallel()
	prom := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{ExternalLabels: extLabels, ScrapeInterval: time.Second})
	// Two extra jobs scrape Prometheus itself with target label cluster: "p1" with
	// cluster=b and "p2" with cluster=a. Prometheus orders p2's series first (cluster=a);
	// once cluster=test replaces both, p1's come first (job=p1 < job=p2).
	if err := prom.WriteConfig(e2eutil.PrometheusConfig{ExternalLabels: extLabels, ScrapeInterval: time.Second,
		ScrapeConfigs: []e2eutil.ScrapeConfig{
			{JobName: "p1", Targets: []string{prom.Addr}, Labels: map[string]string{"cluster": "b"}},
			{JobName: "p2", Targets: []string{prom.Addr}, Labels: map[string]string{"cluster": "a"}},
		}}); err != nil {
		t.Fatal(err)
	}
	if err := prom.Reload(); err != nil {
		t.Fatal(err)
	}
	sc := e2eutil.StartVigil(t, "sidecar", "--prometheus.url="+prom.URL, "--prometheus.get_config_interval=1s")
	sc.MustWaitReady(t)
	c := sc.StoreClient(t, "snappy")

	// Prometheus itself keeps the series' own cluster label.
	e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ms, err := e2eutil.QueryMatrix(ctx, prom.URL, `up{job=~"p1|p2"}[1m]`, time.Now())
		if err != nil {
			return err
		}
		if len(ms) != 2 {
			return fmt.Errorf("want up series of jobs p1 and p2, got %+v", ms)
		}
		return nil
	})

	for _, without := range [][]string{nil, {"replica"}} {
		ss := mustSeries(t, c, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64,
			Matchers: []*storepb.LabelMatcher{re("__name__", "up|prometheus_http_requests_total"), re("job", "p1|p2")}, WithoutReplicaLabels: without})
		assertSorted(t, ss)
		jobs := map[string]int{}
		for _, s := range ss {
			ls := storeapi.LabelsFromProto(s.Labels)
			if ls.Get("cluster") != "test" {
				t.Errorf("series %s: cluster = %q, want the external value test", ls, ls.Get("cluster"))
			}
			jobs[ls.Get("job")]++
		}
		if jobs["p1"] == 0 || jobs["p2"] == 0 {
			t.Errorf("WithoutReplicaLabels=%v: series per job %v, want both p1 and p2", without, jobs)
		}
		// The up series of p1 must now come before that of p2.
		var order []string
		for _, s := range ss {
			if ls := storeapi.LabelsFromProto(s.Labels); ls.Get(labels.MetricName) == "up" {
				order = append(order, ls.Get("job"))
			}
		}
		if len(order) != 2 || order[0] != "p1" || order[1] != "p2" {
			t.Errorf("WithoutReplicaLabels=%v: up series in job order %v, want [p1 p2]", without, order)
		}
	}
}

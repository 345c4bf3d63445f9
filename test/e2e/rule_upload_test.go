package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestRuleShipsRecordedSeries: a ruler records through a querier; on shutdown it writes
// its head into a block and uploads it (source "ruler", its labels); a store gateway over
// the bucket then serves the recorded series.
func TestRuleShipsRecordedSeries(t *testing.T) {
	t.Parallel()
	m := e2eutil.StartMinIO(t)
	cfg := m.WriteObjstoreConfig(t, "")
	dep := startFakeDeployment(t, 5)
	prom := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{
		ExternalLabels: map[string]string{"cluster": "ship", replicaLabel: "p0"},
		ScrapeConfigs:  []e2eutil.ScrapeConfig{{JobName: "deploy", Targets: []string{strings.TrimPrefix(dep.srv.URL, "http://")}}},
	})
	side := e2eutil.StartVigil(t, "sidecar", "--prometheus.url="+prom.URL, "--tsdb.path="+prom.DataDir)
	side.MustWaitReady(t)
	q := e2eutil.StartVigil(t, "query", "--endpoint="+side.GRPCAddr, "--query.replica-label="+replicaLabel)
	q.MustWaitReady(t)
	// The query endpoint given inline, as the Prometheus Operator passes --query.config.
	ruler := e2eutil.StartVigil(t, "rule", "--data-dir="+t.TempDir(), "--query.config=- static_configs: ["+q.HTTPAddr+"]",
		"--query.http-method=GET",
		"--rule-file="+writeRuleFile(t, "recording.yml", rulerRecording), "--eval-interval=1s",
		`--label=ruler="r0"`, "--objstore.config-file="+cfg)
	ruler.MustWaitReady(t)
	e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error {
		v, n, err := instantValue(q.HTTPURL, "deployment_replicas", nil)
		if err != nil || n != 1 || v != 5 {
			return fmt.Errorf("deployment_replicas = %v (%d series, %v)", v, n, err)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // a few evaluations
	if err := ruler.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	blocks := listBucketBlocks(t, m, "")
	if len(blocks) != 1 || !blocks[0].visible() || blocks[0].meta.Thanos.Source != block.SourceRuler ||
		blocks[0].meta.Thanos.Labels["ruler"] != "r0" {
		t.Fatalf("bucket after the ruler stopped: %s; want one complete block, source ruler, labels ruler=r0", describeBlocks(blocks))
	}
	t.Logf("uploaded on shutdown: %s", describeBlocks(blocks))
	_, sq := startStoreQuery(t, cfg)
	e2eutil.Poll(t, 20*time.Second, 250*time.Millisecond, func() error {
		v, n, err := instantValue(sq.HTTPURL, `count_over_time(ruler:deployment_replicas:sum{ruler="r0"}[1m])`, url.Values{"time": {unixParam(time.Now())}})
		if err != nil || n != 1 || v < 2 {
			return fmt.Errorf("recorded samples served from the bucket: %v in %d series (%v), want at least 2", v, n, err)
		}
		return nil
	})
}

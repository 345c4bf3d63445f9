package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestSidecarBasicAuth: a real Prometheus that asks for basic auth (--web.config.file). A
// sidecar given the credentials with --prometheus.http-client (inline, as the Prometheus
// Operator passes it) becomes ready and serves Prometheus's data to a querier; one
// without them stays not ready.
func TestSidecarBasicAuth(t *testing.T) {
	t.Parallel()
	prom := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{
		ExternalLabels: map[string]string{"cluster": "auth"},
		BasicAuth:      &e2eutil.BasicAuth{User: "sidecar", Password: "s3cret"},
	})
	side := e2eutil.StartVigil(t, "sidecar", "--prometheus.url="+prom.URL, "--tsdb.path="+prom.DataDir,
		"--prometheus.http-client=basic_auth: {username: sidecar, password: s3cret}")
	side.MustWaitReady(t)
	anon := e2eutil.StartVigil(t, "sidecar", "--prometheus.url="+prom.URL, "--tsdb.path="+prom.DataDir)

	q := e2eutil.StartVigil(t, "query", "--endpoint="+side.GRPCAddr)
	q.MustWaitReady(t)
	// Prometheus's self-scrape fails with 401, so up is 0; the series is there all the same.
	e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error {
		v, n, err := instantValue(q.HTTPURL, `up{job="prometheus",cluster="auth"}`, nil)
		if err != nil || n != 1 || v != 0 {
			return fmt.Errorf(`up{job="prometheus"} = %v (%d series, %v)`, v, n, err)
		}
		return nil
	})
	if code := anon.ReadyStatus(); code == 200 {
		t.Errorf("the sidecar without credentials is ready (%d)", code)
	}
}

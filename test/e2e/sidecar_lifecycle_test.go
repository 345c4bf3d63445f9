package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// A sidecar in front of a Prometheus without external labels must refuse to start, with
// a message that says what to fix.
func TestSidecarRequiresExternalLabels(t *testing.T) {
	t.Parallel()
	prom := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{ScrapeInterval: time.Second})
	code, out, err := e2eutil.ProcessExit(t, 30*time.Second, e2eutil.ProcessSpec{
		Bin: e2eutil.VigilBin(t),
		Args: []string{"sidecar", "--prometheus.url=" + prom.URL, "--prometheus.ready_timeout=20s",
			"--http-address=" + e2eutil.FreeAddr(t), "--grpc-address=" + e2eutil.FreeAddr(t)},
	})
	if err != nil {
		t.Fatalf("sidecar against Prometheus without external labels: %v\noutput:\n%s", err, out)
	}
	if code == 0 {
		t.Errorf("sidecar exited with code 0, want non-zero\noutput:\n%s", out)
	}
	if !strings.Contains(out, "external labels") {
		t.Errorf("sidecar output does not mention external labels:\n%s", out)
	}
}

// A sidecar whose Prometheus never comes up gives up after --prometheus.ready_timeout.
func TestSidecarPrometheusNeverReady(t *testing.T) {
	t.Parallel()
	start := time.Now()
	code, out, err := e2eutil.ProcessExit(t, 30*time.Second, e2eutil.ProcessSpec{
		Bin: e2eutil.VigilBin(t),
		Args: []string{"sidecar", "--prometheus.url=http://" + e2eutil.FreeAddr(t), "--prometheus.ready_timeout=2s",
			"--http-address=" + e2eutil.FreeAddr(t), "--grpc-address=" + e2eutil.FreeAddr(t)},
	})
	if err != nil {
		t.Fatalf("sidecar against an unreachable Prometheus: %v\noutput:\n%s", err, out)
	}
	if code == 0 {
		t.Errorf("sidecar exited with code 0, want non-zero\noutput:\n%s", out)
	}
	if !strings.Contains(out, "did not become ready") {
		t.Errorf("sidecar output does not say Prometheus did not become ready:\n%s", out)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("sidecar gave up after %s, before --prometheus.ready_timeout=2s", took)
	}
}

// When Prometheus crashes the sidecar turns not ready and Info fails, so queriers stop
// using it; when Prometheus is back on the same port the sidecar recovers by itself.
func TestSidecarPrometheusCrashAndRestart(t *testing.T) {
	t.Parallel()
	prom, sc := startSidecar(t)
	c := sc.StoreClient(t, "")
	conn := sc.GRPCConn(t)
	info := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Info(ctx)
		return err
	}
	health := func() (healthpb.HealthCheckResponse_ServingStatus, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return e2eutil.HealthStatus(ctx, conn)
	}
	upSeries := func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ss, _, err := collectSeries(ctx, c, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64,
			Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}})
		return len(ss), err
	}
	if err := info(); err != nil {
		t.Fatalf("Info before the crash: %v", err)
	}
	if st, err := health(); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health before the crash = %v, %v; want SERVING", st, err)
	}

	if err := prom.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	e2eutil.Poll(t, 10*time.Second, 100*time.Millisecond, func() error {
		if code := sc.ReadyStatus(); code != http.StatusServiceUnavailable {
			return fmt.Errorf("sidecar /-/ready = %d after Prometheus was killed, want 503", code)
		}
		return nil
	})
	t.Logf("sidecar not ready %s after Prometheus was killed", time.Since(killed).Round(time.Millisecond))
	e2eutil.Poll(t, 5*time.Second, 100*time.Millisecond, func() error {
		if err := info(); status.Code(err) != codes.Unavailable {
			return fmt.Errorf("Info while Prometheus is down: %v, want code Unavailable", err)
		}
		return nil
	})
	if _, err := upSeries(); status.Code(err) != codes.Unavailable {
		t.Errorf("Series while Prometheus is down: %v, want code Unavailable", err)
	}
	if st, err := health(); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health while Prometheus is down = %v, %v; want NOT_SERVING", st, err)
	}
	if code := e2eutil.HTTPStatus(sc.HTTPURL + "/-/healthy"); code != http.StatusOK {
		t.Errorf("sidecar /-/healthy = %d while Prometheus is down, want 200 (the process is fine)", code)
	}
	if sc.Exited() {
		t.Fatalf("sidecar exited while Prometheus was down")
	}

	// Same port and data directory.
	if err := prom.Restart(); err != nil {
		t.Fatalf("restart Prometheus: %v", err)
	}
	restarted := time.Now()
	if err := sc.WaitReady(10 * time.Second); err != nil {
		t.Fatalf("sidecar did not recover after Prometheus restarted: %v", err)
	}
	t.Logf("sidecar ready %s after Prometheus restarted", time.Since(restarted).Round(time.Millisecond))
	if err := info(); err != nil {
		t.Errorf("Info after Prometheus restarted: %v", err)
	}
	if st, err := health(); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health after Prometheus restarted = %v, %v; want SERVING", st, err)
	}
	e2eutil.Poll(t, 10*time.Second, 250*time.Millisecond, func() error {
		n, err := upSeries()
		if err != nil || n != 1 {
			return fmt.Errorf("Series(up) after Prometheus restarted: %d series, err %v; want 1 series", n, err)
		}
		return nil
	})
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/cliflag"
	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/sidecar"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func registerSidecar(app *kingpin.Application, cmds map[string]runFunc) {
	cmd := app.Command("sidecar", "Sidecar for Prometheus: serves its data over the StoreAPI.")
	srv := addServerFlags(cmd)
	cmd.Flag("tsdb.path", "Data directory of the Prometheus TSDB.").Default("./data").String()
	promURL := cmd.Flag("prometheus.url", "URL at which to reach Prometheus's API.").Default("http://localhost:9090").URL()
	readyTimeout := durationFlag(cmd, "prometheus.ready_timeout", "How long to wait for Prometheus to start up before giving up.", "10m")
	configInterval := durationFlag(cmd, "prometheus.get_config_interval", "How often to re-read Prometheus's external labels and oldest sample time.", "30s")
	configTimeout := durationFlag(cmd, "prometheus.get_config_timeout", "Timeout of each refresh of external labels and oldest sample time.", "30s")
	minTime := cliflag.Time(cmd.Flag("min-time", "Serve only data at or after this time: RFC3339 or relative to now, e.g. -2w.").Default("0000-01-01T00:00:00Z"))
	var limits sidecar.Limits
	cmd.Flag("store.limits.request-series", "Maximum series one Series request may return (0 = unlimited); over it the request fails with ResourceExhausted.").Default("0").IntVar(&limits.Series)
	cmd.Flag("store.limits.request-samples", "Maximum samples one Series request may return (0 = unlimited); over it the request fails with ResourceExhausted.").Default("0").IntVar(&limits.Samples)

	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		return runSidecar(ctx, logger, reg, sidecarConfig{
			servers: srv, promURL: *promURL, readyTimeout: *readyTimeout, interval: *configInterval,
			timeout: *configTimeout, minTime: minTime.Millis(time.Now(), cliflag.MinTimeDefault), limits: limits,
		})
	}
}

type sidecarConfig struct {
	servers                         *serverFlags
	promURL                         *url.URL
	readyTimeout, interval, timeout time.Duration
	minTime                         int64
	limits                          sidecar.Limits
}

func runSidecar(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, cfg sidecarConfig) error {
	s, err := newServers(logger, reg, cfg.servers)
	if err != nil {
		return err
	}
	// No client timeout: Series streams may run long; API calls carry their own deadlines.
	client := promclient.New(cfg.promURL, &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()})
	prom := sidecar.NewPrometheus(client, logger, cfg.minTime, func(ready bool, reason string) {
		if ready {
			s.probe.Ready()
		} else {
			s.probe.NotReady(reason)
		}
	})
	store := sidecar.NewStore(prom, client, cfg.limits)
	storeapi.Register(s.grpc.Server(), store, store, storepb.StoreType_SIDECAR)
	s.probe.Healthy()

	startup := func(ctx context.Context) error {
		if err := prom.WaitReady(ctx, cfg.readyTimeout, 2*time.Second); err != nil {
			return fmt.Errorf("start sidecar: %w", err)
		}
		ext, _, _ := prom.State()
		logger.Info("Prometheus is ready", "url", cfg.promURL.Redacted(), "external_labels", ext.String())
		cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		prom.CheckBlockDurations(cctx)
		cancel()
		return prom.Run(ctx, cfg.interval, cfg.timeout)
	}
	return s.run(ctx, startup)
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	thanosobjstore "github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/cliflag"
	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/reloader"
	"github.com/vigilhq/vigil/internal/shipper"
	"github.com/vigilhq/vigil/internal/sidecar"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func registerSidecar(app *kingpin.Application, cmds map[string]runFunc) {
	cmd := app.Command("sidecar", "Sidecar for Prometheus: serves its data over the StoreAPI and, with object storage configured, uploads its blocks.")
	srv := addServerFlags(cmd)
	tsdbPath := cmd.Flag("tsdb.path", "Data directory of the Prometheus TSDB.").Default("./data").String()
	promURL := cmd.Flag("prometheus.url", "URL at which to reach Prometheus's API.").Default("http://localhost:9090").URL()
	promClient := cliflag.RegisterPathOrContent(cmd, "prometheus.http-client", "How to reach Prometheus: basic_auth, bearer_token[_file], proxy_url, tls_config, transport_config")
	readyTimeout := durationFlag(cmd, "prometheus.ready_timeout", "How long to wait for Prometheus to start up before giving up.", "10m")
	configInterval := durationFlag(cmd, "prometheus.get_config_interval", "How often to re-read Prometheus's external labels and oldest sample time.", "30s")
	configTimeout := durationFlag(cmd, "prometheus.get_config_timeout", "Timeout of each refresh of external labels and oldest sample time.", "30s")
	minTime := cliflag.Time(cmd.Flag("min-time", "Serve only data at or after this time: RFC3339 or relative to now, e.g. -2w.").Default("0000-01-01T00:00:00Z"))
	var limits sidecar.Limits
	cmd.Flag("store.limits.request-series", "Maximum series one Series request may return (0 = unlimited); over it the request fails with ResourceExhausted.").Default("0").IntVar(&limits.Series)
	cmd.Flag("store.limits.request-samples", "Maximum samples one Series request may return (0 = unlimited); over it the request fails with ResourceExhausted.").Default("0").IntVar(&limits.Samples)
	var up uploadFlags
	up.objstore = objstore.RegisterFlags(cmd)
	cmd.Flag("shipper.upload-compacted", "Also upload compacted blocks (level > 1), e.g. once to move old data to the bucket. "+
		"Prometheus must not compact blocks while uploads run.").Default("false").BoolVar(&up.uploadCompacted)
	cmd.Flag("shipper.meta-file-name", "File in --tsdb.path where the shipper records which blocks it has uploaded.").
		Default(shipper.DefaultMetaFilename).StringVar(&up.metaFileName)
	cmd.Flag("shipper.ignore-unequal-block-size", "Upload even though Prometheus' min and max block durations differ (uploaded and compacted blocks may overlap).").
		Default("false").Hidden().BoolVar(&up.ignoreUnequal)
	hashFuncFlag(cmd, &up.hashFunc)
	up.interval = cliflag.Duration(cmd.Flag("shipper.upload-interval", "How often the shipper looks for new blocks to upload.").Default("30s").Hidden())
	reload := reloader.RegisterFlags(cmd)

	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		return runSidecar(ctx, logger, reg, sidecarConfig{
			servers: srv, promURL: *promURL, readyTimeout: *readyTimeout, interval: *configInterval,
			timeout: *configTimeout, minTime: minTime.Millis(time.Now(), cliflag.MinTimeDefault), limits: limits,
			tsdbPath: *tsdbPath, upload: up, reloader: reload, promClient: promClient,
		})
	}
}

type sidecarConfig struct {
	servers                         *serverFlags
	promURL                         *url.URL
	readyTimeout, interval, timeout time.Duration
	minTime                         int64
	limits                          sidecar.Limits
	tsdbPath                        string
	upload                          uploadFlags
	reloader                        *reloader.Flags
	promClient                      *cliflag.PathOrContent
}

// uploadFlags configure uploading blocks to object storage.
type uploadFlags struct {
	objstore               *objstore.Flags
	uploadCompacted        bool
	ignoreUnequal          bool
	metaFileName, hashFunc string
	interval               *time.Duration
}

func runSidecar(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, cfg sidecarConfig) error {
	bucketConf, err := cfg.upload.objstore.Content()
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	if *cfg.upload.interval <= 0 {
		return fmt.Errorf("sidecar: --shipper.upload-interval must be positive, got %s", *cfg.upload.interval)
	}
	var bkt thanosobjstore.InstrumentedBucket
	if bucketConf != nil {
		if bkt, err = objstore.NewBucket(ctx, bucketConf, logger, reg, "sidecar"); err != nil {
			return fmt.Errorf("sidecar: %w", err)
		}
		defer bkt.Close()
	} else {
		logger.Info("no object storage configured (--objstore.config or --objstore.config-file); block uploads are disabled")
	}
	hcConf, err := cfg.promClient.Content()
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	hc, err := promclient.ParseHTTPClientConfig(hcConf)
	if err != nil {
		return fmt.Errorf("sidecar: %s: %w", cfg.promClient.Name(), err)
	}
	loops, err := sidecarReloader(logger, reg, cfg, hc)
	if err != nil {
		return err
	}
	s, err := newServers(logger, reg, cfg.servers)
	if err != nil {
		return err
	}
	client := promclient.New(cfg.promURL, hc)
	prom := sidecar.NewPrometheus(client, logger, cfg.minTime, func(ready bool, reason string) {
		if ready {
			s.probe.Ready()
		} else {
			s.probe.NotReady(reason)
		}
	})
	var ship *shipper.Shipper
	if bkt != nil {
		ship, err = shipper.New(logger, reg, bkt, shipper.Options{
			Dir: cfg.tsdbPath, MetaFileName: cfg.upload.metaFileName, UploadCompacted: cfg.upload.uploadCompacted,
			Source: block.SourceSidecar, HashFunc: block.HashFunc(cfg.upload.hashFunc),
			Labels: func() labels.Labels { ext, _, _ := prom.State(); return ext },
		})
		if err != nil {
			return fmt.Errorf("sidecar: %w", err)
		}
	}
	store := sidecar.NewStore(prom, client, cfg.limits)
	storeapi.Register(s.grpc.Server(), store, store, storepb.StoreType_SIDECAR)
	sidecar.RegisterRules(s.grpc.Server(), prom, client)     // thanos.Rules from Prometheus /api/v1/rules
	sidecar.RegisterMetadata(s.grpc.Server(), client)        // thanos.Metadata from /api/v1/metadata
	sidecar.RegisterTargets(s.grpc.Server(), prom, client)   // thanos.Targets from /api/v1/targets
	sidecar.RegisterExemplars(s.grpc.Server(), prom, client) // thanos.Exemplars from /api/v1/query_exemplars
	sidecar.RegisterStatus(s.grpc.Server(), prom, client)    // thanos.Status from /api/v1/status/tsdb
	s.probe.Healthy()

	startup := func(ctx context.Context) error {
		if err := prom.WaitReady(ctx, cfg.readyTimeout, 2*time.Second); err != nil {
			return fmt.Errorf("start sidecar: %w", err)
		}
		ext, _, _ := prom.State()
		logger.Info("Prometheus is ready", "url", cfg.promURL.Redacted(), "external_labels", ext.String())
		cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		shipperFile := filepath.Join(cfg.tsdbPath, cfg.upload.metaFileName)
		if abs, err := filepath.Abs(shipperFile); err == nil {
			shipperFile = abs
		}
		err := prom.CheckBlockDurations(cctx, sidecar.UploadCheck{
			Enabled: ship != nil, ShipperFile: shipperFile, IgnoreUnequal: cfg.upload.ignoreUnequal,
		})
		cancel()
		if err != nil {
			return fmt.Errorf("start sidecar: %w", err)
		}
		if ship == nil {
			return prom.Run(ctx, cfg.interval, cfg.timeout)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return prom.Run(gctx, cfg.interval, cfg.timeout) })
		g.Go(func() error { return ship.Run(gctx, *cfg.upload.interval) })
		return g.Wait()
	}
	return s.run(ctx, append(loops, startup)...)
}

// sidecarReloader returns the reloader's loop when a --reloader.* flag asks for one. It
// runs beside the start-up rather than after it: the reloader renders the config
// Prometheus may be waiting for.
func sidecarReloader(logger *slog.Logger, reg prometheus.Registerer, cfg sidecarConfig, hc *http.Client) ([]func(context.Context) error, error) {
	opts, ok, err := cfg.reloader.Options(hc, cfg.promURL)
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	if !ok {
		return nil, nil
	}
	rl, err := reloader.New(logger, reg, opts)
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	return []func(context.Context) error{rl.Run}, nil
}

package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/up"
)

func registerUp(app *kingpin.Application, cmds map[string]runFunc) {
	cmd := app.Command("up", "Runs the whole Vigil system on this machine: two Prometheus replicas with sidecars, store gateway, compactor, ruler and querier over a local bucket (plus Alertmanager and a node exporter when installed). Ctrl-C stops it all.")
	cfg := up.Config{Output: os.Stdout}
	cmd.Flag("data-dir", "Directory of every part's data and configuration, and of the bucket.").Default("./vigil-data").StringVar(&cfg.DataDir)
	cmd.Flag("http-address", "Listen host:port of the querier (Prometheus API and UI); the other parts get free ports on 127.0.0.1.").Default("127.0.0.1:9090").StringVar(&cfg.HTTPAddress)
	cmd.Flag("objstore.config-file", "Object storage configuration (Thanos format) for every part, instead of the directory <data-dir>/bucket.").Default("").StringVar(&cfg.ObjstoreConfigFile)
	cmd.Flag("prometheus.binary", "Prometheus program: a path, or a name looked up on PATH.").Default("prometheus").StringVar(&cfg.PrometheusBinary)
	cmd.Flag("alertmanager.binary", "Alertmanager program; empty: prometheus-alertmanager or alertmanager from PATH if there is one; none: do not run one.").Default("").StringVar(&cfg.AlertmanagerBinary)
	cmd.Flag("node-exporter.binary", "Node exporter program; empty: prometheus-node-exporter or node_exporter from PATH if there is one; none: do not run one.").Default("").StringVar(&cfg.NodeExporterBinary)
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, _ *prometheus.Registry) error {
		cfg.LogLevel = levelName(ctx, logger)
		return up.Run(ctx, logger, cfg)
	}
}

// levelName returns the lowest level logger writes (--log.level), to pass it on.
func levelName(ctx context.Context, logger *slog.Logger) string {
	for _, l := range []struct {
		level slog.Level
		name  string
	}{{slog.LevelDebug, "debug"}, {slog.LevelInfo, "info"}, {slog.LevelWarn, "warn"}} {
		if logger.Enabled(ctx, l.level) {
			return l.name
		}
	}
	return "error"
}

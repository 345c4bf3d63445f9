// Command vigil is highly available Prometheus with a global query view, replica
// deduplication and long-term storage, compatible with Thanos.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/version"

	"github.com/vigilhq/vigil/internal/logging"
	"github.com/vigilhq/vigil/internal/memlimit"
)

// runFunc runs a subcommand until ctx is cancelled.
type runFunc func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error

func main() {
	version.Version = vigilVersion
	app := kingpin.New("vigil", "Highly available Prometheus: global query view, replica deduplication and long-term storage, compatible with Thanos.")
	app.Version(version.Print("vigil"))
	app.HelpFlag.Short('h')
	logLevel := app.Flag("log.level", "Log filtering level (debug, info, warn, error).").Default("info").Enum("debug", "info", "warn", "error")
	logFormat := app.Flag("log.format", "Log format (logfmt or json).").Default("logfmt").Enum("logfmt", "json")
	autoMemLimit := app.Flag("enable-auto-gomemlimit", "Set the Go memory limit (GOMEMLIMIT) from the container's memory limit, or the machine's memory.").Bool()
	memLimitRatio := app.Flag("auto-gomemlimit.ratio", "Share of the detected memory the Go memory limit is set to, in (0, 1].").Default("0.9").Float64()

	cmds := map[string]runFunc{}
	registerSidecar(app, cmds)
	registerQuery(app, cmds)
	registerStore(app, cmds)
	registerCompact(app, cmds)
	registerReceive(app, cmds)
	registerRule(app, cmds)
	registerBucket(app, cmds)
	registerUp(app, cmds)

	cmd, err := app.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigil: %v (see vigil --help)\n", err)
		os.Exit(2)
	}
	logger, err := logging.New(os.Stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigil: %v\n", err)
		os.Exit(2)
	}
	logger = logger.With("component", cmd)
	if *autoMemLimit {
		if _, err := memlimit.Apply(logger, *memLimitRatio); err != nil {
			logger.Error("exiting", "err", err)
			os.Exit(2)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versionCollector())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := cmds[cmd](ctx, logger, reg); err != nil {
		logger.Error("exiting", "err", err)
		os.Exit(1)
	}
	logger.Info("exited cleanly")
}

// vigilVersion is set at build time with -ldflags "-X main.vigilVersion=...".
var vigilVersion = "0.1.0-dev"

func versionCollector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "vigil_build_info",
		Help:        "A metric with a constant '1' value labelled by the Vigil version.",
		ConstLabels: prometheus.Labels{"version": version.Version, "goversion": version.GoVersion},
	}, func() float64 { return 1 })
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/cliflag"
	"github.com/vigilhq/vigil/internal/compact"
	"github.com/vigilhq/vigil/internal/leaderelection"
	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/server"
)

type compactConfig struct {
	http                              server.HTTPConfig
	httpGrace                         *time.Duration
	objstore                          *objstore.Flags
	election                          *leaderelection.Flags
	dataDir                           *string
	wait, haltOnError, noDownsampling *bool
	vertical                          *bool
	waitInterval, cleanupInterval     *time.Duration
	consistency, deleteDelay          *time.Duration
	retRaw, ret5m, ret1h              *time.Duration
	compactConc, downsampleConc       *int
	fetchConc, filesConc, metaConc    *int
	keepLocal                         *units.Base2Bytes
	replicaLabels                     *[]string
	dedupFunc, hashFunc               *string
	relabel                           *cliflag.PathOrContent
	minTime, maxTime                  *cliflag.TimeOrDuration
}

func registerCompact(app *kingpin.Application, cmds map[string]runFunc) {
	cmd := app.Command("compact", "Compactor: compacts, deduplicates, downsamples and applies retention to the blocks in object storage.")
	cfg := compactConfig{objstore: objstore.RegisterFlags(cmd), election: leaderelection.RegisterFlags(cmd, "vigil-compact")}
	cmd.Flag("http-address", "Listen host:port for HTTP endpoints (/metrics, /-/healthy, /-/ready).").Default("0.0.0.0:10902").StringVar(&cfg.http.Address)
	cmd.Flag("http.config", "Path to an exporter-toolkit web config file (TLS, basic auth) for the HTTP server.").Default("").StringVar(&cfg.http.TLSConfig)
	cfg.httpGrace = durationFlag(cmd, "http-grace-period", "Time to wait after an interrupt for HTTP requests to finish.", "2m")
	cfg.dataDir = cmd.Flag("data-dir", "Work directory for blocks being compacted (compact/), downsampled (downsample/) and kept for reuse (local/); emptied at every iteration.").Default("./data").String()
	cfg.wait = cmd.Flag("wait", "Keep running and repeat every --wait-interval; without it one iteration runs and the process exits.").Short('w').Default("false").Bool()
	cfg.waitInterval = durationFlag(cmd, "wait-interval", "Time between iterations with --wait.", "5m")
	cfg.cleanupInterval = durationFlag(cmd, "compact.cleanup-interval", "With --wait, also delete marked blocks and aborted partial uploads this often between iterations (0 = only at the end of iterations).", "5m")
	cfg.consistency = durationFlag(cmd, "consistency-delay", "Ignore blocks uploaded less than this long ago (blocks written by the compactor are exempt), so uploads in flight are never compacted.", "30m")
	cfg.deleteDelay = durationFlag(cmd, "delete-delay", "Time between marking a block for deletion and deleting it, so readers can drop it first (0 = delete at once). "+
		"The compactor itself stops using a marked block after half of it.", "48h")
	cfg.retRaw = durationFlag(cmd, "retention.resolution-raw", "How long to keep raw blocks (0d = forever); at least 40h with downsampling.", "0d")
	cfg.ret5m = durationFlag(cmd, "retention.resolution-5m", "How long to keep 5m blocks (0d = forever); at least 10d with downsampling.", "0d")
	cfg.ret1h = durationFlag(cmd, "retention.resolution-1h", "How long to keep 1h blocks (0d = forever).", "0d")
	cfg.noDownsampling = cmd.Flag("downsampling.disable", "Do not downsample (raw blocks ≥40h to 5m, 5m blocks ≥10d to 1h).").Default("false").Bool()
	cfg.compactConc = cmd.Flag("compact.concurrency", "Groups compacted in parallel (0 = GOMAXPROCS, one per CPU).").Default("0").Int()
	cfg.downsampleConc = cmd.Flag("downsample.concurrency", "Blocks downsampled in parallel (0 = GOMAXPROCS, one per CPU).").Default("0").Int()
	cfg.keepLocal = cmd.Flag("compact.keep-local-size", "Disk space under --data-dir/local for blocks made in an iteration, kept for the next compaction level and for downsampling "+
		"instead of being downloaded again (0 = download every time).").Default("4GB").Bytes()
	cfg.fetchConc = cmd.Flag("compact.blocks-fetch-concurrency", "Blocks of one compaction downloaded in parallel.").Default("1").Int()
	cfg.filesConc = cmd.Flag("block-files-concurrency", "Files of one block downloaded in parallel.").Default("1").Int()
	cfg.metaConc = cmd.Flag("block-meta-fetch-concurrency", "Blocks whose meta.json is read in parallel during a sync.").Default("32").Int()
	cfg.replicaLabels = cmd.Flag("deduplication.replica-label", "External label that tells replicas apart; repeatable or comma-separated. "+
		"Replica blocks are merged into one deduplicated block (vertical compaction); the label is removed from its external labels "+
		"(<label>=\"deduped\" if no other label is left).").Strings()
	cfg.dedupFunc = cmd.Flag("deduplication.func", "How replicas are merged with --deduplication.replica-label: \"\" or gapfill "+
		"(Vigil's querier rule: follow one replica, fill its gaps from the others) or penalty (Thanos's penalty algorithm). "+
		"Counters are not adjusted: values are kept as the replicas stored them.").Default("").Enum("", "gapfill", "penalty")
	cfg.vertical = cmd.Flag("compact.enable-vertical-compaction", "Compact overlapping blocks (merging identical samples) instead of halting; implied by --deduplication.replica-label.").Hidden().Default("false").Bool()
	cfg.haltOnError = cmd.Flag("debug.halt-on-error", "With --wait, keep running (idle, vigil_compact_halted=1) after a critical error instead of exiting.").Hidden().Default("true").Bool()
	cfg.hashFunc = cmd.Flag("hash-func", "Hash function recorded for each uploaded file in meta.json: SHA256, or empty for none.").Default("").Enum("", string(block.HashSHA256))
	cfg.relabel = cliflag.RegisterPathOrContent(cmd, "selector.relabel-config", "Relabel rules over each block's external labels plus __block_id; dropped blocks are not touched (sharding)")
	cfg.minTime = cliflag.Time(cmd.Flag("min-time", "Only touch blocks with data at or after this time: RFC3339 or relative, e.g. -2w.").Default("0000-01-01T00:00:00Z"))
	cfg.maxTime = cliflag.Time(cmd.Flag("max-time", "Only touch blocks with data at or before this time: RFC3339 or relative, e.g. -2h.").Default("9999-12-31T23:59:59Z"))
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		return runCompact(ctx, logger, reg, cfg)
	}
}

func runCompact(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, cfg compactConfig) error {
	content, err := cfg.objstore.Content()
	if err != nil {
		return err
	}
	if content == nil {
		return errors.New("vigil compact needs object storage: set --objstore.config-file or --objstore.config")
	}
	if *cfg.wait && *cfg.waitInterval <= 0 {
		return fmt.Errorf("--wait-interval must be positive, got %s", *cfg.waitInterval)
	}
	logger.Info("garbage collector target", "gogc", compact.SetGC())
	now := time.Now()
	ccfg := compact.Config{
		DataDir: *cfg.dataDir, ConsistencyDelay: *cfg.consistency, DeleteDelay: *cfg.deleteDelay,
		MinTime: cfg.minTime.Millis(now, cliflag.MinTimeDefault), MaxTime: cfg.maxTime.Millis(now, cliflag.MaxTimeDefault),
		ReplicaLabels: splitReplicaLabels(*cfg.replicaLabels), EnableVerticalCompaction: *cfg.vertical, DedupFunc: *cfg.dedupFunc,
		CompactConcurrency: *cfg.compactConc, DownsampleConcurrency: *cfg.downsampleConc, KeepLocalBytes: int64(*cfg.keepLocal),
		BlocksFetchConcurrency: *cfg.fetchConc, BlockFilesConcurrency: *cfg.filesConc, MetaFetchConcurrency: *cfg.metaConc,
		DisableDownsampling: *cfg.noDownsampling,
		RetentionRaw:        *cfg.retRaw, Retention5m: *cfg.ret5m, Retention1h: *cfg.ret1h,
		HashFunc: block.HashFunc(*cfg.hashFunc),
	}
	if ccfg.Relabel, err = relabelConfig(cfg.relabel); err != nil {
		return err
	}
	if err := ccfg.Validate(); err != nil {
		return err
	}
	// Only the leader compacts; followers are healthy and ready, and wait.
	elect, err := leaderelection.New(cfg.election.Config(), logger, reg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(ccfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create --data-dir: %w", err)
	}
	bkt, err := objstore.NewBucket(ctx, content, logger, reg, "compact")
	if err != nil {
		return err
	}
	defer bkt.Close()
	comp, err := compact.New(bkt, ccfg, logger, reg)
	if err != nil {
		return err
	}
	cfg.http.GracePeriod = *cfg.httpGrace
	probe := server.NewProbe()
	h, err := server.NewHTTP(logger, reg, probe, cfg.http)
	if err != nil {
		return err
	}
	probe.Healthy()
	probe.Ready()
	logger.Info("starting compactor", "wait", *cfg.wait, "replica_labels", strings.Join(ccfg.ReplicaLabels, ","),
		"vertical_compaction", ccfg.EnableVerticalCompaction || len(ccfg.ReplicaLabels) > 0,
		"downsampling", !ccfg.DisableDownsampling, "delete_delay", ccfg.DeleteDelay, "consistency_delay", ccfg.ConsistencyDelay)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return h.Run(gctx) })
	g.Go(func() error {
		defer cancel() // one pass without --wait: stop the HTTP server when done
		return elect.Run(gctx, func(ctx context.Context) error {
			return comp.Run(ctx, compact.RunOptions{
				Wait: *cfg.wait, WaitInterval: *cfg.waitInterval, CleanupInterval: *cfg.cleanupInterval, HaltOnError: *cfg.haltOnError,
			})
		})
	})
	err = g.Wait()
	probe.Shutdown()
	return err
}

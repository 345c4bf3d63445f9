package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/bucketstore"
	"github.com/vigilhq/vigil/internal/cliflag"
	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

type storeConfig struct {
	servers                               *serverFlags
	objstore                              *objstore.Flags
	dataDir                               *string
	indexCacheSize, chunkPoolSize         *units.Base2Bytes
	syncInterval, consistency, ignoreMark *time.Duration
	syncConcurrency, metaConcurrency      *int
	minTime, maxTime                      *cliflag.TimeOrDuration
	relabel                               *cliflag.PathOrContent
	indexCache                            *cliflag.PathOrContent
	seriesLimit, samplesLimit             *int
	seriesBatchSize, requestBytes         *units.Base2Bytes
}

func registerStore(app *kingpin.Application, cmds map[string]runFunc) {
	cmd := app.Command("store", "Store gateway: serves the blocks in object storage over the StoreAPI.")
	cfg := storeConfig{servers: addServerFlags(cmd), objstore: objstore.RegisterFlags(cmd)}
	cfg.dataDir = cmd.Flag("data-dir", "Local directory for index-headers (a cache: safe to delete).").Default("./data").String()
	cfg.indexCacheSize = cmd.Flag("index-cache-size", "Maximum size of the in-memory index cache (postings and series ranges); --index-cache.config replaces it.").Default("250MB").Bytes()
	cfg.indexCache = cliflag.RegisterPathOrContent(cmd, "index-cache.config", "Index cache configuration in Thanos's format (type IN-MEMORY with max_size, max_item_size)")
	cfg.chunkPoolSize = cmd.Flag("chunk-pool-size", "Maximum chunk bytes all requests may hold at once; a request that would exceed it fails with ResourceExhausted.").Default("2GB").Bytes()
	cfg.syncInterval = durationFlag(cmd, "sync-block-duration", "How often to sync blocks from the bucket.", "15m")
	cfg.syncConcurrency = cmd.Flag("block-sync-concurrency", "Blocks loaded (index-headers built) in parallel during a sync.").Default("20").Int()
	cfg.metaConcurrency = cmd.Flag("block-meta-fetch-concurrency", "Blocks whose meta.json is read in parallel during a sync.").Default("32").Int()
	cfg.minTime = cliflag.Time(cmd.Flag("min-time", "Serve only blocks with data at or after this time: RFC3339 or relative, e.g. -2w.").Default("0000-01-01T00:00:00Z"))
	cfg.maxTime = cliflag.Time(cmd.Flag("max-time", "Serve only blocks with data at or before this time: RFC3339 or relative, e.g. -2h.").Default("9999-12-31T23:59:59Z"))
	cfg.relabel = cliflag.RegisterPathOrContent(cmd, "selector.relabel-config", "Relabel rules over each block's external labels plus __block_id; dropped blocks are not served")
	cfg.consistency = durationFlag(cmd, "consistency-delay", "Serve a block only this long after it was uploaded.", "0s")
	cfg.ignoreMark = durationFlag(cmd, "ignore-deletion-marks-delay", "Keep serving a block marked for deletion for this long after the mark.", "24h")
	cfg.seriesLimit = cmd.Flag("store.limits.request-series", "Maximum series one Series request may return (0 = unlimited); over it: ResourceExhausted.").Default("0").Int()
	// The deprecated names Thanos still takes for the two limits above.
	cmd.Flag("store.grpc.touched-series-limit", "Deprecated name of --store.limits.request-series.").Hidden().IntVar(cfg.seriesLimit)
	cfg.samplesLimit = cmd.Flag("store.limits.request-samples", "Maximum samples one Series request may return (0 = unlimited); over it: ResourceExhausted.").Default("0").Int()
	cmd.Flag("store.grpc.series-sample-limit", "Deprecated name of --store.limits.request-samples.").Hidden().IntVar(cfg.samplesLimit)
	cfg.seriesBatchSize = cmd.Flag("store.series-batch-size", "Bytes (series labels and chunks) each block reads per batch; lowered for requests over many blocks to fit --store.limits.request-bytes and --chunk-pool-size.").Default("1MB").Bytes()
	cfg.requestBytes = cmd.Flag("store.limits.request-bytes", "Maximum bytes of series batches one Series request may hold at once (0 = unlimited); over it: ResourceExhausted.").Default("256MB").Bytes()
	cmd.Flag("cache-index-header", "Keep index-headers on disk between restarts (always on; accepted for Thanos compatibility).").Default("true").Bool()
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		return runStore(ctx, logger, reg, cfg)
	}
}

func runStore(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, cfg storeConfig) error {
	content, err := cfg.objstore.Content()
	if err != nil {
		return err
	}
	if content == nil {
		return errors.New("vigil store needs object storage: set --objstore.config-file or --objstore.config")
	}
	bkt, err := objstore.NewBucket(ctx, content, logger, reg, "store")
	if err != nil {
		return err
	}
	defer bkt.Close()
	scfg := bucketstore.Config{
		DataDir: *cfg.dataDir, SyncInterval: *cfg.syncInterval,
		MinTime: cfg.minTime.Millis(time.Now(), cliflag.MinTimeDefault), MaxTime: cfg.maxTime.Millis(time.Now(), cliflag.MaxTimeDefault),
		ConsistencyDelay: *cfg.consistency, IgnoreDeletionMarksDelay: *cfg.ignoreMark,
		IndexCacheSize: int64(*cfg.indexCacheSize), ChunkPoolSize: int64(*cfg.chunkPoolSize),
		SeriesLimit: *cfg.seriesLimit, SamplesLimit: *cfg.samplesLimit, BlockSyncConcurrency: *cfg.syncConcurrency,
		MetaFetchConcurrency: *cfg.metaConcurrency,
		BatchBytes:           int64(*cfg.seriesBatchSize), RequestBytes: int64(*cfg.requestBytes),
	}
	if scfg.Relabel, err = relabelConfig(cfg.relabel); err != nil {
		return err
	}
	if err := indexCacheConfig(cfg.indexCache, &scfg); err != nil {
		return err
	}
	if err := os.MkdirAll(scfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create --data-dir: %w", err)
	}
	s, err := newServers(logger, reg, cfg.servers)
	if err != nil {
		return err
	}
	store := bucketstore.New(bkt, scfg, logger, reg)
	defer store.Close()
	storeapi.Register(s.grpc.Server(), store, store, storepb.StoreType_STORE)
	s.probe.Healthy()
	s.probe.NotReady("initial bucket sync not finished")
	return s.run(ctx, func(ctx context.Context) error {
		return store.Run(ctx, func() {
			logger.Info("initial bucket sync done; serving")
			s.probe.Ready()
		})
	})
}

// indexCacheConfig applies --index-cache.config[-file], when given, over --index-cache-size.
func indexCacheConfig(p *cliflag.PathOrContent, cfg *bucketstore.Config) error {
	b, err := p.Content()
	if err != nil || b == nil {
		return err
	}
	ic, err := bucketstore.ParseIndexCacheConfig(b)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name(), err)
	}
	cfg.IndexCacheSize, cfg.IndexCacheMaxItem = ic.MaxSize, ic.MaxItemSize
	return nil
}

// relabelConfig reads --selector.relabel-config[-file].
func relabelConfig(p *cliflag.PathOrContent) ([]*relabel.Config, error) {
	b, err := p.Content()
	if err != nil || b == nil {
		return nil, err
	}
	return block.ParseRelabelConfig(b)
}

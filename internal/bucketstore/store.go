// Package bucketstore is the store gateway: it serves the blocks in object storage over
// the StoreAPI, reading only what a query needs. Each block keeps a small local
// index-header; postings, series and chunks are read with batched range requests, and
// index byte ranges are cached within --index-cache-size.
package bucketstore

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Config configures the store gateway.
type Config struct {
	DataDir                  string        // --data-dir: index-headers live here
	SyncInterval             time.Duration // --sync-block-duration
	MinTime, MaxTime         int64         // --min-time, --max-time (ms)
	ConsistencyDelay         time.Duration // --consistency-delay
	IgnoreDeletionMarksDelay time.Duration // --ignore-deletion-marks-delay
	Relabel                  []*relabel.Config
	IndexCacheSize           int64 // --index-cache-size (bytes)
	IndexCacheMaxItem        int64 // max_item_size of --index-cache.config (bytes; 0 = no bound)
	ChunkPoolSize            int64 // --chunk-pool-size (bytes)
	SeriesLimit              int   // --store.limits.request-series (0 = unlimited)
	SamplesLimit             int   // --store.limits.request-samples (0 = unlimited)
	BlockSyncConcurrency     int   // --block-sync-concurrency
	MetaFetchConcurrency     int   // --block-meta-fetch-concurrency (0 = 32)
	// BatchBytes is --store.series-batch-size: the bytes (labels and chunks) one block
	// reads per batch. 0 means DefaultSeriesBatchBytes.
	BatchBytes int64
	// RequestBytes is --store.limits.request-bytes: the most bytes of series batches one
	// Series call may hold at once (0 = unlimited).
	RequestBytes int64
	// BatchSize caps the series of one batch (0 means 10000); batches are cut by bytes.
	BatchSize int
	// KeepFreedMemory turns off giving freed memory back to the operating system when the
	// store goes idle after Series calls (see releaser).
	KeepFreedMemory bool
}

// Store serves blocks from a bucket over the StoreAPI and Info API.
type Store struct {
	infopb.UnimplementedInfoServer

	cfg     Config
	bkt     objstore.BucketReader
	logger  *slog.Logger
	cache   *SegmentCache
	pool    *bytePool
	metrics *metrics

	mu     sync.RWMutex
	blocks map[ulid.ULID]*loadedBlock
	metas  map[ulid.ULID]*meta

	indexFetches atomic.Int64
	synced       atomic.Bool // the first sync has finished
	rel          *releaser
	// peakHook, when set (tests), gets each Series call's peak held bytes.
	peakHook atomic.Pointer[func(int64)]
}

type metrics struct {
	syncs, syncFailures, loads, loadFailures, readFailures prometheus.Counter
	blocksLoaded                                           prometheus.Gauge
	requestPeak                                            prometheus.Histogram
}

// New returns a store over bkt; call Sync or Run to load blocks.
func New(bkt objstore.BucketReader, cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Store {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = maxBatchSeries
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = DefaultSeriesBatchBytes
	}
	if cfg.MaxTime == 0 {
		cfg.MaxTime = math.MaxInt64
	}
	cache := NewSegmentCache(cfg.IndexCacheSize, reg)
	cache.SetMaxItem(cfg.IndexCacheMaxItem)
	s := &Store{cfg: cfg, bkt: bkt, logger: logger, cache: cache,
		pool: newBytePool(cfg.ChunkPoolSize, reg), blocks: map[ulid.ULID]*loadedBlock{}, metas: map[ulid.ULID]*meta{},
		metrics: &metrics{
			syncs:        prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_store_syncs_total", Help: "Bucket syncs completed."}),
			syncFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_store_sync_failures_total", Help: "Bucket syncs that failed."}),
			loads:        prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_store_block_loads_total", Help: "Blocks loaded."}),
			loadFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_store_block_load_failures_total", Help: "Blocks that could not be loaded (unreadable meta.json, corrupt index, missing chunk files) and are skipped."}),
			readFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_store_block_read_failures_total", Help: "Series requests that skipped a block because reading it failed (corrupt series data, missing chunks)."}),
			blocksLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_store_blocks_loaded", Help: "Blocks currently served."}),
			requestPeak: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_store_series_request_peak_bytes",
				Help:    "Most bytes of series batches one Series call held at once (bounded by --store.limits.request-bytes).",
				Buckets: prometheus.ExponentialBuckets(64<<10, 4, 9)}),
		}}
	s.rel = newReleaser(!cfg.KeepFreedMemory, reg)
	if reg != nil {
		reg.MustRegister(s.metrics.syncs, s.metrics.syncFailures, s.metrics.loads, s.metrics.loadFailures, s.metrics.readFailures, s.metrics.blocksLoaded, s.metrics.requestPeak,
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_store_index_range_reads_total", Help: "Range reads of index data from the bucket."},
				func() float64 { return float64(s.indexFetches.Load()) }))
	}
	return s
}

// Close releases every block.
func (s *Store) Close() {
	s.rel.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, b := range s.blocks {
		b.inflight.Wait()
		_ = b.close()
		delete(s.blocks, id)
	}
}

// blockSet is the blocks of one external label set, sorted by min time.
type blockSet struct {
	ext    labels.Labels
	blocks []*loadedBlock
}

// sets snapshots the served blocks grouped by external labels.
func (s *Store) sets() []*blockSet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	byKey := map[uint64]*blockSet{}
	for _, b := range s.blocks {
		k := b.ext.Hash()
		bs := byKey[k]
		if bs == nil {
			bs = &blockSet{ext: b.ext}
			byKey[k] = bs
		}
		bs.blocks = append(bs.blocks, b)
	}
	out := make([]*blockSet, 0, len(byKey))
	for _, bs := range byKey {
		slices.SortFunc(bs.blocks, func(a, b *loadedBlock) int { return compareInt64(a.meta.MinTime, b.meta.MinTime) })
		out = append(out, bs)
	}
	slices.SortFunc(out, func(a, b *blockSet) int { return labels.Compare(a.ext, b.ext) })
	return out
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Info reports one label set per distinct block label set and the served time range. It
// fails until the first bucket sync has finished, so queriers do not prune on an empty
// store.
func (s *Store) Info(context.Context, *infopb.InfoRequest) (*infopb.InfoResponse, error) {
	if !s.synced.Load() {
		return nil, status.Error(codes.Unavailable, "store gateway has not finished its first bucket sync")
	}
	resp := &infopb.InfoResponse{ComponentType: "store", Store: &infopb.StoreInfo{
		MinTime: math.MaxInt64, MaxTime: math.MinInt64, SupportsSharding: true, SupportsWithoutReplicaLabels: true,
	}}
	for _, bs := range s.sets() {
		resp.LabelSets = append(resp.LabelSets, &storepb.LabelSet{Labels: storeapi.LabelsToProto(bs.ext)})
		for _, b := range bs.blocks {
			resp.Store.MinTime = min(resp.Store.MinTime, b.meta.MinTime)
			resp.Store.MaxTime = max(resp.Store.MaxTime, b.meta.MaxTime-1) // block max is exclusive
		}
	}
	if resp.Store.MinTime == math.MaxInt64 { // no blocks: nothing to prune by yet
		resp.Store.MinTime, resp.Store.MaxTime = s.cfg.MinTime, s.cfg.MaxTime
	}
	resp.Store.MinTime = max(resp.Store.MinTime, s.cfg.MinTime)
	resp.Store.MaxTime = min(resp.Store.MaxTime, s.cfg.MaxTime)
	return resp, nil
}

// selectBlocks picks, for [mint, maxt], the coarsest resolution not above maxRes and fills
// time not covered by it with finer resolutions (downsampled blocks come from the
// compactor; raw blocks are resolution 0).
func selectBlocks(blocks []*loadedBlock, mint, maxt, maxRes int64) []*loadedBlock {
	var resolutions []int64
	for _, b := range blocks {
		r := b.meta.Thanos.Downsample.Resolution
		if r <= maxRes && !slices.Contains(resolutions, r) {
			resolutions = append(resolutions, r)
		}
	}
	slices.Sort(resolutions)
	slices.Reverse(resolutions)
	// Gap filling can pick one finer block for several gaps: serve it once.
	out := slices.Compact(sortedByPointer(blocksFor(blocks, mint, maxt, resolutions)))
	slices.SortFunc(out, func(a, b *loadedBlock) int { return compareInt64(a.meta.MinTime, b.meta.MinTime) })
	return out
}

func sortedByPointer(bs []*loadedBlock) []*loadedBlock {
	slices.SortFunc(bs, func(a, b *loadedBlock) int { return strings.Compare(a.id.String(), b.id.String()) })
	return bs
}

func blocksFor(blocks []*loadedBlock, mint, maxt int64, resolutions []int64) []*loadedBlock {
	if len(resolutions) == 0 || mint > maxt {
		return nil
	}
	var out []*loadedBlock
	covered := mint // everything before covered is served at this resolution
	for _, b := range blocks {
		if b.meta.Thanos.Downsample.Resolution != resolutions[0] || b.meta.MaxTime <= mint || b.meta.MinTime > maxt {
			continue
		}
		if b.meta.MinTime > covered {
			out = append(out, blocksFor(blocks, covered, b.meta.MinTime-1, resolutions[1:])...)
		}
		out = append(out, b)
		covered = max(covered, b.meta.MaxTime)
	}
	if covered <= maxt {
		out = append(out, blocksFor(blocks, covered, maxt, resolutions[1:])...)
	}
	return out
}

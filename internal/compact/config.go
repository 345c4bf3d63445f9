package compact

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/prometheus/prometheus/model/relabel"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/dedup"
)

// DefaultRanges are the compaction levels in milliseconds: 1h, 2h, 8h, 2d and 14d, as in
// Thanos with --debug.max-compaction-level=4. The planner compacts into ranges[1:]; the
// 1h level only exists to keep the list (and so the tombstone rule) identical to Thanos.
var DefaultRanges = []int64{
	int64(time.Hour / time.Millisecond),
	int64(2 * time.Hour / time.Millisecond),
	int64(8 * time.Hour / time.Millisecond),
	int64(48 * time.Hour / time.Millisecond),
	int64(14 * 24 * time.Hour / time.Millisecond),
}

// Downsampling triggers: a block is downsampled once it spans at least this long
// (maxTime − minTime), whatever its age.
const (
	// DownsampleRange5m is the minimum raw block duration for 5m downsampling: 40h.
	DownsampleRange5m = int64(40 * time.Hour / time.Millisecond)
	// DownsampleRange1h is the minimum 5m block duration for 1h downsampling: 10d.
	DownsampleRange1h = int64(10 * 24 * time.Hour / time.Millisecond)
)

// Config configures a Compactor. The zero value of every field but Ranges and the
// concurrencies means what the corresponding Thanos flag default means, see the field
// comments.
type Config struct {
	// DataDir holds the work directories compact/, downsample/ and local/ (emptied at the start
	// of every iteration).
	DataDir string

	// ConsistencyDelay hides blocks uploaded less than this long ago, except blocks
	// written by the compactor or by repairs (--consistency-delay, 30m).
	ConsistencyDelay time.Duration
	// DeleteDelay is how long a block marked for deletion stays in the bucket before it
	// is deleted (0 = at once); the planner stops seeing it after half of it
	// (--delete-delay, 48h).
	DeleteDelay time.Duration

	// MinTime and MaxTime (Unix ms, inclusive) select the blocks this compactor owns:
	// those that overlap [MinTime, MaxTime], their maxTime being exclusive
	// (block.TimeRangeFilter). MaxTime == 0 means no upper bound.
	MinTime, MaxTime int64
	// Relabel rules run over each block's external labels (replica labels removed) plus
	// __block_id; a block they drop is ignored (--selector.relabel-config).
	Relabel []*relabel.Config

	// ReplicaLabels are removed from the external labels before grouping, so replicas
	// of one Prometheus pair land in one group and are merged into one deduplicated
	// block (--deduplication.replica-label). They imply vertical compaction.
	ReplicaLabels []string
	// EnableVerticalCompaction lets the planner compact overlapping blocks
	// (--compact.enable-vertical-compaction); without it overlaps halt the compactor.
	EnableVerticalCompaction bool
	// DedupFunc is --deduplication.func: "" or "gapfill" merge replicas with Vigil's
	// gap-fill rule, "penalty" with Thanos's penalty rule; both need ReplicaLabels.
	// Without ReplicaLabels overlapping blocks are merged with Prometheus's compacting
	// merger (identical samples are kept once).
	DedupFunc string

	// CompactConcurrency is how many groups compact at once (0 = GOMAXPROCS). Each
	// compaction holds at most one series' chunks in memory besides the index of the
	// block it writes, so the compactor's memory grows linearly with it.
	CompactConcurrency int
	// DownsampleConcurrency is how many blocks are downsampled at once (0 = GOMAXPROCS).
	DownsampleConcurrency int
	// BlocksFetchConcurrency is how many blocks of one plan download at once (≥1).
	BlocksFetchConcurrency int
	// BlockFilesConcurrency is how many files of one block download at once (≥1).
	BlockFilesConcurrency int
	// MetaFetchConcurrency is how many blocks are synced at once (0 = 32).
	MetaFetchConcurrency int

	// KeepLocalBytes bounds the blocks made in an iteration that are kept on local disk
	// under DataDir/local for the next compaction level and for downsampling, instead of
	// being downloaded again (--compact.keep-local-size; 0 keeps none).
	KeepLocalBytes int64

	// DisableDownsampling turns downsampling off (--downsampling.disable).
	DisableDownsampling bool
	// Retention per resolution; 0 keeps blocks forever (--retention.resolution-*).
	RetentionRaw, Retention5m, Retention1h time.Duration

	// HashFunc is recorded for every uploaded file ("" or block.HashSHA256).
	HashFunc block.HashFunc
	// Ranges are the compaction levels; nil means DefaultRanges.
	Ranges []int64
	// Now returns the current time; nil means time.Now. Only tests set it.
	Now func() time.Time
}

// verticalEnabled reports whether overlapping blocks are compacted.
func (c *Config) verticalEnabled() bool {
	return c.EnableVerticalCompaction || len(c.ReplicaLabels) > 0
}

// dedupFunc returns the replica merge rule, and false when overlapping blocks are merged
// with Prometheus's compacting merger instead.
func (c *Config) dedupFunc() (dedup.Func, bool) {
	if len(c.ReplicaLabels) == 0 {
		return 0, false
	}
	f, err := dedup.ParseFunc(c.DedupFunc)
	if err != nil {
		return 0, false
	}
	return f, true
}

// retention returns the retention of a resolution.
func (c *Config) retention(res int64) time.Duration {
	switch res {
	case block.ResolutionRaw:
		return c.RetentionRaw
	case block.Resolution5m:
		return c.Retention5m
	case block.Resolution1h:
		return c.Retention1h
	}
	return 0
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("compactor: data directory must be set")
	}
	if c.ConsistencyDelay < 0 || c.DeleteDelay < 0 {
		return errors.New("compactor: consistency and delete delays must not be negative")
	}
	if c.RetentionRaw < 0 || c.Retention5m < 0 || c.Retention1h < 0 {
		return errors.New("compactor: retention must not be negative")
	}
	if !c.DisableDownsampling {
		if c.RetentionRaw > 0 && c.RetentionRaw < time.Duration(DownsampleRange5m)*time.Millisecond {
			return fmt.Errorf("compactor: raw retention %s is shorter than the 40h a raw block needs to be downsampled; "+
				"raise --retention.resolution-raw or set --downsampling.disable", c.RetentionRaw)
		}
		if c.Retention5m > 0 && c.Retention5m < time.Duration(DownsampleRange1h)*time.Millisecond {
			return fmt.Errorf("compactor: 5m retention %s is shorter than the 10d a 5m block needs to be downsampled; "+
				"raise --retention.resolution-5m or set --downsampling.disable", c.Retention5m)
		}
	}
	switch c.DedupFunc {
	case "":
	case "gapfill", "penalty":
		if len(c.ReplicaLabels) == 0 {
			return fmt.Errorf("compactor: --deduplication.func=%s needs at least one --deduplication.replica-label", c.DedupFunc)
		}
	default:
		return fmt.Errorf("compactor: unknown --deduplication.func %q (want \"\", gapfill or penalty)", c.DedupFunc)
	}
	for _, l := range c.ReplicaLabels {
		if l == "" {
			return errors.New("compactor: empty replica label")
		}
	}
	if c.HashFunc != "" && c.HashFunc != block.HashSHA256 {
		return fmt.Errorf("compactor: unknown hash function %q", c.HashFunc)
	}
	if c.Ranges == nil {
		c.Ranges = DefaultRanges
	}
	if len(c.Ranges) < 2 {
		return errors.New("compactor: at least two compaction ranges are needed")
	}
	for i := 1; i < len(c.Ranges); i++ {
		if c.Ranges[i] <= c.Ranges[i-1] {
			return errors.New("compactor: compaction ranges must increase")
		}
	}
	if c.KeepLocalBytes < 0 {
		return errors.New("compactor: --compact.keep-local-size must not be negative")
	}
	if c.CompactConcurrency < 0 || c.DownsampleConcurrency < 0 {
		return errors.New("compactor: --compact.concurrency and --downsample.concurrency must not be negative")
	}
	if c.CompactConcurrency == 0 {
		c.CompactConcurrency = runtime.GOMAXPROCS(0)
	}
	if c.DownsampleConcurrency == 0 {
		c.DownsampleConcurrency = runtime.GOMAXPROCS(0)
	}
	c.BlocksFetchConcurrency = max(1, c.BlocksFetchConcurrency)
	c.BlockFilesConcurrency = max(1, c.BlockFilesConcurrency)
	if c.MetaFetchConcurrency <= 0 {
		c.MetaFetchConcurrency = 32
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

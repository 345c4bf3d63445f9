// Package buckettool is `vigil bucket`: it lists, inspects, verifies, marks and cleans up
// the blocks of a Thanos-format bucket, and serves a web page that draws them.
//
// It has no block logic of its own: the bucket is read with block.Fetcher (the
// compactor's fetcher: meta.json, markers, partial uploads), blocks are grouped,
// checked for overlaps and duplicated compactions with the compactor's rules
// (block.GroupKey, block.OverlappingRuns, block.FilterDuplicates), indexes are checked
// with block.VerifyIndex, markers are written with the block package, and cleanup is
// the compactor's own cleaner (compact.Compactor.Cleanup).
//
// A block whose meta.json cannot be read is reported per block (a warning, a verify
// issue, a line on the web page) and never stops the tool.
package buckettool

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// fetchConcurrency is how many block directories are read at once.
const fetchConcurrency = 32

// Snapshot is the block directories of a bucket at one time, sorted by ULID.
type Snapshot struct {
	Dirs  []*block.Dir
	Taken time.Time
}

// Fetch reads every block directory of the bucket through f.
func Fetch(ctx context.Context, f *block.Fetcher) (*Snapshot, error) {
	taken := time.Now()
	dirs, err := f.Fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("read bucket: %w", err)
	}
	slices.SortFunc(dirs, func(a, b *block.Dir) int { return a.ID.Compare(b.ID) })
	return &Snapshot{Dirs: dirs, Taken: taken}, nil
}

// fetchBucket is Fetch with a fresh fetcher, for the one-shot commands. Unreadable
// meta.json files are logged, one warning per block.
func fetchBucket(ctx context.Context, bkt objstore.BucketReader, logger *slog.Logger) (*Snapshot, error) {
	s, err := Fetch(ctx, block.NewFetcher(bkt, logger, fetchConcurrency))
	if err != nil {
		return nil, err
	}
	for _, d := range s.Corrupt() {
		logger.Warn("skipping block with unreadable meta.json", "block", d.ID, "err", d.MetaErr)
	}
	if n := len(s.Partial()); n > 0 {
		logger.Info("ignoring partial uploads (block directories without meta.json)", "count", n)
	}
	return s, nil
}

// Blocks returns the directories with a readable meta.json.
func (s *Snapshot) Blocks() []*block.Dir {
	return slices.DeleteFunc(slices.Clone(s.Dirs), func(d *block.Dir) bool { return d.Meta == nil })
}

// Corrupt returns the directories whose meta.json exists but cannot be read.
func (s *Snapshot) Corrupt() []*block.Dir {
	return slices.DeleteFunc(slices.Clone(s.Dirs), func(d *block.Dir) bool { return d.MetaErr == nil })
}

// Partial returns the partial uploads: directories without meta.json.
func (s *Snapshot) Partial() []*block.Dir {
	return slices.DeleteFunc(slices.Clone(s.Dirs), func(d *block.Dir) bool { return !d.Partial() })
}

// groupOf is the compaction group of a block with meta.json (labels + resolution).
func groupOf(d *block.Dir) string {
	return block.GroupKey(d.Meta.Thanos.Downsample.Resolution, labels.FromMap(d.Meta.Thanos.Labels))
}

func metaOf(d *block.Dir) *block.Meta { return d.Meta }

// marks names the markers a block carries: deletion, no-compact, no-downsample.
func marks(d *block.Dir) []string {
	var out []string
	if d.Deletion != nil {
		out = append(out, "deletion")
	}
	if d.NoCompact != nil {
		out = append(out, "no-compact")
	}
	if d.NoDownsample != nil {
		out = append(out, "no-downsample")
	}
	return out
}

// formatTime formats a meta.json time (Unix ms) as RFC 3339 in UTC.
func formatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// formatDuration formats milliseconds as a Prometheus duration such as 2h or 1d16h,
// to the second from one second on (a block's maxTime is its last sample + 1ms).
func formatDuration(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	if d >= time.Second {
		d = d.Round(time.Second)
	}
	return sign + model.Duration(d).String()
}

// resolutionName is "raw" for resolution 0, otherwise the duration (5m, 1h).
func resolutionName(res int64) string {
	if res == block.ResolutionRaw {
		return "raw"
	}
	return formatDuration(res)
}

// labelsString formats external labels as {a="b", c="d"}.
func labelsString(m map[string]string) string {
	return labels.FromMap(m).String()
}

// describeBlock is "ULID [from, until) level N" for issue texts.
func describeBlock(m *block.Meta) string {
	return fmt.Sprintf("%s [%s, %s) level %d", m.ULID, formatTime(m.MinTime), formatTime(m.MaxTime), m.Compaction.Level)
}

func describeBlocks(ms []*block.Meta) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = describeBlock(m)
	}
	return strings.Join(parts, ", ")
}

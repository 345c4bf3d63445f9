package compact

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/downsample"
)

// group is a compaction group (stream): blocks with identical external labels (after
// replica label removal) and identical resolution. Groups are compacted independently.
type group struct {
	key        string
	labels     labels.Labels
	resolution int64
	blocks     []*blockInfo
}

// groupBlocks sorts the visible blocks into groups, ordered by key.
func groupBlocks(visible map[ulid.ULID]*blockInfo) []*group {
	byKey := map[string]*group{}
	for _, b := range visible {
		g, ok := byKey[b.key]
		if !ok {
			g = &group{key: b.key, labels: b.labels, resolution: b.meta.Thanos.Downsample.Resolution}
			byKey[b.key] = g
		}
		g.blocks = append(g.blocks, b)
	}
	out := make([]*group, 0, len(byKey))
	for _, g := range byKey {
		sortByMinTime(g.blocks)
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// compactGroup plans and runs compactions in g until the planner finds nothing more to
// do, and returns how many blocks it uploaded. After each compaction the sources leave
// the group and the new block joins it, so the loop ends: every round removes at least
// as many blocks as it adds, and rounds that add one remove at least two, or rewrite a
// tombstoned block into one without tombstones.
func (c *Compactor) compactGroup(ctx context.Context, g *group) (int, error) {
	done := 0
	for {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		p, err := planGroup(c.cfg.Ranges, g.blocks, c.cfg.verticalEnabled())
		if err != nil {
			return done, err
		}
		if len(p.blocks) == 0 {
			return done, nil
		}
		if p.overlapping && g.resolution != block.ResolutionRaw {
			// Overlapping AggrChunks cannot be merged: keep these blocks as they are.
			for _, b := range p.blocks {
				if err := block.MarkForNoCompact(ctx, c.bkt, b.id(), block.NoCompactDownsampleVerticalComp,
					"overlapping downsampled blocks cannot be compacted vertically"); err != nil {
					return done, fmt.Errorf("mark block %s no-compact: %w", b.id(), err)
				}
				b.noCompact = true
				c.metrics.markedNoCompact.WithLabelValues(string(block.NoCompactDownsampleVerticalComp)).Inc()
			}
			c.logger.Warn("marked overlapping downsampled blocks no-compact", "group", g.key, "blocks", describe(p.blocks))
			continue
		}
		if done == 0 {
			c.metrics.groupsPlanned.Inc()
		}
		c.logger.Info("compacting blocks", "group", g.key, "labels", g.labels.String(), "resolution", g.resolution,
			"vertical", p.overlapping, "blocks", describe(p.blocks))
		nb, err := c.runCompaction(ctx, g, p)
		if err != nil {
			return done, fmt.Errorf("compact blocks %s: %w", describe(p.blocks), err)
		}
		g.blocks = slices.DeleteFunc(g.blocks, func(b *blockInfo) bool { return slices.Contains(p.blocks, b) })
		if nb != nil {
			g.blocks = append(g.blocks, nb)
			done++
		}
	}
}

// dataAfter reports whether the group has blocks starting at or after the end of the
// planned ones: then the replicas carry on past the planned blocks' end, which the replica
// merge must not mistake for a gap.
func dataAfter(g *group, p plan) bool {
	var end int64
	for _, b := range p.blocks {
		end = max(end, b.meta.MaxTime)
	}
	for _, b := range g.blocks {
		if !slices.Contains(p.blocks, b) && b.meta.MinTime >= end {
			return true
		}
	}
	return false
}

// runCompaction downloads the planned blocks, compacts them, uploads the result and
// then marks the sources for deletion. It returns the new block (nil when the result
// held no samples and only empty sources were marked).
func (c *Compactor) runCompaction(ctx context.Context, g *group, p plan) (*blockInfo, error) {
	if c.testCompactionHook != nil {
		defer c.testCompactionHook(g.key)()
	}
	dir := filepath.Join(c.cfg.DataDir, compactDirname, dirSafe(g.key))
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clean work directory: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			c.logger.Warn("cannot remove work directory", "dir", dir, "err", err)
		}
	}()
	dirs := make([]string, len(p.blocks))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(c.cfg.BlocksFetchConcurrency)
	for i, b := range p.blocks {
		dirs[i] = filepath.Join(dir, b.id().String())
		if c.local.take(b.id(), dirs[i]) {
			c.metrics.localBlocksUsed.Inc()
			continue // made by this compactor in this iteration and verified before its upload
		}
		eg.Go(func() error {
			n, err := downloadBlock(ectx, c.bkt, b.meta, dirs[i], c.cfg.BlockFilesConcurrency)
			c.metrics.bytesDownloaded.Add(float64(n))
			if err != nil {
				return err
			}
			return c.checkBlock(ectx, dirs[i], b.meta)
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}

	var mergeFunc storage.VerticalChunkSeriesMergeFunc
	if c.dedupFunc != nil {
		mergeFunc = newDedupMergeFunc(*c.dedupFunc, dataAfter(g, p))
	}
	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, c.tsdbLogger, c.cfg.Ranges, downsample.NewPool(),
		tsdb.LeveledCompactorOptions{MergeFunc: mergeFunc, EnableOverlappingCompaction: true, Metrics: c.tsdbMetrics})
	if err != nil {
		return nil, fmt.Errorf("create compactor: %w", err)
	}
	ids, err := comp.CompactWithBlockPopulator(dir, dirs, nil, fileChunksPopulator{dir: dir})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, halt(fmt.Errorf("compact: %w", err))
	}
	if len(ids) == 0 {
		return nil, c.markEmpty(ctx, p.blocks)
	}
	newDir := filepath.Join(dir, ids[0].String())
	meta, err := c.finishMeta(newDir, g, p)
	if err != nil {
		return nil, err
	}
	if err := block.VerifyIndex(ctx, newDir, meta.MinTime, meta.MaxTime); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, halt(fmt.Errorf("compacted block %s is invalid: %w", meta.ULID, err))
	}
	if !p.overlapping {
		for _, o := range g.blocks {
			if !slices.Contains(p.blocks, o) && o.meta.MinTime < meta.MaxTime && meta.MinTime < o.meta.MaxTime {
				return nil, haltf("compacted block %s [%d,%d) would overlap block %s [%d,%d)",
					meta.ULID, meta.MinTime, meta.MaxTime, o.id(), o.meta.MinTime, o.meta.MaxTime)
			}
		}
	}
	if err := block.Upload(ctx, c.logger, c.bkt, newDir, block.WithHashFunc(c.cfg.HashFunc)); err != nil {
		return nil, fmt.Errorf("upload compacted block: %w", err)
	}
	size := uploadedBytes(newDir)
	c.metrics.bytesUploaded.Add(float64(size))
	c.local.keep(meta.ULID, newDir, size)
	kind := "horizontal"
	if p.overlapping {
		kind = "vertical"
	}
	c.metrics.compactions.WithLabelValues(kind).Inc()
	// Only now, with the new block in place, may the sources go.
	for _, b := range p.blocks {
		if err := c.markForDeletion(ctx, b.id(), reasonCompacted, "source of compacted block "+meta.ULID.String()); err != nil {
			return nil, err
		}
	}
	c.logger.Info("compacted blocks", "group", g.key, "new_block", meta.ULID, "min_time", meta.MinTime, "max_time", meta.MaxTime,
		"level", meta.Compaction.Level, "sources", len(meta.Compaction.Sources), "samples", meta.Stats.NumSamples)
	return &blockInfo{meta: meta, labels: g.labels, key: g.key}, nil
}

// fileChunksPopulator is Prometheus's block populator over the source blocks with their
// chunks read by pread instead of through a memory map (downsample.WithFileChunks): a
// compaction reads every chunk of its sources once, and mapped, all of them would stay in
// the process's resident set until the compaction ends.
type fileChunksPopulator struct{ dir string }

// Read buffers of one compaction's sources (see fileChunksPopulator.PopulateBlock).
const (
	compactionReadAhead = 4 << 20
	minReadAhead        = 64 << 10
)

func (p fileChunksPopulator) PopulateBlock(ctx context.Context, metrics *tsdb.CompactorMetrics, logger *slog.Logger, pool chunkenc.Pool,
	merge storage.VerticalChunkSeriesMergeFunc, blocks []tsdb.BlockReader, meta *tsdb.BlockMeta, indexw tsdb.IndexWriter,
	chunkw tsdb.ChunkWriter, postings tsdb.IndexReaderPostingsFunc,
) error {
	// The sources are read side by side: share compactionReadAhead among them, so that
	// compacting 24 blocks at once (completeWindow) holds no more read buffers than 4.
	readAhead := max(minReadAhead, compactionReadAhead/len(blocks))
	wrapped := make([]tsdb.BlockReader, len(blocks))
	for i, b := range blocks {
		wrapped[i] = downsample.WithFileChunks(b, filepath.Join(p.dir, b.Meta().ULID.String()), pool, min(readAhead, downsample.DefaultReadAhead))
	}
	return tsdb.DefaultBlockPopulator{}.PopulateBlock(ctx, metrics, logger, pool, merge, wrapped, meta, indexw, chunkw, postings)
}

// checkBlock verifies a downloaded block: its index (critical issues halt) and that it
// can be opened.
func (c *Compactor) checkBlock(ctx context.Context, dir string, m *block.Meta) error {
	if err := block.VerifyIndex(ctx, dir, m.MinTime, m.MaxTime); err != nil {
		var issue *block.IndexIssue
		if errors.As(err, &issue) {
			return halt(fmt.Errorf("block %s: %w", m.ULID, err))
		}
		return fmt.Errorf("block %s: %w", m.ULID, err)
	}
	b, err := tsdb.OpenBlock(c.tsdbLogger, dir, downsample.NewPool(), nil)
	if err != nil {
		return halt(fmt.Errorf("open block %s: %w", m.ULID, err))
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("close block %s: %w", m.ULID, err)
	}
	return nil
}

// finishMeta turns the meta.json Prometheus wrote for the compacted block into a
// Thanos one: the group's labels and resolution, source compactor, the segment files
// and the first source's extensions (opaque to Vigil). The tombstones file is removed.
func (c *Compactor) finishMeta(dir string, g *group, p plan) (*block.Meta, error) {
	sources := p.blocks
	if err := os.Remove(filepath.Join(dir, block.TombstonesFilename)); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("remove tombstones: %w", err)
	}
	m, err := block.ReadMeta(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(dir, block.ChunksDirname))
	if err != nil {
		return nil, fmt.Errorf("list chunks of compacted block: %w", err)
	}
	var segments []string
	for _, e := range entries {
		segments = append(segments, e.Name())
	}
	var ext any
	for _, s := range sources {
		if s.meta.Thanos.Extensions != nil {
			ext = s.meta.Thanos.Extensions
			break
		}
	}
	// Skipped levels: the block gets the level it would have reached through them.
	m.Compaction.Level = max(m.Compaction.Level, p.level)
	m.Thanos = block.ThanosMeta{
		Version:      block.ThanosVersion1,
		Labels:       g.labels.Map(),
		Downsample:   block.ThanosDownsample{Resolution: g.resolution},
		Source:       block.SourceCompactor,
		SegmentFiles: segments,
		Extensions:   ext,
	}
	if err := block.WriteMeta(dir, m); err != nil {
		return nil, err
	}
	return m, nil
}

// markEmpty handles a compaction that produced no samples: sources without samples are
// marked for deletion. If a source had samples the output should have had them too,
// so that is an error.
func (c *Compactor) markEmpty(ctx context.Context, sources []*blockInfo) error {
	var withSamples []string
	for _, b := range sources {
		if b.meta.Stats.NumSamples > 0 {
			withSamples = append(withSamples, b.id().String())
			continue
		}
		if err := c.markForDeletion(ctx, b.id(), reasonEmpty, "compacted into an empty block"); err != nil {
			return err
		}
	}
	if len(withSamples) > 0 {
		return fmt.Errorf("compaction produced no samples although blocks %s have some", strings.Join(withSamples, ","))
	}
	return nil
}

// markForDeletion marks a block for deletion and counts it by reason.
func (c *Compactor) markForDeletion(ctx context.Context, id ulid.ULID, reason, details string) error {
	if err := block.MarkForDeletion(ctx, c.bkt, id, details); err != nil {
		return fmt.Errorf("mark block %s for deletion: %w", id, err)
	}
	c.metrics.markedForDeletion.WithLabelValues(reason).Inc()
	return nil
}

// dirSafe makes a group key usable as a directory name.
func dirSafe(key string) string { return strings.ReplaceAll(key, "/", "_") }

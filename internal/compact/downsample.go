package compact

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/oklog/ulid/v2"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/downsample"
)

// resolutionName is the metric label of a resolution.
func resolutionName(res int64) string {
	switch res {
	case block.Resolution5m:
		return "5m"
	case block.Resolution1h:
		return "1h"
	}
	return "raw"
}

// downsampleCandidates returns the visible blocks of resolution from that span at least
// minRange, are not marked no-downsample, and have a source that no visible block of
// resolution to covers yet, oldest first.
func downsampleCandidates(st *syncResult, from, to, minRange int64) []*blockInfo {
	covered := map[ulid.ULID]struct{}{}
	for _, b := range st.visible {
		if b.meta.Thanos.Downsample.Resolution == to {
			for _, s := range b.meta.Compaction.Sources {
				covered[s] = struct{}{}
			}
		}
	}
	var out []*blockInfo
	for _, b := range st.visible {
		m := b.meta
		if m.Thanos.Downsample.Resolution != from || m.MaxTime-m.MinTime < minRange || b.noDownsample {
			continue
		}
		missing := len(m.Compaction.Sources) == 0
		for _, s := range m.Compaction.Sources {
			if _, ok := covered[s]; !ok {
				missing = true
				break
			}
		}
		if missing {
			out = append(out, b)
		}
	}
	sortByMinTime(out)
	return out
}

// downsamplePass downsamples every candidate block from resolution from to resolution
// to, --downsample.concurrency at a time. Sources are kept. A block that fails is
// logged and counted, and the others go on; the failures are returned joined.
func (c *Compactor) downsamplePass(ctx context.Context, st *syncResult, from, to, minRange int64) error {
	cands := downsampleCandidates(st, from, to, minRange)
	if len(cands) == 0 {
		return nil
	}
	c.logger.Info("downsampling blocks", "from", resolutionName(from), "to", resolutionName(to), "blocks", len(cands))
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan *blockInfo)
	for range c.cfg.DownsampleConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				err := c.downsampleBlock(ctx, b, to)
				if err == nil || ctx.Err() != nil {
					continue
				}
				c.metrics.downsampleFailures.WithLabelValues(resolutionName(to)).Inc()
				c.logger.Error("downsampling failed; skipping the block", "block", b.id(), "to", resolutionName(to), "err", err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	for _, b := range cands {
		select {
		case work <- b:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// downsampleSource returns the directory of block b to downsample: the copy kept since
// this iteration made it, or else a download into dir, verified.
func (c *Compactor) downsampleSource(ctx context.Context, b *blockInfo, dir string) (string, error) {
	if src, ok := c.local.path(b.id()); ok {
		c.metrics.localBlocksUsed.Inc()
		return src, nil
	}
	n, err := downloadBlock(ctx, c.bkt, b.meta, dir, c.cfg.BlockFilesConcurrency)
	c.metrics.bytesDownloaded.Add(float64(n))
	if err != nil {
		return "", err
	}
	if err := block.VerifyIndex(ctx, dir, b.meta.MinTime, b.meta.MaxTime); err != nil {
		return "", fmt.Errorf("block %s: %w", b.id(), err)
	}
	return dir, nil
}

// downsampleBlock downsamples one block (kept locally or downloaded) and uploads the
// result.
func (c *Compactor) downsampleBlock(ctx context.Context, b *blockInfo, to int64) error {
	dir := filepath.Join(c.cfg.DataDir, downsampleDirname, b.id().String())
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clean work directory: %w", err)
	}
	defer func() {
		c.local.drop(b.id()) // no later step of this iteration reads it
		if err := os.RemoveAll(dir); err != nil {
			c.logger.Warn("cannot remove work directory", "dir", dir, "err", err)
		}
	}()
	src, err := c.downsampleSource(ctx, b, filepath.Join(dir, "src"))
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	id, err := downsample.DownsampleDir(ctx, c.tsdbLogger, src, out, to)
	if err != nil {
		return fmt.Errorf("downsample block %s: %w", b.id(), err)
	}
	newDir := filepath.Join(out, id.String())
	if err := block.Upload(ctx, c.logger, c.bkt, newDir, block.WithHashFunc(c.cfg.HashFunc)); err != nil {
		return fmt.Errorf("upload downsampled block %s of %s: %w", id, b.id(), err)
	}
	c.metrics.bytesUploaded.Add(float64(uploadedBytes(newDir)))
	c.metrics.downsamples.WithLabelValues(resolutionName(to)).Inc()
	c.logger.Info("downsampled block uploaded", "from", b.id(), "to", id, "resolution", resolutionName(to))
	return nil
}

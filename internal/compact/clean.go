package compact

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/vigilhq/vigil/internal/block"
)

// applyRetention marks every visible block whose data is older than the retention of
// its resolution (now > maxTime + retention) for deletion. Marked blocks are added to
// st.marked, so a cleanup with a zero delete delay removes them in the same iteration.
func (c *Compactor) applyRetention(ctx context.Context, st *syncResult) error {
	now := c.cfg.Now()
	var errs []error
	for _, b := range st.visible {
		r := c.cfg.retention(b.meta.Thanos.Downsample.Resolution)
		if r <= 0 || b.deletion != nil {
			continue
		}
		if !now.After(time.UnixMilli(b.meta.MaxTime).Add(r)) {
			continue
		}
		c.logger.Info("block is past retention; marking it for deletion", "block", b.id(),
			"resolution", resolutionName(b.meta.Thanos.Downsample.Resolution), "max_time", b.meta.MaxTime, "retention", r)
		if err := c.markForDeletion(ctx, b.id(), reasonRetention, "past retention "+r.String()); err != nil {
			errs = append(errs, err)
			continue
		}
		b.deletion = &block.DeletionMark{ID: b.id(), Version: block.MarkerVersion1, DeletionTime: now.Unix()}
		st.marked = append(st.marked, b)
	}
	return errors.Join(errs...)
}

// markDuplicates marks the blocks the duplicate filter hid for deletion.
func (c *Compactor) markDuplicates(ctx context.Context, st *syncResult) error {
	var errs []error
	for _, b := range st.duplicates {
		if b.deletion != nil {
			continue
		}
		c.logger.Info("block is covered by a bigger block of its group; marking it for deletion", "block", b.id())
		if err := c.markForDeletion(ctx, b.id(), reasonDuplicate, "duplicate: all its sources are in another block"); err != nil {
			errs = append(errs, err)
			continue
		}
		b.deletion = &block.DeletionMark{ID: b.id(), Version: block.MarkerVersion1, DeletionTime: c.cfg.Now().Unix()}
		st.marked = append(st.marked, b)
	}
	return errors.Join(errs...)
}

// deleteMarked deletes the blocks whose deletion mark is at least the delete delay old,
// including partial blocks left by an interrupted deletion.
func (c *Compactor) deleteMarked(ctx context.Context, st *syncResult) error {
	now := c.cfg.Now()
	due := func(m *block.DeletionMark) bool {
		return !now.Before(time.Unix(m.DeletionTime, 0).Add(c.cfg.DeleteDelay))
	}
	var ids []ulid.ULID
	for _, b := range st.marked {
		if due(b.deletion) {
			ids = append(ids, b.id())
		}
	}
	for _, p := range st.partial {
		if p.deletion != nil && due(p.deletion) {
			ids = append(ids, p.id)
		}
	}
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := block.Delete(ctx, c.bkt, id); err != nil {
			c.metrics.deletionFailures.Inc()
			c.logger.Error("cannot delete block marked for deletion; retrying later", "block", id, "err", err)
			errs = append(errs, err)
			continue
		}
		c.syncer.fetcher.Forget(id)
		delete(st.visible, id)
		c.metrics.deleted.Inc()
		c.logger.Info("deleted block marked for deletion", "block", id)
	}
	return errors.Join(errs...)
}

// cleanPartialUploads deletes block directories without meta.json whose oldest object
// is older than block.PartialUploadThresholdAge (48h): uploads that were aborted. A
// partial block with a deletion mark is an interrupted deletion and is left to
// deleteMarked.
func (c *Compactor) cleanPartialUploads(ctx context.Context, st *syncResult) error {
	now := c.cfg.Now()
	var errs []error
	for _, p := range st.partial {
		if p.deletion != nil {
			continue
		}
		oldest, ok, err := c.oldestObject(ctx, p.id.String()+"/")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok || now.Sub(oldest) < block.PartialUploadThresholdAge {
			continue
		}
		// The upload may have completed since the sync.
		if exists, err := block.MetaExists(ctx, c.bkt, p.id); err != nil || exists {
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := block.Delete(ctx, c.bkt, p.id); err != nil {
			c.logger.Error("cannot delete aborted partial upload", "block", p.id, "err", err)
			errs = append(errs, err)
			continue
		}
		c.metrics.partialDeleted.Inc()
		c.logger.Info("deleted aborted partial upload", "block", p.id, "oldest_object", oldest)
	}
	return errors.Join(errs...)
}

// oldestObject returns the oldest last-modified time of the objects under dir,
// descending into sub-directories itself (not every provider lists recursively).
func (c *Compactor) oldestObject(ctx context.Context, dir string) (time.Time, bool, error) {
	var (
		oldest time.Time
		found  bool
		subs   []string
		names  []string
	)
	if err := c.bkt.Iter(ctx, dir, func(name string) error {
		if strings.HasSuffix(name, "/") {
			if name != dir {
				subs = append(subs, name)
			}
		} else {
			names = append(names, name)
		}
		return nil
	}); err != nil {
		return oldest, false, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, name := range names {
		attrs, err := c.bkt.Attributes(ctx, name)
		if err != nil {
			if c.bkt.IsObjNotFoundErr(err) {
				continue
			}
			return oldest, false, fmt.Errorf("attributes of %s: %w", name, err)
		}
		if !found || attrs.LastModified.Before(oldest) {
			oldest, found = attrs.LastModified, true
		}
	}
	for _, sub := range subs {
		t, ok, err := c.oldestObject(ctx, sub)
		if err != nil {
			return oldest, false, err
		}
		if ok && (!found || t.Before(oldest)) {
			oldest, found = t, true
		}
	}
	return oldest, found, nil
}

package buckettool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// MarkerNames are the markers `bucket mark` writes (--marker).
var MarkerNames = []string{block.DeletionMarkFilename, block.NoCompactMarkFilename, block.NoDownsampleMarkFilename}

// MarkOptions configure Mark.
type MarkOptions struct {
	IDs []ulid.ULID
	// Marker is one of MarkerNames.
	Marker string
	// Details is the human-readable reason written into the marker; required unless
	// Remove is set.
	Details string
	// Remove deletes the marker instead of writing it.
	Remove bool
}

// Mark writes (or with Remove deletes) a marker on each block, in the Thanos format:
// deletion-mark.json, no-compact-mark.json (reason "manual") or no-downsample-mark.json
// (reason "manual"). Every ID must name a block with a meta.json; they are all checked
// before anything is written. An existing marker is left alone, so the first mark's
// time counts.
func Mark(ctx context.Context, bkt objstore.Bucket, o MarkOptions, logger *slog.Logger) error {
	if len(o.IDs) == 0 {
		return errors.New("no block given: set --id")
	}
	write, err := markerWriter(o.Marker)
	if err != nil {
		return err
	}
	if !o.Remove && o.Details == "" {
		return errors.New("--details is required: say why the block is marked")
	}
	for _, id := range o.IDs {
		ok, err := block.MetaExists(ctx, bkt, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("block %s not found in the bucket (no %s/%s); nothing was marked", id, id, block.MetaFilename)
		}
	}
	for _, id := range o.IDs {
		name := path.Join(id.String(), o.Marker)
		exists, err := bkt.Exists(ctx, name)
		if err != nil {
			return fmt.Errorf("check whether %s exists: %w", name, err)
		}
		switch {
		case o.Remove && !exists:
			logger.Info("block has no such marker; nothing to remove", "block", id, "marker", o.Marker)
		case o.Remove:
			if err := bkt.Delete(ctx, name); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			logger.Info("removed marker", "block", id, "marker", o.Marker)
		case exists:
			logger.Info("block already has this marker; left unchanged (the first mark counts)", "block", id, "marker", o.Marker)
		default:
			if err := write(ctx, bkt, id, o.Details); err != nil {
				return err
			}
			logger.Info("marked block", "block", id, "marker", o.Marker, "details", o.Details)
		}
	}
	return nil
}

type markFunc func(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, details string) error

func markerWriter(marker string) (markFunc, error) {
	switch marker {
	case block.DeletionMarkFilename:
		return block.MarkForDeletion, nil
	case block.NoCompactMarkFilename:
		return func(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, details string) error {
			return block.MarkForNoCompact(ctx, bkt, id, block.NoCompactManual, details)
		}, nil
	case block.NoDownsampleMarkFilename:
		return func(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, details string) error {
			return block.MarkForNoDownsample(ctx, bkt, id, block.NoDownsampleManual, details)
		}, nil
	}
	return nil, fmt.Errorf("unknown marker %q (want %s, %s or %s)", marker, MarkerNames[0], MarkerNames[1], MarkerNames[2])
}

package buckettool

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/compact"
)

// Cleanup runs the compactor's cleaner once over the whole bucket: it deletes the
// blocks whose deletion mark is at least deleteDelay old, and the partial uploads
// (directories without meta.json) whose oldest object is older than
// block.PartialUploadThresholdAge (48h, as in Thanos: a younger one may be an upload in
// progress). Deletion goes through block.Delete: meta.json first, deletion-mark.json
// last. Each deleted block is logged.
func Cleanup(ctx context.Context, bkt objstore.Bucket, deleteDelay time.Duration, logger *slog.Logger) error {
	if deleteDelay < 0 {
		return fmt.Errorf("--delete-delay must not be negative, got %s", deleteDelay)
	}
	// The compactor needs a work directory, though its cleaner never uses it.
	dir, err := os.MkdirTemp("", "vigil-bucket-cleanup-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	c, err := compact.New(bkt, compact.Config{
		DataDir:     dir,
		DeleteDelay: deleteDelay,
		// The whole bucket, every block at once: no time range, no consistency delay.
		MinTime:             math.MinInt64,
		DisableDownsampling: true,
	}, logger, nil)
	if err != nil {
		return err
	}
	if err := c.Cleanup(ctx); err != nil {
		return fmt.Errorf("clean up bucket: %w", err)
	}
	return nil
}

package buckettool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// List output formats (-o), as in Thanos's `tools bucket ls`.
const (
	ListIDs  = ""     // one ULID per line
	ListWide = "wide" // ULID, time range, compaction level, resolution, source
	ListJSON = "json" // every meta.json, tab-indented, one after the other
)

// ListOptions configure List.
type ListOptions struct {
	// Format is ListIDs, ListWide or ListJSON.
	Format string
	// ExcludeDeleted leaves out blocks marked for deletion.
	ExcludeDeleted bool
}

// List writes the blocks of the bucket (those with a readable meta.json) to w in ULID
// order. Partial uploads are left out; unreadable meta.json files are logged.
func List(ctx context.Context, w io.Writer, bkt objstore.BucketReader, o ListOptions, logger *slog.Logger) error {
	var print func(m *block.Meta) error
	switch o.Format {
	case ListIDs:
		print = func(m *block.Meta) error {
			_, err := fmt.Fprintln(w, m.ULID)
			return err
		}
	case ListWide:
		print = func(m *block.Meta) error {
			from, until := time.UnixMilli(m.MinTime).UTC(), time.UnixMilli(m.MaxTime).UTC()
			_, err := fmt.Fprintf(w, "%s -- %s - %s Diff: %s, Compaction: %d, Downsample: %d, Source: %s\n",
				m.ULID, from.Format("2006-01-02 15:04"), until.Format("2006-01-02 15:04"), until.Sub(from),
				m.Compaction.Level, m.Thanos.Downsample.Resolution, m.Thanos.Source)
			return err
		}
	case ListJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "\t")
		print = func(m *block.Meta) error { return enc.Encode(m) }
	default:
		return fmt.Errorf("unknown output format %q (want json or wide, or nothing for one ULID per line)", o.Format)
	}
	s, err := fetchBucket(ctx, bkt, logger)
	if err != nil {
		return err
	}
	n := 0
	for _, d := range s.Blocks() {
		if o.ExcludeDeleted && d.Deletion != nil {
			continue
		}
		if err := print(d.Meta); err != nil {
			return fmt.Errorf("write block list: %w", err)
		}
		n++
	}
	logger.Debug("listed blocks", "blocks", n)
	return nil
}

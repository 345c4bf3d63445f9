package blocktest

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// Edge is a block placed exactly at, or one unit inside, an edge of the filters every
// component's sync runs (block.Filter), so that tests can pin each sync to the same
// boundaries.
type Edge struct {
	Name string
	// MinTime and MaxTime are the block's meta.json range (MaxTime exclusive).
	MinTime, MaxTime int64
	// UploadTime is the block's thanos.upload_time.
	UploadTime time.Time
	// MarkedAt is the time of its deletion mark; zero means no mark.
	MarkedAt time.Time
	// Visible is what a sync at the edges' now must decide.
	Visible bool
}

// Edges returns the edge cases of a sync at now (a whole second: deletion marks have
// second precision) with the time range [minT, maxT] (inclusive Unix ms flags, at least
// two hours wide), the consistency delay and the delay after which a deletion-marked
// block is hidden.
func Edges(now time.Time, minT, maxT int64, consistency, deletion time.Duration) []Edge {
	const h = int64(time.Hour / time.Millisecond)
	settled := now.Add(-2*(consistency+deletion) - time.Hour) // long visible
	in := func(name string, e Edge) Edge {
		if e.MinTime == 0 && e.MaxTime == 0 {
			e.MinTime, e.MaxTime = minT, minT+h
		}
		if e.UploadTime.IsZero() {
			e.UploadTime = settled
		}
		e.Name = name
		return e
	}
	return []Edge{
		in("ends exactly at min-time", Edge{MinTime: minT - 2*h, MaxTime: minT}),
		in("ends 1ms after min-time", Edge{MinTime: minT - 2*h, MaxTime: minT + 1, Visible: true}),
		in("starts exactly at max-time", Edge{MinTime: maxT, MaxTime: maxT + 2*h, Visible: true}),
		in("starts 1ms after max-time", Edge{MinTime: maxT + 1, MaxTime: maxT + 2*h}),
		in("spans the whole range", Edge{MinTime: minT - h, MaxTime: maxT + h, Visible: true}),
		in("uploaded exactly the consistency delay ago", Edge{UploadTime: now.Add(-consistency), Visible: true}),
		in("uploaded 1ms short of the consistency delay", Edge{UploadTime: now.Add(-consistency + time.Millisecond)}),
		in("marked exactly the deletion delay ago", Edge{MarkedAt: now.Add(-deletion)}),
		in("marked 1s short of the deletion delay", Edge{MarkedAt: now.Add(-deletion + time.Second), Visible: true}),
	}
}

// UploadEdges uploads one real block (one series, source sidecar) per edge to bkt, with
// the edge's meta.json range, upload time and deletion mark, and the external labels ext
// plus edge=a, b, ... by position (so no two edges share a compaction group). It returns
// the blocks' edges by ULID.
func UploadEdges(tb testing.TB, bkt objstore.Bucket, ext map[string]string, edges []Edge) map[ulid.ULID]Edge {
	tb.Helper()
	ctx := context.Background()
	out := map[ulid.ULID]Edge{}
	for i, e := range edges {
		dir := tb.TempDir()
		id := CreateBlock(tb, dir, 0, 2*time.Hour.Milliseconds(), 1)
		EditMeta(tb, dir, id, func(m *block.Meta) {
			m.MinTime, m.MaxTime = e.MinTime, e.MaxTime
			m.Thanos.Labels = map[string]string{"edge": string(rune('a' + i))}
			for k, v := range ext {
				m.Thanos.Labels[k] = v
			}
			m.Thanos.Source = block.SourceSidecar
		})
		if err := block.Upload(ctx, slog.New(slog.DiscardHandler), bkt, filepath.Join(dir, id.String())); err != nil {
			tb.Fatal(err)
		}
		m, err := block.ReadMetaFromBucket(ctx, bkt, id)
		if err != nil {
			tb.Fatal(err)
		}
		m.Thanos.UploadTime = e.UploadTime.UTC()
		b, err := m.Encode()
		if err != nil {
			tb.Fatal(err)
		}
		upload(tb, bkt, path.Join(id.String(), block.MetaFilename), b)
		if !e.MarkedAt.IsZero() {
			b, err := json.Marshal(block.DeletionMark{ID: id, Version: block.MarkerVersion1, DeletionTime: e.MarkedAt.Unix()})
			if err != nil {
				tb.Fatal(err)
			}
			upload(tb, bkt, path.Join(id.String(), block.DeletionMarkFilename), b)
		}
		out[id] = e
	}
	return out
}

func upload(tb testing.TB, bkt objstore.Bucket, name string, b []byte) {
	tb.Helper()
	if err := bkt.Upload(context.Background(), name, bytes.NewReader(b)); err != nil {
		tb.Fatalf("upload %s: %v", name, err)
	}
}

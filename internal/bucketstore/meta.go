package bucketstore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
)

// meta is what the store needs from a block's meta.json (the Prometheus block meta plus
// the "thanos" section).
type meta struct {
	tsdb.BlockMeta
	Thanos struct {
		Version    int               `json:"version"`
		Labels     map[string]string `json:"labels"`
		Downsample struct {
			Resolution int64 `json:"resolution"`
		} `json:"downsample"`
		Source       string   `json:"source"`
		UploadTime   string   `json:"upload_time"`
		SegmentFiles []string `json:"segment_files"`
		Files        []struct {
			RelPath string `json:"rel_path"`
		} `json:"files"`
		IndexStats struct {
			SeriesMaxSize int64 `json:"series_max_size"`
			ChunkMaxSize  int64 `json:"chunk_max_size"`
		} `json:"index_stats"`
	} `json:"thanos"`
}

func (m *meta) extLabels() labels.Labels { return labels.FromMap(m.Thanos.Labels) }

// segmentFiles names the chunk segment files the block should have, from meta.json.
func (m *meta) segmentFiles() []string {
	if len(m.Thanos.SegmentFiles) > 0 {
		return m.Thanos.SegmentFiles
	}
	var out []string
	for _, f := range m.Thanos.Files {
		if name, ok := strings.CutPrefix(f.RelPath, "chunks/"); ok {
			out = append(out, name)
		}
	}
	return out
}

// visibleSince is when the block became visible: its upload time, or its ULID time.
func (m *meta) visibleSince() time.Time {
	if t, err := time.Parse(time.RFC3339Nano, m.Thanos.UploadTime); err == nil {
		return t
	}
	return ulid.Time(m.ULID.Time())
}

// readMeta reads and validates <id>/meta.json; errNotFound when the block has none
// (a partial upload).
func readMeta(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (*meta, error) {
	rc, err := bkt.Get(ctx, id.String()+"/meta.json")
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, errNotFound
		}
		return nil, fmt.Errorf("get meta.json of block %s: %w", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read meta.json of block %s: %w", id, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse meta.json of block %s: %w", id, err)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("meta.json of block %s: unsupported version %d", id, m.Version)
	}
	if m.Thanos.Version > 1 {
		return nil, fmt.Errorf("meta.json of block %s: unsupported thanos version %d", id, m.Thanos.Version)
	}
	if m.ULID != id {
		return nil, fmt.Errorf("meta.json of block %s names block %s", id, m.ULID)
	}
	return &m, nil
}

// deletionMark is the subset of deletion-mark.json the store reads.
type deletionMark struct {
	ID           ulid.ULID `json:"id"`
	Version      int       `json:"version"`
	DeletionTime int64     `json:"deletion_time"`
}

// readDeletionMark returns the block's deletion time, or ok=false without a mark.
func readDeletionMark(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (time.Time, bool, error) {
	rc, err := bkt.Get(ctx, id.String()+"/deletion-mark.json")
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, err
	}
	defer rc.Close()
	var m deletionMark
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return time.Time{}, false, fmt.Errorf("parse deletion-mark.json of block %s: %w", id, err)
	}
	if m.Version != 1 {
		return time.Time{}, false, fmt.Errorf("deletion-mark.json of block %s: unsupported version %d", id, m.Version)
	}
	return time.Unix(m.DeletionTime, 0), true, nil
}

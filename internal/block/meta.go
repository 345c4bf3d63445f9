// Package block reads and writes Thanos block metadata (meta.json with its "thanos"
// section) and moves blocks in and out of object storage in the order that keeps partial
// uploads and deletions invisible to readers: meta.json is uploaded last and deleted first.
//
// Bucket layout:
//
//	<ULID>/meta.json, <ULID>/index, <ULID>/chunks/000001..., optional marker files
//	(deletion-mark.json, no-compact-mark.json, no-downsample-mark.json).
//
// Only top-level entries whose names parse as ULIDs are blocks; everything else is ignored.
package block

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
)

// File and directory names inside a block.
const (
	MetaFilename       = "meta.json"
	IndexFilename      = "index"
	ChunksDirname      = "chunks"
	TombstonesFilename = "tombstones"
)

// Versions readers accept.
const (
	// TSDBVersion1 is the only accepted top-level meta.json version.
	TSDBVersion1 = 1
	// ThanosVersion1 is the current thanos section version (0/missing reads as 1).
	ThanosVersion1 = 1
)

// Downsampling resolutions in milliseconds.
const (
	ResolutionRaw int64 = 0
	Resolution5m  int64 = 5 * 60 * 1000
	Resolution1h  int64 = 60 * 60 * 1000
)

// SourceType says which component created a block.
type SourceType string

// Block sources as Thanos writes them.
const (
	SourceSidecar         SourceType = "sidecar"
	SourceReceive         SourceType = "receive"
	SourceCompactor       SourceType = "compactor"
	SourceCompactorRepair SourceType = "compactor.repair"
	SourceRuler           SourceType = "ruler"
	SourceBucketRepair    SourceType = "bucket.repair"
	SourceBucketRewrite   SourceType = "bucket.rewrite"
	SourceBucketUpload    SourceType = "bucket.upload"
	SourceTest            SourceType = "test"
)

// HashFunc names the hash of a file in ThanosMeta.Files; empty means no hash.
type HashFunc string

// HashSHA256 is the only hash function Thanos writes.
const HashSHA256 HashFunc = "SHA256"

// Meta is a block's meta.json: the Prometheus TSDB BlockMeta plus the "thanos" section.
type Meta struct {
	tsdb.BlockMeta

	Thanos ThanosMeta `json:"thanos"`
}

// ThanosMeta is the "thanos" section of meta.json.
type ThanosMeta struct {
	// Version is the section version; 0 (missing) and 1 are accepted.
	Version int `json:"version,omitempty"`
	// Labels are the external labels of the block's producer; a missing map reads as empty.
	Labels map[string]string `json:"labels"`
	// Downsample holds the block's resolution.
	Downsample ThanosDownsample `json:"downsample"`
	// Source is the component that created the block.
	Source SourceType `json:"source"`
	// SegmentFiles lists chunks/ file names (deprecated by Files but still written).
	SegmentFiles []string `json:"segment_files,omitempty"`
	// Files lists every uploaded file, sorted by RelPath, with meta.json last and sizeless.
	Files []File `json:"files,omitempty"`
	// IndexStats helps readers size range reads.
	IndexStats IndexStats `json:"index_stats,omitzero"`
	// Extensions is opaque data merged across compaction groups.
	Extensions any `json:"extensions,omitempty"`
	// UploadTime is set just before meta.json is uploaded; used by the consistency delay.
	UploadTime time.Time `json:"upload_time,omitzero"`
	// Rewrites records deletions and relabels applied by bucket rewrite.
	Rewrites []Rewrite `json:"rewrites,omitempty"`
}

// ThanosDownsample is the downsampling section of ThanosMeta.
type ThanosDownsample struct {
	// Resolution in milliseconds: 0 (raw), 300000 or 3600000.
	Resolution int64 `json:"resolution"`
}

// File is one entry of ThanosMeta.Files.
type File struct {
	RelPath string `json:"rel_path"`
	// SizeBytes is left out (zero) for meta.json.
	SizeBytes int64       `json:"size_bytes,omitempty"`
	Hash      *ObjectHash `json:"hash,omitempty"`
}

// ObjectHash is a file's hash.
type ObjectHash struct {
	Func  HashFunc `json:"hashFunc"`
	Value string   `json:"value"`
}

// IndexStats are index statistics the store gateway uses to size range reads.
type IndexStats struct {
	SeriesMaxSize int64 `json:"series_max_size,omitempty"`
	ChunkMaxSize  int64 `json:"chunk_max_size,omitempty"`
}

// Rewrite records one bucket rewrite of a block.
type Rewrite struct {
	Sources          []ulid.ULID       `json:"sources,omitempty"`
	DeletionsApplied []DeletionRequest `json:"deletions_applied,omitempty"`
	// RelabelsApplied holds Prometheus relabel configs as JSON, kept opaque.
	RelabelsApplied []json.RawMessage `json:"relabels_applied,omitempty"`
}

// DeletionRequest is a series deletion applied by a rewrite.
type DeletionRequest struct {
	Matchers  string     `json:"matchers"`
	Intervals []Interval `json:"intervals,omitempty"`
	RequestID string     `json:"request_id,omitempty"`
}

// Interval is a closed time range in milliseconds.
type Interval struct {
	Mint int64 `json:"mint"`
	Maxt int64 `json:"maxt"`
}

// ErrMetaNotFound is returned (wrapped) by ReadMetaFromBucket when the block has no
// meta.json: it does not exist or is a partial upload.
var ErrMetaNotFound = errors.New("meta.json not found")

// DecodeMeta parses meta.json and checks its versions.
func DecodeMeta(r io.Reader) (*Meta, error) {
	var m Meta
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode meta.json: %w", err)
	}
	if m.Version != TSDBVersion1 {
		return nil, fmt.Errorf("unexpected meta.json version %d (want %d)", m.Version, TSDBVersion1)
	}
	if m.Thanos.Version != 0 && m.Thanos.Version != ThanosVersion1 {
		return nil, fmt.Errorf("unexpected meta.json thanos.version %d (want %d)", m.Thanos.Version, ThanosVersion1)
	}
	if m.Thanos.Labels == nil {
		m.Thanos.Labels = map[string]string{}
	}
	return &m, nil
}

// Encode returns meta.json content: tab-indented JSON ending with a newline.
func (m *Meta) Encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode meta.json of block %s: %w", m.ULID, err)
	}
	return buf.Bytes(), nil
}

// ReadMeta reads and checks <dir>/meta.json.
func ReadMeta(dir string) (*Meta, error) {
	f, err := os.Open(filepath.Join(dir, MetaFilename))
	if err != nil {
		return nil, fmt.Errorf("read block meta: %w", err)
	}
	defer f.Close()
	m, err := DecodeMeta(f)
	if err != nil {
		return nil, fmt.Errorf("read block meta %s: %w", f.Name(), err)
	}
	return m, nil
}

// WriteMeta writes <dir>/meta.json atomically: it writes meta.json.tmp, syncs it,
// renames it over meta.json and syncs the directory.
func WriteMeta(dir string, m *Meta) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, MetaFilename), b); err != nil {
		return fmt.Errorf("write meta.json of block %s: %w", m.ULID, err)
	}
	return nil
}

// WriteFileAtomic writes b to path through path+".tmp", fsyncing the file before the
// rename and the directory after it, so a crash leaves either the old or the new content.
func WriteFileAtomic(path string, b []byte) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

package shipper

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/oklog/ulid/v2"

	"github.com/vigilhq/vigil/internal/block"
)

// DefaultMetaFilename is the default name of the state file in the TSDB directory.
const DefaultMetaFilename = "thanos.shipper.json"

// MetaVersion1 is the state file version.
const MetaVersion1 = 1

// MetaFile is the shipper's local state, <tsdb dir>/thanos.shipper.json: the blocks still
// present locally that are known to be in the bucket. Prometheus ≥ 3.9 can read it too
// (--storage.tsdb.delay-compact-file.path).
type MetaFile struct {
	Version  int         `json:"version"`
	Uploaded []ulid.ULID `json:"uploaded"`
}

// ReadMetaFile reads a state file. A missing file returns an error matching
// os.ErrNotExist.
func ReadMetaFile(path string) (*MetaFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read shipper state: %w", err)
	}
	var m MetaFile
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read shipper state %s: decode: %w", path, err)
	}
	if m.Version != MetaVersion1 {
		return nil, fmt.Errorf("read shipper state %s: unexpected version %d (want %d)", path, m.Version, MetaVersion1)
	}
	return &m, nil
}

// WriteMetaFile writes a state file atomically (temporary file, fsync, rename, fsync of
// the directory).
func WriteMetaFile(path string, m *MetaFile) error {
	if m.Uploaded == nil {
		m.Uploaded = []ulid.ULID{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("encode shipper state: %w", err)
	}
	if err := block.WriteFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("write shipper state: %w", err)
	}
	return nil
}

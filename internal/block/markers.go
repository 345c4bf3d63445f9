package block

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// Marker file names inside a block directory.
const (
	DeletionMarkFilename     = "deletion-mark.json"
	NoCompactMarkFilename    = "no-compact-mark.json"
	NoDownsampleMarkFilename = "no-downsample-mark.json"
)

// MarkerVersion1 is the only marker version readers accept.
const MarkerVersion1 = 1

// NoCompactReason says why a block must not be compacted.
type NoCompactReason string

// No-compact reasons Thanos writes.
const (
	NoCompactManual                 NoCompactReason = "manual"
	NoCompactIndexSizeExceeding     NoCompactReason = "index-size-exceeding"
	NoCompactOutOfOrderChunks       NoCompactReason = "block-index-out-of-order-chunk"
	NoCompactDownsampleVerticalComp NoCompactReason = "downsample-vertical-compaction"
)

// NoDownsampleReason says why a block must not be downsampled.
type NoDownsampleReason string

// NoDownsampleManual is the only no-downsample reason.
const NoDownsampleManual NoDownsampleReason = "manual"

// Marker is one of the marker types: *DeletionMark, *NoCompactMark, *NoDownsampleMark.
type Marker interface {
	// Filename is the marker's file name inside the block directory.
	Filename() string
	markerVersion() int
}

// DeletionMark is deletion-mark.json. DeletionTime is in Unix seconds.
type DeletionMark struct {
	ID           ulid.ULID `json:"id"`
	Version      int       `json:"version"`
	Details      string    `json:"details,omitempty"`
	DeletionTime int64     `json:"deletion_time"`
}

// NoCompactMark is no-compact-mark.json. NoCompactTime is in Unix seconds.
type NoCompactMark struct {
	ID            ulid.ULID       `json:"id"`
	Version       int             `json:"version"`
	Details       string          `json:"details,omitempty"`
	NoCompactTime int64           `json:"no_compact_time"`
	Reason        NoCompactReason `json:"reason"`
}

// NoDownsampleMark is no-downsample-mark.json. NoDownsampleTime is in Unix seconds.
type NoDownsampleMark struct {
	ID               ulid.ULID          `json:"id"`
	Version          int                `json:"version"`
	Details          string             `json:"details,omitempty"`
	NoDownsampleTime int64              `json:"no_downsample_time"`
	Reason           NoDownsampleReason `json:"reason"`
}

// Filename implements Marker.
func (*DeletionMark) Filename() string { return DeletionMarkFilename }

// Filename implements Marker.
func (*NoCompactMark) Filename() string { return NoCompactMarkFilename }

// Filename implements Marker.
func (*NoDownsampleMark) Filename() string { return NoDownsampleMarkFilename }

func (m *DeletionMark) markerVersion() int     { return m.Version }
func (m *NoCompactMark) markerVersion() int    { return m.Version }
func (m *NoDownsampleMark) markerVersion() int { return m.Version }

// ErrMarkerNotFound is returned (wrapped) when a block has no such marker.
var ErrMarkerNotFound = errors.New("marker not found")

// MarkerError is returned when a marker exists but cannot be used: invalid (for example
// partially written) JSON or an unknown version. Callers log it and treat the block as
// unmarked.
type MarkerError struct {
	Path string
	Err  error
}

func (e *MarkerError) Error() string { return fmt.Sprintf("invalid marker %s: %v", e.Path, e.Err) }

// Unwrap returns the underlying error.
func (e *MarkerError) Unwrap() error { return e.Err }

// ReadMarker reads marker m of block id into m. It returns ErrMarkerNotFound (wrapped)
// when the marker does not exist and a *MarkerError when it is not valid.
func ReadMarker(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID, m Marker) error {
	name := path.Join(id.String(), m.Filename())
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("read %s: %w", name, ErrMarkerNotFound)
		}
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, m); err != nil {
		return &MarkerError{Path: name, Err: err}
	}
	if v := m.markerVersion(); v != MarkerVersion1 {
		return &MarkerError{Path: name, Err: fmt.Errorf("unexpected version %d (want %d)", v, MarkerVersion1)}
	}
	return nil
}

// ReadDeletionMark reads block id's deletion mark. See ReadMarker for the errors.
func ReadDeletionMark(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (*DeletionMark, error) {
	var m DeletionMark
	if err := ReadMarker(ctx, bkt, id, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// writeMarker uploads m unless the block already has that marker; it reports whether it
// wrote one.
func writeMarker(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, m Marker) (bool, error) {
	name := path.Join(id.String(), m.Filename())
	exists, err := bkt.Exists(ctx, name)
	if err != nil {
		return false, fmt.Errorf("check whether %s exists: %w", name, err)
	}
	if exists {
		return false, nil
	}
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", name, err)
	}
	if err := bkt.Upload(ctx, name, bytes.NewReader(b)); err != nil {
		return false, fmt.Errorf("upload %s: %w", name, err)
	}
	return true, nil
}

// MarkForDeletion writes block id's deletion-mark.json with the current time. It does
// nothing when the block is already marked (the first mark's time counts). Partial
// uploads (no meta.json) can be marked too.
func MarkForDeletion(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, details string) error {
	_, err := writeMarker(ctx, bkt, id, &DeletionMark{
		ID: id, Version: MarkerVersion1, Details: details, DeletionTime: time.Now().Unix(),
	})
	return err
}

// MarkForNoCompact writes block id's no-compact-mark.json unless it exists.
func MarkForNoCompact(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, reason NoCompactReason, details string) error {
	_, err := writeMarker(ctx, bkt, id, &NoCompactMark{
		ID: id, Version: MarkerVersion1, Details: details, NoCompactTime: time.Now().Unix(), Reason: reason,
	})
	return err
}

// MarkForNoDownsample writes block id's no-downsample-mark.json unless it exists.
func MarkForNoDownsample(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, reason NoDownsampleReason, details string) error {
	_, err := writeMarker(ctx, bkt, id, &NoDownsampleMark{
		ID: id, Version: MarkerVersion1, Details: details, NoDownsampleTime: time.Now().Unix(), Reason: reason,
	})
	return err
}

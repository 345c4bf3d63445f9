package bucketstore

import (
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/block"
)

// meta wraps a block's meta.json with what the store derives from it.
type meta struct {
	*block.Meta
}

func (m meta) extLabels() labels.Labels { return labels.FromMap(m.Thanos.Labels) }

// visibleSince is when the block became visible: its upload time, or its ULID time.
func (m meta) visibleSince() time.Time {
	if !m.Thanos.UploadTime.IsZero() {
		return m.Thanos.UploadTime
	}
	return ulid.Time(m.ULID.Time())
}

// segmentFiles names the chunk segment files the block should have, from meta.json.
func (m meta) segmentFiles() []string {
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

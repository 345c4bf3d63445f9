package bucketstore

import (
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/block"
)

// meta wraps a block's meta.json with what the store derives from it.
type meta struct {
	*block.Meta
}

func (m meta) extLabels() labels.Labels { return labels.FromMap(m.Thanos.Labels) }

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

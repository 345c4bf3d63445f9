package sidecar

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// converter turns remote-read series into StoreAPI series: external labels are merged in
// and win over series labels of the same name, stripped replica labels are dropped, and
// chunk encodings move to the StoreAPI enum (one lower than Prometheus').
type converter struct {
	*storeapi.ExternalLabeler
	skipChunks bool
}

func newConverter(ext labels.Labels, stripped map[string]struct{}, skipChunks bool) *converter {
	return &converter{ExternalLabeler: storeapi.NewExternalLabeler(ext, stripped), skipChunks: skipChunks}
}

// withOwnExternalLabels switches to the conservative re-sort bound (see
// storeapi.ExternalLabeler.Bound).
func (c *converter) withOwnExternalLabels() *converter {
	c.WithOwnExternalLabels()
	return c
}

// convert returns the StoreAPI series and its re-sort bound (see storeapi.Resorter).
func (c *converter) convert(raw *promclient.RawSeries) (*storepb.Series, int) {
	out := &storepb.Series{}
	out.Labels = c.mergeLabels(raw.Labels)
	bound := c.Bound(out.Labels)
	if c.skipChunks || len(raw.Chunks) == 0 {
		return out, bound
	}
	aggrs := make([]storepb.AggrChunk, len(raw.Chunks))
	chks := make([]storepb.Chunk, len(raw.Chunks))
	out.Chunks = make([]*storepb.AggrChunk, len(raw.Chunks))
	for i := range raw.Chunks {
		rc := &raw.Chunks[i]
		chks[i].Type = storepb.Chunk_Encoding(rc.Encoding - 1)
		chks[i].Data = rc.Data
		chks[i].Hash = xxhash.Sum64(rc.Data)
		aggrs[i].MinTime, aggrs[i].MaxTime, aggrs[i].Raw = rc.MinTime, rc.MaxTime, &chks[i]
		out.Chunks[i] = &aggrs[i]
	}
	return out, bound
}

// mergeLabels merges sorted series labels with the sorted kept external labels; series
// labels named like any external label are replaced (or dropped, when stripped). It works
// on remote-read labels directly to avoid building labels.Labels on the hot path.
func (c *converter) mergeLabels(in []prompb.Label) []*storepb.Label {
	ext := c.Kept()
	slab := make([]storepb.Label, 0, len(in)+len(ext))
	i, j := 0, 0
	for i < len(in) || j < len(ext) {
		switch {
		case j == len(ext) || (i < len(in) && in[i].Name < ext[j].Name):
			if !c.IsExternal(in[i].Name) {
				slab = append(slab, storepb.Label{Name: in[i].Name, Value: in[i].Value})
			}
			i++
		default:
			if i < len(in) && in[i].Name == ext[j].Name {
				i++
			}
			slab = append(slab, storepb.Label{Name: ext[j].Name, Value: ext[j].Value})
			j++
		}
	}
	out := make([]*storepb.Label, len(slab))
	for k := range slab {
		out[k] = &slab[k]
	}
	return out
}

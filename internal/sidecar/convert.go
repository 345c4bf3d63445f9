package sidecar

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// converter turns remote-read series into StoreAPI series: external labels are merged in
// and win over series labels of the same name, stripped replica labels are dropped, and
// chunk encodings move to the StoreAPI enum (one lower than Prometheus').
type converter struct {
	ext        []storepb.Label     // external labels kept on the output, sorted
	extNames   map[string]struct{} // every external label name (kept or stripped)
	skipChunks bool
}

func newConverter(ext labels.Labels, stripped map[string]struct{}, skipChunks bool) *converter {
	c := &converter{extNames: make(map[string]struct{}, ext.Len()), skipChunks: skipChunks}
	ext.Range(func(l labels.Label) {
		c.extNames[l.Name] = struct{}{}
		if _, ok := stripped[l.Name]; !ok {
			c.ext = append(c.ext, storepb.Label{Name: l.Name, Value: l.Value})
		}
	})
	return c
}

// convert returns the StoreAPI series and the length of its label prefix that ends with
// the last label the series itself contributed (see storeapi.Resorter).
func (c *converter) convert(raw *promclient.RawSeries) (*storepb.Series, int) {
	out := &storepb.Series{}
	out.Labels = c.mergeLabels(raw.Labels)
	bound := c.bound(out.Labels)
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
// labels named like any external label are replaced (or dropped, when stripped).
func (c *converter) mergeLabels(in []prompb.Label) []*storepb.Label {
	slab := make([]storepb.Label, 0, len(in)+len(c.ext))
	i, j := 0, 0
	for i < len(in) || j < len(c.ext) {
		switch {
		case j == len(c.ext) || (i < len(in) && in[i].Name < c.ext[j].Name):
			if _, isExt := c.extNames[in[i].Name]; !isExt {
				slab = append(slab, storepb.Label{Name: in[i].Name, Value: in[i].Value})
			}
			i++
		default:
			if i < len(in) && in[i].Name == c.ext[j].Name {
				i++
			}
			slab = append(slab, storepb.Label{Name: c.ext[j].Name, Value: c.ext[j].Value})
			j++
		}
	}
	out := make([]*storepb.Label, len(slab))
	for k := range slab {
		out[k] = &slab[k]
	}
	return out
}

// bound is the length of the prefix of ls that ends with its last non-external label.
func (c *converter) bound(ls []*storepb.Label) int {
	for k := len(ls) - 1; k >= 0; k-- {
		if _, isExt := c.extNames[ls[k].Name]; !isExt {
			return k + 1
		}
	}
	return 0
}

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
	minExtName string              // smallest external label name
	skipChunks bool
	// ownExt is set when stored series may carry labels named like external labels.
	// Prometheus sorted them by the values the external labels then hide, so the
	// re-sort may only trust the labels before the first external label name.
	ownExt bool
}

func newConverter(ext labels.Labels, stripped map[string]struct{}, skipChunks bool) *converter {
	c := &converter{extNames: make(map[string]struct{}, ext.Len()), skipChunks: skipChunks}
	ext.Range(func(l labels.Label) {
		if len(c.extNames) == 0 {
			c.minExtName = l.Name
		}
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

// withOwnExternalLabels switches to the conservative re-sort bound, for results in which
// some stored series have their own labels named like external labels.
func (c *converter) withOwnExternalLabels() *converter {
	c.ownExt = true
	return c
}

// bound is the length of the prefix of the final labels ls that every later series in
// stored order is known not to sort below (see storeapi.Resorter). Normally that prefix
// ends with the series' last own (non-external) label. When stored series may carry
// labels named like external labels, only the labels before the smallest external label
// name are ordered the same in stored and final form; with every external label stripped,
// a later series may even end inside that prefix, so only its first label is trusted.
func (c *converter) bound(ls []*storepb.Label) int {
	if c.ownExt {
		n := 0
		for n < len(ls) && ls[n].Name < c.minExtName {
			n++
		}
		if len(c.ext) == 0 {
			n = min(n, 1)
		}
		return n
	}
	for k := len(ls) - 1; k >= 0; k-- {
		if _, isExt := c.extNames[ls[k].Name]; !isExt {
			return k + 1
		}
	}
	return 0
}

package storeapi

import (
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// ExternalLabeler rewrites stored series labels into the labels a store serves: its
// external labels are added and win over series labels of the same name, and the
// external labels a request strips as replica labels are dropped. It also computes the
// re-sort bound the Resorter needs for each rewritten series.
type ExternalLabeler struct {
	kept    []storepb.Label     // external labels kept on the output, sorted
	names   map[string]struct{} // every external label name (kept or stripped)
	minName string              // smallest external label name
	// ownExt is set when stored series may carry labels named like external labels.
	// They were sorted by values the external labels then hide, so only the labels
	// before the smallest external label name keep their stored order.
	ownExt bool
}

// NewExternalLabeler returns a labeler for ext, dropping the external labels in stripped.
func NewExternalLabeler(ext labels.Labels, stripped map[string]struct{}) *ExternalLabeler {
	e := &ExternalLabeler{names: make(map[string]struct{}, ext.Len())}
	ext.Range(func(l labels.Label) {
		if len(e.names) == 0 {
			e.minName = l.Name
		}
		e.names[l.Name] = struct{}{}
		if _, ok := stripped[l.Name]; !ok {
			e.kept = append(e.kept, storepb.Label{Name: l.Name, Value: l.Value})
		}
	})
	return e
}

// WithOwnExternalLabels switches to the conservative re-sort bound, for data in which
// some stored series have their own labels named like external labels.
func (e *ExternalLabeler) WithOwnExternalLabels() *ExternalLabeler {
	e.ownExt = true
	return e
}

// IsExternal reports whether name is an external label name (kept or stripped).
func (e *ExternalLabeler) IsExternal(name string) bool {
	_, ok := e.names[name]
	return ok
}

// Kept returns the external labels kept on the output, sorted by name.
func (e *ExternalLabeler) Kept() []storepb.Label { return e.kept }

// Apply rewrites stored labels and returns the output labels and their re-sort bound.
func (e *ExternalLabeler) Apply(ls labels.Labels) ([]*storepb.Label, int) {
	slab := make([]storepb.Label, 0, ls.Len()+len(e.kept))
	j := 0
	ls.Range(func(l labels.Label) {
		for j < len(e.kept) && e.kept[j].Name < l.Name {
			slab = append(slab, storepb.Label{Name: e.kept[j].Name, Value: e.kept[j].Value})
			j++
		}
		if !e.IsExternal(l.Name) {
			slab = append(slab, storepb.Label{Name: l.Name, Value: l.Value})
		}
	})
	for ; j < len(e.kept); j++ {
		slab = append(slab, storepb.Label{Name: e.kept[j].Name, Value: e.kept[j].Value})
	}
	out := make([]*storepb.Label, len(slab))
	for k := range slab {
		out[k] = &slab[k]
	}
	return out, e.Bound(out)
}

// Bound is the length of the prefix of the output labels ls that every later series in
// stored order is known not to sort below (see Resorter). Normally that prefix ends with
// the series' last own (non-external) label. When stored series may carry labels named
// like external labels, only the labels before the smallest external label name are
// ordered the same in stored and output form; with every external label stripped, a
// later series may even end inside that prefix, so only its first label is trusted.
func (e *ExternalLabeler) Bound(ls []*storepb.Label) int {
	if e.ownExt {
		n := 0
		for n < len(ls) && ls[n].Name < e.minName {
			n++
		}
		if len(e.kept) == 0 {
			n = min(n, 1)
		}
		return n
	}
	for k := len(ls) - 1; k >= 0; k-- {
		if !e.IsExternal(ls[k].Name) {
			return k + 1
		}
	}
	return 0
}

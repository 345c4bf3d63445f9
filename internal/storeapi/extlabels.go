package storeapi

import (
	"github.com/prometheus/prometheus/model/labels"
)

// MatchExternalLabels applies the matchers that name external labels to the external
// label set. It reports whether the store can hold matching series at all, and returns
// the matchers left for the store's own data (those not on external labels).
func MatchExternalLabels(ext labels.Labels, ms []*labels.Matcher) (bool, []*labels.Matcher) {
	if ext.IsEmpty() {
		return true, ms
	}
	rest := make([]*labels.Matcher, 0, len(ms))
	for _, m := range ms {
		v := ext.Get(m.Name)
		if v == "" && !ext.Has(m.Name) {
			rest = append(rest, m)
			continue
		}
		if !m.Matches(v) {
			return false, nil
		}
	}
	return true, rest
}

// StripSet returns the external labels that remain after removing withoutReplica, and the
// names actually removed. Only names that are external labels are removed: a series label
// that happens to share a replica label's name is data, not a replica marker.
func StripSet(ext labels.Labels, withoutReplica []string) (kept labels.Labels, stripped map[string]struct{}) {
	if len(withoutReplica) == 0 {
		return ext, nil
	}
	stripped = make(map[string]struct{}, len(withoutReplica))
	for _, n := range withoutReplica {
		if ext.Has(n) {
			stripped[n] = struct{}{}
		}
	}
	if len(stripped) == 0 {
		return ext, nil
	}
	b := labels.NewBuilder(ext)
	for n := range stripped {
		b.Del(n)
	}
	return b.Labels(), stripped
}

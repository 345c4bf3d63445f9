package exemplarsapi

import (
	"cmp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
)

// Merge combines the exemplars of several endpoints, deduplicating HA replicas as
// Thanos's querier does (pass no replicaLabels to keep every replica apart, as
// dedup=false does). The input is not modified.
//
//   - replicaLabels are removed from the series labels; series with equal labels are
//     one, with the union of their exemplars;
//   - a series' exemplars are sorted by timestamp (then labels, then value), and equal
//     exemplars (the same one scraped by two replicas) are one;
//   - series without exemplars are left out.
//
// Series are sorted by labels.
func Merge(in []*exemplarspb.ExemplarData, replicaLabels []string) []*exemplarspb.ExemplarData {
	type series struct {
		lset      labels.Labels
		exemplars []*exemplarspb.Exemplar
	}
	byKey := map[string]*series{}
	var all []*series
	for _, d := range in {
		if len(d.GetExemplars()) == 0 {
			continue
		}
		ls := storeapi.LabelsWithout(d.GetSeriesLabels(), replicaLabels)
		k := ls.String()
		s, ok := byKey[k]
		if !ok {
			s = &series{lset: ls}
			byKey[k] = s
			all = append(all, s)
		}
		s.exemplars = append(s.exemplars, d.GetExemplars()...)
	}
	slices.SortFunc(all, func(a, b *series) int { return labels.Compare(a.lset, b.lset) })
	out := make([]*exemplarspb.ExemplarData, 0, len(all))
	for _, s := range all {
		slices.SortStableFunc(s.exemplars, compareExemplars)
		s.exemplars = slices.CompactFunc(s.exemplars, func(a, b *exemplarspb.Exemplar) bool { return compareExemplars(a, b) == 0 })
		out = append(out, &exemplarspb.ExemplarData{SeriesLabels: storeapi.LabelSet(s.lset), Exemplars: s.exemplars})
	}
	return out
}

func compareExemplars(a, b *exemplarspb.Exemplar) int {
	return cmp.Or(cmp.Compare(a.GetTs(), b.GetTs()),
		labels.Compare(storeapi.LabelsFromProto(a.GetLabels().GetLabels()), storeapi.LabelsFromProto(b.GetLabels().GetLabels())),
		cmp.Compare(a.GetValue(), b.GetValue()))
}

// QueryFor rewrites a query for an endpoint with the given external label sets, as
// Thanos's querier does, since Prometheus's exemplar API knows nothing of external
// labels: the query becomes the sum of its series selectors, each without the matchers
// on external labels the endpoint's label sets all have and match, and without the
// selectors every label set contradicts. ok is false when nothing is left to ask the
// endpoint. A selector left without matchers selects every series,
// {__name__=~".+"}. With no label sets, the selectors are kept as they are.
func QueryFor(p parser.Parser, query string, labelSets []labels.Labels) (q string, ok bool, err error) {
	expr, err := p.ParseExpr(query)
	if err != nil {
		return "", false, err
	}
	var parts []string
	for _, sel := range parser.ExtractSelectors(expr) {
		if len(labelSets) > 0 && !slices.ContainsFunc(labelSets, func(ls labels.Labels) bool { return !contradicts(ls, sel) }) {
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(sel), func(m *labels.Matcher) bool {
			return len(labelSets) > 0 && !slices.ContainsFunc(labelSets, func(ls labels.Labels) bool {
				return !ls.Has(m.Name) || !m.Matches(ls.Get(m.Name))
			})
		})
		if len(kept) == 0 {
			kept = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")}
		}
		parts = append(parts, storeapi.Selector(kept))
	}
	if len(parts) == 0 {
		return "", false, nil
	}
	return strings.Join(parts, " + "), true, nil
}

// contradicts reports whether an external label of ls fails a matcher of sel.
func contradicts(ls labels.Labels, sel []*labels.Matcher) bool {
	for _, m := range sel {
		if ls.Has(m.Name) && !m.Matches(ls.Get(m.Name)) {
			return true
		}
	}
	return false
}

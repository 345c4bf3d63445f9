package storeapi

import (
	"slices"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// LabelSet converts Prometheus labels to a wire label set.
func LabelSet(ls labels.Labels) *storepb.LabelSet {
	return &storepb.LabelSet{Labels: LabelsToProto(ls)}
}

// ExtendLabelSet returns ls, sorted by name, with the external labels added. External
// labels win over labels of the same name, as they do for series: how the APIs beside
// the StoreAPI (rules, targets, exemplars) label what a component reports.
func ExtendLabelSet(ls *storepb.LabelSet, ext labels.Labels) *storepb.LabelSet {
	b := labels.NewBuilder(LabelsFromProto(ls.GetLabels()))
	ext.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
	return LabelSet(b.Labels())
}

// LabelsWithout returns the labels of ls without those named, sorted by name: a label
// set with the replica labels removed, for deduplication.
func LabelsWithout(ls *storepb.LabelSet, names []string) labels.Labels {
	b := labels.NewScratchBuilder(len(ls.GetLabels()))
	for _, l := range ls.GetLabels() {
		if !slices.Contains(names, l.GetName()) {
			b.Add(l.GetName(), l.GetValue())
		}
	}
	b.Sort()
	return b.Labels()
}

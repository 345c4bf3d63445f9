package targetsapi

import (
	"cmp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
)

// Merge combines the targets of several endpoints into one list, deduplicating HA
// replicas as Thanos's querier does (pass no replicaLabels to keep every replica apart,
// as dedup=false does; identical targets are still one). The input is not modified.
//
//   - replicaLabels are removed from the labels and discovered labels of every target;
//   - active targets equal in scrape URL, scrape pool, discovered labels and labels are
//     one: the copy in the worst health (down, then up, then unknown) and among those
//     the one scraped last, so a target down on any replica shows as down;
//   - dropped targets equal in discovered labels are one.
//
// Active targets are sorted by scrape URL, scrape pool, discovered labels and labels;
// dropped targets by discovered labels.
func Merge(in []*targetspb.TargetDiscovery, replicaLabels []string) *targetspb.TargetDiscovery {
	type active struct {
		t          *targetspb.ActiveTarget
		disc, lset labels.Labels
	}
	type dropped struct {
		t    *targetspb.DroppedTarget
		disc labels.Labels
	}
	var (
		as []active
		ds []dropped
	)
	for _, td := range in {
		for _, t := range td.GetActiveTargets() {
			a := active{t: proto.Clone(t).(*targetspb.ActiveTarget),
				disc: storeapi.LabelsWithout(t.GetDiscoveredLabels(), replicaLabels),
				lset: storeapi.LabelsWithout(t.GetLabels(), replicaLabels)}
			a.t.DiscoveredLabels, a.t.Labels = storeapi.LabelSet(a.disc), storeapi.LabelSet(a.lset)
			as = append(as, a)
		}
		for _, t := range td.GetDroppedTargets() {
			disc := storeapi.LabelsWithout(t.GetDiscoveredLabels(), replicaLabels)
			ds = append(ds, dropped{t: &targetspb.DroppedTarget{DiscoveredLabels: storeapi.LabelSet(disc)}, disc: disc})
		}
	}
	compareActive := func(a, b active) int {
		return cmp.Or(strings.Compare(a.t.GetScrapeUrl(), b.t.GetScrapeUrl()),
			strings.Compare(a.t.GetScrapePool(), b.t.GetScrapePool()),
			labels.Compare(a.disc, b.disc), labels.Compare(a.lset, b.lset))
	}
	slices.SortStableFunc(as, func(a, b active) int {
		return cmp.Or(compareActive(a, b), compareState(a.t, b.t))
	})
	slices.SortStableFunc(ds, func(a, b dropped) int { return labels.Compare(a.disc, b.disc) })

	out := &targetspb.TargetDiscovery{
		ActiveTargets:  make([]*targetspb.ActiveTarget, 0, len(as)),
		DroppedTargets: make([]*targetspb.DroppedTarget, 0, len(ds)),
	}
	for i, a := range as {
		// The first of equal targets is the one to keep (sorted by compareState).
		if i == 0 || compareActive(as[i-1], a) != 0 {
			out.ActiveTargets = append(out.ActiveTargets, a.t)
		}
	}
	for i, d := range ds {
		if i == 0 || labels.Compare(ds[i-1].disc, d.disc) != 0 {
			out.DroppedTargets = append(out.DroppedTargets, d.t)
		}
	}
	return out
}

// compareState orders copies of a target: worst health first (DOWN, UP, UNKNOWN, the
// enum's order, as Thanos), then the last scraped first.
func compareState(a, b *targetspb.ActiveTarget) int {
	return cmp.Or(cmp.Compare(a.GetHealth(), b.GetHealth()),
		b.GetLastScrape().AsTime().Compare(a.GetLastScrape().AsTime()))
}

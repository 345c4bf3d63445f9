package rulesapi

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Merge combines the rule groups of several endpoints, deduplicating HA replicas that
// differ only in replicaLabels (pass none to keep every replica apart, as dedup=false
// does). The input is not modified.
//
//   - Groups with the same (file, name) are one group. Its interval, limit, evaluation
//     time, last evaluation and strategy are those of the member evaluated last.
//   - replicaLabels are removed from the labels of every rule and alert instance.
//   - Rules equal in type, name, labels, query and (for alerts) `for` duration are one
//     rule, as in Thanos. Of the copies, an alerting rule keeps the one in the most
//     critical state (firing, then pending, then inactive) and among those the one
//     evaluated last; a recording rule keeps the one evaluated last. Ties keep the
//     earlier copy (endpoints are asked in address order).
//   - The alert instances of an alerting rule are the union of its copies' instances,
//     one per label set: the most critical state, then the earliest activeAt. So an
//     alert firing on any replica shows as firing, active since the replica that saw
//     it first. The rule's state is raised to its most critical instance.
//
// Output is deterministic: groups sorted by file then name; rules in the order of the
// member evaluated last, followed by rules only other members have, copies of a rule
// that differ in labels (dedup off) sorted by labels; instances sorted by labels.
func Merge(groups []*rulespb.RuleGroup, replicaLabels []string) []*rulespb.RuleGroup {
	type member struct {
		g   *rulespb.RuleGroup
		pos int
	}
	byKey := map[string][]member{}
	var keys []string
	for i, g := range groups {
		k := g.GetFile() + "\xff" + g.GetName()
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], member{g: g, pos: i})
	}
	out := make([]*rulespb.RuleGroup, 0, len(keys))
	for _, k := range keys {
		ms := byKey[k]
		// The member evaluated last leads; ties keep input order.
		slices.SortStableFunc(ms, func(a, b member) int {
			return asTime(b.g.GetLastEvaluation()).Compare(asTime(a.g.GetLastEvaluation()))
		})
		lead := ms[0].g
		g := shallowGroup(lead, nil)
		rm := newRuleMerger(replicaLabels)
		for _, m := range ms {
			for _, r := range m.g.GetRules() {
				rm.add(r)
			}
		}
		g.Rules = rm.result()
		out = append(out, g)
	}
	slices.SortStableFunc(out, func(a, b *rulespb.RuleGroup) int {
		return cmp.Or(strings.Compare(a.GetFile(), b.GetFile()), strings.Compare(a.GetName(), b.GetName()))
	})
	return out
}

// ruleMerger deduplicates the rules of one group.
type ruleMerger struct {
	replicas []string
	index    map[string]int
	rules    []*rulespb.Rule
	// instances holds the alert instances of each alerting rule, by rule index.
	instances map[int]*instanceMerger
}

func newRuleMerger(replicas []string) *ruleMerger {
	return &ruleMerger{replicas: replicas, index: map[string]int{}, instances: map[int]*instanceMerger{}}
}

func (m *ruleMerger) add(r *rulespb.Rule) {
	if r.GetAlert() == nil && r.GetRecording() == nil {
		return
	}
	r = proto.Clone(r).(*rulespb.Rule)
	m.strip(r)
	k := ruleKey(r)
	i, ok := m.index[k]
	if !ok {
		i = len(m.rules)
		m.index[k] = i
		m.rules = append(m.rules, r)
	} else if better(r, m.rules[i]) {
		m.rules[i] = r
	}
	if a := r.GetAlert(); a != nil {
		im := m.instances[i]
		if im == nil {
			im = &instanceMerger{index: map[string]int{}}
			m.instances[i] = im
		}
		for _, in := range a.GetAlerts() {
			im.add(in)
		}
	}
}

// result returns the merged rules, alerting rules carrying the union of instances. A
// rule keeps the position where a rule of its type, name and query first appeared; rules
// that share it (copies that differ in labels, such as replicas without dedup) are
// ordered by labels, so the order does not depend on which endpoint answered first.
func (m *ruleMerger) result() []*rulespb.Rule {
	pos := make(map[string]int, len(m.rules))
	for i, r := range m.rules {
		if _, ok := pos[baseKey(r)]; !ok {
			pos[baseKey(r)] = i
		}
		a := r.GetAlert()
		if a == nil {
			continue
		}
		a.Alerts = m.instances[i].result()
		for _, in := range a.Alerts {
			a.State = max(a.State, in.GetState())
		}
	}
	slices.SortStableFunc(m.rules, func(a, b *rulespb.Rule) int {
		return cmp.Or(cmp.Compare(pos[baseKey(a)], pos[baseKey(b)]), labels.Compare(RuleLabels(a), RuleLabels(b)))
	})
	return m.rules
}

// baseKey is a rule's identity without its labels: type, name, query, `for`.
func baseKey(r *rulespb.Rule) string {
	if a := r.GetAlert(); a != nil {
		return "alert\xff" + a.GetName() + "\xff" + a.GetQuery() + "\xff" + strconv.FormatFloat(a.GetDurationSeconds(), 'g', -1, 64)
	}
	rr := r.GetRecording()
	return "record\xff" + rr.GetName() + "\xff" + rr.GetQuery()
}

// strip removes the replica labels from the rule and its alert instances, and sorts
// the labels by name (a peer other than Vigil may not).
func (m *ruleMerger) strip(r *rulespb.Rule) {
	if a := r.GetAlert(); a != nil {
		a.Labels = m.stripSet(a.GetLabels())
		for _, in := range a.GetAlerts() {
			in.Labels = m.stripSet(in.GetLabels())
		}
		return
	}
	rr := r.GetRecording()
	rr.Labels = m.stripSet(rr.GetLabels())
}

func (m *ruleMerger) stripSet(ls *storepb.LabelSet) *storepb.LabelSet {
	if ls == nil {
		return nil
	}
	return storeapi.LabelSet(storeapi.LabelsWithout(ls, m.replicas))
}

// ruleKey identifies a rule across replicas: type, name, query, `for` and labels.
func ruleKey(r *rulespb.Rule) string {
	return baseKey(r) + "\xff" + RuleLabels(r).String()
}

// better reports whether copy a of a rule should replace copy b.
func better(a, b *rulespb.Rule) bool {
	if aa, ba := a.GetAlert(), b.GetAlert(); aa != nil && ba != nil {
		if aa.GetState() != ba.GetState() {
			return aa.GetState() > ba.GetState()
		}
		return asTime(aa.GetLastEvaluation()).After(asTime(ba.GetLastEvaluation()))
	}
	return asTime(a.GetRecording().GetLastEvaluation()).After(asTime(b.GetRecording().GetLastEvaluation()))
}

// instanceMerger keeps one alert instance per label set.
type instanceMerger struct {
	index map[string]int
	out   []*rulespb.AlertInstance
}

func (m *instanceMerger) add(in *rulespb.AlertInstance) {
	k := storeapi.LabelsFromProto(in.GetLabels().GetLabels()).String()
	i, ok := m.index[k]
	if !ok {
		m.index[k] = len(m.out)
		m.out = append(m.out, in)
		return
	}
	cur := m.out[i]
	switch {
	case in.GetState() != cur.GetState():
		if in.GetState() > cur.GetState() {
			m.out[i] = in
		}
	case in.GetActiveAt() != nil && (cur.GetActiveAt() == nil || asTime(in.GetActiveAt()).Before(asTime(cur.GetActiveAt()))):
		m.out[i] = in
	}
}

func (m *instanceMerger) result() []*rulespb.AlertInstance {
	if m == nil {
		return nil
	}
	slices.SortStableFunc(m.out, func(a, b *rulespb.AlertInstance) int {
		return storeapi.CompareLabels(a.GetLabels().GetLabels(), b.GetLabels().GetLabels())
	})
	return m.out
}

// Alerts lists the alert instances of every alerting rule, in group and rule order, as
// /api/v1/alerts does.
func Alerts(groups []*rulespb.RuleGroup) []*rulespb.AlertInstance {
	var out []*rulespb.AlertInstance
	for _, g := range groups {
		for _, r := range g.GetRules() {
			out = append(out, r.GetAlert().GetAlerts()...)
		}
	}
	return out
}

// DedupAlerts keeps one alert instance per label set, as merging keeps one per rule: the
// most critical state, then the earliest activeAt. Deduplicated rules from different
// groups (a ruler's and a Prometheus replica's copy of the same alert) still list the
// same alert twice in /api/v1/alerts; this makes it one.
func DedupAlerts(in []*rulespb.AlertInstance) []*rulespb.AlertInstance {
	m := &instanceMerger{index: map[string]int{}}
	for _, a := range in {
		m.add(a)
	}
	return m.result()
}

// Package storeapi holds what every StoreAPI server and client shares: conversions between
// the wire types and Prometheus types, external-label pruning, the streaming re-sort of
// series whose labels were rewritten, response framing, sharding and the client.
package storeapi

import (
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// MatchersFromProto converts wire matchers to Prometheus matchers (regexps fully anchored).
func MatchersFromProto(ms []*storepb.LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(ms))
	for _, m := range ms {
		if m.GetName() == "" {
			// No series has a label without a name; a store's index cannot select by one.
			return nil, fmt.Errorf("invalid matcher %s: empty label name", matcherString(m))
		}
		var t labels.MatchType
		switch m.GetType() {
		case storepb.LabelMatcher_EQ:
			t = labels.MatchEqual
		case storepb.LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case storepb.LabelMatcher_RE:
			t = labels.MatchRegexp
		case storepb.LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("unknown matcher type %d for label %q", m.GetType(), m.GetName())
		}
		pm, err := labels.NewMatcher(t, m.GetName(), m.GetValue())
		if err != nil {
			return nil, fmt.Errorf("invalid matcher %s: %w", matcherString(m), err)
		}
		out = append(out, pm)
	}
	return out, nil
}

func matcherString(m *storepb.LabelMatcher) string {
	ops := [...]string{"=", "!=", "=~", "!~"}
	op := "?"
	if int(m.GetType()) < len(ops) {
		op = ops[m.GetType()]
	}
	return fmt.Sprintf("%s%s%q", m.GetName(), op, m.GetValue())
}

// MatchersToProto converts Prometheus matchers to wire matchers.
func MatchersToProto(ms []*labels.Matcher) []*storepb.LabelMatcher {
	out := make([]*storepb.LabelMatcher, 0, len(ms))
	for _, m := range ms {
		var t storepb.LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = storepb.LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = storepb.LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = storepb.LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = storepb.LabelMatcher_NRE
		}
		out = append(out, &storepb.LabelMatcher{Type: t, Name: m.Name, Value: m.Value})
	}
	return out
}

// Selector renders matchers as a PromQL series selector, e.g. {job="a",x=~"b.*"}.
func Selector(ms []*labels.Matcher) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(m.String())
	}
	sb.WriteByte('}')
	return sb.String()
}

// LabelsFromProto converts wire labels to Prometheus labels.
func LabelsFromProto(ls []*storepb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.GetName(), l.GetValue())
	}
	b.Sort()
	return b.Labels()
}

// LabelsToProto converts Prometheus labels to wire labels, allocating them in one slab.
func LabelsToProto(ls labels.Labels) []*storepb.Label {
	slab := make([]storepb.Label, ls.Len())
	out := make([]*storepb.Label, 0, len(slab))
	i := 0
	ls.Range(func(l labels.Label) {
		slab[i].Name, slab[i].Value = l.Name, l.Value
		out = append(out, &slab[i])
		i++
	})
	return out
}

// CompareLabels orders wire label sets as Prometheus labels.Compare does.
func CompareLabels(a, b []*storepb.Label) int {
	return comparePrefix(a, b, len(b))
}

// comparePrefix compares a with the first n labels of b.
func comparePrefix(a, b []*storepb.Label, n int) int {
	l := min(len(a), n)
	for i := 0; i < l; i++ {
		if c := strings.Compare(a[i].Name, b[i].Name); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].Value, b[i].Value); c != 0 {
			return c
		}
	}
	return len(a) - n
}

// LimitStrings cuts a label-call answer to the request's limit (0 or less: no limit).
func LimitStrings(s []string, n int64) []string {
	if n > 0 && int64(len(s)) > n {
		return s[:n]
	}
	return s
}

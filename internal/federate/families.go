package federate

import (
	"errors"
	"fmt"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
)

// ErrTooManySamples is returned when a request would hold more than
// Config.MaxSamples samples in memory at once.
var ErrTooManySamples = errors.New("federation would hold too many samples in memory (--query.max-samples)")

// group is what is held of one metric name: its untyped samples, its histograms and its
// gauge histograms, each becoming one family.
type group struct {
	name   string
	floats []*dto.Metric
	hists  []*dto.Metric
	gauges []*dto.Metric
}

func (g *group) len() int { return len(g.floats) + len(g.hists) + len(g.gauges) }

// builder turns series into metric families and writes each as soon as it is complete.
//
// Series sorted by labels are sorted by metric name as long as no label name sorts
// before __name__ (such as names starting with an upper-case letter). Those that have
// one come first in the stream: they are held in early until their name comes up, so
// that every name is written once, in order.
type builder struct {
	enc      expfmt.Encoder
	proto    bool // a protobuf format: native histograms can be written
	limit    int
	held     int
	cur      *group
	early    map[string]*group
	nameless int
	// arena holds the current group's metrics; earlyArena those of the early groups,
	// which outlive it.
	arena, earlyArena arena
}

func newBuilder(enc expfmt.Encoder, proto bool, limit int) *builder {
	return &builder{enc: enc, proto: proto, limit: limit}
}

// Label names and values shared by every series that needs them.
var (
	instanceName = model.InstanceLabel
	emptyValue   = ""
	instancePair = &dto.LabelPair{Name: &instanceName, Value: &emptyValue}
)

// add adds one series and its latest sample.
func (b *builder) add(lset labels.Labels, smp sample) error {
	if smp.h != nil && !b.proto && !smp.h.UsesCustomBuckets() {
		return nil // the text format has no native histograms (Prometheus leaves them out too)
	}
	var (
		name, first string
		hasFirst    bool
		instance    bool
		n           int
	)
	lset.Range(func(l labels.Label) {
		if !hasFirst {
			first, hasFirst = l.Name, true
		}
		switch {
		case l.Value == "": // unset
		case l.Name == model.MetricNameLabel:
			name = l.Value
		default:
			n++
			instance = instance || l.Name == model.InstanceLabel
		}
	})
	if name == "" {
		b.nameless++
		return nil
	}
	// Pick the group first: starting a new one frees the arena blocks of the last.
	var (
		g *group
		a *arena
	)
	if first < model.MetricNameLabel {
		g, a = b.earlyGroup(name), &b.earlyArena
	} else {
		if b.cur == nil || b.cur.name != name {
			if err := b.startGroup(name); err != nil {
				return err
			}
		}
		g, a = b.cur, &b.arena
	}
	// Prometheus's /federate gives series without an instance label an empty one, so
	// that a scrape with honor_labels does not attach the federated target's.
	if !instance {
		n++
	}
	m := a.metric()
	m.Label = a.pairs(n)
	i := 0
	lset.Range(func(l labels.Label) {
		if l.Value == "" || l.Name == model.MetricNameLabel {
			return
		}
		m.Label[i] = a.pair(l.Name, l.Value)
		i++
	})
	if !instance {
		m.Label[i] = instancePair
	}
	m.TimestampMs = a.int64(smp.t)
	if smp.h == nil {
		m.Untyped = a.untyped(smp.f)
	} else {
		m.Histogram = toDTO(smp.h)
	}
	switch {
	case smp.h == nil:
		g.floats = append(g.floats, m)
	case smp.h.CounterResetHint == histogram.GaugeType:
		g.gauges = append(g.gauges, m)
	default:
		g.hists = append(g.hists, m)
	}
	b.held++
	if b.limit > 0 && b.held > b.limit {
		return fmt.Errorf("%w: more than %d samples of metric %q", ErrTooManySamples, b.limit, name)
	}
	return nil
}

func (b *builder) earlyGroup(name string) *group {
	if b.early == nil {
		b.early = map[string]*group{}
	}
	g := b.early[name]
	if g == nil {
		g = &group{name: name}
		b.early[name] = g
	}
	return g
}

// startGroup writes the current group and the early groups that sort before name, and
// makes name's group current (taking over its early series, if any).
func (b *builder) startGroup(name string) error {
	if b.cur != nil {
		if err := b.write(b.cur); err != nil {
			return err
		}
		// Nothing refers to the written metrics any more: their memory is reused.
		b.arena.reset()
	}
	if err := b.writeEarly(func(n string) bool { return n < name }); err != nil {
		return err
	}
	g := b.early[name]
	if g != nil {
		delete(b.early, name)
	} else {
		g = &group{name: name}
	}
	b.cur = g
	return nil
}

// writeEarly writes the early groups whose name passes keep, in name order.
func (b *builder) writeEarly(keep func(string) bool) error {
	if len(b.early) == 0 {
		return nil
	}
	var names []string
	for n := range b.early {
		if keep(n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		g := b.early[n]
		delete(b.early, n)
		if err := b.write(g); err != nil {
			return err
		}
	}
	return nil
}

// write encodes a group's families: untyped, then histograms, then gauge histograms.
func (b *builder) write(g *group) error {
	for _, f := range []struct {
		typ     dto.MetricType
		metrics []*dto.Metric
	}{
		{dto.MetricType_UNTYPED, g.floats},
		{dto.MetricType_HISTOGRAM, g.hists},
		{dto.MetricType_GAUGE_HISTOGRAM, g.gauges},
	} {
		if len(f.metrics) == 0 {
			continue
		}
		typ := f.typ
		if err := b.enc.Encode(&dto.MetricFamily{Name: &g.name, Type: &typ, Metric: f.metrics}); err != nil {
			return fmt.Errorf("write federation response: %w", err)
		}
	}
	b.held -= g.len()
	return nil
}

// finish writes what is still held.
func (b *builder) finish() error {
	if b.cur != nil {
		if err := b.write(b.cur); err != nil {
			return err
		}
		b.cur = nil
	}
	return b.writeEarly(func(string) bool { return true })
}

// toDTO converts a histogram sample: a native histogram as such (only the protobuf
// formats carry it), one with custom buckets (NHCB) as a classic histogram, as Prometheus
// federates them.
func toDTO(h *histogram.FloatHistogram) *dto.Histogram {
	count, sum := h.Count, h.Sum
	out := &dto.Histogram{SampleCountFloat: &count, SampleSum: &sum}
	if h.UsesCustomBuckets() {
		cum := make([]float64, len(h.CustomValues))
		for it := h.PositiveBucketIterator(); it.Next(); {
			if idx := int(it.At().Index); idx < len(cum) {
				cum[idx] = it.At().Count
			}
		}
		out.Bucket = make([]*dto.Bucket, len(h.CustomValues))
		var acc float64
		for i, le := range h.CustomValues {
			acc += cum[i]
			c := acc
			out.Bucket[i] = &dto.Bucket{UpperBound: &le, CumulativeCountFloat: &c}
		}
		return out // +Inf is implied by the count
	}
	schema, zt, zc := h.Schema, h.ZeroThreshold, h.ZeroCount
	out.Schema, out.ZeroThreshold, out.ZeroCountFloat = &schema, &zt, &zc
	out.PositiveSpan, out.PositiveCount = spans(h.PositiveSpans), slices.Clone(h.PositiveBuckets)
	out.NegativeSpan, out.NegativeCount = spans(h.NegativeSpans), slices.Clone(h.NegativeBuckets)
	if len(out.PositiveSpan) == 0 && len(out.NegativeSpan) == 0 && zt == 0 && zc == 0 {
		// An empty span tells a parser that this is a native histogram even without
		// buckets (the exposition format's convention).
		off, length := int32(0), uint32(0)
		out.PositiveSpan = []*dto.BucketSpan{{Offset: &off, Length: &length}}
	}
	return out
}

func spans(in []histogram.Span) []*dto.BucketSpan {
	if len(in) == 0 {
		return nil
	}
	out := make([]*dto.BucketSpan, len(in))
	for i, s := range in {
		off, length := s.Offset, s.Length
		out[i] = &dto.BucketSpan{Offset: &off, Length: &length}
	}
	return out
}

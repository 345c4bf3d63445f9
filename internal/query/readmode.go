package query

import (
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/vigilhq/vigil/internal/seek"
)

// Counting over downsampled data.
//
// A downsampled series has one point per window, carrying the window's aggregates (count,
// sum, min, max, counter). PromQL's count_over_time counts the points it is given, so over
// 5m data it would count windows, and avg_over_time would average window averages
// without weighting them by their sample counts. Thanos answers both that way.
//
// When a query may read downsampled data, the querier rewrites them before the engine
// sees them:
//
//	count_over_time(m[r])  →  sum_over_time(m{__vigil_read__="count"}[r])
//	avg_over_time(m[r])    →  sum_over_time(m[r]) / sum_over_time(m{__vigil_read__="count"}[r])
//
// The marker matcher never reaches an endpoint: Select takes it off and reads the
// selector in count mode. There a downsampled window yields its COUNT aggregate and a raw
// sample yields 1, so the sum over a range is the number of raw samples in it, whatever
// mix of resolutions the range holds.

// readModeLabel is the marker matcher's label name; readCount its only value.
const (
	readModeLabel = "__vigil_read__"
	readCount     = "count"
)

// RewriteForDownsampling returns qs with count_over_time and avg_over_time over plain
// range selectors rewritten as above, or qs itself when it holds none or does not parse
// (then the engine reports the error on the text the user sent).
func RewriteForDownsampling(p parser.Parser, qs string) string {
	expr, err := p.ParseExpr(qs)
	if err != nil {
		return qs
	}
	changed := false
	expr = rewriteCounting(expr, &changed)
	if !changed {
		return qs
	}
	return expr.String()
}

// rewriteCounting rewrites the counting calls in the tree under e.
func rewriteCounting(e parser.Expr, changed *bool) parser.Expr {
	if call, ok := e.(*parser.Call); ok && len(call.Args) == 1 {
		if ms, ok := call.Args[0].(*parser.MatrixSelector); ok {
			switch call.Func.Name {
			case "count_over_time":
				*changed = true
				return sumOverTime(countMode(ms), call)
			case "avg_over_time":
				*changed = true
				return &parser.BinaryExpr{
					Op:             parser.DIV,
					LHS:            sumOverTime(ms, call),
					RHS:            sumOverTime(countMode(ms), call),
					VectorMatching: &parser.VectorMatching{Card: parser.CardOneToOne},
				}
			}
		}
	}
	for _, child := range parser.Children(e) {
		if ce, ok := child.(parser.Expr); ok {
			replaceChild(e, ce, rewriteCounting(ce, changed))
		}
	}
	return e
}

// sumOverTime is sum_over_time over ms, at the position of the call it replaces.
func sumOverTime(ms *parser.MatrixSelector, orig *parser.Call) *parser.Call {
	return &parser.Call{Func: parser.Functions["sum_over_time"], Args: parser.Expressions{ms}, PosRange: orig.PosRange}
}

// countMode returns a copy of ms whose selector carries the count marker.
func countMode(ms *parser.MatrixSelector) *parser.MatrixSelector {
	vs := *ms.VectorSelector.(*parser.VectorSelector)
	vs.LabelMatchers = append(append([]*labels.Matcher(nil), vs.LabelMatchers...),
		labels.MustNewMatcher(labels.MatchEqual, readModeLabel, readCount))
	out := *ms
	out.VectorSelector = &vs
	return &out
}

// replaceChild puts repl where old was among e's operands.
func replaceChild(e, old, repl parser.Expr) {
	if old == repl {
		return
	}
	switch n := e.(type) {
	case *parser.AggregateExpr:
		if n.Expr == old {
			n.Expr = repl
		}
		if n.Param == old {
			n.Param = repl
		}
	case *parser.BinaryExpr:
		if n.LHS == old {
			n.LHS = repl
		}
		if n.RHS == old {
			n.RHS = repl
		}
	case *parser.Call:
		for i, a := range n.Args {
			if a == old {
				n.Args[i] = repl
			}
		}
	case *parser.ParenExpr:
		n.Expr = repl
	case *parser.UnaryExpr:
		n.Expr = repl
	case *parser.SubqueryExpr:
		n.Expr = repl
	case *parser.StepInvariantExpr:
		n.Expr = repl
	}
}

// readMode takes the marker matcher out of ms and returns the read mode it set ("" for
// none).
func readMode(ms []*labels.Matcher) ([]*labels.Matcher, string) {
	for i, m := range ms {
		if m.Name == readModeLabel {
			return append(ms[:i:i], ms[i+1:]...), m.Value
		}
	}
	return ms, ""
}

// countingIterator reads raw samples in count mode: every sample, float or histogram, is
// a float 1, except stale markers, which stay stale so that PromQL skips them as it does
// when it counts.
type countingIterator struct {
	chunkenc.Iterator
	stale bool                      // the current sample is a stale marker
	fh    *histogram.FloatHistogram // scratch for reading a histogram's sum
}

func (c *countingIterator) Next() chunkenc.ValueType { return c.load(c.Iterator.Next()) }

func (c *countingIterator) Seek(t seek.Millis) chunkenc.ValueType { return c.load(c.Iterator.Seek(t)) }

func (c *countingIterator) load(vt chunkenc.ValueType) chunkenc.ValueType {
	switch vt {
	case chunkenc.ValNone:
		return vt
	case chunkenc.ValFloat:
		_, f := c.Iterator.At()
		c.stale = value.IsStaleNaN(f)
	default:
		_, c.fh = c.Iterator.AtFloatHistogram(c.fh)
		c.stale = value.IsStaleNaN(c.fh.Sum)
	}
	return chunkenc.ValFloat
}

func (c *countingIterator) At() (int64, float64) {
	if c.stale {
		return c.Iterator.AtT(), math.Float64frombits(value.StaleNaN)
	}
	return c.Iterator.AtT(), 1
}

func (c *countingIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("countingIterator holds floats only")
}

func (c *countingIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("countingIterator holds floats only")
}

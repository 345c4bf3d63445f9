package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// lookback is the querier's default --query.lookback-delta.
const lookback = 5 * time.Minute

// directCall is what one direct Series call to the store returned.
type directCall struct {
	took       time.Duration
	series     int
	chunkBytes int64
}

// selectors returns the vector selectors of expr with how far before the query start each
// reads (its range, or the lookback delta for instant selectors).
func selectors(expr string) ([][]*labels.Matcher, []time.Duration, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, nil, err
	}
	var ms [][]*labels.Matcher
	var back []time.Duration
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		d := lookback
		if len(path) > 0 {
			if m, ok := path[len(path)-1].(*parser.MatrixSelector); ok {
				d = m.Range
			}
		}
		ms, back = append(ms, vs.LabelMatchers), append(back, d)
		return nil
	})
	return ms, back, nil
}

// directSeries calls the store's Series for every selector of expr over the query's
// range, as the deduplicating querier asks (replica label stripped), and drains the
// streams: the store's share of the query, without PromQL and HTTP.
func directSeries(ctx context.Context, addr string, rp benchkit.RangeParams, expr string) (directCall, error) {
	var dc directCall
	sels, back, err := selectors(expr)
	if err != nil {
		return dc, err
	}
	c, err := storeapi.Dial(addr, storeapi.DialOptions(nil, "none")...)
	if err != nil {
		return dc, err
	}
	defer c.Close()
	began := time.Now()
	for i, ms := range sels {
		st, err := c.Series(ctx, &storepb.SeriesRequest{
			MinTime: rp.Start.Add(-back[i]).UnixMilli(), MaxTime: rp.End.UnixMilli(),
			Matchers: storeapi.MatchersToProto(ms), WithoutReplicaLabels: []string{"replica"},
			PartialResponseStrategy: storepb.PartialResponseStrategy_ABORT,
		})
		if err != nil {
			return dc, err
		}
		for st.Next() {
			dc.series++
			for _, ch := range st.At().Chunks {
				dc.chunkBytes += int64(len(ch.GetRaw().GetData()))
			}
		}
		if err := st.Err(); err != nil {
			return dc, fmt.Errorf("series %s: %w", storeapi.Selector(ms), err)
		}
	}
	dc.took = time.Since(began)
	return dc, nil
}

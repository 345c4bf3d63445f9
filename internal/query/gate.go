package query

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// GatedEngine bounds how many PromQL queries execute at once (--query.max-concurrent);
// further queries wait for a slot until their context ends.
type GatedEngine struct {
	promql.QueryEngine
	slots chan struct{}
}

// NewGatedEngine wraps e so that at most max queries execute concurrently.
func NewGatedEngine(e promql.QueryEngine, max int) *GatedEngine {
	if max < 1 {
		max = 1
	}
	return &GatedEngine{QueryEngine: e, slots: make(chan struct{}, max)}
}

// NewInstantQuery implements promql.QueryEngine.
func (g *GatedEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	qry, err := g.QueryEngine.NewInstantQuery(ctx, q, opts, qs, ts)
	if err != nil {
		return nil, err
	}
	return &gatedQuery{Query: qry, slots: g.slots}, nil
}

// NewRangeQuery implements promql.QueryEngine.
func (g *GatedEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	qry, err := g.QueryEngine.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	if err != nil {
		return nil, err
	}
	return &gatedQuery{Query: qry, slots: g.slots}, nil
}

type gatedQuery struct {
	promql.Query
	slots chan struct{}
}

// Exec waits for a slot, then runs the query.
func (q *gatedQuery) Exec(ctx context.Context) *promql.Result {
	select {
	case q.slots <- struct{}{}:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &promql.Result{Err: promql.ErrQueryTimeout("waiting for a query slot (--query.max-concurrent)")}
		}
		return &promql.Result{Err: promql.ErrQueryCanceled("waiting for a query slot (--query.max-concurrent)")}
	}
	defer func() { <-q.slots }()
	return q.Query.Exec(ctx)
}

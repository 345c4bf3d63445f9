// Package querytest holds test doubles for the packages built on the querier's read
// path (the query API, federation): one Recorder instead of a copy in each package's
// tests.
package querytest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/query"
)

// Recorder is a query.QueryableFactory (its Factory method) over DB that records the
// options of every call and can inject warnings, errors and hangs. Set the fields before
// the first call.
type Recorder struct {
	DB storage.Queryable

	// Warning, when set, is added to the warnings of every Select and label call.
	Warning string
	// SelectErr, when set, fails every Select and label call.
	SelectErr error
	// Block makes Select wait for its context to end.
	Block bool
	// BlockThenWarn makes Select and label calls wait for their context to end, then
	// answer nothing with a warning and no error, as a storage with partial response
	// whose endpoints did not answer in time might.
	BlockThenWarn bool

	mu   sync.Mutex
	opts []query.Options
}

// Factory records o and returns DB with the injected behaviour.
func (r *Recorder) Factory(o query.Options) storage.Queryable {
	r.mu.Lock()
	r.opts = append(r.opts, o)
	r.mu.Unlock()
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		q, err := r.DB.Querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		return &querier{Querier: q, r: r}, nil
	})
}

// Last returns the options of the latest call; it fails the test if there was none.
func (r *Recorder) Last(t testing.TB) query.Options {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.opts) == 0 {
		t.Fatal("QueryableFactory was not called")
	}
	return r.opts[len(r.opts)-1]
}

type querier struct {
	storage.Querier
	r *Recorder
}

func (q *querier) annos() annotations.Annotations {
	var a annotations.Annotations
	if q.r.Warning != "" {
		a.Add(errors.New(q.r.Warning))
	}
	return a
}

func (q *querier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if q.r.Block {
		<-ctx.Done()
		return storage.ErrSeriesSet(ctx.Err())
	}
	if q.r.BlockThenWarn {
		<-ctx.Done()
		return &warnSet{SeriesSet: storage.EmptySeriesSet(), extra: annotations.New().Add(errors.New("endpoint gone quiet"))}
	}
	if q.r.SelectErr != nil {
		return storage.ErrSeriesSet(q.r.SelectErr)
	}
	return &warnSet{SeriesSet: q.Querier.Select(ctx, sorted, hints, ms...), extra: q.annos()}
}

func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if q.r.BlockThenWarn {
		<-ctx.Done()
		return nil, annotations.New().Add(errors.New("endpoint gone quiet")), nil
	}
	if q.r.SelectErr != nil {
		return nil, nil, q.r.SelectErr
	}
	names, w, err := q.Querier.LabelNames(ctx, hints, ms...)
	return names, w.Merge(q.annos()), err
}

func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if q.r.SelectErr != nil {
		return nil, nil, q.r.SelectErr
	}
	vals, w, err := q.Querier.LabelValues(ctx, name, hints, ms...)
	return vals, w.Merge(q.annos()), err
}

// warnSet adds warnings to a series set's own.
type warnSet struct {
	storage.SeriesSet
	extra annotations.Annotations
}

func (s *warnSet) Warnings() annotations.Annotations {
	w := s.SeriesSet.Warnings()
	return w.Merge(s.extra)
}

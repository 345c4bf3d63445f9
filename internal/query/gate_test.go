package query

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// blockingQueryable blocks every Select until release is closed.
type blockingQueryable struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingQueryable) Querier(int64, int64) (storage.Querier, error) { return b, nil }
func (b *blockingQueryable) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	b.entered <- struct{}{}
	<-b.release
	return storage.EmptySeriesSet()
}
func (*blockingQueryable) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (*blockingQueryable) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (*blockingQueryable) Close() error { return nil }

func TestGatedEngineBoundsConcurrency(t *testing.T) {
	g := NewGatedEngine(testEngine, 1)
	bq := &blockingQueryable{entered: make(chan struct{}, 1), release: make(chan struct{})}
	ctx := context.Background()
	newQ := func() promql.Query {
		q, err := g.NewInstantQuery(ctx, bq, nil, "up", time.Unix(1000, 0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(q.Close)
		return q
	}
	first := make(chan *promql.Result, 1)
	go func() { first <- newQ().Exec(ctx) }()
	<-bq.entered // the first query holds the only slot

	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	var timeout promql.ErrQueryTimeout
	if res := newQ().Exec(tctx); !errors.As(res.Err, &timeout) {
		t.Fatalf("waiting past the deadline: %v, want ErrQueryTimeout", res.Err)
	}
	cctx, cancel2 := context.WithCancel(ctx)
	cancel2()
	var canceled promql.ErrQueryCanceled
	if res := newQ().Exec(cctx); !errors.As(res.Err, &canceled) {
		t.Fatalf("canceled while waiting: %v, want ErrQueryCanceled", res.Err)
	}

	close(bq.release)
	if res := <-first; res.Err != nil {
		t.Fatal(res.Err)
	}
	// The slot is free again.
	done := make(chan *promql.Result, 1)
	go func() { done <- newQ().Exec(ctx) }()
	select {
	case res := <-done:
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("slot not released")
	}
}

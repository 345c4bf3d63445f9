package query

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// An endpoint still streaming when the request's deadline passes fails the request, with
// partial response too: the answer would otherwise lack that endpoint's series and look
// complete.
func TestMergeStreamRequestDeadlineIsAnError(t *testing.T) {
	stuck := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 5, 1, 0)...)
	stuck.block, stuck.blockAfter = true, 2
	good := newFakeStore(labels.FromStrings("replica", "b"), numbered(t, "up", 5, 1, 0)...)
	p, _ := proxyOver(t, 0, stuck, good)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req := seriesReq(eq("__name__", "up"))
	req.PartialResponseStrategy = storepb.PartialResponseStrategy_WARN
	m, err := p.Series(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	drainWithin(t, m, 5*time.Second)
	if !errors.Is(m.Err(), context.DeadlineExceeded) {
		t.Fatalf("err = %v, want one wrapping context.DeadlineExceeded", m.Err())
	}
}

// A response timeout (the endpoint's fault) stays a warning under partial response,
// while the request still has time.
func TestMergeStreamResponseTimeoutBeforeDeadlineIsAWarning(t *testing.T) {
	stuck := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 5, 1, 0)...)
	stuck.block, stuck.blockAfter = true, 2
	good := newFakeStore(labels.FromStrings("replica", "b"), numbered(t, "up", 5, 1, 0)...)
	p, _ := proxyOver(t, 100*time.Millisecond, stuck, good)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := p.Series(ctx, seriesReq(eq("__name__", "up")), nil)
	if err != nil {
		t.Fatal(err)
	}
	drainWithin(t, m, 5*time.Second)
	if m.Err() != nil || len(m.Warnings()) != 1 {
		t.Fatalf("err %v, warnings %q; want no error and one warning", m.Err(), m.Warnings())
	}
}

// deadlineStream is a Series server stream whose context has the request's deadline.
type deadlineStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent int
}

func (s *deadlineStream) Context() context.Context { return s.ctx }
func (s *deadlineStream) Send(*storepb.SeriesResponse) error {
	s.sent++
	return nil
}

// The StoreAPI the querier serves reports the caller's deadline as DeadlineExceeded, so
// that a querier above it sees a timeout, not an answer with a warning.
func TestStoreServerDeadlineCodes(t *testing.T) {
	stuck := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 5, 1, 0)...)
	stuck.block, stuck.blockAfter = true, 2
	p, _ := proxyOver(t, 0, stuck)
	s := NewStoreServer(p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req := seriesReq(eq("__name__", "up"))
	req.PartialResponseStrategy = storepb.PartialResponseStrategy_WARN
	ds := &deadlineStream{ctx: ctx}
	err := s.Series(req, ds)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Series past its deadline: %v after %d frames (context: %v), want code DeadlineExceeded", err, ds.sent, ctx.Err())
	}
	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	_, err = s.LabelNames(canceled, &storepb.LabelNamesRequest{PartialResponseStrategy: storepb.PartialResponseStrategy_WARN})
	if status.Code(err) != codes.Canceled {
		t.Fatalf("LabelNames of a canceled request: %v, want code Canceled", err)
	}
}

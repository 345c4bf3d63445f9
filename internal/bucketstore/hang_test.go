package bucketstore

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// An object store that hangs while the index reader reads postings must not keep a
// request that gave up stuck (the reader's reads carry no context of their own): the
// bucket read ends with the request, which answers with its deadline, and the store
// serves normally once the bucket does.
func TestHangingIndexReadEndsWithTheRequest(t *testing.T) {
	cb := &countingBucket{Bucket: newBucket(t)}
	writeBlock(t, cb, map[string]string{"replica": "a"}, 200, 0, twoHours)
	// A cache smaller than the index, so that queries read postings from the bucket.
	s := startStore(t, cb, Config{IndexCacheSize: 1024})
	cb.hangIndex.Store(true)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.LabelValues(ctx, &storepb.LabelValuesRequest{Label: "i", End: math.MaxInt64, Matchers: matchName("m")})
		done <- err
	}()
	select {
	case err := <-done:
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("LabelValues over a hanging bucket: %v, want code DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LabelValues still waits on the hanging bucket 10s after its deadline")
	}

	// Over gRPC the client returns at its deadline anyway: what matters is that the
	// server's read does not hang on.
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer scancel()
	st, err := s.client.Series(sctx, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m")})
	if err == nil {
		for st.Next() {
		}
		err = st.Err()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Series over a hanging bucket: %v, want code DeadlineExceeded", err)
	}
	waitHanging(t, cb)
	for _, b := range s.blocks {
		if err := b.ri.err(); err != nil {
			t.Errorf("block %s keeps %q as its last bucket error: the requests' own end, not the bucket's", b.id, err)
		}
	}

	cb.hangIndex.Store(false)
	if got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m")}); err != nil || len(got) != 200 {
		t.Fatalf("after the bucket recovered: %d series, %v", len(got), err)
	}
}

func waitHanging(t *testing.T, cb *countingBucket) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for cb.hanging.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bucket reads still hanging after their request ended", cb.hanging.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The context of an index read ends when the last request reading has ended or given
// up, not before: another request may still wait for the same read.
func TestIndexReadersContext(t *testing.T) {
	var rs readers
	if rs.fetchContext().Done() != nil {
		t.Fatal("a read outside any request must not end")
	}
	a, cancelA := context.WithCancel(context.Background())
	leaveA := rs.join(a)
	leaveB := rs.join(context.Background())
	fctx := rs.fetchContext()
	cancelA()
	time.Sleep(10 * time.Millisecond) // AfterFunc runs on its own goroutine
	if fctx.Err() != nil {
		t.Fatal("the read ended while request B still reads")
	}
	leaveA() // after its cancellation: counted once
	if fctx.Err() != nil {
		t.Fatal("leaving twice counted twice")
	}
	leaveB()
	if !errors.Is(fctx.Err(), context.Canceled) {
		t.Fatal("the read goes on after every request left")
	}
	if rs.fetchContext().Done() != nil {
		t.Fatal("a read after every request left must not end")
	}
	leaveC := rs.join(context.Background())
	if rs.fetchContext().Err() != nil {
		t.Fatal("a new request reads with a context already ended")
	}
	leaveC()
}

package tsdbstore

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// fakeSeriesServer is a Series stream without a network, for calling handlers directly.
type fakeSeriesServer struct {
	grpc.ServerStream // nil: only Send and Context are used
	ctx               context.Context
	send              func(*storepb.SeriesResponse) error
}

func (f *fakeSeriesServer) Context() context.Context                { return f.ctx }
func (f *fakeSeriesServer) Send(resp *storepb.SeriesResponse) error { return f.send(resp) }

// manySeries fills a head with n series up{i} of samples samples each.
func manySeries(tb testing.TB, n, samples int) *tsdb.DB {
	tb.Helper()
	db := openDB(tb, "", nil)
	app := db.Appender(context.Background())
	for i := range n {
		lset := labels.FromStrings("__name__", "up", "instance", fmt.Sprintf("host-%05d:9100", i), "job", "node")
		ref, err := app.Append(0, lset, 0, float64(i))
		if err != nil {
			tb.Fatal(err)
		}
		for k := 1; k < samples; k++ {
			if _, err := app.Append(ref, lset, int64(k)*step, float64(i+k)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		tb.Fatal(err)
	}
	return db
}

func TestSeriesEndsWhenTheClientCancels(t *testing.T) {
	s := New(manySeries(t, 2000, 10), tenantExt, Options{})
	c := serveStore(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := c.Series(ctx, allTime(eq("__name__", "up")))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Next() {
		t.Fatalf("no first series: %v", st.Err())
	}
	cancel()
	for st.Next() {
	}
	wantCode(t, st.Err(), codes.Canceled)

	// The handler itself stops reading soon after the context ends, also while its sends
	// still succeed.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	sent := 0
	srv := &fakeSeriesServer{ctx: ctx, send: func(*storepb.SeriesResponse) error {
		if sent++; sent == 1 {
			cancel()
		}
		return nil
	}}
	wantCode(t, s.Series(allTime(eq("__name__", "up")), srv), codes.Canceled)
	if sent > checkCtxEvery+2 {
		t.Errorf("%d series sent after the context ended", sent)
	}
}

func TestSeriesWhileAppending(t *testing.T) {
	db := openDB(t, "", nil)
	lset := labels.FromStrings("__name__", "live")
	all := floats(0, 600, 3)
	appendSeries(t, db, lset, all[:1])
	c := serveStore(t, New(db, tenantExt, Options{}))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // appends into the open head chunk while it is being read
		defer wg.Done()
		for _, s := range all[1:] {
			app := db.Appender(context.Background())
			if _, err := app.Append(0, lset, s.t, s.f); err != nil {
				t.Errorf("append %s: %v", s, err)
				return
			}
			if err := app.Commit(); err != nil {
				t.Errorf("commit %s: %v", s, err)
				return
			}
		}
	}()
	for range 50 {
		got := mustCollect(t, c, allTime(eq("__name__", "live")))
		if len(got) != 1 {
			t.Fatalf("got %q", labelStrings(got))
		}
		ss := decode(t, got[0])
		if err := sameSamples(ss, all[:len(ss)]); err != nil {
			t.Fatalf("read while appending: %v", err)
		}
	}
	wg.Wait()
}

// BenchmarkSeries reads 10k head series of 120 samples each (one open head chunk each),
// over loopback gRPC and straight from the handler.
func BenchmarkSeries(b *testing.B) {
	const n = 10_000
	s := New(manySeries(b, n, 120), tenantExt, Options{})
	c := serveStore(b, s)
	for _, tc := range []struct {
		name string
		req  func() *storepb.SeriesRequest
	}{
		{"chunks", func() *storepb.SeriesRequest { return allTime(eq("__name__", "up")) }},
		{"skip_chunks", func() *storepb.SeriesRequest { r := allTime(eq("__name__", "up")); r.SkipChunks = true; return r }},
		{"batch64", func() *storepb.SeriesRequest { r := allTime(eq("__name__", "up")); r.ResponseBatchSize = 64; return r }},
	} {
		b.Run("grpc/"+tc.name, func(b *testing.B) {
			for b.Loop() {
				st, err := c.Series(context.Background(), tc.req())
				if err != nil {
					b.Fatal(err)
				}
				got := 0
				for st.Next() {
					got++
				}
				if st.Err() != nil || got != n {
					b.Fatalf("%d series, error %v", got, st.Err())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
		})
		b.Run("direct/"+tc.name, func(b *testing.B) {
			srv := &fakeSeriesServer{ctx: context.Background(), send: func(*storepb.SeriesResponse) error { return nil }}
			for b.Loop() {
				if err := s.Series(tc.req(), srv); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
		})
	}
}

package query

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// numbered returns n series {__name__=name, i="<prefix><k>"} for k in [0,n) with k%mod==rem,
// each with one chunk whose value is k.
func numbered(tb testing.TB, name string, n, mod, rem int) []fakeSeries {
	var out []fakeSeries
	for k := 0; k < n; k++ {
		if k%mod == rem {
			out = append(out, fakeSeries{
				lset:   labels.FromStrings("__name__", name, "i", fmt.Sprintf("%05d", k)),
				chunks: []*storepb.AggrChunk{xorChunk(tb, []sample{{1000, float64(k)}})},
			})
		}
	}
	return out
}

func proxyOver(tb testing.TB, timeout time.Duration, fakes ...*fakeStore) (*Proxy, []string) {
	var addrs []string
	for _, f := range fakes {
		addrs = append(addrs, serveFake(tb, f))
	}
	set := newSet(tb, addrs...)
	mustHealthy(tb, set, len(fakes))
	return NewProxy(set, timeout, discard), addrs
}

func mustSeries(tb testing.TB, p *Proxy, req *storepb.SeriesRequest) *MergeStream {
	tb.Helper()
	m, err := p.Series(context.Background(), req, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestMergeStreamKWaySorted(t *testing.T) {
	for _, batch := range []int64{0, 7} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			var fakes []*fakeStore
			for r := range 3 {
				fakes = append(fakes, newFakeStore(labels.EmptyLabels(), numbered(t, "m", 300, 3, r)...))
			}
			p, _ := proxyOver(t, 0, fakes...)
			req := seriesReq(eq("__name__", "m"))
			req.ResponseBatchSize = batch
			m := mustSeries(t, p, req)
			got := drain(m)
			if m.Err() != nil || len(m.Warnings()) != 0 {
				t.Fatalf("err %v, warnings %v", m.Err(), m.Warnings())
			}
			if len(got) != 300 {
				t.Fatalf("got %d series, want 300", len(got))
			}
			for k, s := range got {
				if want := fmt.Sprintf("%05d", k); s.lset.Get("i") != want || s.nsrc != 1 || len(s.chunks[0]) != 1 {
					t.Fatalf("series %d = %v with %d sources, want i=%s", k, s.lset, s.nsrc, want)
				}
				if k > 0 && labels.Compare(got[k-1].lset, s.lset) >= 0 {
					t.Fatalf("not sorted at %d: %v then %v", k, got[k-1].lset, s.lset)
				}
			}
		})
	}
}

func TestMergeStreamEqualLabelsBecomeSources(t *testing.T) {
	up := labels.FromStrings("__name__", "up", "job", "x")
	c0, c1 := xorChunk(t, []sample{{1000, 1}}), xorChunk(t, []sample{{1005, 1}})
	a := newFakeStore(labels.EmptyLabels(), fakeSeries{lset: up, chunks: []*storepb.AggrChunk{c0}},
		fakeSeries{lset: labels.FromStrings("__name__", "up", "job", "a")})
	b := newFakeStore(labels.EmptyLabels(), fakeSeries{lset: up, chunks: []*storepb.AggrChunk{c1}},
		fakeSeries{lset: labels.FromStrings("__name__", "up", "job", "z")})
	p, addrs := proxyOver(t, 0, a, b)
	got := drain(mustSeries(t, p, seriesReq(eq("__name__", "up"))))
	if len(got) != 3 || got[0].lset.Get("job") != "a" || got[2].lset.Get("job") != "z" {
		t.Fatalf("series = %v", got)
	}
	s := got[1]
	if !labels.Equal(s.lset, up) || s.nsrc != 2 {
		t.Fatalf("merged = %v with %d sources", s.lset, s.nsrc)
	}
	// Sources follow the endpoints' address order.
	want := [][]*storepb.AggrChunk{{c0}, {c1}}
	if addrs[0] > addrs[1] {
		want[0], want[1] = want[1], want[0]
	}
	for i := range want {
		if len(s.chunks[i]) != 1 || s.chunks[i][0].Raw.Hash != want[i][0].Raw.Hash {
			t.Fatalf("source %d = %v", i, spans(s.chunks[i]))
		}
	}
}

func TestMergeStreamJoinsSplitSeries(t *testing.T) {
	up := labels.FromStrings("__name__", "up")
	chks := chunked(t, genSamples(0, 1190, 10, tenth, nil), 40)
	a := newFakeStore(labels.EmptyLabels(), fakeSeries{lset: up, chunks: chks},
		fakeSeries{lset: labels.FromStrings("__name__", "up", "z", "1"), chunks: chks})
	a.split = true
	b := newFakeStore(labels.EmptyLabels(), fakeSeries{lset: up, chunks: chks[:1]})
	p, addrs := proxyOver(t, 0, a, b)
	got := drain(mustSeries(t, p, seriesReq(eq("__name__", "up"))))
	if len(got) != 2 || got[0].nsrc != 2 || got[1].nsrc != 1 {
		t.Fatalf("series = %v", got)
	}
	fromA := got[0].chunks[0]
	if addrs[0] > addrs[1] {
		fromA = got[0].chunks[1]
	}
	if !slices.Equal(fromA, chks) && !slices.EqualFunc(spans(fromA), spans(chks), func(x, y [2]int64) bool { return x == y }) {
		t.Fatalf("split series joined as %v, want %v", spans(fromA), spans(chks))
	}
	if !slices.Equal(spans(got[1].chunks[0]), spans(chks)) {
		t.Fatalf("second split series = %v", spans(got[1].chunks[0]))
	}
}

func outOfOrderStore(block bool) *fakeStore {
	bad := newFakeStore(labels.EmptyLabels(), fakeSeries{lset: labels.FromStrings("__name__", "up", "i", "2")},
		fakeSeries{lset: labels.FromStrings("__name__", "up", "i", "1")}, fakeSeries{lset: labels.FromStrings("__name__", "up", "i", "3")})
	bad.unsorted = true
	// Blocking after the bad pair keeps the pump alive until Close (see the race below).
	bad.block, bad.blockAfter = block, 2
	return bad
}

func TestMergeStreamOutOfOrderEndpoint(t *testing.T) {
	good := newFakeStore(labels.EmptyLabels(), numbered(t, "up", 5, 1, 0)...)
	p, _ := proxyOver(t, 0, outOfOrderStore(true), good)
	m := mustSeries(t, p, seriesReq(eq("__name__", "up"))) // WARN: still an error
	drainWithin(t, m, 5*time.Second)
	if m.Err() == nil || !strings.Contains(m.Err().Error(), "out of order") {
		t.Fatalf("err = %v, want out of order", m.Err())
	}
}

// Out-of-order detection while the endpoint's pump is finishing must not race with it
// (regression, visible under -race: advance wrote s.err while the pump wrote es.err).
func TestMergeStreamOutOfOrderRace(t *testing.T) {
	p, _ := proxyOver(t, 0, outOfOrderStore(false))
	for range 20 {
		m := mustSeries(t, p, seriesReq(eq("__name__", "up")))
		drain(m)
		if m.Err() == nil {
			t.Fatal("no out-of-order error")
		}
	}
}

func TestMergeStreamEndpointFailure(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     codes.Code
		strategy storepb.PartialResponseStrategy
		wantErr  bool
	}{
		{"warn", codes.Internal, storepb.PartialResponseStrategy_WARN, false},
		{"abort", codes.Internal, storepb.PartialResponseStrategy_ABORT, true},
		{"resource exhausted fails even with warn", codes.ResourceExhausted, storepb.PartialResponseStrategy_WARN, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failing := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 10, 1, 0)...)
			failing.err, failing.errAfter = status.Error(tc.code, "boom"), 3
			good := newFakeStore(labels.FromStrings("replica", "b"), numbered(t, "up", 10, 1, 0)...)
			p, _ := proxyOver(t, 0, failing, good)
			req := seriesReq(eq("__name__", "up"))
			req.PartialResponseStrategy = tc.strategy
			m := mustSeries(t, p, req)
			got := drain(m)
			if tc.wantErr {
				if m.Err() == nil || !strings.Contains(m.Err().Error(), "boom") {
					t.Fatalf("err = %v, want boom", m.Err())
				}
				return
			}
			if m.Err() != nil {
				t.Fatal(m.Err())
			}
			fromGood := 0
			for _, s := range got {
				if s.lset.Get("replica") == "b" {
					fromGood++
				}
			}
			if fromGood != 10 || len(got) != 13 {
				t.Fatalf("got %d series (%d from the good endpoint), want 13 (10)", len(got), fromGood)
			}
			if ws := m.Warnings(); len(ws) != 1 || !strings.Contains(ws[0], "boom") {
				t.Fatalf("warnings = %q", ws)
			}
		})
	}
}

func TestMergeStreamEndpointWarnings(t *testing.T) {
	for _, strategy := range []storepb.PartialResponseStrategy{storepb.PartialResponseStrategy_WARN, storepb.PartialResponseStrategy_ABORT} {
		t.Run(strategy.String(), func(t *testing.T) {
			a := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 5, 1, 0)...)
			a.warnings = []string{"block 01X is being compacted"}
			b := newFakeStore(labels.FromStrings("replica", "b"), numbered(t, "up", 5, 1, 0)...)
			p, _ := proxyOver(t, 0, a, b)
			req := seriesReq(eq("__name__", "up"))
			req.PartialResponseStrategy = strategy
			m := mustSeries(t, p, req)
			got := drain(m)
			if strategy == storepb.PartialResponseStrategy_ABORT {
				if m.Err() == nil || !strings.Contains(m.Err().Error(), "compacted") {
					t.Fatalf("err = %v, want the warning as an error", m.Err())
				}
				return
			}
			if m.Err() != nil || len(got) != 10 {
				t.Fatalf("err %v, %d series", m.Err(), len(got))
			}
			if ws := m.Warnings(); !slices.Equal(ws, []string{"block 01X is being compacted"}) {
				t.Fatalf("warnings = %q", ws)
			}
		})
	}
}

// BUG (proxy.go, MergeStream.advance): with ABORT, the first endpoint error closes the
// stream (m.Close cancels the other pumps), and advancing the next endpoint then finds its
// "context canceled" error and overwrites m.err with it. The caller sees
// "endpoint <healthy one>: context canceled" instead of the cause (here "boom"); through
// StoreServer the status code becomes Canceled. Happens when the failing endpoint comes
// before a still-streaming one in address order (the initial advance loop in Next, or the
// merge loop when both hold the current series).
func TestMergeStreamAbortKeepsFirstError(t *testing.T) {
	l1, l2 := listen(t), listen(t)
	if l1.Addr().String() > l2.Addr().String() {
		l1, l2 = l2, l1
	}
	failing := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 10, 1, 0)...)
	failing.err = status.Error(codes.Internal, "boom")
	streaming := newFakeStore(labels.FromStrings("replica", "b"), numbered(t, "up", 10, 1, 0)...)
	streaming.block, streaming.blockAfter = true, 1 // still streaming when the abort comes
	set := newSet(t, serveOn(t, l1, failing, failing), serveOn(t, l2, streaming, streaming))
	p := NewProxy(set, 0, discard)
	req := seriesReq(eq("__name__", "up"))
	req.PartialResponseStrategy = storepb.PartialResponseStrategy_ABORT
	m := mustSeries(t, p, req)
	drainWithin(t, m, 5*time.Second)
	if m.Err() == nil || !strings.Contains(m.Err().Error(), "boom") || status.Code(m.Err()) != codes.Internal {
		t.Fatalf("err = %v (code %v), want the failing endpoint's Internal boom", m.Err(), status.Code(m.Err()))
	}
}

// drainWithin drains m on another goroutine and fails if that takes longer than d.
func drainWithin(t *testing.T, m *MergeStream, d time.Duration) []merged {
	t.Helper()
	done := make(chan []merged, 1)
	go func() { done <- drain(m) }()
	select {
	case got := <-done:
		return got
	case <-time.After(d):
		t.Fatalf("merge stream did not finish within %s", d)
		return nil
	}
}

func TestMergeStreamResponseTimeout(t *testing.T) {
	for _, strategy := range []storepb.PartialResponseStrategy{storepb.PartialResponseStrategy_WARN, storepb.PartialResponseStrategy_ABORT} {
		t.Run(strategy.String(), func(t *testing.T) {
			stuck := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 5, 1, 0)...)
			stuck.block, stuck.blockAfter = true, 2
			good := newFakeStore(labels.FromStrings("replica", "b"), numbered(t, "up", 5, 1, 0)...)
			p, _ := proxyOver(t, 200*time.Millisecond, stuck, good)
			req := seriesReq(eq("__name__", "up"))
			req.PartialResponseStrategy = strategy
			m := mustSeries(t, p, req)
			got := drainWithin(t, m, 5*time.Second)
			if strategy == storepb.PartialResponseStrategy_ABORT {
				if m.Err() == nil || !strings.Contains(m.Err().Error(), "response-timeout") {
					t.Fatalf("err = %v", m.Err())
				}
				return
			}
			if m.Err() != nil || len(got) != 7 {
				t.Fatalf("err %v, %d series, want 7", m.Err(), len(got))
			}
			if ws := m.Warnings(); len(ws) != 1 || !strings.Contains(ws[0], "response-timeout") {
				t.Fatalf("warnings = %q", ws)
			}
		})
	}
}

// The response timeout bounds each frame, not the whole stream.
func TestMergeStreamResponseTimeoutIsPerFrame(t *testing.T) {
	slow := newFakeStore(labels.EmptyLabels(), numbered(t, "up", 8, 1, 0)...)
	slow.frameDelay = 60 * time.Millisecond // 480ms in all
	p, _ := proxyOver(t, 300*time.Millisecond, slow)
	m := mustSeries(t, p, seriesReq(eq("__name__", "up")))
	if got := drainWithin(t, m, 5*time.Second); len(got) != 8 || len(m.Warnings()) != 0 || m.Err() != nil {
		t.Fatalf("%d series, warnings %q, err %v", len(got), m.Warnings(), m.Err())
	}
}

// The response timeout must not count time the pump spends blocked handing a frame to a
// slow merge (regression: it did, cutting off endpoints that had answered promptly). Here
// b's series all sort after a's; while a's 300 series are read slowly, b's pump waits on
// its full channel for longer than the timeout.
func TestMergeStreamResponseTimeoutIgnoresSlowConsumer(t *testing.T) {
	a := newFakeStore(labels.EmptyLabels(), numbered(t, "a", 300, 1, 0)...)
	b := newFakeStore(labels.EmptyLabels(), numbered(t, "b", 300, 1, 0)...)
	p, _ := proxyOver(t, 300*time.Millisecond, a, b)
	m := mustSeries(t, p, seriesReq(labels.MustNewMatcher(labels.MatchRegexp, "__name__", "a|b")))
	defer m.Close()
	n := 0
	for m.Next() {
		if n++; n <= 300 {
			time.Sleep(3 * time.Millisecond) // a slow consumer (PromQL, a slow gRPC client of StoreServer)
		}
	}
	if n != 600 || m.Err() != nil || len(m.Warnings()) != 0 {
		t.Fatalf("got %d series of 600, err %v, warnings %q", n, m.Err(), m.Warnings())
	}
}

// Warnings is idempotent and drops duplicates (regression: slices.Compact in place
// zeroed the tail of m.warnings, so a second call returned an empty-string warning).
func TestMergeStreamWarningsIdempotent(t *testing.T) {
	a := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 2, 1, 0)...)
	b := newFakeStore(labels.FromStrings("replica", "b"), numbered(t, "up", 2, 1, 0)...)
	a.warnings, b.warnings = []string{"same"}, []string{"same"}
	p, _ := proxyOver(t, 0, a, b)
	m := mustSeries(t, p, seriesReq(eq("__name__", "up")))
	drain(m)
	first := slices.Clone(m.Warnings())
	if second := m.Warnings(); !slices.Equal(first, second) || !slices.Equal(first, []string{"same"}) {
		t.Fatalf("first Warnings() = %q, second = %q", first, second)
	}
}

func TestMergeStreamCloseDoesNotLeak(t *testing.T) {
	big := newFakeStore(labels.FromStrings("replica", "a"), numbered(t, "up", 5000, 1, 0)...)
	stuck := newFakeStore(labels.FromStrings("replica", "b"), numbered(t, "up", 100, 1, 0)...)
	stuck.block, stuck.blockAfter = true, 50 // the merge can go on up to i=00049
	p, _ := proxyOver(t, 0, big, stuck)
	req := seriesReq(eq("__name__", "up"))
	// Warm up connections so that the baseline counts them.
	drain(mustSeries(t, p, seriesReq(eq("__name__", "none"))))
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()

	for _, reads := range []int{0, 1, 60} {
		m := mustSeries(t, p, req)
		for i := 0; i < reads && m.Next(); i++ {
		}
		done := make(chan struct{})
		go func() { m.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Close after %d series deadlocked", reads)
		}
		waitGoroutines(t, base)
	}
}

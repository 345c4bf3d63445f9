package tsdbstore

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// step is the sample interval of test data, in milliseconds.
const step = 15_000

// sample is one appended or decoded sample: a float, or one kind of histogram.
type sample struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s sample) equal(o sample) bool {
	switch {
	case s.t != o.t:
		return false
	case s.h != nil:
		return o.h != nil && s.h.Equals(o.h)
	case s.fh != nil:
		return o.fh != nil && s.fh.Equals(o.fh)
	}
	return o.h == nil && o.fh == nil && math.Float64bits(s.f) == math.Float64bits(o.f)
}

func (s sample) String() string {
	switch {
	case s.h != nil:
		return fmt.Sprintf("%d:%s", s.t, s.h)
	case s.fh != nil:
		return fmt.Sprintf("%d:%s", s.t, s.fh)
	}
	return fmt.Sprintf("%d:%g", s.t, s.f)
}

// floats returns n float samples every step from start, with values derived from base.
func floats(start int64, n int, base float64) []sample {
	out := make([]sample, n)
	for i := range out {
		out[i] = sample{t: start + int64(i)*step, f: base + float64(i)*0.5}
	}
	return out
}

// openDB opens a TSDB in a fresh directory, closed when the test ends.
func openDB(tb testing.TB, dir string, opts *tsdb.Options) *tsdb.DB {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	if opts == nil {
		opts = tsdb.DefaultOptions()
	}
	db, err := tsdb.Open(dir, slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		tb.Fatalf("open TSDB in %s: %v", dir, err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// appendSeries appends samples of one series to db and commits.
func appendSeries(tb testing.TB, db *tsdb.DB, lset labels.Labels, samples []sample) {
	tb.Helper()
	app := db.Appender(context.Background())
	for _, s := range samples {
		var err error
		switch {
		case s.h != nil || s.fh != nil:
			_, err = app.AppendHistogram(0, lset, s.t, s.h, s.fh)
		default:
			_, err = app.Append(0, lset, s.t, s.f)
		}
		if err != nil {
			tb.Fatalf("append %s to %s: %v", s, lset, err)
		}
	}
	if err := app.Commit(); err != nil {
		tb.Fatalf("commit %s: %v", lset, err)
	}
}

// serve starts a gRPC server on loopback with what register puts on it and returns a
// client for it.
func serve(tb testing.TB, register func(*grpc.Server)) *storeapi.Client {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(storeapi.Codec()))
	register(srv)
	go func() { _ = srv.Serve(ln) }()
	c, err := storeapi.Dial(ln.Addr().String(), storeapi.DialOptions(nil, "")...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close(); srv.Stop() })
	return c
}

// serveStore serves one Store, with Info from a Multi over it.
func serveStore(tb testing.TB, s *Store) *storeapi.Client {
	tb.Helper()
	info := NewMulti(func() []*Store { return []*Store{s} }, storepb.StoreType_RECEIVE, MultiOptions{})
	return serve(tb, func(srv *grpc.Server) { storeapi.Register(srv, s, info, storepb.StoreType_RECEIVE) })
}

// collect runs a Series call and returns its series, warnings and error.
func collect(tb testing.TB, c *storeapi.Client, req *storepb.SeriesRequest) ([]*storepb.Series, []string, error) {
	tb.Helper()
	st, err := c.Series(context.Background(), req)
	if err != nil {
		return nil, nil, err
	}
	var out []*storepb.Series
	for st.Next() {
		out = append(out, st.At())
	}
	return out, st.Warnings(), st.Err()
}

func mustCollect(tb testing.TB, c *storeapi.Client, req *storepb.SeriesRequest) []*storepb.Series {
	tb.Helper()
	out, _, err := collect(tb, c, req)
	if err != nil {
		tb.Fatalf("Series %v: %v", req, err)
	}
	return out
}

func allTime(ms ...*storepb.LabelMatcher) *storepb.SeriesRequest {
	return &storepb.SeriesRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: ms}
}

func eq(name, value string) *storepb.LabelMatcher {
	return &storepb.LabelMatcher{Type: storepb.LabelMatcher_EQ, Name: name, Value: value}
}

func re(name, value string) *storepb.LabelMatcher {
	return &storepb.LabelMatcher{Type: storepb.LabelMatcher_RE, Name: name, Value: value}
}

func wantCode(tb testing.TB, err error, code codes.Code) {
	tb.Helper()
	if status.Code(err) != code {
		tb.Fatalf("error %v (code %v), want code %v", err, status.Code(err), code)
	}
}

func labelStrings(ss []*storepb.Series) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = storeapi.LabelsFromProto(s.Labels).String()
	}
	return out
}

// decode returns the samples of a series' chunks, checking what every chunk must hold:
// the hash of its data, the encoding of its samples, and min/max times equal to its
// first and last sample.
func decode(tb testing.TB, s *storepb.Series) []sample {
	tb.Helper()
	var out []sample
	var it chunkenc.Iterator
	for i, ac := range s.Chunks {
		raw := ac.GetRaw()
		if raw.GetHash() != xxhash.Sum64(raw.GetData()) {
			tb.Fatalf("%s chunk %d: hash %x, want xxhash64 of the data", storeapi.LabelsFromProto(s.Labels), i, raw.GetHash())
		}
		chk, err := storeapi.ChunkFromProto(raw)
		if err != nil {
			tb.Fatal(err)
		}
		first := len(out)
		it = chk.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			out = append(out, readSample(tb, it, vt, raw.GetType()))
		}
		if err := it.Err(); err != nil {
			tb.Fatal(err)
		}
		if len(out) == first || out[first].t != ac.GetMinTime() || out[len(out)-1].t != ac.GetMaxTime() {
			tb.Fatalf("%s chunk %d: [%d, %d] does not match its %d samples", storeapi.LabelsFromProto(s.Labels), i, ac.GetMinTime(), ac.GetMaxTime(), len(out)-first)
		}
	}
	return out
}

func readSample(tb testing.TB, it chunkenc.Iterator, vt chunkenc.ValueType, enc storepb.Chunk_Encoding) sample {
	tb.Helper()
	want := map[chunkenc.ValueType]storepb.Chunk_Encoding{
		chunkenc.ValFloat: storepb.Chunk_XOR, chunkenc.ValHistogram: storepb.Chunk_HISTOGRAM, chunkenc.ValFloatHistogram: storepb.Chunk_FLOAT_HISTOGRAM,
	}[vt]
	if enc != want {
		tb.Fatalf("%s sample in a %s chunk", vt, enc)
	}
	var s sample
	switch vt {
	case chunkenc.ValFloat:
		s.t, s.f = it.At()
	case chunkenc.ValHistogram:
		s.t, s.h = it.AtHistogram(nil)
	default:
		s.t, s.fh = it.AtFloatHistogram(nil)
	}
	return s
}

func sameSamples(got, want []sample) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d samples, want %d", len(got), len(want))
	}
	for i := range got {
		if !got[i].equal(want[i]) {
			return fmt.Errorf("sample %d is %s, want %s", i, got[i], want[i])
		}
	}
	return nil
}

package e2e

import (
	"context"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// eq, re, neq and nre build wire matchers.
func eq(name, val string) *storepb.LabelMatcher {
	return &storepb.LabelMatcher{Type: storepb.LabelMatcher_EQ, Name: name, Value: val}
}

func re(name, val string) *storepb.LabelMatcher {
	return &storepb.LabelMatcher{Type: storepb.LabelMatcher_RE, Name: name, Value: val}
}

func neq(name, val string) *storepb.LabelMatcher {
	return &storepb.LabelMatcher{Type: storepb.LabelMatcher_NEQ, Name: name, Value: val}
}

// collectSeries runs a Series call to the end and returns every series, the warnings and
// the error that ended the stream, whether it came with the call or while streaming.
func collectSeries(ctx context.Context, c *storeapi.Client, req *storepb.SeriesRequest) ([]*storepb.Series, []string, error) {
	st, err := c.Series(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var out []*storepb.Series
	for st.Next() {
		out = append(out, st.At())
	}
	return out, st.Warnings(), st.Err()
}

// mustSeries is collectSeries that fails the test on error or warnings.
func mustSeries(t *testing.T, c *storeapi.Client, req *storepb.SeriesRequest) []*storepb.Series {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ss, warns, err := collectSeries(ctx, c, req)
	if err != nil {
		t.Fatalf("Series(%v): %v", req.GetMatchers(), err)
	}
	if len(warns) > 0 {
		t.Errorf("Series(%v): unexpected warnings %q", req.GetMatchers(), warns)
	}
	return ss
}

// wantCode fails the test unless err is a gRPC status error with code want.
func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: got no error, want %s", what, want)
		return
	}
	if got := status.Code(err); got != want {
		t.Errorf("%s: got code %s (%v), want %s", what, got, err, want)
	}
}

// assertSorted fails the test unless the series are strictly ordered by labels, as the
// StoreAPI requires of every Series stream.
func assertSorted(t *testing.T, ss []*storepb.Series) {
	t.Helper()
	for i := 1; i < len(ss); i++ {
		prev, cur := storeapi.LabelsFromProto(ss[i-1].Labels), storeapi.LabelsFromProto(ss[i].Labels)
		if labels.Compare(prev, cur) >= 0 {
			t.Errorf("Series stream not sorted at %d: %s comes before %s", i, prev, cur)
		}
	}
}

// seriesSamples maps the labels of a series (labels.Labels.String) to its samples.
type seriesSamples map[string][]e2eutil.RawSample

// storeSamples decodes the float samples of each series within [mint, maxt], leaving out
// staleness markers (which PromQL never returns) and series with no sample in range.
func storeSamples(t *testing.T, ss []*storepb.Series, mint, maxt int64) seriesSamples {
	t.Helper()
	out := seriesSamples{}
	for _, s := range ss {
		smp, err := storeapi.FloatSamples(s, mint, maxt)
		if err != nil {
			t.Fatalf("decode chunks of %s: %v", storeapi.LabelsFromProto(s.Labels), err)
		}
		var kept []e2eutil.RawSample
		for _, x := range smp {
			if !value.IsStaleNaN(x.V) {
				kept = append(kept, e2eutil.RawSample{T: x.T, V: x.V})
			}
		}
		if len(kept) > 0 {
			out[storeapi.LabelsFromProto(s.Labels).String()] = kept
		}
	}
	return out
}

// promSamples keys Prometheus API series by their labels plus ext (which the API leaves
// out), keeping samples within [mint, maxt].
func promSamples(ms []e2eutil.MatrixSeries, ext map[string]string, mint, maxt int64) seriesSamples {
	out := seriesSamples{}
	for _, s := range ms {
		b := labels.NewBuilder(labels.FromMap(s.Metric))
		for k, v := range ext {
			b.Set(k, v)
		}
		var kept []e2eutil.RawSample
		for _, x := range s.Samples {
			if x.T >= mint && x.T <= maxt {
				kept = append(kept, x)
			}
		}
		if len(kept) > 0 {
			out[b.Labels().String()] = kept
		}
	}
	return out
}

// diffSamples describes every difference between want and got, or returns "".
func diffSamples(want, got seriesSamples) string {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("series %s: in Prometheus (%d samples), missing from StoreAPI", k, len(w)))
		case !sameSamples(w, g):
			diffs = append(diffs, fmt.Sprintf("series %s: samples differ:\n  Prometheus %v\n  StoreAPI   %v", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("series %s: from StoreAPI (%d samples), not in Prometheus", k, len(g)))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}

func sameSamples(a, b []e2eutil.RawSample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].T != b[i].T {
			return false
		}
		if a[i].V != b[i].V && !(math.IsNaN(a[i].V) && math.IsNaN(b[i].V)) {
			return false
		}
	}
	return true
}

// byteCounter is a gRPC dialer that counts the bytes the client writes on its connection,
// so a test can tell whether requests went out compressed.
type byteCounter struct{ written atomic.Int64 }

func (b *byteCounter) dialOption() grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, written: &b.written}, nil
	})
}

type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

package federate

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/queryapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/internal/tsdbstore"
)

// now is the time of every federation request in the tests (ms): 2023-11-14T22:23:20Z.
const now = int64(1_700_000_600_000)

// stale is a staleness marker.
var stale = math.Float64frombits(value.StaleNaN)

// point is one sample of a test series: f, or h when set.
type point struct {
	t int64
	f float64
	h *histogram.Histogram
}

// testSeries is a series to append, its points in time order.
type testSeries struct {
	ls     labels.Labels
	points []point
}

// at returns a float point at now+d.
func at(d time.Duration, f float64) point { return point{t: now + d.Milliseconds(), f: f} }

// openDB opens a TSDB in a temporary directory holding the series.
func openDB(tb testing.TB, series ...testSeries) *tsdb.DB {
	tb.Helper()
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	opts.MinBlockDuration = int64(24 * time.Hour / time.Millisecond)
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(tb.TempDir(), nil, nil, opts, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	app := db.Appender(context.Background())
	for i, s := range series {
		for _, p := range s.points {
			var err error
			if p.h != nil {
				_, err = app.AppendHistogram(0, s.ls, p.t, p.h, nil)
			} else {
				_, err = app.Append(0, s.ls, p.t, p.f)
			}
			if err != nil {
				tb.Fatalf("append %s@%d: %v", s.ls, p.t, err)
			}
		}
		if i%1000 == 999 { // keep appender batches small
			if err := app.Commit(); err != nil {
				tb.Fatal(err)
			}
			app = db.Appender(context.Background())
		}
	}
	if err := app.Commit(); err != nil {
		tb.Fatal(err)
	}
	return db
}

// env is a federation handler on an httptest server.
type env struct {
	h   *Handler
	srv *httptest.Server
}

// newEnv serves a handler over factory with the query API's parsing (replica label
// "replica", partial response on, a one-minute timeout); adjust may change both
// configurations.
func newEnv(tb testing.TB, factory query.QueryableFactory, adjust func(*Config, *queryapi.Config)) *env {
	tb.Helper()
	acfg := queryapi.Config{Queryable: factory, ReplicaLabels: []string{"replica"}, PartialResponse: true, Timeout: time.Minute}
	cfg := Config{Queryable: factory, LookbackDelta: 5 * time.Minute, MaxSamples: 50_000_000, Logger: slog.New(slog.DiscardHandler)}
	if adjust != nil {
		adjust(&cfg, &acfg)
	}
	cfg.API = queryapi.New(acfg)
	e := &env{h: New(cfg)}
	e.h.now = func() time.Time { return time.UnixMilli(now) }
	mux := http.NewServeMux()
	e.h.Register(mux, "")
	e.srv = httptest.NewServer(mux)
	tb.Cleanup(e.srv.Close)
	return e
}

// reply is a response read to its end.
type reply struct {
	code    int
	header  http.Header
	body    string
	readErr error // reading the body failed (an aborted connection)
}

// get sends GET /federate?params with the headers (name, value pairs).
func (e *env) get(tb testing.TB, params url.Values, header ...string) reply {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/federate?"+params.Encode(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return e.do(tb, req, header...)
}

// post sends the parameters as a form body.
func (e *env) post(tb testing.TB, params url.Values, header ...string) reply {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/federate", strings.NewReader(params.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(tb, req, header...)
}

func (e *env) do(tb testing.TB, req *http.Request, header ...string) reply {
	tb.Helper()
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := plainTransport.RoundTrip(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, readErr := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, header: resp.Header, body: string(b), readErr: readErr}
}

// plainTransport neither asks for gzip nor decompresses it.
var plainTransport = &http.Transport{DisableCompression: true}

// matches builds url.Values with match[] selectors.
func matches(sels ...string) url.Values { return url.Values{"match[]": sels} }

// decode parses a federation body in the format of its Content-Type.
func decode(tb testing.TB, r reply) []*dto.MetricFamily {
	tb.Helper()
	body := []byte(r.body)
	if r.header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			tb.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			tb.Fatal(err)
		}
	}
	format := expfmt.ResponseFormat(r.header)
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatalf("decode %s: %v\n%s", format, err, body)
		}
		out = append(out, mf)
	}
}

// dedupQuerier serves each TSDB over the StoreAPI on loopback with its external labels,
// as sidecars serve their Prometheus, and returns the querier's QueryableFactory over
// all of them: the storage /federate reads in `vigil query`.
func dedupQuerier(tb testing.TB, dbs []*tsdb.DB, ext []labels.Labels) query.QueryableFactory {
	tb.Helper()
	var addrs []string
	for i, db := range dbs {
		st := tsdbstore.New(db, ext[i], tsdbstore.Options{})
		m := tsdbstore.NewMulti(func() []*tsdbstore.Store { return []*tsdbstore.Store{st} }, storepb.StoreType_SIDECAR, tsdbstore.MultiOptions{})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		srv := grpc.NewServer(grpc.ForceServerCodecV2(storeapi.Codec()))
		m.Register(srv)
		go func() { _ = srv.Serve(ln) }()
		tb.Cleanup(srv.Stop)
		addrs = append(addrs, ln.Addr().String())
	}
	logger := slog.New(slog.DiscardHandler)
	set := query.NewEndpointSet(query.EndpointSetConfig{
		Addresses: func() []string { return addrs }, DialOptions: storeapi.DialOptions(nil, ""), InfoTimeout: 5 * time.Second,
	}, logger, nil)
	set.Update(context.Background())
	tb.Cleanup(set.Close)
	if eps, problems := set.Healthy(); len(eps) != len(addrs) {
		tb.Fatalf("%d of %d endpoints healthy: %v", len(eps), len(addrs), problems)
	}
	return query.NewQueryableFactory(query.NewProxy(set, 0, logger), dedup.GapFill)
}

// metricKey renders a dto metric's labels (with the family name) canonically.
func metricKey(name string, m *dto.Metric) string {
	b := labels.NewScratchBuilder(len(m.GetLabel()) + 1)
	b.Add(model.MetricNameLabel, name)
	for _, l := range m.GetLabel() {
		b.Add(l.GetName(), l.GetValue())
	}
	b.Sort()
	return b.Labels().String()
}

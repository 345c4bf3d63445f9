package sidecar

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

type sample struct {
	T int64
	V float64
}

// fakeSeries is a series as stored in the fake Prometheus' TSDB.
type fakeSeries struct {
	lset    labels.Labels
	samples []sample
}

// fakeProm is an httptest Prometheus answering the calls the sidecar makes: the config
// (external labels), /metrics (lowest timestamp) and remote read, which it answers like
// Prometheus does: series sorted by their stored labels, external labels merged in with
// the series' own label winning on a name clash, one series per frame.
type fakeProm struct {
	srv *httptest.Server

	mu            sync.Mutex
	ext           labels.Labels
	series        []fakeSeries // sorted by stored labels
	lowest        string       // prometheus_tsdb_lowest_timestamp value
	sampled       bool         // answer with SAMPLES (old Prometheus)
	chunksFrame   int          // >0: at most this many chunks per frame (split series)
	readStatus    int          // non-zero: answer remote read with this HTTP status
	readReqs      []*prompb.ReadRequest
	labelReqs     []url.Values
	labelWarnings []string
}

func newFakeProm(t testing.TB, ext labels.Labels, series ...fakeSeries) *fakeProm {
	fp := &fakeProm{ext: ext, lowest: "0"}
	fp.setSeries(series)
	fp.srv = httptest.NewServer(fp)
	t.Cleanup(fp.srv.Close)
	return fp
}

func (fp *fakeProm) setSeries(series []fakeSeries) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.series = slices.Clone(series)
	slices.SortFunc(fp.series, func(a, b fakeSeries) int { return labels.Compare(a.lset, b.lset) })
}

func (fp *fakeProm) client() *promclient.Client {
	u, _ := url.Parse(fp.srv.URL)
	return promclient.New(u, fp.srv.Client())
}

func (fp *fakeProm) readRequests() []*prompb.ReadRequest {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return slices.Clone(fp.readReqs)
}

func (fp *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	switch r.URL.Path {
	case "/api/v1/status/config":
		var sb strings.Builder
		sb.WriteString("global:\n  scrape_interval: 15s\n")
		if !fp.ext.IsEmpty() {
			sb.WriteString("  external_labels:\n")
			fp.ext.Range(func(l labels.Label) { fmt.Fprintf(&sb, "    %s: %q\n", l.Name, l.Value) })
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]string{"yaml": sb.String()}})
	case "/metrics":
		fmt.Fprintf(w, "# TYPE prometheus_tsdb_lowest_timestamp gauge\nprometheus_tsdb_lowest_timestamp %s\n", fp.lowest)
	case "/api/v1/read":
		fp.serveRead(w, r)
	case "/api/v1/labels":
		fp.serveLabels(w, r, "")
	case "/api/v1/series":
		fp.serveSeries(w, r)
	default:
		if name, ok := strings.CutPrefix(r.URL.Path, "/api/v1/label/"); ok && strings.HasSuffix(name, "/values") {
			fp.serveLabels(w, r, strings.TrimSuffix(name, "/values"))
			return
		}
		http.NotFound(w, r)
	}
}

// serveLabels answers /api/v1/labels (name == "") or /api/v1/label/<name>/values from the
// stored series matching any match[] selector (all series without one). Like Prometheus,
// it knows nothing of external labels.
func (fp *fakeProm) serveLabels(w http.ResponseWriter, r *http.Request, name string) {
	matching, ok := fp.matching(w, r)
	if !ok {
		return
	}
	set := map[string]bool{}
	for _, s := range matching {
		s.lset.Range(func(l labels.Label) {
			switch {
			case name == "":
				set[l.Name] = true
			case l.Name == name:
				set[l.Value] = true
			}
		})
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": out, "warnings": fp.labelWarnings})
}

// serveSeries answers /api/v1/series with the matching stored series, in reverse order:
// Prometheus does not promise sorted output.
func (fp *fakeProm) serveSeries(w http.ResponseWriter, r *http.Request) {
	matching, ok := fp.matching(w, r)
	if !ok {
		return
	}
	out := make([]map[string]string, 0, len(matching))
	for i := len(matching) - 1; i >= 0; i-- {
		out = append(out, matching[i].lset.Map())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": out, "warnings": fp.labelWarnings})
}

// matching records a metadata request and returns the stored series matching any of its
// match[] selectors (all series without one); ok is false after a bad_data answer.
func (fp *fakeProm) matching(w http.ResponseWriter, r *http.Request) ([]fakeSeries, bool) {
	_ = r.ParseForm()
	fp.labelReqs = append(fp.labelReqs, r.Form)
	var sels [][]*labels.Matcher
	for _, s := range r.Form["match[]"] {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": "bad_data", "error": err.Error()})
			return nil, false
		}
		sels = append(sels, ms)
	}
	var out []fakeSeries
	for _, s := range fp.series {
		match := len(sels) == 0
		for _, ms := range sels {
			match = match || matchesAll(ms, s.lset)
		}
		if match {
			out = append(out, s)
		}
	}
	return out, true
}

func (fp *fakeProm) labelRequests() []url.Values {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return slices.Clone(fp.labelReqs)
}

func (fp *fakeProm) serveRead(w http.ResponseWriter, r *http.Request) {
	compressed, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req prompb.ReadRequest
	if err := req.Unmarshal(raw); err != nil || len(req.Queries) != 1 {
		http.Error(w, fmt.Sprintf("bad read request: %v", err), http.StatusBadRequest)
		return
	}
	fp.readReqs = append(fp.readReqs, &req)
	if fp.readStatus != 0 {
		http.Error(w, "remote read failed on purpose", fp.readStatus)
		return
	}
	q := req.Queries[0]
	ms, err := fp.filterExtMatchers(q.Matchers)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	extPB := make([]prompb.Label, 0, fp.ext.Len())
	fp.ext.Range(func(l labels.Label) { extPB = append(extPB, prompb.Label{Name: l.Name, Value: l.Value}) })

	var selected []*prompb.TimeSeries
	for _, s := range fp.series {
		if !matchesAll(ms, s.lset) {
			continue
		}
		var stored []prompb.Label
		s.lset.Range(func(l labels.Label) { stored = append(stored, prompb.Label{Name: l.Name, Value: l.Value}) })
		ts := &prompb.TimeSeries{Labels: promMergeLabels(stored, extPB)}
		for _, smp := range s.samples {
			if smp.T >= q.StartTimestampMs && smp.T <= q.EndTimestampMs {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: smp.T, Value: smp.V})
			}
		}
		if len(ts.Samples) == 0 { // Prometheus' querier returns only series with data in range
			continue
		}
		selected = append(selected, ts)
	}

	if fp.sampled {
		resp := &prompb.ReadResponse{Results: []*prompb.QueryResult{{Timeseries: selected}}}
		b, _ := resp.Marshal()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Header().Set("Content-Encoding", "snappy")
		_, _ = w.Write(snappy.Encode(nil, b))
		return
	}
	w.Header().Set("Content-Type", "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse")
	for _, ts := range selected {
		chks := encodeChunks(ts.Samples)
		per := fp.chunksFrame
		if per <= 0 {
			per = len(chks)
		}
		for i := 0; i < len(chks); i += per {
			part := chks[i:min(i+per, len(chks))]
			_, _ = w.Write(streamFrame(&prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{{Labels: ts.Labels, Chunks: part}}}))
		}
	}
}

// filterExtMatchers mirrors Prometheus' remote-read handler: equality matchers on an
// external label with its value are dropped, the rest select stored series.
func (fp *fakeProm) filterExtMatchers(pms []*prompb.LabelMatcher) ([]*labels.Matcher, error) {
	var out []*labels.Matcher
	for _, pm := range pms {
		t := map[prompb.LabelMatcher_Type]labels.MatchType{
			prompb.LabelMatcher_EQ: labels.MatchEqual, prompb.LabelMatcher_NEQ: labels.MatchNotEqual,
			prompb.LabelMatcher_RE: labels.MatchRegexp, prompb.LabelMatcher_NRE: labels.MatchNotRegexp,
		}[pm.Type]
		if t == labels.MatchEqual && fp.ext.Has(pm.Name) && fp.ext.Get(pm.Name) == pm.Value {
			continue
		}
		m, err := labels.NewMatcher(t, pm.Name, pm.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func matchesAll(ms []*labels.Matcher, ls labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// promMergeLabels is Prometheus' storage/remote.MergeLabels: sorted primary and
// secondary merged, primary (the series' own labels) winning on a name clash.
func promMergeLabels(primary, secondary []prompb.Label) []prompb.Label {
	result := make([]prompb.Label, 0, len(primary)+len(secondary))
	i, j := 0, 0
	for i < len(primary) && j < len(secondary) {
		switch {
		case primary[i].Name < secondary[j].Name:
			result = append(result, primary[i])
			i++
		case primary[i].Name > secondary[j].Name:
			result = append(result, secondary[j])
			j++
		default:
			result = append(result, primary[i])
			i++
			j++
		}
	}
	result = append(result, primary[i:]...)
	return append(result, secondary[j:]...)
}

// encodeChunks cuts samples into XOR chunks of 120 samples, as Prometheus does.
func encodeChunks(samples []prompb.Sample) []prompb.Chunk {
	var out []prompb.Chunk
	for len(samples) > 0 {
		n := min(len(samples), 120)
		c := chunkenc.NewXORChunk()
		app, _ := c.Appender()
		for _, s := range samples[:n] {
			app.Append(0, s.Timestamp, s.Value)
		}
		out = append(out, prompb.Chunk{MinTimeMs: samples[0].Timestamp, MaxTimeMs: samples[n-1].Timestamp, Type: prompb.Chunk_XOR, Data: c.Bytes()})
		samples = samples[n:]
	}
	return out
}

func streamFrame(resp *prompb.ChunkedReadResponse) []byte {
	payload, err := resp.Marshal()
	if err != nil {
		panic(err)
	}
	out := binary.AppendUvarint(nil, uint64(len(payload)))
	out = binary.BigEndian.AppendUint32(out, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	return append(out, payload...)
}

// genSeries returns a stored series with n samples every 15s from t=0.
func genSeries(n int, kv ...string) fakeSeries {
	s := fakeSeries{lset: labels.FromStrings(kv...)}
	for i := range n {
		s.samples = append(s.samples, sample{T: int64(i) * 15000, V: float64(i) + float64(len(kv))})
	}
	return s
}

// storeEnv is a sidecar Store served over an in-process gRPC connection.
type storeEnv struct {
	fp     *fakeProm
	prom   *Prometheus
	store  *Store
	client *storeapi.Client    // unpacks batches, as queriers see series
	raw    storepb.StoreClient // frame-level access and the legacy Store.Info
	info   infopb.InfoClient
}

// startStore serves a Store for fp; refresh controls whether the Prometheus state is
// loaded first, as the sidecar does before serving.
func startStore(t *testing.T, fp *fakeProm, limits Limits, refresh bool) *storeEnv {
	t.Helper()
	client := fp.client()
	prom := NewPrometheus(client, slog.New(slog.DiscardHandler), math.MinInt64, nil)
	if refresh {
		if err := prom.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
	}
	store := NewStore(prom, client, limits)
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	storeapi.Register(srv, store, store, storepb.StoreType_SIDECAR)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	dialer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })
	opts := append(storeapi.DialOptions(nil, ""), dialer)
	c, err := storeapi.Dial("passthrough:///bufconn", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	conn, err := grpc.NewClient("passthrough:///bufconn", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &storeEnv{fp: fp, prom: prom, store: store, client: c, raw: storepb.NewStoreClient(conn), info: infopb.NewInfoClient(conn)}
}

// series runs a Series call and returns the series and the call's error.
func (e *storeEnv) series(t *testing.T, req *storepb.SeriesRequest) ([]*storepb.Series, error) {
	t.Helper()
	st, err := e.client.Series(context.Background(), req)
	if err != nil {
		return nil, err
	}
	var out []*storepb.Series
	for st.Next() {
		out = append(out, st.At())
	}
	return out, st.Err()
}

func eq(name, value string) *storepb.LabelMatcher {
	return &storepb.LabelMatcher{Type: storepb.LabelMatcher_EQ, Name: name, Value: value}
}

func re(name, value string) *storepb.LabelMatcher {
	return &storepb.LabelMatcher{Type: storepb.LabelMatcher_RE, Name: name, Value: value}
}

func labelStrings(ss []*storepb.Series) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = storeapi.LabelsFromProto(s.Labels).String()
	}
	return out
}

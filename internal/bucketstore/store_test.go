package bucketstore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// writeBlock writes a block of nSeries series {__name__="m", i="<n>"} with one sample
// every 15s in [mint, maxt), value = series number*1000 + t/15000, and uploads it with
// the given external labels. It returns the block ID.
func writeBlock(t testing.TB, bkt objstore.Bucket, ext map[string]string, nSeries int, mint, maxt int64) ulid.ULID {
	t.Helper()
	series := make([]labels.Labels, nSeries)
	for i := range series {
		series[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprintf("%03d", i))
	}
	return writeBlockWith(t, bkt, ext, series, mint, maxt, sampleValue)
}

// writeBlockWith writes a block holding the given series, each with one sample every 15s
// in [mint, maxt) of value(position in series, t), adds the thanos section with the given
// external labels and uploads it (meta.json last). It returns the block ID.
func writeBlockWith(t testing.TB, bkt objstore.Bucket, ext map[string]string, series []labels.Labels, mint, maxt int64, value func(k int, ts int64) float64) ulid.ULID {
	t.Helper()
	dir := t.TempDir()
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, 2*time.Hour.Milliseconds())
	if err != nil {
		t.Fatal(err)
	}
	app := w.Appender(context.Background())
	for k, ls := range series {
		for ts := mint; ts < maxt; ts += 15000 {
			if _, err := app.Append(0, ls, ts, value(k, ts)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	id, err := w.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, id.String())
	var m map[string]any
	raw, err := os.ReadFile(filepath.Join(bdir, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["thanos"] = map[string]any{"labels": ext, "downsample": map[string]any{"resolution": 0}, "source": "test"}
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(filepath.Join(bdir, "meta.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"chunks/000001", "index", "meta.json"} {
		fh, err := os.Open(filepath.Join(bdir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := bkt.Upload(context.Background(), id.String()+"/"+f, fh); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	return id
}

func sampleValue(i int, ts int64) float64 { return float64(i*1000) + float64(ts/15000) }

type testStore struct {
	*Store
	client *storeapi.Client
	reg    *prometheus.Registry
}

func startStore(t *testing.T, bkt objstore.Bucket, cfg Config) *testStore {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.IndexCacheSize == 0 {
		cfg.IndexCacheSize = 64 << 20
	}
	reg := prometheus.NewRegistry()
	s := New(bkt, cfg, slog.New(slog.DiscardHandler), reg)
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	storeapi.Register(srv, s, s, storepb.StoreType_STORE)
	go func() { _ = srv.Serve(ln) }()
	c, err := storeapi.Dial(ln.Addr().String(), storeapi.DialOptions(nil, "")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Stop(); s.Close() })
	return &testStore{Store: s, client: c, reg: reg}
}

func collect(t *testing.T, c *storeapi.Client, req *storepb.SeriesRequest) ([]*storepb.Series, error) {
	t.Helper()
	st, err := c.Series(context.Background(), req)
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

func TestSeriesAcrossBlocksMatchesWrittenSamples(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ext := map[string]string{"cluster": "c", "replica": "r0"}
	h := 2 * time.Hour.Milliseconds()
	writeBlock(t, bkt, ext, 50, 0, h)
	writeBlock(t, bkt, ext, 50, h, 2*h)
	s := startStore(t, bkt, Config{})

	got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: 2*h - 1, Matchers: []*storepb.LabelMatcher{eq("__name__", "m")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 {
		t.Fatalf("got %d series, want 50", len(got))
	}
	for k, sr := range got {
		ls := storeapi.LabelsFromProto(sr.Labels)
		want := labels.FromStrings("__name__", "m", "cluster", "c", "i", fmt.Sprintf("%03d", k), "replica", "r0")
		if !labels.Equal(ls, want) {
			t.Fatalf("series %d labels %s, want %s (external labels added, sorted stream)", k, ls, want)
		}
		smp, err := storeapi.FloatSamples(sr, 0, 2*h-1)
		if err != nil {
			t.Fatal(err)
		}
		if len(smp) != int(2*h/15000) {
			t.Fatalf("series %d: %d samples, want %d", k, len(smp), 2*h/15000)
		}
		for _, p := range smp {
			if p.V != sampleValue(k, p.T) {
				t.Fatalf("series %d at %d: %v, want %v", k, p.T, p.V, sampleValue(k, p.T))
			}
		}
	}
}

func TestCorruptAndIncompleteBlocksAreSkipped(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := 2 * time.Hour.Milliseconds()
	good := writeBlock(t, bkt, map[string]string{"replica": "a"}, 5, 0, h)
	badIndex := writeBlock(t, bkt, map[string]string{"replica": "b"}, 5, 0, h)
	noChunks := writeBlock(t, bkt, map[string]string{"replica": "c"}, 5, 0, h)
	partial := writeBlock(t, bkt, map[string]string{"replica": "d"}, 5, 0, h)
	ctx := context.Background()
	if err := bkt.Upload(ctx, badIndex.String()+"/index", io.NopCloser(stringsReader("not an index at all, just garbage bytes of some length"))); err != nil {
		t.Fatal(err)
	}
	if err := bkt.Delete(ctx, noChunks.String()+"/chunks/000001"); err != nil {
		t.Fatal(err)
	}
	if err := bkt.Delete(ctx, partial.String()+"/meta.json"); err != nil {
		t.Fatal(err)
	}
	s := startStore(t, bkt, Config{})
	if n := testutil.ToFloat64(s.metrics.loadFailures); n != 2 {
		t.Fatalf("load failures = %v, want 2 (corrupt index, missing chunk file)", n)
	}
	got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: h, Matchers: []*storepb.LabelMatcher{eq("__name__", "m")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("got %d series, want the good block's 5", len(got))
	}
	for _, sr := range got {
		if v := storeapi.LabelsFromProto(sr.Labels).Get("replica"); v != "a" {
			t.Fatalf("series from block with replica=%q; only %s should be served", v, good)
		}
	}
}

func TestLimitsFailWithResourceExhausted(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := 2 * time.Hour.Milliseconds()
	writeBlock(t, bkt, map[string]string{"replica": "a"}, 200, 0, h)
	req := &storepb.SeriesRequest{MinTime: 0, MaxTime: h, Matchers: []*storepb.LabelMatcher{eq("__name__", "m")}}
	for name, cfg := range map[string]Config{
		"series":     {SeriesLimit: 10},
		"samples":    {SamplesLimit: 1000},
		"chunk pool": {ChunkPoolSize: 1024},
	} {
		s := startStore(t, bkt, cfg)
		_, err := collect(t, s.client, req)
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("%s limit: got %v, want ResourceExhausted", name, err)
		}
		if n := testutil.ToFloat64(s.pool.inUse); n != 0 {
			t.Fatalf("%s limit: %v chunk-pool bytes still held after the request", name, n)
		}
	}
	// Within the pool, a query larger than the pool streams through in batches.
	s := startStore(t, bkt, Config{ChunkPoolSize: 256 << 10, BatchSize: 10})
	got, err := collect(t, s.client, req)
	if err != nil || len(got) != 200 {
		t.Fatalf("streaming through a small pool: %d series, err %v", len(got), err)
	}
}

func TestInfoAndLabels(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := 2 * time.Hour.Milliseconds()
	writeBlock(t, bkt, map[string]string{"replica": "a"}, 3, 0, h)
	writeBlock(t, bkt, map[string]string{"replica": "b"}, 3, h, 2*h)
	s := startStore(t, bkt, Config{})
	info, err := s.client.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(info.LabelSets) != 2 || info.Store.MinTime != 0 || info.Store.MaxTime != 2*h-15000 || info.ComponentType != "store" {
		t.Fatalf("info = %v", info)
	}
	names, err := s.client.LabelNames(context.Background(), &storepb.LabelNamesRequest{Start: 0, End: math.MaxInt64})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names.Names) != "[__name__ i replica]" {
		t.Fatalf("label names %v", names.Names)
	}
	vals, err := s.client.LabelValues(context.Background(), &storepb.LabelValuesRequest{Label: "replica", Start: 0, End: math.MaxInt64,
		Matchers: []*storepb.LabelMatcher{eq("i", "001")}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(vals.Values) != "[a b]" {
		t.Fatalf("replica values %v", vals.Values)
	}
	vals, err = s.client.LabelValues(context.Background(), &storepb.LabelValuesRequest{Label: "i", Start: h, End: math.MaxInt64})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(vals.Values) != "[000 001 002]" {
		t.Fatalf("i values %v", vals.Values)
	}
}

package e2e

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/shipper"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestStorageHistoryAfterPrometheusGone: a real Prometheus cutting 30s blocks, a vigil
// sidecar shipping them to MinIO; once two blocks are in the bucket, the raw samples of
// their time range are recorded through a vigil query over the sidecar. Then Prometheus
// and the sidecar are killed and Prometheus's data directory deleted, and a vigil query
// over a vigil store on the same bucket must return exactly the same series and samples.
func TestStorageHistoryAfterPrometheusGone(t *testing.T) {
	t.Parallel()
	m := e2eutil.StartMinIO(t)
	cfg := m.WriteObjstoreConfig(t, "")

	// Prometheus 2.42 cuts a head block once the head spans 1.5x the block range: with
	// 30s blocks the first two appear about a minute after start.
	prom := startPrometheusBlockDuration(t, "30s")
	sc := e2eutil.StartVigil(t, "sidecar",
		"--prometheus.url="+prom.URL,
		"--tsdb.path="+prom.DataDir,
		"--objstore.config-file="+cfg,
		"--shipper.upload-interval=2s",
		"--prometheus.get_config_interval=1s",
		"--prometheus.ready_timeout=30s",
		"--log.level=debug")
	sc.MustWaitReady(t)
	q := e2eutil.StartVigil(t, "query", "--endpoint="+sc.GRPCAddr)
	q.MustWaitReady(t)
	e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
		return storesHealthy(q.HTTPURL, "sidecar", sc.GRPCAddr)
	})

	// Wait for at least two complete blocks (meta.json is uploaded last).
	start := time.Now()
	var metas map[ulid.ULID]*block.Meta
	e2eutil.Poll(t, 150*time.Second, time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if metas, err = bucketMetas(ctx, m); err != nil {
			return err
		}
		if len(metas) < 2 {
			return fmt.Errorf("%d blocks with meta.json in the bucket, want >= 2", len(metas))
		}
		return nil
	})
	t.Logf("%d blocks in the bucket %s after the sidecar started", len(metas), time.Since(start).Round(time.Second))

	ids := slices.SortedFunc(maps.Keys(metas), func(a, b ulid.ULID) int { return cmp.Compare(metas[a].MinTime, metas[b].MinTime) })
	for _, id := range ids {
		checkUploadedMeta(t, m, prom.DataDir, id, metas[id])
	}
	for i := 1; i < len(ids); i++ {
		if prev, cur := metas[ids[i-1]], metas[ids[i]]; cur.MinTime < prev.MaxTime {
			t.Errorf("blocks %s [%d,%d) and %s [%d,%d) overlap", prev.ULID, prev.MinTime, prev.MaxTime, cur.ULID, cur.MinTime, cur.MaxTime)
		}
	}

	// The shipper records what it uploaded; it writes the file after the pass.
	statePath := filepath.Join(prom.DataDir, shipper.DefaultMetaFilename)
	e2eutil.Poll(t, 20*time.Second, 500*time.Millisecond, func() error {
		st, err := shipper.ReadMetaFile(statePath)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if n := countULID(st.Uploaded, id); n != 1 {
				return fmt.Errorf("%s lists block %s %d times, want once (uploaded: %v)", statePath, id, n, st.Uploaded)
			}
		}
		return nil
	})

	// The window the uploaded blocks cover: [min minTime, max maxTime), maxTime exclusive.
	mint, maxt := metas[ids[0]].MinTime, metas[ids[len(ids)-1]].MaxTime
	at := time.UnixMilli(maxt - 1)
	query := fmt.Sprintf(`{__name__=~"up|prometheus_http_requests_total"}[%dms]`, maxt-mint)
	before := recordSamples(t, q.HTTPURL, query, at)
	checkRecorded(t, before, prom.Addr, mint, maxt)

	// Prometheus and its data are gone.
	if err := prom.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := q.Stop(e2eutil.DefaultStopTimeout); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(prom.DataDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(prom.DataDir); !os.IsNotExist(err) {
		t.Fatalf("Prometheus data dir %s still exists: %v", prom.DataDir, err)
	}

	st := e2eutil.StartVigil(t, "store",
		"--objstore.config-file="+cfg,
		"--data-dir="+filepath.Join(t.TempDir(), "store"),
		"--log.level=debug")
	st.MustWaitReady(t)
	if n := mustMetric(t, st.HTTPURL, "vigil_store_blocks_loaded"); int(n) < len(ids) {
		t.Errorf("vigil_store_blocks_loaded = %v, want >= %d", n, len(ids))
	}
	if n := mustMetric(t, st.HTTPURL, "vigil_store_block_load_failures_total"); n != 0 {
		t.Errorf("vigil_store_block_load_failures_total = %v, want 0", n)
	}
	q2 := e2eutil.StartVigil(t, "query", "--endpoint="+st.GRPCAddr)
	q2.MustWaitReady(t)
	e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
		return storesHealthy(q2.HTTPURL, "store", st.GRPCAddr)
	})
	all, err := stores(q2.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	if s, _, ok := findStore(all, st.GRPCAddr); !ok || len(s.LabelSets) != 1 || !maps.Equal(s.LabelSets[0], extLabels) {
		t.Errorf("querier sees store %s with label sets %v, want exactly %v", st.GRPCAddr, s.LabelSets, extLabels)
	} else if s.MinTime > mint || s.MaxTime < maxt-1 {
		t.Errorf("store %s announces [%d, %d], want it to cover the uploaded blocks [%d, %d]", st.GRPCAddr, s.MinTime, s.MaxTime, mint, maxt-1)
	}

	after := recordSamples(t, q2.HTTPURL, query, at)
	if d := diffRecorded(before, after); d != "" {
		t.Errorf("%s at %s: vigil store over the bucket differs from the sidecar over Prometheus:\n%s", query, at.UTC().Format(time.RFC3339Nano), d)
	}
	n := 0
	for _, s := range after {
		n += len(s)
	}
	t.Logf("window [%d, %d): %d series, %d samples identical before and after Prometheus was deleted", mint, maxt, len(after), n)
}

// checkUploadedMeta checks the meta.json the sidecar uploaded for block id against the
// bucket contents and the local block Prometheus wrote.
func checkUploadedMeta(t *testing.T, m *e2eutil.MinIO, dataDir string, id ulid.ULID, meta *block.Meta) {
	t.Helper()
	if meta.ULID != id {
		t.Errorf("meta.json under %s names block %s", id, meta.ULID)
	}
	if !maps.Equal(meta.Thanos.Labels, extLabels) {
		t.Errorf("block %s: thanos.labels = %v, want %v", id, meta.Thanos.Labels, extLabels)
	}
	if meta.Thanos.Source != block.SourceSidecar {
		t.Errorf("block %s: thanos.source = %q, want %q", id, meta.Thanos.Source, block.SourceSidecar)
	}
	if meta.Thanos.Downsample.Resolution != 0 {
		t.Errorf("block %s: thanos.downsample.resolution = %d, want 0", id, meta.Thanos.Downsample.Resolution)
	}
	if meta.Compaction.Level != 1 {
		t.Errorf("block %s: compaction level %d, want 1 (only Prometheus head blocks are shipped)", id, meta.Compaction.Level)
	}
	if meta.Stats.NumSamples == 0 {
		t.Errorf("block %s: no samples", id)
	}
	// thanos.files lists exactly the objects in the bucket, with their sizes.
	objs := blockObjects(t, m, id)
	var listed []string
	for _, f := range meta.Thanos.Files {
		listed = append(listed, f.RelPath)
		size, ok := objs[f.RelPath]
		switch {
		case !ok:
			t.Errorf("block %s: thanos.files lists %s, which is not in the bucket", id, f.RelPath)
		case f.RelPath == block.MetaFilename:
			if f.SizeBytes != 0 {
				t.Errorf("block %s: thanos.files gives meta.json size %d, want none", id, f.SizeBytes)
			}
		case f.SizeBytes != size:
			t.Errorf("block %s: thanos.files gives %s size %d, the bucket object has %d bytes", id, f.RelPath, f.SizeBytes, size)
		}
	}
	objNames := slices.Sorted(maps.Keys(objs))
	if !slices.IsSorted(listed) || !slices.Equal(listed, objNames) {
		t.Errorf("block %s: thanos.files %v, bucket objects %v; want the same, sorted", id, listed, objNames)
	}
	for _, want := range []string{"chunks/000001", block.IndexFilename, block.MetaFilename} {
		if !slices.Contains(listed, want) {
			t.Errorf("block %s: thanos.files %v lacks %s", id, listed, want)
		}
	}
	// The TSDB part is Prometheus's own meta.json, unchanged.
	local, err := block.ReadMeta(filepath.Join(dataDir, id.String()))
	if err != nil {
		t.Errorf("block %s: %v", id, err)
		return
	}
	if local.MinTime != meta.MinTime || local.MaxTime != meta.MaxTime || local.Stats != meta.Stats {
		t.Errorf("block %s: uploaded meta [%d,%d) %+v, Prometheus wrote [%d,%d) %+v", id,
			meta.MinTime, meta.MaxTime, meta.Stats, local.MinTime, local.MaxTime, local.Stats)
	}
}

func countULID(ids []ulid.ULID, id ulid.ULID) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

// recordSamples runs a range-vector instant query and returns the raw samples of each
// series, keyed by its labels, as the API rendered them.
func recordSamples(t *testing.T, base, query string, at time.Time) map[string][]string {
	t.Helper()
	_, ms := instantMatrix(t, base, query, at, nil)
	out := map[string][]string{}
	for _, s := range ms {
		k := metricKey(s.Metric)
		if _, dup := out[k]; dup {
			t.Fatalf("%s: series %s returned twice", query, k)
		}
		vals := make([]string, 0, len(s.Values))
		for _, p := range s.Values {
			vals = append(vals, string(p[0])+"="+string(p[1]))
		}
		out[k] = vals
	}
	return out
}

// checkRecorded guards against comparing empty or thin results: `up` of the Prometheus
// must have about one sample a second over the window, and some HTTP request counter must
// be there.
func checkRecorded(t *testing.T, rec map[string][]string, promAddr string, mint, maxt int64) {
	t.Helper()
	up := metricKey(map[string]string{"__name__": "up", "instance": promAddr, "job": "prometheus", "cluster": "test", "replica": "r0"})
	want := int((maxt-mint)/1000) * 8 / 10
	if n := len(rec[up]); n < want || n < 20 {
		t.Fatalf("before deleting Prometheus: %s has %d samples in the %dms window, want >= %d (and >= 20); got series %v",
			up, n, maxt-mint, want, slices.Sorted(maps.Keys(rec)))
	}
	nHTTP := 0
	for k := range rec {
		if strings.Contains(k, `__name__="prometheus_http_requests_total"`) {
			nHTTP++
		}
	}
	if nHTTP == 0 {
		t.Fatalf("before deleting Prometheus: no prometheus_http_requests_total series in the window; got %v", slices.Sorted(maps.Keys(rec)))
	}
}

// diffRecorded describes every difference between two recordings, or returns "".
func diffRecorded(want, got map[string][]string) string {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("series %s: %d samples before, missing after", k, len(w)))
		case !slices.Equal(w, g):
			diffs = append(diffs, fmt.Sprintf("series %s: samples differ:\n  before %v\n  after  %v", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("series %s: %d samples after, not there before", k, len(g)))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/shipper"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestStorageKilledMidUpload: the sidecar talks to MinIO through a proxy that stalls the
// moment the sidecar sends the PUT of a new block's meta.json, i.e. after its chunks and
// index are in the bucket. The sidecar is SIGKILLed while stalled: the bucket must hold
// no meta.json for that block and vigil store must not serve it. Restarted against MinIO
// directly, the sidecar uploads the block, and every meta.json is written exactly once
// (counted with bucket versioning: one version per PUT).
func TestStorageKilledMidUpload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := e2eutil.StartMinIO(t)
	if err := m.EnableVersioning(ctx); err != nil {
		t.Fatal(err)
	}
	proxy := startStallProxy(t, m.Endpoint)
	// The sidecar reads this file at start: through the proxy first, MinIO directly after
	// the restart.
	cfg := m.WriteObjstoreConfig(t, proxy.Addr)

	// The sidecar ships the blocks of tsdbDir; the test puts them there itself (as
	// Prometheus does: a complete directory renamed into place) so it knows which block
	// is new when. Prometheus only supplies the external labels.
	prom := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{ExternalLabels: extLabels, ScrapeInterval: time.Second})
	tsdbDir := t.TempDir()
	staging := t.TempDir()
	base := time.Now().Add(-12 * time.Hour).Truncate(2 * time.Hour).UnixMilli()
	blockA := createTestBlock(t, staging, base, base+2*hourMs, 5, nil)
	blockB := createTestBlock(t, staging, base+2*hourMs, base+4*hourMs, 5, nil)
	blockA.ext, blockB.ext = extLabels, extLabels // what the sidecar adds
	moveBlock(t, tsdbDir, &blockA)

	sc := e2eutil.StartVigil(t, "sidecar",
		"--prometheus.url="+prom.URL,
		"--tsdb.path="+tsdbDir,
		"--objstore.config-file="+cfg,
		"--shipper.upload-interval=1s",
		"--prometheus.get_config_interval=1s",
		"--prometheus.ready_timeout=30s",
		"--log.level=debug")
	sc.MustWaitReady(t)
	waitMeta(t, m, blockA.id, 30*time.Second)

	// Stall on B's meta.json, then hand B to the sidecar.
	proxy.StallOn(fmt.Sprintf("PUT /%s/%s/%s ", m.Bucket, blockB.id, block.MetaFilename))
	moveBlock(t, tsdbDir, &blockB)
	e2eutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() error {
		if ok, _ := proxy.Stalled(); !ok {
			return fmt.Errorf("the sidecar has not sent the PUT of %s/meta.json; bucket has %v", blockB.id, slices.Sorted(maps.Keys(blockObjects(t, m, blockB.id))))
		}
		return nil
	})
	_, line := proxy.Stalled()
	t.Logf("proxy stalled on %q", line)
	// Upload order: chunks and index went up before meta.json.
	objs := blockObjects(t, m, blockB.id)
	for _, f := range []string{"chunks/000001", block.IndexFilename} {
		if _, ok := objs[f]; !ok {
			t.Errorf("stalled at the PUT of meta.json, but %s/%s is not in the bucket (objects: %v): meta.json must go up last", blockB.id, f, slices.Sorted(maps.Keys(objs)))
		}
	}

	if err := sc.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, ok := blockObjects(t, m, blockB.id)[block.MetaFilename]; ok {
		t.Fatalf("%s/meta.json is in the bucket after the sidecar was killed during its upload", blockB.id)
	}
	if st, err := shipper.ReadMetaFile(filepath.Join(tsdbDir, shipper.DefaultMetaFilename)); err != nil {
		t.Error(err)
	} else if !slices.Equal(st.Uploaded, []ulid.ULID{blockA.id}) {
		t.Errorf("after the kill the shipper state lists %v, want only %s", st.Uploaded, blockA.id)
	}

	// A store over the bucket serves A and ignores the partial B.
	st := e2eutil.StartVigil(t, "store",
		"--objstore.config-file="+m.WriteObjstoreConfig(t, ""),
		"--data-dir="+filepath.Join(t.TempDir(), "store"),
		"--sync-block-duration=1s",
		"--log.level=debug")
	st.MustWaitReady(t)
	c := st.StoreClient(t, "")
	wantServed(t, st, c, blockA)
	if n := mustMetric(t, st.HTTPURL, "vigil_store_block_load_failures_total"); n != 0 {
		t.Errorf("vigil_store_block_load_failures_total = %v: a partial upload is not a failure", n)
	}
	if lines := grepLines(st.Log(), blockB.id.String()); strings.Contains(lines, "level=ERROR") || strings.Contains(lines, "level=WARN") {
		t.Errorf("store reports the partial block %s as a problem:\n%s", blockB.id, lines)
	}

	// Restart the sidecar against MinIO directly: B is uploaded, once.
	if err := os.WriteFile(cfg, []byte(m.ObjstoreYAML("")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	sc.MustWaitReady(t)
	waitMeta(t, m, blockB.id, 30*time.Second)
	// Let the shipper make a few more passes, which must not upload anything again.
	passes := mustMetric(t, sc.HTTPURL, "vigil_shipper_dir_syncs_total")
	e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
		if n := mustMetric(t, sc.HTTPURL, "vigil_shipper_dir_syncs_total"); n < passes+3 {
			return fmt.Errorf("shipper passes: %v, waiting for %v", n, passes+3)
		}
		return nil
	})
	if n := mustMetric(t, sc.HTTPURL, "vigil_shipper_uploads_total"); n != 1 {
		t.Errorf("restarted sidecar: vigil_shipper_uploads_total = %v, want 1 (block %s only)", n, blockB.id)
	}
	if n := mustMetric(t, sc.HTTPURL, "vigil_shipper_upload_failures_total"); n != 0 {
		t.Errorf("restarted sidecar: vigil_shipper_upload_failures_total = %v, want 0", n)
	}
	versions, err := m.VersionCounts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("object versions (PUTs): %v", versions)
	for _, id := range []ulid.ULID{blockA.id, blockB.id} {
		if n := versions[id.String()+"/"+block.MetaFilename]; n != 1 {
			t.Errorf("%s/meta.json was written %d times, want exactly once", id, n)
		}
	}
	for name, n := range versions {
		if strings.HasPrefix(name, blockA.id.String()+"/") && n != 1 {
			t.Errorf("%s was written %d times: block %s, uploaded before the kill, must not be uploaded again", name, n, blockA.id)
		}
	}
	e2eutil.Poll(t, 10*time.Second, 200*time.Millisecond, func() error {
		st, err := shipper.ReadMetaFile(filepath.Join(tsdbDir, shipper.DefaultMetaFilename))
		if err != nil {
			return err
		}
		if !slices.Equal(st.Uploaded, []ulid.ULID{blockA.id, blockB.id}) {
			return fmt.Errorf("shipper state lists %v, want [%s %s], each once", st.Uploaded, blockA.id, blockB.id)
		}
		return nil
	})
	// The uploaded B is complete: its files are the local ones.
	meta := readBucketMeta(t, m, blockB.id)
	objs = blockObjects(t, m, blockB.id)
	for _, f := range meta.Thanos.Files {
		if f.RelPath == block.MetaFilename {
			continue
		}
		fi, err := os.Stat(filepath.Join(blockB.dir, filepath.FromSlash(f.RelPath)))
		if err != nil {
			t.Error(err)
		} else if objs[f.RelPath] != fi.Size() || f.SizeBytes != fi.Size() {
			t.Errorf("%s/%s: local %d bytes, meta.json says %d, bucket has %d", blockB.id, f.RelPath, fi.Size(), f.SizeBytes, objs[f.RelPath])
		}
	}

	// The store (syncing every second) now serves both blocks.
	e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.GetStore().GetMaxTime() != blockB.maxt-1 {
			return fmt.Errorf("store Info max time %d, want %d (block %s)", info.GetStore().GetMaxTime(), blockB.maxt-1, blockB.id)
		}
		return nil
	})
	wantServed(t, st, c, blockA, blockB)
}

// moveBlock renames block b into directory to (atomic, as Prometheus publishes a new
// block).
func moveBlock(t *testing.T, to string, b *testBlock) {
	t.Helper()
	dst := filepath.Join(to, b.id.String())
	if err := os.Rename(b.dir, dst); err != nil {
		t.Fatal(err)
	}
	b.dir = dst
}

// waitMeta waits until block id has a meta.json in the bucket.
func waitMeta(t *testing.T, m *e2eutil.MinIO, id ulid.ULID, timeout time.Duration) {
	t.Helper()
	e2eutil.Poll(t, timeout, 200*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := m.Client.StatObject(ctx, m.Bucket, id.String()+"/"+block.MetaFilename, minio.StatObjectOptions{})
		if err != nil {
			return fmt.Errorf("%s/meta.json: %w", id, err)
		}
		return nil
	})
}

func readBucketMeta(t *testing.T, m *e2eutil.MinIO, id ulid.ULID) *block.Meta {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := m.Get(ctx, id.String()+"/"+block.MetaFilename)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := block.DecodeMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

// wantServed checks that the store serves exactly the given blocks: Info's label sets and
// time range, the blocks-loaded gauge, and every test_metric sample.
func wantServed(t *testing.T, st *e2eutil.Vigil, c *storeapi.Client, bs ...testBlock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wantSets []string
	wantMin, wantMax := int64(math.MaxInt64), int64(math.MinInt64)
	for _, b := range bs {
		if s := labels.FromMap(b.ext).String(); !slices.Contains(wantSets, s) {
			wantSets = append(wantSets, s)
		}
		wantMin, wantMax = min(wantMin, b.mint), max(wantMax, b.maxt-1)
	}
	slices.Sort(wantSets)
	if got := infoLabelSets(info.GetLabelSets()); !slices.Equal(got, wantSets) {
		t.Errorf("store Info label sets %v, want %v", got, wantSets)
	}
	if got := info.GetStore(); got.GetMinTime() != wantMin || got.GetMaxTime() != wantMax {
		t.Errorf("store Info time range [%d, %d], want [%d, %d]", got.GetMinTime(), got.GetMaxTime(), wantMin, wantMax)
	}
	if n := mustMetric(t, st.HTTPURL, "vigil_store_blocks_loaded"); int(n) != len(bs) {
		t.Errorf("vigil_store_blocks_loaded = %v, want %d", n, len(bs))
	}
	ss := mustSeries(t, c, allTestMetric())
	assertSorted(t, ss)
	got, want := storeSamples(t, ss, math.MinInt64, math.MaxInt64), expectBlocks(math.MinInt64, math.MaxInt64, bs...)
	if d := diffSamples(want, got); d != "" {
		t.Errorf("store samples differ from the blocks' (\"Prometheus\" below means expected):\n%s", d)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

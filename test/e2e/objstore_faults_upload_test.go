package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/oklog/ulid/v2"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/shipper"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// objectVersion is one stored version of an object.
type objectVersion struct {
	size     int64
	modified time.Time
	latest   bool
}

// objectVersions lists every version of every object under prefix (versioning must be on).
func objectVersions(t *testing.T, m *e2eutil.MinIO, prefix string) map[string][]objectVersion {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := map[string][]objectVersion{}
	for o := range m.Client.ListObjects(ctx, m.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatalf("list versions: %v", o.Err)
		}
		if o.IsDeleteMarker {
			continue
		}
		out[o.Key] = append(out[o.Key], objectVersion{size: o.Size, modified: o.LastModified, latest: o.IsLatest})
	}
	return out
}

// testObjstoreFaultsUpload: a sidecar ships four blocks that the test moves into its
// TSDB directory one after another (as Prometheus publishes them), to MinIO through a
// TCP proxy with taps that injects one fault per block at an exact point of its upload:
//
//	A: none.
//	B: MinIO frozen when the PUT of B's index starts, thawed 8s later.
//	C: MinIO killed right after the PUT of C's first chunk file started, down 12s
//	   (longer than the S3 client's own retries), then started again.
//	D: MinIO frozen when the PUT of D's meta.json starts, killed 3s later while frozen,
//	   down 8s, then started again.
//
// Every block must end up in the bucket once, complete, with meta.json written once and
// after all its other files, no other block directory in the bucket, and the shipper's
// state listing each block once; the sidecar is never restarted.
func testObjstoreFaultsUpload(t *testing.T) {
	ctx := context.Background()
	m := e2eutil.StartMinIO(t)
	if err := m.EnableVersioning(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Signal(syscall.SIGCONT) }) // the hooks freeze it
	proxy := e2eutil.StartTCPProxy(t, m.Endpoint)

	prom := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{ExternalLabels: extLabels, ScrapeInterval: time.Second})
	tsdbDir, staging := t.TempDir(), t.TempDir()
	base := time.Now().Add(-20 * time.Hour).Truncate(2 * time.Hour).UnixMilli()
	var blocks []testBlock
	for i := range 4 {
		b := createTestBlock(t, staging, base+int64(i)*2*hourMs, base+int64(i+1)*2*hourMs, 20, nil)
		b.ext = extLabels
		blocks = append(blocks, b)
	}
	a, b, c, d := &blocks[0], &blocks[1], &blocks[2], &blocks[3]

	sc := e2eutil.StartVigil(t, "sidecar",
		"--prometheus.url="+prom.URL,
		"--tsdb.path="+tsdbDir,
		"--objstore.config-file="+m.WriteObjstoreConfig(t, proxy.Addr),
		"--shipper.upload-interval=1s",
		"--prometheus.get_config_interval=1s",
		"--prometheus.ready_timeout=30s")
	sc.MustWaitReady(t)
	pid := sc.Pid()

	moveBlock(t, tsdbDir, a)
	waitMeta(t, m, a.id, 30*time.Second)

	put := func(id ulid.ULID, file string) string { return fmt.Sprintf("PUT /%s/%s/%s ", m.Bucket, id, file) }
	waitFired := func(tp *e2eutil.Tap, what string) {
		t.Helper()
		select {
		case <-tp.Fired:
			t.Logf("%s: fault injected at %q", what, tp.Line)
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: the sidecar never sent %q", what, tp.Trigger)
		}
	}
	var figures []string

	// B: frozen during the index upload.
	tb := proxy.On(put(b.id, block.IndexFilename), false, func() { _ = m.Signal(syscall.SIGSTOP) })
	moveBlock(t, tsdbDir, b)
	waitFired(tb, "B")
	time.Sleep(8 * time.Second)
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed := time.Now()
	waitMeta(t, m, b.id, 60*time.Second)
	figures = append(figures, fmt.Sprintf("B (frozen 8s during its index upload): meta.json in the bucket %s after the thaw",
		time.Since(thawed).Round(time.Millisecond)))

	// C: killed during its first chunk file upload.
	tc := proxy.On(put(c.id, "chunks/000001"), true, func() { _ = m.Signal(syscall.SIGKILL) })
	failuresBefore := mustMetric(t, sc.HTTPURL, "vigil_shipper_dir_sync_failures_total")
	moveBlock(t, tsdbDir, c)
	waitFired(tc, "C")
	<-m.Done()
	time.Sleep(12 * time.Second)
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	waitMeta(t, m, c.id, 90*time.Second)
	failedPasses := mustMetric(t, sc.HTTPURL, "vigil_shipper_dir_sync_failures_total") - failuresBefore
	figures = append(figures, fmt.Sprintf("C (killed during its chunk upload, down 12s): %v failed shipper passes; meta.json in the bucket %s after MinIO restarted",
		failedPasses, time.Since(restarted).Round(time.Millisecond)))
	if failedPasses < 1 {
		t.Errorf("C: no failed shipper pass while MinIO was down for 12s: the fault missed the upload")
	}

	// D: frozen during the PUT of meta.json, then killed while frozen.
	td := proxy.On(put(d.id, block.MetaFilename), false, func() { _ = m.Signal(syscall.SIGSTOP) })
	moveBlock(t, tsdbDir, d)
	waitFired(td, "D")
	time.Sleep(3 * time.Second)
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = time.Now()
	waitMeta(t, m, d.id, 90*time.Second)
	figures = append(figures, fmt.Sprintf("D (frozen at its meta.json PUT, killed 3s later, down 8s): meta.json in the bucket %s after MinIO restarted",
		time.Since(restarted).Round(time.Millisecond)))

	// A few more passes must not upload anything again.
	passes := mustMetric(t, sc.HTTPURL, "vigil_shipper_dir_syncs_total")
	e2eutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() error {
		if n := mustMetric(t, sc.HTTPURL, "vigil_shipper_dir_syncs_total"); n < passes+3 {
			return fmt.Errorf("shipper passes: %v, waiting for %v", n, passes+3)
		}
		return nil
	})
	t.Logf("upload under MinIO faults:\n  %s", strings.Join(figures, "\n  "))
	t.Logf("shipper: %v uploads, %v upload failures, %v failed passes of %v",
		mustMetric(t, sc.HTTPURL, "vigil_shipper_uploads_total"), mustMetric(t, sc.HTTPURL, "vigil_shipper_upload_failures_total"),
		mustMetric(t, sc.HTTPURL, "vigil_shipper_dir_sync_failures_total"), mustMetric(t, sc.HTTPURL, "vigil_shipper_dir_syncs_total"))

	if sc.Exited() || sc.Pid() != pid {
		t.Errorf("the sidecar exited or was restarted")
	}
	if n := mustMetric(t, sc.HTTPURL, "vigil_shipper_uploads_total"); n != 4 {
		t.Errorf("vigil_shipper_uploads_total = %v, want 4 (each block once)", n)
	}
	rewritten := checkUploadedOnce(t, m, tsdbDir, blocks)
	// A freeze only delays an upload: nothing of A or B was sent twice.
	for _, x := range []*testBlock{a, b} {
		if len(rewritten[x.id]) > 0 {
			t.Errorf("block %s: %v written more than once, though MinIO was only frozen", x.id, rewritten[x.id])
		}
	}
}

// checkUploadedOnce checks that the bucket holds exactly the given blocks, each complete
// (every file meta.json lists, with the local size), meta.json written once and after the
// block's other files, and that the shipper's state lists each once. It returns, per
// block, the files written more than once (a retried upload before meta.json).
func checkUploadedOnce(t *testing.T, m *e2eutil.MinIO, tsdbDir string, blocks []testBlock) map[ulid.ULID][]string {
	t.Helper()
	out := map[ulid.ULID][]string{}
	versions := objectVersions(t, m, "")
	dirs := map[string]bool{}
	for name := range versions {
		dir, _, _ := strings.Cut(name, "/")
		dirs[dir] = true
	}
	var want []string
	for _, b := range blocks {
		want = append(want, b.id.String())
	}
	slices.Sort(want)
	got := make([]string, 0, len(dirs))
	for d := range dirs {
		got = append(got, d)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("bucket holds block directories %v, want exactly %v (no second copy under another ULID)", got, want)
	}
	for _, b := range blocks {
		prefix := b.id.String() + "/"
		metaV := versions[prefix+block.MetaFilename]
		if len(metaV) != 1 {
			t.Errorf("block %s: meta.json written %d times, want exactly once", b.id, len(metaV))
			continue
		}
		meta := readBucketMeta(t, m, b.id)
		var rewritten []string
		for _, f := range meta.Thanos.Files {
			if f.RelPath == block.MetaFilename {
				continue
			}
			fi, err := os.Stat(filepath.Join(b.dir, filepath.FromSlash(f.RelPath)))
			if err != nil {
				t.Error(err)
				continue
			}
			vs := versions[prefix+f.RelPath]
			var latest *objectVersion
			for i := range vs {
				if vs[i].latest {
					latest = &vs[i]
				}
			}
			switch {
			case latest == nil:
				t.Errorf("block %s: %s is not in the bucket", b.id, f.RelPath)
			case latest.size != fi.Size() || f.SizeBytes != fi.Size():
				t.Errorf("block %s: %s is %d bytes locally, %d in meta.json, %d in the bucket", b.id, f.RelPath, fi.Size(), f.SizeBytes, latest.size)
			case latest.modified.After(metaV[0].modified):
				t.Errorf("block %s: %s written at %s, after meta.json (%s): meta.json must go last", b.id, f.RelPath,
					latest.modified.Format(time.RFC3339Nano), metaV[0].modified.Format(time.RFC3339Nano))
			}
			if len(vs) > 1 {
				rewritten = append(rewritten, fmt.Sprintf("%s ×%d", f.RelPath, len(vs)))
			}
		}
		if len(rewritten) > 0 {
			t.Logf("block %s: files written more than once before meta.json made it visible (retried upload): %s", b.id, strings.Join(rewritten, ", "))
			out[b.id] = rewritten
		}
	}
	stp, err := shipper.ReadMetaFile(filepath.Join(tsdbDir, shipper.DefaultMetaFilename))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if n := countULID(stp.Uploaded, b.id); n != 1 {
			t.Errorf("shipper state lists block %s %d times, want once (%v)", b.id, n, stp.Uploaded)
		}
	}
	return out
}

// --- compaction ------------------------------------------------------------------------

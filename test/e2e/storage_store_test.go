package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

const hourMs = int64(time.Hour / time.Millisecond)

// TestStorageCorruptBlocks: of seven blocks in MinIO, four are broken behind Vigil's back:
// an index overwritten with garbage, a deleted chunk file, an index cut in half and a
// deleted index. vigil store must become ready, count and log every broken block by
// ULID, and serve the three good blocks and nothing of the broken ones. Once the broken
// files are put back, the store serves all seven blocks on its next sync.
func TestStorageCorruptBlocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := e2eutil.StartMinIO(t)
	bkt := openBucket(t, m)
	base := time.Now().Add(-24 * time.Hour).Truncate(2 * time.Hour).UnixMilli()
	var bs []testBlock
	for i := range 7 {
		ext := map[string]string{"cluster": "test", "replica": "r0", "block": fmt.Sprint(i)}
		bs = append(bs, uploadTestBlock(t, bkt, base+int64(i)*2*hourMs, base+int64(i+1)*2*hourMs, 3, ext))
	}
	good := []testBlock{bs[0], bs[2], bs[4]}
	garbageIndex, noChunks, halfIndex, noIndex := bs[1], bs[3], bs[5], bs[6]
	broken := []testBlock{garbageIndex, noChunks, halfIndex, noIndex}

	if err := m.Put(ctx, garbageIndex.id.String()+"/index", []byte(strings.Repeat("this is not a TSDB index\n", 200))); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, noChunks.id.String()+"/chunks/000001"); err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadFile(filepath.Join(halfIndex.dir, "index"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, halfIndex.id.String()+"/index", idx[:len(idx)/2]); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, noIndex.id.String()+"/index"); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{noChunks.id.String() + "/chunks/000001", noIndex.id.String() + "/index"} {
		if names, _ := m.ObjectNames(ctx, o); len(names) != 0 {
			t.Fatalf("%s still in the bucket after removing it", o)
		}
	}

	st := e2eutil.StartVigil(t, "store",
		"--objstore.config-file="+m.WriteObjstoreConfig(t, ""),
		"--data-dir="+filepath.Join(t.TempDir(), "store"),
		"--sync-block-duration=1s")
	st.MustWaitReady(t)
	if code := st.ReadyStatus(); code != http.StatusOK {
		t.Errorf("/-/ready = %d, want 200", code)
	}
	if n := mustMetric(t, st.HTTPURL, "vigil_store_block_load_failures_total"); n < float64(len(broken)) {
		t.Errorf("vigil_store_block_load_failures_total = %v, want >= %d", n, len(broken))
	}
	// Each broken block is named in an error-level line of the log; the good ones are not.
	log := st.Log()
	for _, b := range broken {
		lines := grepLines(log, b.id.String())
		if !strings.Contains(lines, "level=ERROR") && !strings.Contains(lines, "level=WARN") {
			t.Errorf("store log has no error naming broken block %s; lines naming it: %q", b.id, lines)
		} else {
			t.Logf("logged: %s", strings.SplitN(lines, "\n", 2)[0])
		}
	}
	for _, b := range good {
		if lines := grepLines(log, b.id.String()); strings.Contains(lines, "level=ERROR") || strings.Contains(lines, "level=WARN") {
			t.Errorf("store log reports a problem with good block %s: %s", b.id, lines)
		}
	}

	c := st.StoreClient(t, "")
	wantServed(t, st, c, good...)
	// Queries over a broken block's time range return nothing and no error.
	for _, b := range broken {
		ss := mustSeries(t, c, &storepb.SeriesRequest{MinTime: b.mint, MaxTime: b.maxt - 1,
			Matchers: []*storepb.LabelMatcher{eq("__name__", "test_metric")}})
		if got := storeSamples(t, ss, b.mint, b.maxt-1); len(got) != 0 {
			t.Errorf("store returned samples in broken block %s's range [%d, %d): %v", b.id, b.mint, b.maxt, got)
		}
	}
	// Label APIs see the good blocks only.
	resp, err := c.LabelValues(ctx, &storepb.LabelValuesRequest{Label: "block", Start: math.MinInt64, End: math.MaxInt64})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(resp.GetValues(), ","); got != "0,2,4" {
		t.Errorf("label values of block: %q, want \"0,2,4\"", got)
	}

	// Repair the bucket: the store retries the blocks it skipped.
	for _, f := range []struct {
		b   testBlock
		rel string
	}{{garbageIndex, "index"}, {noChunks, "chunks/000001"}, {halfIndex, "index"}, {noIndex, "index"}} {
		content, err := os.ReadFile(filepath.Join(f.b.dir, filepath.FromSlash(f.rel)))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Put(ctx, f.b.id.String()+"/"+f.rel, content); err != nil {
			t.Fatal(err)
		}
	}
	e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
		if n := mustMetric(t, st.HTTPURL, "vigil_store_blocks_loaded"); int(n) != len(bs) {
			return fmt.Errorf("vigil_store_blocks_loaded = %v after repairing the bucket, want %d", n, len(bs))
		}
		return nil
	})
	wantServed(t, st, c, bs...)
}

// TestStorageBadConfig: a misspelt key in the objstore configuration stops vigil store and
// vigil sidecar at start with a message naming the key; vigil store without object
// storage stops with a message naming the flags.
func TestStorageBadConfig(t *testing.T) {
	t.Parallel()
	bin := e2eutil.VigilBin(t)
	const badYAML = `type: S3
config:
  bucket: vigil
  endpoint: 127.0.0.1:9
  acess_key: minio
  secret_key: minio123
  insecure: true
`
	badFile := filepath.Join(t.TempDir(), "objstore.yml")
	if err := os.WriteFile(badFile, []byte(badYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	const badTop = "type: S3\nconfig:\n  bucket: vigil\n  endpoint: 127.0.0.1:9\nprefx: x\n"
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the output
	}{
		{"store/config-file", []string{"store", "--objstore.config-file=" + badFile}, []string{"acess_key"}},
		{"store/config", []string{"store", "--objstore.config=" + badYAML}, []string{"acess_key"}},
		{"store/top-level", []string{"store", "--objstore.config=" + badTop}, []string{"prefx"}},
		{"sidecar/config-file", []string{"sidecar", "--objstore.config-file=" + badFile,
			"--prometheus.url=http://" + e2eutil.FreeAddr(t), "--tsdb.path=" + t.TempDir()}, []string{"acess_key"}},
		{"store/no-objstore", []string{"store"}, []string{"--objstore.config-file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(slices.Clone(tc.args), "--http-address="+e2eutil.FreeAddr(t), "--grpc-address="+e2eutil.FreeAddr(t))
			if tc.args[0] == "store" {
				args = append(args, "--data-dir="+filepath.Join(t.TempDir(), "data"))
			}
			code, out, err := e2eutil.ProcessExit(t, 20*time.Second, e2eutil.ProcessSpec{Bin: bin, Args: args})
			if err != nil {
				t.Fatalf("%v\noutput:\n%s", err, out)
			}
			if code == 0 {
				t.Errorf("vigil %s exited 0, want non-zero; output:\n%s", strings.Join(tc.args, " "), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not mention %q:\n%s", w, out)
				}
			}
			t.Logf("exit %d: %s", code, strings.TrimSpace(lastLine(out)))
		})
	}
}

// TestStorageLimits: per-request series and sample limits and the chunk pool of vigil
// store fail a request with ResourceExhausted while smaller requests succeed, and the
// pool is given back after a failed request.
func TestStorageLimits(t *testing.T) {
	t.Parallel()
	m := e2eutil.StartMinIO(t)
	bkt := openBucket(t, m)
	base := time.Now().Add(-24 * time.Hour).Truncate(2 * time.Hour).UnixMilli()
	// 10 series x 2h at 15s: 480 samples in 4 chunks of 120 samples per series.
	b := uploadTestBlock(t, bkt, base, base+2*hourMs, 10, extLabels)
	cfg := m.WriteObjstoreConfig(t, "")
	one := func(series string, mint, maxt int64) *storepb.SeriesRequest {
		return &storepb.SeriesRequest{MinTime: mint, MaxTime: maxt,
			Matchers: []*storepb.LabelMatcher{eq("__name__", "test_metric"), re("series", series)}}
	}
	t.Run("SeriesLimit", func(t *testing.T) {
		t.Parallel()
		st := e2eutil.StartVigil(t, "store", "--objstore.config-file="+cfg,
			"--data-dir="+filepath.Join(t.TempDir(), "store"), "--store.limits.request-series=2")
		st.MustWaitReady(t)
		c := st.StoreClient(t, "")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _, err := collectSeries(ctx, c, allTestMetric())
		wantCode(t, "10 series with --store.limits.request-series=2", err, codes.ResourceExhausted)
		wantMessage(t, err, "series")
		_, _, err = collectSeries(ctx, c, one("0|1|2", b.mint, b.mint+10*60*1000))
		wantCode(t, "3 series with --store.limits.request-series=2", err, codes.ResourceExhausted)
		ss := mustSeries(t, c, one("0|1", math.MinInt64, math.MaxInt64))
		want := seriesSamples{}
		for _, i := range []int{0, 1} {
			want[seriesKey(i, b.ext)] = b.expectedSamples(i, math.MinInt64, math.MaxInt64)
		}
		if d := diffSamples(want, storeSamples(t, ss, math.MinInt64, math.MaxInt64)); d != "" {
			t.Errorf("2 series with --store.limits.request-series=2:\n%s", d)
		}
	})

	t.Run("SamplesLimit", func(t *testing.T) {
		t.Parallel()
		st := e2eutil.StartVigil(t, "store", "--objstore.config-file="+cfg,
			"--data-dir="+filepath.Join(t.TempDir(), "store"), "--store.limits.request-samples=300")
		st.MustWaitReady(t)
		c := st.StoreClient(t, "")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _, err := collectSeries(ctx, c, one("0", math.MinInt64, math.MaxInt64))
		wantCode(t, "480 samples with --store.limits.request-samples=300", err, codes.ResourceExhausted)
		wantMessage(t, err, "sample")
		// 30 minutes of one series: one chunk of 120 samples.
		half := b.mint + hourMs/2 - 1
		ss := mustSeries(t, c, one("0", b.mint, half))
		if d := diffSamples(seriesSamples{seriesKey(0, b.ext): b.expectedSamples(0, b.mint, half)}, storeSamples(t, ss, b.mint, half)); d != "" {
			t.Errorf("30m of one series under the samples limit:\n%s", d)
		}
	})

	t.Run("ChunkPool", func(t *testing.T) {
		t.Parallel()
		st := e2eutil.StartVigil(t, "store", "--objstore.config-file="+cfg,
			"--data-dir="+filepath.Join(t.TempDir(), "store"),
			"--chunk-pool-size=1KB")
		st.MustWaitReady(t)
		c := st.StoreClient(t, "")
		small := one("3", b.mint, b.mint+5*60*1000)
		wantSmall := seriesSamples{seriesKey(3, b.ext): b.expectedSamples(3, small.MinTime, small.MaxTime)}
		checkSmall := func(when string) {
			t.Helper()
			ss := mustSeries(t, c, small)
			if d := diffSamples(wantSmall, storeSamples(t, ss, small.MinTime, small.MaxTime)); d != "" {
				t.Errorf("%s: 5 minutes of one series with --chunk-pool-size=1KB:\n%s", when, d)
			}
		}
		checkSmall("before the large query")
		for i := range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, _, err := collectSeries(ctx, c, allTestMetric())
			cancel()
			wantCode(t, fmt.Sprintf("large query %d with --chunk-pool-size=1KB", i), err, codes.ResourceExhausted)
			wantMessage(t, err, "chunk")
		}
		// The failed requests gave their bytes back.
		e2eutil.Poll(t, 10*time.Second, 100*time.Millisecond, func() error {
			if n := mustMetric(t, st.HTTPURL, "vigil_store_chunk_pool_bytes_in_use"); n != 0 {
				return fmt.Errorf("vigil_store_chunk_pool_bytes_in_use = %v after the requests ended, want 0", n)
			}
			return nil
		})
		checkSmall("after the large queries")
		if st.Exited() {
			t.Errorf("store exited")
		}
	})
}

// wantMessage fails the test unless err's message contains sub.
func wantMessage(t *testing.T, err error, sub string) {
	t.Helper()
	if err != nil && !strings.Contains(status.Convert(err).Message(), sub) {
		t.Errorf("error %q does not mention %q", status.Convert(err).Message(), sub)
	}
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

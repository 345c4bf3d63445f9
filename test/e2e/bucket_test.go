package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/block/blocktest"
	vobjstore "github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// runBucket runs `vigil bucket args...` to completion and returns its exit code, stdout
// and stderr (the logs).
func runBucket(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2eutil.VigilBin(t), append([]string{"bucket"}, args...)...)
	cmd.Dir = t.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("vigil bucket %s did not exit within a minute; stderr:\n%s", strings.Join(args, " "), errOut.String())
	case err != nil && !errors.As(err, &exitErr):
		t.Fatalf("run vigil bucket %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// mustBucket runs `vigil bucket args...` and fails the test unless it exits 0.
func mustBucket(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runBucket(t, args...)
	if code != 0 {
		t.Fatalf("vigil bucket %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, tailLines(errOut, 30))
	}
	return out
}

// inspectRow is one row of `vigil bucket inspect`'s table, by column name.
type inspectRow map[string]string

func parseInspectTable(t *testing.T, out string) []inspectRow {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	header := strings.Fields(lines[0])
	var rows []inspectRow
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < len(header) {
			t.Fatalf("inspect row %q has %d fields, header %d", l, len(f), len(header))
		}
		r := inspectRow{}
		for i, h := range header {
			r[h] = f[i]
		}
		r["LABELS"] = strings.Join(f[len(header)-1:], " ")
		rows = append(rows, r)
	}
	return rows
}

// uploadOverlapping uploads a raw 4h block of {cluster="e2e"} starting at mint.
func uploadOverlapping(t *testing.T, m *e2eutil.MinIO, prefix string, mint int64) ulid.ULID {
	t.Helper()
	dir := t.TempDir()
	id := blocktest.CreateBlock(t, dir, mint, mint+2*compactBlockMS, 3)
	blocktest.EditMeta(t, dir, id, func(m *block.Meta) {
		m.Thanos.Labels = map[string]string{"cluster": "e2e"}
		m.Thanos.Source = block.SourceTest
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bkt, err := vobjstore.NewBucket(ctx, []byte(objstoreYAMLPrefix(m, prefix)), slog.New(slog.DiscardHandler), nil, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	if err := block.Upload(ctx, slog.New(slog.DiscardHandler), bkt, filepath.Join(dir, id.String())); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestBucketTools: a MinIO bucket is filled like TestCompactDedupDownsample's (an HA
// pair of 2h blocks over 52h) and compacted by a real `vigil compact` pass (replica
// dedup, downsampling). Then `vigil bucket` must show the compactor's work (level > 1
// blocks, a 5m row), ls must list every block, verify must pass, the web view must list
// every block and serve its meta.json; after an overlapping block is uploaded verify
// must fail and the page must flag it; mark and cleanup must remove it again. An
// unreachable bucket must fail fast with a clear error.
func TestBucketTools(t *testing.T) {
	began := time.Now()
	m := e2eutil.StartMinIO(t)
	start, end := compactWindow()
	dirs, _ := writeCompactBlocks(t, t.TempDir(), start, end)
	cfg := uploadCompactBlocks(t, m, "bucket", dirs)
	runCompact(t, cfg)
	t.Logf("bucket filled and compacted in %s", time.Since(began).Round(time.Millisecond))
	obj := "--objstore.config-file=" + cfg

	// inspect shows what the compactor made.
	table := mustBucket(t, "inspect", obj)
	rows := parseInspectTable(t, table)
	var compacted, downsampled int
	for _, r := range rows {
		if level, _ := strconv.Atoi(r["COMP-LEVEL"]); r["RESOLUTION"] == "raw" && level > 1 {
			compacted++
		}
		if r["RESOLUTION"] == "5m" {
			downsampled++
		}
		if r["LABELS"] != `{cluster="e2e"}` {
			t.Errorf("inspect: row with labels %s, want {cluster=\"e2e\"} (deduplicated)", r["LABELS"])
		}
	}
	if compacted == 0 || downsampled == 0 {
		t.Errorf("inspect: %d raw blocks of level > 1 and %d 5m blocks, want some of each:\n%s", compacted, downsampled, table)
	}
	t.Logf("vigil bucket inspect:\n%s", table)

	// ls lists every block of the bucket.
	var want []string
	for _, b := range listBucketBlocks(t, m, "bucket") {
		if b.meta != nil {
			want = append(want, b.id.String())
		}
	}
	if got := strings.Fields(mustBucket(t, "ls", obj)); !slices.Equal(got, want) {
		t.Errorf("ls = %v, want %v", got, want)
	}

	// verify passes on the compactor's output.
	if out := mustBucket(t, "verify", obj); !strings.Contains(out, ": 0 issues") {
		t.Errorf("verify on a healthy bucket:\n%s", out)
	}

	web := e2eutil.StartVigilWith(t, e2eutil.VigilOptions{Args: []string{"bucket", "web", obj}, NoGRPC: true})
	web.MustWaitReady(t)
	checkWebPage(t, web.HTTPURL, want, false)
	t.Run("browser", func(t *testing.T) { checkWebPageInBrowser(t, web.HTTPURL, want, rows) })

	// An overlapping raw block of the deduplicated group.
	bad := uploadOverlapping(t, m, "bucket", start+compactBlockMS)
	code, out, _ := runBucket(t, "verify", obj)
	if code == 0 || !strings.Contains(out, "overlapped_blocks: group {cluster=\"e2e\"} raw") || !strings.Contains(out, bad.String()) {
		t.Errorf("verify with an overlapping block: exit %d\n%s", code, out)
	}
	e2eutil.Poll(t, 10*time.Second, 200*time.Millisecond, func() error { // a reload reads the bucket again
		if _, page, err := e2eutil.HTTPGet(context.Background(), web.HTTPURL+"/"); err != nil || !strings.Contains(page, bad.String()) {
			return fmt.Errorf("web page does not show the new block %s yet (%v)", bad, err)
		}
		return nil
	})
	checkWebPage(t, web.HTTPURL, append(want, bad.String()), true)

	// Marked for deletion, it no longer counts; cleanup deletes it.
	mustBucket(t, "mark", obj, "--id="+bad.String(), "--marker=deletion-mark.json", "--details=e2e: overlapping test block")
	mustBucket(t, "verify", obj)
	mustBucket(t, "cleanup", obj, "--delete-delay=0s")
	if got := strings.Fields(mustBucket(t, "ls", obj)); !slices.Equal(got, want) {
		t.Errorf("ls after cleanup = %v, want %v", got, want)
	}

	// An unreachable bucket fails with a clear error within the timeout.
	unreachable := strings.Replace(m.ObjstoreYAML(""), m.Endpoint, e2eutil.FreeAddr(t), 1)
	t0 := time.Now()
	code, _, errOut := runBucket(t, "ls", "--objstore.config="+unreachable, "--timeout=5s")
	if code == 0 || !strings.Contains(errOut, "list blocks in bucket") || time.Since(t0) > 30*time.Second {
		t.Errorf("ls of an unreachable bucket: exit %d after %s:\n%s", code, time.Since(t0).Round(time.Millisecond), tailLines(errOut, 5))
	}
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
}

// checkWebPageInBrowser opens the page in headless Chromium (test/e2e/ui/bucket.mjs):
// every block must be drawn and listed, the raw timeline must have a row for each
// compaction level above 1 that inspect reported, a 5m timeline must be there, and
// clicking the highest-level raw block must open its meta.json. Screenshots (desktop and
// phone) go to $VIGIL_E2E_ARTEFACTS/bucket; docs/img/bucket-web.png is a copy.
func checkWebPageInBrowser(t *testing.T, base string, ids []string, rows []inspectRow) {
	br := needBrowser(t, "bucket")
	levels := map[int]bool{}
	var click string
	top := 0
	for _, r := range rows {
		level, _ := strconv.Atoi(r["COMP-LEVEL"])
		if r["RESOLUTION"] != "raw" || level < 2 {
			continue
		}
		levels[level] = true
		if level > top {
			top, click = level, r["ULID"]
		}
	}
	var ls []string
	for _, l := range slices.Sorted(maps.Keys(levels)) {
		ls = append(ls, strconv.Itoa(l))
	}
	if err := br.run(t, 2*time.Minute, "bucket.mjs", "BUCKET_URL="+base, "BLOCKS="+strings.Join(ids, ","),
		"LEVELS="+strings.Join(ls, ","), "CLICK="+click); err != nil {
		t.Error(err)
	}
}

// checkWebPage fetches the page and checks that it links every block, that
// /meta/<ULID> serves the block's meta.json and that /api/v1/blocks lists every block.
func checkWebPage(t *testing.T, base string, ids []string, wantOverlap bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, page, err := e2eutil.HTTPGet(ctx, base+"/")
	if err != nil || code != 200 {
		t.Fatalf("GET /: %d %v", code, err)
	}
	for _, id := range ids {
		if !strings.Contains(page, `href="meta/`+id+`"`) {
			t.Errorf("web page does not link block %s", id)
		}
	}
	if got := strings.Contains(page, "overlap in time"); got != wantOverlap {
		t.Errorf("web page reports an overlap: %v, want %v", got, wantOverlap)
	}
	code, body, err := e2eutil.HTTPGet(ctx, base+"/meta/"+ids[0])
	var meta block.Meta
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &meta) != nil || meta.ULID.String() != ids[0] {
		t.Errorf("GET /meta/%s: %d %v %.200s", ids[0], code, err, body)
	}
	code, body, err = e2eutil.HTTPGet(ctx, base+"/api/v1/blocks")
	var api struct {
		Data struct {
			Blocks []struct {
				ULID string `json:"ulid"`
			} `json:"blocks"`
		} `json:"data"`
	}
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &api) != nil {
		t.Fatalf("GET /api/v1/blocks: %d %v %.200s", code, err, body)
	}
	var got []string
	for _, b := range api.Data.Blocks {
		got = append(got, b.ULID)
	}
	slices.Sort(got)
	sorted := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, sorted) {
		t.Errorf("/api/v1/blocks lists %v, want %v", got, sorted)
	}
	if t.Failed() {
		t.Logf("page:\n%s", fmt.Sprintf("%.3000s", page))
	}
}

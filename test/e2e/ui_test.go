package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestUI drives the querier's web UI in headless Chromium (through playwright-core, see
// test/e2e/ui/ui.mjs) against real processes: the HA fixture of query_test.go (two
// Prometheus replicas with sidecars and a querier) plus a store gateway over MinIO.
// Screenshots of every page are written to $VIGIL_E2E_ARTEFACTS/ui (or a temporary
// directory) and logged; docs/img/ holds copies of them for docs/ui.md.
//
// Without Chromium or Node.js the test is skipped, unless CI=true, where it fails.
func TestUI(t *testing.T) {
	t.Parallel()
	chromiumBin := findChromium()
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	switch {
	case chromiumBin == "" || nodeErr != nil || npmErr != nil:
		msg := fmt.Sprintf("browser test needs Chromium (found %q; apt-get install chromium, or set CHROMIUM_BIN) and Node.js with npm (node: %v, npm: %v)", chromiumBin, nodeErr, npmErr)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; scripts/install-test-deps.sh installs them")
		}
		t.Skip(msg)
	}
	uiDir, err := filepath.Abs("ui")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(uiDir, "node_modules", "playwright-core")); err != nil {
		// playwright-core only, pinned in package-lock.json; it downloads no browser.
		out, err := exec.Command(npm, "ci", "--prefix", uiDir, "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", uiDir, err, out)
		}
	}
	artefacts := t.TempDir()
	if d := os.Getenv("VIGIL_E2E_ARTEFACTS"); d != "" {
		artefacts = filepath.Join(d, "ui")
		if err := os.MkdirAll(artefacts, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	f := startHAFixture(t)

	// A store gateway over MinIO with one old block, added to the querier's SD file.
	var storeAddr string
	if minioAvailable() {
		m := e2eutil.StartMinIO(t)
		now := time.Now().Truncate(time.Hour)
		uploadTestBlock(t, openBucket(t, m), now.Add(-26*time.Hour).UnixMilli(), now.Add(-24*time.Hour).UnixMilli(), 3,
			map[string]string{"cluster": "history", "replica": "r0"})
		st := e2eutil.StartVigil(t, "store",
			"--objstore.config-file="+m.WriteObjstoreConfig(t, ""),
			"--data-dir="+filepath.Join(t.TempDir(), "store"),
			"--sync-block-duration=1s")
		st.MustWaitReady(t)
		storeAddr = st.GRPCAddr
		writeSDFile(t, f.sdFile, f.side[0].GRPCAddr, f.side[1].GRPCAddr, storeAddr)
		e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
			return storesHealthy(f.q.HTTPURL, "store", storeAddr)
		})
	} else {
		t.Log("MinIO not found: the Stores page is checked without a store gateway")
	}

	// Half a minute of data makes graphs (and the screenshots in docs/img/) worth looking at.
	sleepUntil(f.t0.Add(30 * time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "ui.mjs")
	cmd.Dir = uiDir
	cmd.Env = append(os.Environ(),
		"VIGIL_UI_URL="+f.q.HTTPURL,
		"ARTEFACTS="+artefacts,
		"CHROMIUM="+chromiumBin,
		"SIDECARS="+f.side[0].GRPCAddr+","+f.side[1].GRPCAddr,
		"STORE_GATEWAY="+storeAddr,
		"TARGETS="+strconv.Itoa(3),
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.Contains(l, "unexpected operator") && !strings.Contains(l, "Failed to connect to the bus") {
			t.Log(l)
		}
	}
	t.Logf("browser test took %s; screenshots in %s", time.Since(start).Round(time.Millisecond), artefacts)
	if err != nil {
		t.Fatalf("browser test failed: %v (querier log tail follows)\n%s", err, tailLines(f.q.Log(), 30))
	}
	if !strings.Contains(out.String(), "\nPASS") {
		t.Fatal("browser test did not report PASS")
	}
}

func findChromium() string {
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// minioAvailable tells whether e2eutil.MinIOBin would find MinIO (it skips otherwise).
func minioAvailable() bool {
	if os.Getenv("MINIO_BIN") != "" {
		return true
	}
	if _, err := exec.LookPath("minio"); err == nil {
		return true
	}
	gp := os.Getenv("GOPATH")
	if gp == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err != nil {
			return false
		}
		gp = strings.TrimSpace(string(out))
	}
	for _, d := range filepath.SplitList(gp) {
		if _, err := os.Stat(filepath.Join(d, "bin", "minio")); err == nil {
			return true
		}
	}
	return false
}

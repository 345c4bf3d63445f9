package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// browser runs the playwright-core scripts of test/e2e/ui/ (ui.mjs for the querier UI,
// bucket.mjs for `vigil bucket web`, ...) with node against headless Chromium.
type browser struct {
	node, chromium string
	dir            string // test/e2e/ui, absolute
	artefacts      string // screenshots
}

// needBrowser finds Chromium and Node.js, installs playwright-core into test/e2e/ui if
// needed and picks the screenshot directory: $VIGIL_E2E_ARTEFACTS/<artefacts>, or a
// temporary directory. Without Chromium or Node.js the test is skipped, unless CI=true or
// VIGIL_E2E_REQUIRE=1, where it fails.
func needBrowser(t *testing.T, artefacts string) *browser {
	t.Helper()
	chromiumBin := findChromium()
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if chromiumBin == "" || nodeErr != nil || npmErr != nil {
		msg := fmt.Sprintf("browser test needs Chromium (found %q; apt-get install chromium, or set CHROMIUM_BIN) and Node.js with npm (node: %v, npm: %v)", chromiumBin, nodeErr, npmErr)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; scripts/install-test-deps.sh installs them")
		}
		e2eutil.SkipMissing(t, msg)
	}
	dir, err := filepath.Abs("ui")
	if err != nil {
		t.Fatal(err)
	}
	if err := npmCI(npm, dir); err != nil {
		t.Fatal(err)
	}
	b := &browser{node: node, chromium: chromiumBin, dir: dir, artefacts: t.TempDir()}
	if d := os.Getenv("VIGIL_E2E_ARTEFACTS"); d != "" {
		b.artefacts = filepath.Join(d, artefacts)
		if err := os.MkdirAll(b.artefacts, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// run runs `node <script>` in test/e2e/ui with ARTEFACTS and CHROMIUM set and env added
// (KEY=VALUE), logs its output (one line per step) and returns an error unless it
// exits 0 having printed PASS.
func (b *browser) run(t *testing.T, timeout time.Duration, script string, env ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.node, script)
	cmd.Dir = b.dir
	cmd.Env = append(append(os.Environ(), "ARTEFACTS="+b.artefacts, "CHROMIUM="+b.chromium), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		// Chromium's harmless noise (test-harness.md §6).
		if !strings.Contains(l, "unexpected operator") && !strings.Contains(l, "Failed to connect to the bus") {
			t.Log(l)
		}
	}
	t.Logf("%s took %s; screenshots in %s", script, time.Since(start).Round(time.Millisecond), b.artefacts)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", script, err)
	case !strings.Contains(out.String(), "\nPASS"):
		return fmt.Errorf("%s did not report PASS", script)
	}
	return nil
}

// npmMu serialises npmCI: browser tests run in parallel and share test/e2e/ui.
var npmMu sync.Mutex

// npmCI installs playwright-core (only it, pinned in package-lock.json; it downloads no
// browser) into dir/node_modules unless it is there.
func npmCI(npm, dir string) error {
	npmMu.Lock()
	defer npmMu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err == nil {
		return nil
	}
	if out, err := exec.Command(npm, "ci", "--prefix", dir, "--no-audit", "--no-fund").CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return nil
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

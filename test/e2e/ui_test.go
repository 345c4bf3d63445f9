package e2e

import (
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
// Then r0's sidecar is killed and ui/ui-endpoint-down.mjs checks that the Graph panel
// shows the querier's warning about it next to r1's data. Screenshots of every page are written to $VIGIL_E2E_ARTEFACTS/ui (or a temporary
// directory) and logged; docs/img/ holds copies of them for docs/ui.md.
//
// Without Chromium or Node.js the test is skipped, unless CI=true, where it fails.
func TestUI(t *testing.T) {
	t.Parallel()
	br := needBrowser(t, "ui")

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

	env := []string{"VIGIL_UI_URL=" + f.q.HTTPURL, "TARGETS=" + strconv.Itoa(3)}
	if err := br.run(t, 3*time.Minute, "ui.mjs", append(env,
		"SIDECARS="+f.side[0].GRPCAddr+","+f.side[1].GRPCAddr,
		"STORE_GATEWAY="+storeAddr)...); err != nil {
		t.Fatalf("browser test failed: %v (querier log tail follows)\n%s", err, tailLines(f.q.Log(), 30))
	}

	// A real outage: replica r0's sidecar is killed (this fixture is TestUI's own and
	// nothing needs it any more). Queries go on with r1's data and warn about r0's
	// endpoint, and the page must say so.
	dead := f.side[0].GRPCAddr
	if err := f.side[0].Kill(); err != nil {
		t.Fatal(err)
	}
	e2eutil.Poll(t, 20*time.Second, 250*time.Millisecond, func() error {
		all, err := stores(f.q.HTTPURL)
		if err != nil {
			return err
		}
		if s, _, ok := findStore(all, dead); !ok || s.LastError == nil {
			return fmt.Errorf("stores: want %s listed with a lastError, got %+v", dead, all)
		}
		return nil
	})
	if err := br.run(t, time.Minute, "ui-endpoint-down.mjs", append(env, "DEAD="+dead)...); err != nil {
		t.Fatalf("browser test with an endpoint down failed: %v (querier log tail follows)\n%s", err, tailLines(f.q.Log(), 30))
	}
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

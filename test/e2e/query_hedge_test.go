package e2e

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// testFrozenReplica: a sidecar frozen with SIGSTOP after it was healthy costs a
// deduplicated query less than half a second: its replica answers, and hedging drops the
// frozen one with a warning (Thanos waits 13 s here).
func testFrozenReplica(t *testing.T, f *haFixture) {
	q := e2eutil.StartVigil(t, "query", "--endpoint="+f.side[0].GRPCAddr, "--endpoint="+f.side[1].GRPCAddr,
		"--query.replica-label="+replicaLabel)
	q.MustWaitReady(t)
	e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
		return storesHealthy(q.HTTPURL, "sidecar", f.side[0].GRPCAddr, f.side[1].GRPCAddr)
	})
	params := url.Values{"query": {"count(up)"}}
	if r := mustAPI(t, q.HTTPURL, "/api/v1/query", params); len(r.Warnings) > 0 {
		t.Fatalf("warnings before the freeze: %q", r.Warnings)
	}
	if err := f.side[1].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The signal is delivered asynchronously: wait until the kernel reports it stopped.
	e2eutil.Poll(t, 5*time.Second, 5*time.Millisecond, func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", f.side[1].Pid()))
		if err != nil {
			return err
		}
		if fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(fields) == 0 || fields[0] != "T" {
			return fmt.Errorf("sidecar not stopped yet: %.60s", b)
		}
		return nil
	})
	defer func() {
		if err := f.side[1].Signal(syscall.SIGCONT); err != nil {
			t.Error(err)
		}
	}()
	for i := 0; i < 3; i++ {
		r := mustAPI(t, q.HTTPURL, "/api/v1/query", params)
		vec := mustSeriesResult(t, r, "vector")
		if len(vec) != 1 || vec[0].value(t).V != 3 {
			t.Fatalf("count(up) with r1's sidecar frozen: %v, want 3 (every target, from r0)", vec)
		}
		if r.Took >= 500*time.Millisecond {
			t.Errorf("count(up) with a frozen replica took %s, want under 0.5s", r.Took)
		}
		if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "hedging") }) {
			t.Errorf("warnings %q, want one saying the frozen replica was dropped by hedging", r.Warnings)
		}
		t.Logf("count(up) with a frozen replica: %s, warnings %q", r.Took.Round(time.Millisecond), r.Warnings)
	}
}

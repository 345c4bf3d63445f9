package hashring

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// writeFile replaces path atomically, as a ConfigMap update does, so the
// watcher never sees a half-written file.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func firstAddress(r *Ring) string { return r.Endpoints()[0].Address }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatcherReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hashrings.json")
	writeFile(t, path, `[{"endpoints": ["a:1"]}]`)
	reg := prometheus.NewRegistry()
	w, err := NewWatcher(path, 20*time.Millisecond, "", nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	if got := firstAddress(w.Ring()); got != "a:1" {
		t.Fatalf("initial ring has %s, want a:1", got)
	}
	if v := testutil.ToFloat64(w.lastSuccess); v == 0 {
		t.Error("last reload success timestamp not set after the first read")
	}

	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan *Ring, 10)
	done := make(chan struct{})
	go func() {
		w.Run(ctx, func(r *Ring) { changes <- r })
		close(done)
	}()

	writeFile(t, path, `[{"endpoints": ["b:1"], "algorithm": "ketama"}]`)
	select {
	case r := <-changes:
		if got := firstAddress(r); got != "b:1" {
			t.Fatalf("changed ring has %s, want b:1", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no onChange after rewriting the file")
	}

	writeFile(t, path, `[{"endpoints": []}]`)
	waitFor(t, "an error to be counted", func() bool { return testutil.ToFloat64(w.errors) >= 1 })
	if got := firstAddress(w.Ring()); got != "b:1" {
		t.Errorf("after a broken file the ring has %s, want b:1 kept", got)
	}
	if v := testutil.ToFloat64(w.successful); v != 0 {
		t.Errorf("last_reload_successful = %v after a broken file, want 0", v)
	}

	os.Remove(path)
	time.Sleep(50 * time.Millisecond)
	writeFile(t, path, `[{"endpoints": ["c:1"]}]`)
	select {
	case r := <-changes:
		if got := firstAddress(r); got != "c:1" {
			t.Fatalf("repaired ring has %s, want c:1", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no onChange after repairing the file")
	}
	if got := firstAddress(w.Ring()); got != "c:1" {
		t.Errorf("Ring() has %s after the repair, want c:1", got)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if len(changes) != 0 {
		t.Errorf("%d unexpected extra onChange calls (unchanged content must not reload)", len(changes))
	}
	if n := testutil.ToFloat64(w.changes); n != 2 {
		t.Errorf("changes_total = %v, want 2", n)
	}
}

func TestWatcherMetricNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hashrings.json")
	writeFile(t, path, `[{"endpoints": ["a:1"]}]`)
	reg := prometheus.NewRegistry()
	if _, err := NewWatcher(path, time.Minute, AlgorithmKetama, nil, reg); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg,
		"vigil_receive_hashrings_file_errors_total",
		"vigil_receive_hashrings_file_last_reload_success_timestamp_seconds")
	if err != nil || n != 2 {
		t.Errorf("gathered %d of the 2 required metrics (err %v)", n, err)
	}
	// A nil registerer is allowed.
	if _, err := NewWatcher(path, time.Minute, "", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestNewWatcherRejectsBadFirstRead(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.json")
	writeFile(t, broken, `[{"endpoints": ["a", "a"]}]`)
	cases := map[string]string{
		"missing file": filepath.Join(dir, "missing.json"),
		"invalid file": broken,
	}
	for name, path := range cases {
		if _, err := NewWatcher(path, time.Minute, "", nil, nil); err == nil {
			t.Errorf("%s: NewWatcher succeeded", name)
		}
	}
	if _, err := NewWatcher(broken, 0, "", nil, nil); err == nil {
		t.Error("zero interval accepted")
	}
}

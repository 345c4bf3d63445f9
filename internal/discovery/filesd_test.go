package discovery

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes content atomically, as configuration tools do.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFileSDParseJSONAndYAML(t *testing.T) {
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "stores.json")
	yamlFile := filepath.Join(dir, "stores.yaml")
	ymlFile := filepath.Join(dir, "more.yml")
	writeFile(t, jsonFile, `[
  {"targets": ["store-a:10901", "dns+store-b.ns.svc:10901"], "labels": {"team": "a"}},
  {"targets": ["dnssrv+_grpc._tcp.store.ns"]}
]`)
	writeFile(t, yamlFile, `
- targets:
    - store-c:10901
    - store-a:10901
  labels:
    env: prod
- targets: ["dnssrvnoa+_grpc._tcp.rule.ns"]
`)
	writeFile(t, ymlFile, "- targets: [store-d:1]\n")

	reg := prometheus.NewPedanticRegistry()
	f := NewFileSD([]string{jsonFile, yamlFile, ymlFile}, 0, nil, reg)
	if err := f.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	want := []string{
		"dns+store-b.ns.svc:10901",
		"dnssrv+_grpc._tcp.store.ns",
		"dnssrvnoa+_grpc._tcp.rule.ns",
		"store-a:10901",
		"store-c:10901",
		"store-d:1",
	}
	if got := f.Targets(); !slices.Equal(got, want) {
		t.Fatalf("Targets = %q, want %q", got, want)
	}
	if got := testutil.ToFloat64(f.reads); got != 3 {
		t.Errorf("vigil_sd_file_reads_total = %v, want 3", got)
	}
	if n, err := testutil.GatherAndCount(reg, "vigil_sd_file_reads_total", "vigil_sd_file_read_failures_total"); err != nil || n != 2 {
		t.Errorf("registered metrics = %d (%v), want 2", n, err)
	}
}

func TestFileSDInvalidFileKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	changing := filepath.Join(dir, "changing.json")
	writeFile(t, good, "- targets: [good:1]\n")
	writeFile(t, changing, `[{"targets": ["old:1"]}]`)
	f := NewFileSD([]string{good, changing}, 0, nil, nil)
	if err := f.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}

	tests := []struct {
		name, content string
		want          []string // substrings of the error
	}{
		{"bad JSON", `[{"targets": ["new:1"]`, []string{changing, "parse JSON"}},
		{"wrong type", `{"targets": ["new:1"]}`, []string{changing, "parse JSON"}},
		{"invalid target", `[{"targets": ["new:1"]}, {"targets": ["foo+x:1"]}]`, []string{changing, "group 1", `unknown prefix "foo+"`}},
		{"missing port", `[{"targets": ["dns+new"]}]`, []string{changing, `"dns+new": missing port`}},
	}
	for i, tc := range tests {
		writeFile(t, changing, tc.content)
		err := f.Refresh(context.Background())
		if err == nil {
			t.Fatalf("%s: Refresh = nil, want error", tc.name)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
			}
		}
		if got, want := f.Targets(), []string{"good:1", "old:1"}; !slices.Equal(got, want) {
			t.Errorf("%s: Targets = %q, want the last good %q", tc.name, got, want)
		}
		if got := testutil.ToFloat64(f.readFailures); got != float64(i+1) {
			t.Errorf("%s: vigil_sd_file_read_failures_total = %v, want %d", tc.name, got, i+1)
		}
	}

	// A missing file is an error too and keeps its targets.
	if err := os.Remove(changing); err != nil {
		t.Fatal(err)
	}
	if err := f.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), changing) {
		t.Errorf("Refresh after removal = %v, want error naming %s", err, changing)
	}
	if got, want := f.Targets(), []string{"good:1", "old:1"}; !slices.Equal(got, want) {
		t.Errorf("Targets = %q, want %q", got, want)
	}

	// YAML is strict: unknown fields are errors.
	writeFile(t, good, "- target: [typo:1]\n")
	if err := f.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), good) || !strings.Contains(err.Error(), "parse YAML") {
		t.Errorf("Refresh with unknown YAML field = %v, want YAML error naming %s", err, good)
	}
}

func TestFileSDGlob(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	b := filepath.Join(dir, "b.json")
	writeFile(t, a, `[{"targets": ["a:1"]}]`)
	writeFile(t, b, `[{"targets": ["b:1", "a:1"]}]`)
	writeFile(t, filepath.Join(dir, "c.yaml"), "- targets: [c:1]\n")
	f := NewFileSD([]string{filepath.Join(dir, "*.json")}, 0, nil, nil)
	if err := f.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Targets(), []string{"a:1", "b:1"}; !slices.Equal(got, want) {
		t.Fatalf("Targets = %q, want %q", got, want)
	}
	// A file that no longer matches the pattern is dropped.
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Targets(), []string{"a:1"}; !slices.Equal(got, want) {
		t.Fatalf("Targets after removal = %q, want %q", got, want)
	}

	bad := NewFileSD([]string{filepath.Join(dir, "[.json")}, 0, nil, nil)
	if err := bad.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "pattern") {
		t.Errorf("Refresh with bad pattern = %v, want a pattern error", err)
	}
}

func TestFileSDRunPicksUpChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stores.yaml")
	writeFile(t, path, "- targets: [one:1]\n")

	logs := make(logRecords, 100)
	// A long interval: changes must be noticed through the watcher.
	f := NewFileSD([]string{path}, time.Hour, slog.New(logs), nil)
	changes := make(chan []string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, func() { changes <- f.Targets() }) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	waitChange := func(want ...string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case got := <-changes:
				if slices.Equal(got, want) {
					return
				}
			case <-timeout:
				t.Fatalf("timed out waiting for targets %q (now %q)", want, f.Targets())
			}
		}
	}
	waitChange("one:1") // the initial read

	writeFile(t, path, "- targets: [one:1, two:2]\n")
	waitChange("one:1", "two:2")

	replaceFile(t, path, "- targets: [three:3]\n")
	waitChange("three:3")

	// An invalid file is reported in the log and keeps the last targets.
	replaceFile(t, path, "- targets: [three:3\n")
	timeout := time.After(10 * time.Second)
	for found := false; !found; {
		select {
		case rec := <-logs:
			found = strings.Contains(rec, "ERROR") && strings.Contains(rec, path) && strings.Contains(rec, "parse YAML")
		case <-timeout:
			t.Fatal("timed out waiting for the parse error to be logged")
		}
	}
	if got, want := f.Targets(), []string{"three:3"}; !slices.Equal(got, want) {
		t.Fatalf("Targets after invalid file = %q, want %q", got, want)
	}
	select {
	case got := <-changes:
		t.Fatalf("onChange called with %q for an invalid file", got)
	default:
	}

	replaceFile(t, path, "- targets: [four:4]\n")
	waitChange("four:4")
}

func TestFileSDRunPeriodicReread(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stores.json")
	writeFile(t, path, `[{"targets": ["one:1"]}]`)
	f := NewFileSD([]string{path}, 10*time.Millisecond, nil, nil)
	// Read once before Run so that Run starts from loaded state.
	if err := f.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Change the file behind the watcher's back: Run is not running yet, so
	// only its initial read or the periodic re-read can pick this up.
	writeFile(t, path, `[{"targets": ["two:2"]}]`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 10)
	go func() { _ = f.Run(ctx, func() { changed <- struct{}{} }) }()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for onChange")
	}
	if got, want := f.Targets(), []string{"two:2"}; !slices.Equal(got, want) {
		t.Fatalf("Targets = %q, want %q", got, want)
	}
	before := testutil.ToFloat64(f.reads)
	waitFor(t, "periodic re-reads", func() bool { return testutil.ToFloat64(f.reads) >= before+2 })
}

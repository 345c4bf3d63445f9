package e2eutil

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"
)

// waitLine waits until the process's log has n lines equal to line.
func waitLine(t *testing.T, p *Process, line string, n int) {
	t.Helper()
	Poll(t, 5*time.Second, 10*time.Millisecond, func() error {
		if strings.Count(p.Log(), "\n"+line+"\n") < n {
			return fmt.Errorf("%s has not printed %q %d times yet", p.Spec.Name, line, n)
		}
		return nil
	})
}

func TestProcessStopRestartKill(t *testing.T) {
	p := StartProcess(t, ProcessSpec{Name: "sh", Bin: "/bin/sh", Args: []string{"-c", "echo started; exec sleep 30"}})
	waitLine(t, p, "started", 1)
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code, ok := p.ExitCode(); !ok || code != -1 {
		t.Errorf("after SIGTERM: exit code %d, exited %v; want -1 (signal), true", code, ok)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitLine(t, p, "started", 2)
	if p.Exited() {
		t.Fatal("restarted process exited at once")
	}
	if err := p.Start(); err == nil {
		t.Error("Start while running succeeded, want an error")
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if code, ok := p.ExitCode(); !ok || code != -1 {
		t.Errorf("after SIGKILL: exit code %d, exited %v; want -1 (signal), true", code, ok)
	}
}

func TestProcessStopFallsBackToKill(t *testing.T) {
	p := StartProcess(t, ProcessSpec{Name: "stubborn", Bin: "/bin/sh", Args: []string{"-c", `trap "" TERM; echo ready; exec sleep 30`}})
	waitLine(t, p, "ready", 1)
	start := time.Now()
	if err := p.Stop(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("Stop took %s, want the 300ms grace then SIGKILL", took)
	}
	if !p.Exited() {
		t.Error("process still running after Stop")
	}
}

func TestProcessExit(t *testing.T) {
	code, out, err := ProcessExit(t, 5*time.Second, ProcessSpec{Bin: "/bin/sh", Args: []string{"-c", "echo out; echo err >&2; exit 3"}})
	if err != nil || code != 3 || !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") {
		t.Errorf("ProcessExit = %d, %q, %v; want 3, both streams, nil", code, out, err)
	}
	start := time.Now()
	if _, _, err := ProcessExit(t, 200*time.Millisecond, ProcessSpec{Bin: "/bin/sleep", Args: []string{"30"}}); err == nil {
		t.Error("ProcessExit of a process that outlives the timeout returned no error")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("ProcessExit timeout took %s", took)
	}
}

func TestTail(t *testing.T) {
	var b strings.Builder
	for i := range 500 {
		b.WriteString(strings.Repeat("x", i%7) + "\n")
	}
	got := strings.Split(strings.TrimSuffix(tail(b.String(), 100), "\n"), "\n")
	if len(got) != 100 || got[99] != strings.Repeat("x", 499%7) || got[0] != strings.Repeat("x", 400%7) {
		t.Errorf("tail returned %d lines, first %q last %q", len(got), got[0], got[len(got)-1])
	}
	if got := tail("a\nb\n", 100); got != "a\nb\n" {
		t.Errorf("tail of a short log = %q", got)
	}
}

func TestRenderPrometheusConfig(t *testing.T) {
	cfg := PrometheusConfig{
		ExternalLabels: map[string]string{"cluster": "test", "replica": "r0"},
		ScrapeInterval: 2 * time.Second,
		ScrapeConfigs:  []ScrapeConfig{{JobName: "node", Targets: []string{"127.0.0.1:19100"}, Labels: map[string]string{"zone": "a"}}},
		ExtraYAML:      "rule_files: [rules.yml]",
		Files:          map[string]string{"rules.yml": "groups: []\n"},
	}
	b, err := renderPrometheusConfig(cfg, "127.0.0.1:19090")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatalf("rendered config is not YAML: %v\n%s", err, b)
	}
	for _, want := range []string{"scrape_interval: 2s", "cluster: test", "job_name: prometheus", "127.0.0.1:19090", "job_name: node", "zone: a", "rule_files: [rules.yml]"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rendered config lacks %q:\n%s", want, b)
		}
	}
	noExt, _ := renderPrometheusConfig(PrometheusConfig{NoSelfScrape: true}, "x")
	if strings.Contains(string(noExt), "external_labels") || strings.Contains(string(noExt), "job_name") {
		t.Errorf("config without external labels or jobs:\n%s", noExt)
	}
	// promtool, when installed, checks the file the way Prometheus will read it.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		SkipMissing(t, "promtool not installed")
	}
	p := &Prometheus{Addr: "127.0.0.1:19090", Dir: t.TempDir()}
	p.ConfigPath = filepath.Join(p.Dir, "prometheus.yml")
	if err := p.WriteConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", p.ConfigPath).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s\n%s", err, out, b)
	}
}

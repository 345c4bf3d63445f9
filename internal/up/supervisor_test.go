//go:build linux

package up

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// safeBuffer is a bytes.Buffer for concurrent writes and reads.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSupervisor runs children under a fast Supervisor writing to the returned buffer.
// stop cancels it and waits for Run to return, failing the test if that takes longer
// than limit.
func startSupervisor(t *testing.T, opts SupervisorOptions, children ...Child) (sup *Supervisor, out *safeBuffer, stop func(limit time.Duration)) {
	t.Helper()
	out = &safeBuffer{}
	opts.Output = out
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	sup = NewSupervisor(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, children) }()
	stopped := false
	stop = func(limit time.Duration) {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(limit):
			t.Fatalf("Run did not return within %s of the cancel", limit)
		}
	}
	t.Cleanup(func() { stop(30 * time.Second) })
	return sup, out, stop
}

func sh(name, script string) Child {
	return Child{Name: name, Path: "/bin/sh", Args: []string{"-c", script}}
}

// waitFor polls cond every 10ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gone reports whether pid no longer runs: no such process, or a zombie.
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || strings.HasPrefix(s[i+1:], " Z")
}

func TestSupervisorRestartsCrashedChild(t *testing.T) {
	sup, out, stop := startSupervisor(t, SupervisorOptions{}, sh("crash", "echo started; exit 3"))
	waitFor(t, "three runs", func() bool { return strings.Count(out.String(), "[crash] started\n") >= 3 })
	if n := sup.Restarts("crash"); n < 2 {
		t.Errorf("Restarts = %d, want at least 2", n)
	}
	stop(5 * time.Second)
}

func TestSupervisorRestartLogged(t *testing.T) {
	logs := &safeBuffer{}
	logger := newTestLogger(logs)
	_, _, stop := startSupervisor(t, SupervisorOptions{Logger: logger}, sh("crash", "exit 3"))
	waitFor(t, "a restart log line", func() bool { return strings.Contains(logs.String(), "child exited; restarting it") })
	stop(5 * time.Second)
	if s := logs.String(); !strings.Contains(s, "child=crash") || !strings.Contains(s, `err="exit status 3"`) {
		t.Errorf("restart log lacks the child or its exit status:\n%s", s)
	}
}

func TestSupervisorBackoffGrows(t *testing.T) {
	logs := &safeBuffer{}
	opts := SupervisorOptions{Logger: newTestLogger(logs), MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}
	_, _, stop := startSupervisor(t, opts, sh("crash", "exit 1"))
	waitFor(t, "five restarts", func() bool { return strings.Count(logs.String(), "restarting it") >= 5 })
	stop(5 * time.Second)
	var got []string
	for _, m := range regexp.MustCompile(`restart_in=(\S+)`).FindAllStringSubmatch(logs.String(), 5) {
		got = append(got, m[1])
	}
	if want := []string{"10ms", "20ms", "40ms", "40ms", "40ms"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("backoffs = %v, want %v", got, want)
	}
}

func TestSupervisorPrefixesLines(t *testing.T) {
	_, out, stop := startSupervisor(t, SupervisorOptions{},
		sh("a", "echo one; echo two >&2; printf 'no newline'; exec sleep 60"),
		sh("longer-name", "echo three; exec sleep 60"))
	waitFor(t, "both children's lines", func() bool {
		s := out.String()
		return strings.Contains(s, "two\n") && strings.Contains(s, "three\n")
	})
	stop(10 * time.Second)
	s := out.String()
	for _, want := range []string{"[a]           one\n", "[a]           two\n", "[longer-name] three\n", "[a]           no newline\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if !strings.HasPrefix(line, "[a] ") && !strings.HasPrefix(line, "[longer-name] ") {
			t.Errorf("line without a prefix: %q", line)
		}
	}
}

var childPid = regexp.MustCompile(`grandchild (\d+)`)

func TestSupervisorStopKillsEverything(t *testing.T) {
	sup, out, stop := startSupervisor(t, SupervisorOptions{StopTimeout: 500 * time.Millisecond},
		Child{Name: "sleep", Path: "sleep", Args: []string{"300"}},
		sh("tree", "sleep 300 & echo grandchild $!; wait"),
		sh("stubborn", `trap "" TERM; echo trapped; while :; do sleep 0.05; done`))
	waitFor(t, "the grandchild's pid and the trap", func() bool {
		s := out.String()
		return childPid.MatchString(s) && strings.Contains(s, "trapped")
	})
	grandchild, _ := strconv.Atoi(childPid.FindStringSubmatch(out.String())[1])
	pids := []int{grandchild}
	for _, name := range []string{"sleep", "tree", "stubborn"} {
		if pid := sup.Pid(name); pid == 0 {
			t.Fatalf("Pid(%s) = 0 while running", name)
		} else {
			pids = append(pids, pid)
		}
	}
	start := time.Now()
	stop(10 * time.Second)
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("stopped in %s: the child that ignores SIGTERM should have had the 500ms stop timeout", took)
	}
	waitFor(t, "every process to be gone", func() bool {
		for _, pid := range pids {
			if !gone(pid) {
				return false
			}
		}
		return true
	})
	for _, name := range []string{"sleep", "tree", "stubborn"} {
		if pid := sup.Pid(name); pid != 0 {
			t.Errorf("Pid(%s) = %d after stop, want 0", name, pid)
		}
		if n := sup.Restarts(name); n != 0 {
			t.Errorf("Restarts(%s) = %d, want 0: a stop is not a crash", name, n)
		}
	}
}

func TestSupervisorDuplicateNames(t *testing.T) {
	err := NewSupervisor(SupervisorOptions{}).Run(context.Background(), []Child{sh("x", "true"), sh("x", "true")})
	if err == nil || !strings.Contains(err.Error(), `two children named "x"`) {
		t.Errorf("Run with duplicate names: %v", err)
	}
}

// TestChildrenDieWithSupervisor kills -9 a process running a Supervisor (this test
// binary, re-run as a helper) and checks that its child dies too.
func TestChildrenDieWithSupervisor(t *testing.T) {
	if os.Getenv("UP_TEST_HELPER") == "1" {
		sup := NewSupervisor(SupervisorOptions{Output: os.Stdout})
		_ = sup.Run(context.Background(), []Child{sh("sleeper", "echo grandchild $$; exec sleep 300")})
		return
	}
	out := &safeBuffer{}
	helper := execHelper(t, "TestChildrenDieWithSupervisor", out)
	waitFor(t, "the helper's child", func() bool { return childPid.MatchString(out.String()) })
	child, _ := strconv.Atoi(childPid.FindStringSubmatch(out.String())[1])
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	waitFor(t, fmt.Sprintf("child %d to die with its supervisor", child), func() bool { return gone(child) })
}

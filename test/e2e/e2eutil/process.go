// Package e2eutil is the harness of Vigil's end-to-end tests: it starts real processes
// (Prometheus, vigil components, and later MinIO or Alertmanager) on free loopback ports,
// captures their output to log files, waits for their HTTP endpoints, stops them when the
// test ends, and prints the tail of every log when a test fails.
package e2eutil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultStopTimeout is how long Stop waits after SIGTERM before sending SIGKILL.
const DefaultStopTimeout = 15 * time.Second

// LogTailLines is how many lines of each process's log a failed test prints.
const LogTailLines = 100

// ProcessSpec describes a process to start.
type ProcessSpec struct {
	Name string   // short name used in logs and the log file name; defaults to the binary's base name
	Bin  string   // path of the binary
	Args []string // arguments, without the binary
	Env  []string // extra KEY=VALUE entries, added to the test's environment
	Dir  string   // working directory; defaults to a new t.TempDir()
}

// Process is a started process whose stdout and stderr go to LogPath. It can be stopped,
// killed and started again with the same arguments; all runs append to the same log.
type Process struct {
	Spec    ProcessSpec
	LogPath string

	t       testing.TB
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current run has exited
	waitErr error         // the current run's exit status, valid once done is closed
	runs    int
}

// StartProcess starts spec and registers a cleanup that stops it at the end of the test
// and, if the test failed, logs the tail of its output. It fails the test if the binary
// cannot be started.
func StartProcess(t testing.TB, spec ProcessSpec) *Process {
	t.Helper()
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Bin)
	}
	if spec.Dir == "" {
		spec.Dir = t.TempDir()
	}
	p := &Process{Spec: spec, LogPath: filepath.Join(spec.Dir, spec.Name+".log"), t: t}
	t.Cleanup(func() {
		if err := p.Stop(DefaultStopTimeout); err != nil {
			t.Logf("%s: stop: %v", p.Spec.Name, err)
		}
		if t.Failed() {
			p.LogTail(LogTailLines)
		}
	})
	if err := p.Start(); err != nil {
		t.Fatalf("%v", err)
	}
	return p
}

// Start starts the process again after it exited (or was stopped or killed). It is an
// error to call it while the process is running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("%s: already running (pid %d)", p.Spec.Name, p.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", p.Spec.Name, err)
	}
	p.runs++
	fmt.Fprintf(logf, "=== e2eutil: run %d: %s %s\n", p.runs, p.Spec.Bin, strings.Join(p.Spec.Args, " "))
	cmd := exec.Command(p.Spec.Bin, p.Spec.Args...)
	cmd.Dir = p.Spec.Dir
	cmd.Env = append(os.Environ(), p.Spec.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start %s: %w", p.Spec.Name, p.Spec.Bin, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Pid returns the process id of the current run, or 0 if it was never started.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited reports whether the current run has exited.
func (p *Process) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return isClosed(p.done)
}

// Done returns a channel closed when the current run exits (already closed if the
// process was never started).
func (p *Process) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

// ExitCode returns the exit code of the current run, -1 if it was killed by a signal,
// and ok=false while it is still running.
func (p *Process) ExitCode() (code int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !isClosed(p.done) {
		return 0, false
	}
	return p.cmd.ProcessState.ExitCode(), true
}

// Wait waits up to timeout for the current run to exit and returns its exit status
// (nil for exit code 0).
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.Done():
	case <-time.After(timeout):
		return fmt.Errorf("%s: still running after %s", p.Spec.Name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Signal sends sig to the current run; it is a no-op once the run has exited.
func (p *Process) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.done) {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: send %v: %w", p.Spec.Name, sig, err)
	}
	return nil
}

// Stop sends SIGTERM and waits up to timeout for the process to exit, then sends SIGKILL.
// It returns an error only if the process did not exit even after SIGKILL.
func (p *Process) Stop(timeout time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.Done():
		return nil
	case <-time.After(timeout):
		p.t.Logf("%s: did not exit %s after SIGTERM; sending SIGKILL", p.Spec.Name, timeout)
	}
	return p.Kill()
}

// Kill sends SIGKILL (a crash, no clean shutdown) and waits for the process to exit.
func (p *Process) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.Done():
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: did not exit 10s after SIGKILL", p.Spec.Name)
	}
}

// Log returns everything the process has written so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// LogTail logs the last n lines of the process's output with t.Log.
func (p *Process) LogTail(n int) {
	p.t.Helper()
	p.t.Logf("--- last %d lines of %s (%s) ---\n%s--- end of %s ---", n, p.Spec.Name, p.LogPath, tail(p.Log(), n), p.Spec.Name)
}

func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 2*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

func isClosed(c chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// ProcessExit runs spec to completion and returns its exit code and combined stdout and
// stderr. If the process has not exited after timeout it is killed and err says so; err
// is also set if it cannot be started. A process killed by a signal has exit code -1.
func ProcessExit(t testing.TB, timeout time.Duration, spec ProcessSpec) (exitCode int, output string, err error) {
	t.Helper()
	if spec.Dir == "" {
		spec.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, spec.Bin, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = append(os.Environ(), spec.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return -1, out.String(), fmt.Errorf("%s did not exit within %s (killed)", spec.Bin, timeout)
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return -1, out.String(), fmt.Errorf("run %s: %w", spec.Bin, runErr)
	}
	return cmd.ProcessState.ExitCode(), out.String(), nil
}

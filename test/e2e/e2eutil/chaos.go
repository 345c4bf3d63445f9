package e2eutil

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Fault injection for the chaos and object-storage fault tests: freezing a process
// (SIGSTOP, it keeps its sockets: connections are accepted by the kernel and never
// answered), thawing it (SIGCONT), and restarting MinIO on its data directory and port.

// processState returns the state letter of pid from /proc/<pid>/stat ("R", "S", "T"...).
func processState(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("parse /proc/%d/stat: %.80q", pid, b)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) == 0 {
		return "", fmt.Errorf("parse /proc/%d/stat: %.80q", pid, b)
	}
	return fields[0], nil
}

// Freeze sends SIGSTOP to the process and waits until the kernel reports it stopped (the
// signal is delivered asynchronously). It registers a cleanup that thaws the process, so a
// failing test does not leave it stopped (a stopped process ignores the SIGTERM that
// stops it at the end of the test until SIGCONT).
func (p *Process) Freeze(t testing.TB) error {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	t.Cleanup(func() { _ = p.Signal(syscall.SIGCONT) })
	pid := p.Pid()
	return PollErr(10*time.Second, 5*time.Millisecond, func() error {
		st, err := processState(pid)
		if err != nil {
			return err
		}
		if st != "T" && st != "t" {
			return fmt.Errorf("%s (pid %d) not stopped yet: state %s", p.Spec.Name, pid, st)
		}
		return nil
	})
}

// Thaw sends SIGCONT to a frozen process and waits until it runs again.
func (p *Process) Thaw() error {
	if err := p.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	pid := p.Pid()
	return PollErr(10*time.Second, 5*time.Millisecond, func() error {
		st, err := processState(pid)
		if err != nil {
			return err
		}
		if st == "T" || st == "t" {
			return fmt.Errorf("%s (pid %d) still stopped", p.Spec.Name, pid)
		}
		return nil
	})
}

// WaitReady waits until MinIO answers /minio/health/ready with 200, failing early if it
// exits.
func (m *MinIO) WaitReady(timeout time.Duration) error {
	return WaitHTTP(m.URL+"/minio/health/ready", http.StatusOK, timeout, m.Process)
}

// Restart starts a MinIO that was killed or stopped again, on the same address and data
// directory, and waits until it is ready. The bucket and its objects are still there.
func (m *MinIO) Restart() error {
	if err := m.Start(); err != nil {
		return err
	}
	if err := m.WaitReady(MinIOStartTimeout); err != nil {
		return fmt.Errorf("restart MinIO: %w", err)
	}
	return nil
}

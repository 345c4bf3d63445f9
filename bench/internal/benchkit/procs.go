// Package benchkit is what the benchmark programs under bench/ share: starting and
// stopping child processes, reading their memory from /proc, waiting for readiness, the
// fixed query set and the Prometheus HTTP API client and decoder.
package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a started child process whose output goes to a log file.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
}

// StartProc starts bin with args, logging to dir/name.log. The child gets its own process
// group (so a terminal's Ctrl-C reaches only us, and we stop children in order) and is
// killed by the kernel if this process dies.
func StartProc(dir, name, bin string, args ...string) (*Proc, error) {
	return StartProcEnv(dir, name, nil, bin, args...)
}

// StartProcEnv is StartProc with extra environment variables (KEY=value) added to ours.
func StartProcEnv(dir, name string, env []string, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, then SIGKILL if the process has not exited after timeout.
func (p *Proc) Stop(timeout time.Duration) {
	if p.Exited() {
		return
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Cmd.Process.Kill()
		<-p.done
	}
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Mem is a process's memory from /proc/PID/status, in kB.
type Mem struct {
	HWM  int64 // VmHWM: peak resident set
	RSS  int64 // VmRSS: resident set now
	Anon int64 // RssAnon: of which anonymous (heap, stacks)
	File int64 // RssFile: of which file-backed (binary, mmapped files)
}

// Mem reads the process's memory; zero if it cannot be read.
func (p *Proc) Mem() Mem {
	var m Mem
	f, err := os.Open("/proc/" + strconv.Itoa(p.Cmd.Process.Pid) + "/status")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			m.HWM = n
		case "VmRSS":
			m.RSS = n
		case "RssAnon":
			m.Anon = n
		case "RssFile":
			m.File = n
		}
	}
	return m
}

// MemStatus returns the VmHWM (peak) and VmRSS (current) of the process in kB.
func (p *Proc) MemStatus() (hwm, rss int64) {
	m := p.Mem()
	return m.HWM, m.RSS
}

// ResetPeak resets the process's VmHWM to its current RSS (Linux: clear_refs 5), so a
// later Mem().HWM is the peak since now. It reports whether that worked.
func (p *Proc) ResetPeak() bool {
	return os.WriteFile("/proc/"+strconv.Itoa(p.Cmd.Process.Pid)+"/clear_refs", []byte("5"), 0) == nil
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WaitFor calls f every 200ms until it returns nil, ctx ends, or timeout passes; it gives
// up early if p (when not nil) exits.
func WaitFor(ctx context.Context, what string, timeout time.Duration, p *Proc, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s: %s exited; last error: %v\n%s", what, p.Name, err, p.Tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done within %s: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// HTTPOK returns nil if GET url answers 200.
func HTTPOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	return nil
}

package benchkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Freeze stops the process with SIGSTOP and waits until the kernel reports it stopped
// (state T in /proc/PID/stat): the signal is delivered asynchronously, and a measurement
// that starts before the process is really stopped measures nothing.
func (p *Proc) Freeze(ctx context.Context) error {
	if p.Exited() {
		return fmt.Errorf("freeze %s: it has exited", p.Name)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("freeze %s: %w", p.Name, err)
	}
	return WaitFor(ctx, p.Name+" stopped", 5*time.Second, nil, func() error {
		if st := p.State(); st != "T" && st != "t" {
			return fmt.Errorf("state %q", st)
		}
		return nil
	})
}

// Thaw resumes a process stopped by Freeze (SIGCONT); harmless on a running one.
func (p *Proc) Thaw() error {
	if p.Exited() {
		return nil
	}
	return p.Cmd.Process.Signal(syscall.SIGCONT)
}

// State returns the process's one-letter state from /proc/PID/stat (R, S, T, Z, ...),
// or "" if it cannot be read.
func (p *Proc) State() string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.Cmd.Process.Pid) + "/stat")
	if err != nil {
		return ""
	}
	// pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// Blackhole is a TCP listener that accepts every connection and never writes a byte:
// an endpoint that is up as far as the kernel is concerned and never speaks.
type Blackhole struct {
	Addr     string
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

// StartBlackhole listens on a free 127.0.0.1 port.
func StartBlackhole() (*Blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Blackhole{Addr: ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			b.mu.Lock()
			b.conns = append(b.conns, c) // held open, never read from nor written to
			b.mu.Unlock()
		}
	}()
	return b, nil
}

// Accepted returns how many connections the blackhole has accepted.
func (b *Blackhole) Accepted() int64 { return b.accepted.Load() }

// Close stops listening and closes every accepted connection.
func (b *Blackhole) Close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}

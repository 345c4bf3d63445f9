package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Child is one process the Supervisor keeps running.
type Child struct {
	Name string   // short name: the prefix of its output lines, and its row in the table
	Path string   // the binary
	Args []string // arguments, without the binary
	Dir  string   // working directory; empty for the supervisor's own
}

// SupervisorOptions configure a Supervisor. Zero durations take the defaults.
type SupervisorOptions struct {
	Logger *slog.Logger
	// Output receives every child's stdout and stderr, one line at a time, each line
	// prefixed with "[name] ".
	Output io.Writer
	// MinBackoff is the wait before the first restart of a child (default 1s); it doubles
	// with each restart in a row up to MaxBackoff (default 30s).
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a run must last for the backoff to start again from
	// MinBackoff (default 1m).
	StableAfter time.Duration
	// StopTimeout is how long a child gets after SIGTERM before it is sent SIGKILL
	// (default 15s).
	StopTimeout time.Duration
}

func (o *SupervisorOptions) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	if o.StableAfter <= 0 {
		o.StableAfter = time.Minute
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 15 * time.Second
	}
}

// Supervisor runs child processes, restarts each one that exits, and stops them all when
// its context ends. Children run in their own process group, so a Ctrl-C in the terminal
// reaches only the supervisor, which then stops them in order; on Linux the kernel kills
// them if the supervisor itself dies.
type Supervisor struct {
	opts SupervisorOptions
	out  *syncWriter

	mu       sync.Mutex
	pids     map[string]int
	restarts map[string]int
}

// NewSupervisor returns a Supervisor with opts.
func NewSupervisor(opts SupervisorOptions) *Supervisor {
	opts.setDefaults()
	return &Supervisor{opts: opts, out: &syncWriter{w: opts.Output}, pids: map[string]int{}, restarts: map[string]int{}}
}

// Output returns the writer that children's lines go to. A single Write to it is never
// interleaved with a child's line, so a caller can print a block of text in between.
func (s *Supervisor) Output() io.Writer { return s.out }

// Pid returns the process id of the named child's current run, or 0 while it is not
// running.
func (s *Supervisor) Pid(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pids[name]
}

// Restarts returns how often the named child has been restarted.
func (s *Supervisor) Restarts(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts[name]
}

// Run starts every child and keeps it running until ctx is done. It then sends each
// child SIGTERM, and SIGKILL to those still running after StopTimeout, and returns once
// every child has exited.
func (s *Supervisor) Run(ctx context.Context, children []Child) error {
	names := map[string]bool{}
	width := 0
	for _, c := range children {
		if names[c.Name] {
			return fmt.Errorf("supervise: two children named %q", c.Name)
		}
		names[c.Name] = true
		width = max(width, len(c.Name))
	}
	var wg sync.WaitGroup
	for _, c := range children {
		wg.Go(func() { s.keep(ctx, c, width) })
	}
	wg.Wait()
	return nil
}

// keep runs c again and again, with backoff, until ctx is done.
func (s *Supervisor) keep(ctx context.Context, c Child, width int) {
	// Pdeathsig is tied to the thread that started the child, not to the process: keep
	// this goroutine on one thread so the Go runtime cannot retire it under a running child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prefix := fmt.Sprintf("[%s]%*s ", c.Name, width-len(c.Name), "")
	backoff := s.opts.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := s.runOnce(ctx, c, prefix)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= s.opts.StableAfter {
			backoff = s.opts.MinBackoff
		}
		n := s.countRestart(c.Name)
		s.opts.Logger.Warn("child exited; restarting it", "child", c.Name, "err", err,
			"ran_for", time.Since(start).Round(time.Millisecond), "restart_in", backoff, "restarts", n)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

func (s *Supervisor) countRestart(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restarts[name]++
	return s.restarts[name]
}

func (s *Supervisor) setPid(name string, pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pids[name] = pid
}

// runOnce starts c and waits for it to exit, or stops it when ctx is done. It returns
// why the run ended.
func (s *Supervisor) runOnce(ctx context.Context, c Child, prefix string) error {
	lw := newLineWriter(s.out, prefix)
	defer lw.Flush()
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = lw, lw // one pipe: exec calls Write from one goroutine
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 2 * time.Second // a leftover holder of the pipe must not block Wait
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.Path, err)
	}
	s.setPid(c.Name, cmd.Process.Pid)
	defer s.setPid(c.Name, 0)
	s.opts.Logger.Debug("child started", "child", c.Name, "pid", cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitError(err)
	case <-ctx.Done():
	}
	s.stop(c.Name, cmd.Process, done)
	return ctx.Err()
}

// stop sends SIGTERM to a child's process group, then SIGKILL after StopTimeout, and
// waits for the child to exit.
func (s *Supervisor) stop(name string, p *os.Process, done <-chan error) {
	if err := signalGroup(p, syscall.SIGTERM); err != nil {
		s.opts.Logger.Warn("sending SIGTERM", "child", name, "err", err)
	}
	select {
	case <-done:
		return
	case <-time.After(s.opts.StopTimeout):
	}
	s.opts.Logger.Warn("child still running after SIGTERM; sending SIGKILL", "child", name, "pid", p.Pid, "waited", s.opts.StopTimeout)
	if err := signalGroup(p, syscall.SIGKILL); err != nil {
		s.opts.Logger.Warn("sending SIGKILL", "child", name, "err", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.opts.Logger.Error("child did not exit 10s after SIGKILL", "child", name, "pid", p.Pid)
	}
}

// exitError describes how a run ended.
func exitError(err error) error {
	if err == nil {
		return errors.New("exited with code 0")
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return errors.New(ee.ProcessState.String()) // "exit status 1", "signal: killed"
	}
	return err
}

package up

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// sysProcAttr puts a child in its own process group (a Ctrl-C in the terminal reaches
// only `vigil up`, which then stops the children in order) and makes the kernel kill it
// with SIGKILL when `vigil up` dies, even by kill -9.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to p's process group, which p leads, so that anything p started
// gets it too.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	err := syscall.Kill(-p.Pid, sig)
	if err == syscall.ESRCH {
		return nil
	}
	return err
}

// lockDataDir takes an exclusive lock on <dir>/.vigil-up.lock for as long as `vigil up`
// runs, so that a second one on the same data directory stops at once instead of
// fighting over the Prometheus data. The kernel drops the lock when the process dies.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, ".vigil-up.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, errLocked)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

//go:build !linux

package up

import (
	"errors"
	"os"
	"syscall"
)

// sysProcAttr returns no special attributes outside Linux: children are not killed
// by the kernel when `vigil up` dies.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup sends sig to p alone.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// lockDataDir does nothing outside Linux.
func lockDataDir(string) (release func(), err error) { return func() {}, nil }

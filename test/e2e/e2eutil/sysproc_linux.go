package e2eutil

import "syscall"

// sysProcAttr makes the kernel kill a started process if the test binary dies, so a
// crashed or timed-out test run does not leave Prometheus or vigil processes behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

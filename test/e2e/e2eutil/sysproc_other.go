//go:build !linux

package e2eutil

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }

package e2eutil

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// PromtoolBin returns the promtool binary: $PROMTOOL_BIN, /usr/bin/promtool or promtool
// from PATH. It skips the test when there is none.
func PromtoolBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL_BIN"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/promtool"); err == nil {
		return "/usr/bin/promtool"
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	SkipMissing(t, "promtool not found: install Debian's prometheus package or set PROMTOOL_BIN")
	return ""
}

// Promtool runs `promtool args...` to completion (killing it after timeout) and returns
// its exit code and combined output; err is set only if it could not run or timed out.
func Promtool(t testing.TB, timeout time.Duration, args ...string) (exitCode int, output string, err error) {
	t.Helper()
	return ProcessExit(t, timeout, ProcessSpec{Name: "promtool", Bin: PromtoolBin(t), Args: args})
}

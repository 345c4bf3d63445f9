package up

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
)

// newTestLogger logs everything, as text, to w.
func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// execHelper runs this test binary again with only the test name, and UP_TEST_HELPER=1
// in its environment, its stdout going to out. The test's cleanup kills it.
func execHelper(t *testing.T, name string, out io.Writer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), "UP_TEST_HELPER=1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

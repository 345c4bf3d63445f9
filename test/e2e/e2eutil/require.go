package e2eutil

import (
	"os"
	"testing"
)

// RequireEnv names the environment variable that turns a missing test dependency (a binary
// such as Prometheus, MinIO or kube-apiserver) from a skip into a failure. `make test` and
// therefore CI set it, so a machine without the dependencies cannot pass by skipping; a
// developer running `go test` by hand still gets skips.
const RequireEnv = "VIGIL_E2E_REQUIRE"

// SkipMissing skips the test because a dependency is missing, or fails it when RequireEnv
// is set to 1.
func SkipMissing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s (%s=1: missing dependencies fail the test)", msg, RequireEnv)
	}
	t.Skip(msg)
}

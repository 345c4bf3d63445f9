package receive

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// --tsdb.no-lockfile reaches every tenant's TSDB: without it each holds a lock file.
func TestTenantsLockfile(t *testing.T) {
	for _, noLock := range []bool{false, true} {
		dir := t.TempDir()
		tn, err := NewTenants(testLogger(), prometheus.NewRegistry(), TSDBOptions{Dir: dir, TenantLabel: "tenant_id", NoLockfile: noLock, MaxBytes: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tn.Get("t1"); err != nil {
			t.Fatal(err)
		}
		_, err = os.Stat(filepath.Join(dir, "t1", "lock"))
		if locked := err == nil; locked == noLock {
			t.Errorf("NoLockfile=%v: lock file present=%v", noLock, locked)
		}
		_ = tn.Close(context.Background(), false)
	}
}

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestReceiveUpload: on shutdown the receiver flushes each tenant's head into a block
// and uploads it to MinIO, with source "receive" and the tenant's labels; a store gateway
// over the bucket then serves exactly what was written.
func TestReceiveUpload(t *testing.T) {
	t.Parallel()
	m := e2eutil.StartMinIO(t)
	cfg := m.WriteObjstoreConfig(t, "")
	recv, rwURL := startReceiver(t, filepath.Join(t.TempDir(), "tsdb"), `--label=receive_replica="r0"`,
		"--objstore.config-file="+cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 200
	t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	for _, tenant := range []string{"team-a", "team-b"} {
		for step := 0; step < 20; step++ {
			if r, err := e2eutil.RemoteWrite(ctx, rwURL, tenant, ringSeries(n, step, t0)); err != nil || r.Code != 200 {
				t.Fatalf("write %s step %d: %v %+v", tenant, step, err, r)
			}
		}
	}
	if err := recv.Stop(time.Minute); err != nil { // SIGTERM: flush and upload
		t.Fatal(err)
	}
	if code, _ := recv.ExitCode(); code != 0 {
		t.Fatalf("receiver exited with %d", code)
	}

	blocks := listBucketBlocks(t, m, "")
	tenants := map[string]bool{}
	for _, b := range blocks {
		if !b.visible() {
			t.Fatalf("block %s is partial or marked for deletion", b.id)
		}
		if b.meta.Thanos.Source != block.SourceReceive || b.meta.Thanos.Labels["receive_replica"] != "r0" {
			t.Errorf("block %s: source %q labels %v, want source receive with receive_replica=r0", b.id, b.meta.Thanos.Source, b.meta.Thanos.Labels)
		}
		tenants[b.meta.Thanos.Labels["tenant_id"]] = true
	}
	if len(blocks) != 2 || !tenants["team-a"] || !tenants["team-b"] {
		t.Fatalf("bucket holds %s; want one block per tenant (team-a, team-b)", describeBlocks(blocks))
	}
	t.Logf("uploaded on shutdown: %s", describeBlocks(blocks))

	_, q := startStoreQuery(t, cfg)
	for _, tenant := range []string{"team-a", "team-b"} {
		for _, step := range []int{0, 10, 19} {
			at := unixParam(t0.Add(time.Duration(step) * time.Second))
			query := fmt.Sprintf(`count(ring_load{tenant_id=%q}) * 1e9 + sum(ring_load{tenant_id=%q})`, tenant, tenant)
			vec := mustSeriesResult(t, mustAPI(t, q.HTTPURL, "/api/v1/query", url.Values{"query": {query}, "time": {at}}), "vector")
			want := float64(n)*1e9 + wantRingSum(n, step)
			if len(vec) != 1 || vec[0].value(t).V != want {
				t.Errorf("%s step %d from the bucket: %v, want %v", tenant, step, vec, want)
			}
		}
	}
}

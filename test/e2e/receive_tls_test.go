package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/tlstest"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestReceiveTLS: a real Prometheus remote-writes over HTTPS with a client certificate to
// the first of two receivers (--remote-write.server-tls-*, mutual TLS); the receivers
// replicate to each other over gRPC with mutual TLS (--grpc-server-tls-* and
// --remote-write.client-tls-*); a querier reads both over TLS (--grpc-client-tls-*). Each
// receiver ends up with Prometheus's series, and a plain-HTTP write is refused.
func TestReceiveTLS(t *testing.T) {
	t.Parallel()
	certs := tlstest.Write(t)
	grpcAddrs := []string{e2eutil.FreeAddr(t), e2eutil.FreeAddr(t)}
	ring, _ := json.Marshal([]map[string]any{{"endpoints": grpcAddrs}})
	ringFile := filepath.Join(t.TempDir(), "hashrings.json")
	if err := os.WriteFile(ringFile, ring, 0o600); err != nil {
		t.Fatal(err)
	}
	var rwAddrs []string
	var recvs []*e2eutil.Vigil
	for i, g := range grpcAddrs {
		rwAddrs = append(rwAddrs, e2eutil.FreeAddr(t))
		recvs = append(recvs, e2eutil.StartVigil(t, "receive", "--tsdb.path="+t.TempDir(), "--remote-write.address="+rwAddrs[i],
			"--grpc-address="+g, fmt.Sprintf(`--label=receive_replica="r%d"`, i),
			"--receive.hashrings-file="+ringFile, "--receive.local-endpoint="+g, "--receive.replication-factor=2",
			"--grpc-server-tls-cert="+certs.Cert, "--grpc-server-tls-key="+certs.Key, "--grpc-server-tls-client-ca="+certs.CA,
			"--remote-write.client-tls-secure", "--remote-write.client-tls-ca="+certs.CA,
			"--remote-write.client-tls-cert="+certs.Cert, "--remote-write.client-tls-key="+certs.Key,
			"--remote-write.server-tls-cert="+certs.Cert, "--remote-write.server-tls-key="+certs.Key,
			"--remote-write.server-tls-client-ca="+certs.CA))
	}
	for _, r := range recvs {
		r.MustWaitReady(t)
	}
	prom := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{
		ExternalLabels: map[string]string{"cluster": "tls"},
		ExtraYAML: fmt.Sprintf("remote_write:\n- url: https://%s/api/v1/receive\n  tls_config: {ca_file: %s, cert_file: %s, key_file: %s}\n"+
			"  queue_config: {batch_send_deadline: 500ms, max_shards: 1}\n", rwAddrs[0], certs.CA, certs.Cert, certs.Key),
	})
	if err := prom.WaitReady(e2eutil.PrometheusStartTimeout); err != nil {
		t.Fatal(err)
	}
	q := e2eutil.StartVigil(t, "query", "--endpoint="+grpcAddrs[0], "--endpoint="+grpcAddrs[1],
		"--grpc-client-tls-secure", "--grpc-client-tls-ca="+certs.CA, "--grpc-client-tls-cert="+certs.Cert, "--grpc-client-tls-key="+certs.Key)
	q.MustWaitReady(t)
	// One up series per receiver: the second only has it through TLS replication.
	e2eutil.Poll(t, 60*time.Second, 500*time.Millisecond, func() error {
		v, n, err := instantValue(q.HTTPURL, `count by (cluster) (up{job="prometheus"})`, nil)
		if err != nil || n != 1 || v != 2 {
			return fmt.Errorf("count(up) = %v (%d series, %v), want 2: one per receiver", v, n, err)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := e2eutil.RemoteWrite(ctx, "http://"+rwAddrs[0]+"/api/v1/receive", "", nil); err == nil && res.Code/100 == 2 {
		t.Errorf("a plain-HTTP remote write was accepted: %d %s", res.Code, res.Body)
	}
}

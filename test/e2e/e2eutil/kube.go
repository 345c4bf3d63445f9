package e2eutil

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// KubeVersion is the Kubernetes release scripts/build-kube-apiserver.sh builds.
const KubeVersion = "v1.37.2"

// KubeStartTimeout bounds how long StartKubeAPIServer waits for etcd and /readyz.
const KubeStartTimeout = 60 * time.Second

// KubeToken is the bearer token of the test cluster's admin (group system:masters).
const KubeToken = "vigil-e2e-admin"

// KubeAPIServer is a real kube-apiserver on loopback, backed by its own etcd, with
// AlwaysAllow authorization and one static admin token. It runs no controllers: objects
// are stored and validated, never scheduled.
type KubeAPIServer struct {
	*Process
	Etcd       *Process
	URL        string // https://127.0.0.1:port
	Kubeconfig string // path of a kubeconfig with the admin token and insecure TLS
}

// EtcdBin returns $ETCD_BIN or etcd from PATH (Debian's etcd-server, installed by `make
// deps`), and skips the test when there is none.
func EtcdBin(t testing.TB) string {
	t.Helper()
	return lookBin(t, "ETCD_BIN", "etcd", "etcd not found: run `make deps` (Debian etcd-server) or set ETCD_BIN")
}

// KubeAPIServerBin returns $KUBE_APISERVER_BIN or the binary scripts/build-kube-apiserver.sh
// writes into $(go env GOPATH)/bin, and skips the test when there is none.
func KubeAPIServerBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KUBE_APISERVER_BIN"); p != "" {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(gp, "bin", "kube-apiserver-"+KubeVersion)
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	SkipMissing(t, "kube-apiserver not found: run `make deps` (scripts/build-kube-apiserver.sh) or set KUBE_APISERVER_BIN")
	return ""
}

func lookBin(t testing.TB, env, name, skipMsg string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	SkipMissing(t, skipMsg)
	return ""
}

// StartKubeAPIServer starts etcd and a kube-apiserver on free loopback ports, waits until
// the apiserver is ready, and writes a kubeconfig for it. The test's cleanup stops the
// apiserver before etcd (in the other order the apiserver ignores SIGTERM).
func StartKubeAPIServer(t testing.TB) *KubeAPIServer {
	t.Helper()
	kasBin, etcdBin := KubeAPIServerBin(t), EtcdBin(t)
	dir := t.TempDir()
	client, peer := FreeAddr(t), FreeAddr(t)
	etcd := StartProcess(t, ProcessSpec{Name: "etcd", Bin: etcdBin, Dir: dir, Args: []string{
		"--name=e2e", "--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://" + client, "--advertise-client-urls=http://" + client,
		"--listen-peer-urls=http://" + peer, "--initial-advertise-peer-urls=http://" + peer,
		"--initial-cluster=e2e=http://" + peer, "--initial-cluster-state=new",
		"--logger=zap", "--log-outputs=stderr",
	}})
	if err := WaitHTTP("http://"+client+"/health", http.StatusOK, KubeStartTimeout, etcd); err != nil {
		t.Fatalf("etcd: %v", err)
	}
	writeServiceAccountKey(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(KubeToken+",admin,admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	kas := StartProcess(t, ProcessSpec{Name: "kube-apiserver", Bin: kasBin, Dir: dir, Args: []string{
		"--etcd-servers=http://" + client, "--etcd-prefix=/vigil-e2e",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=sa.pub", "--service-account-signing-key-file=sa.key",
		"--cert-dir=certs", "--secure-port=" + port, "--bind-address=" + host, "--advertise-address=" + host,
		"--endpoint-reconciler-type=none", "--authorization-mode=AlwaysAllow",
		"--token-auth-file=tokens.csv", "--service-cluster-ip-range=10.96.0.0/24",
	}})
	k := &KubeAPIServer{Process: kas, Etcd: etcd, URL: "https://" + addr, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := PollErr(KubeStartTimeout, 200*time.Millisecond, k.ready); err != nil {
		t.Fatalf("kube-apiserver: %v", err)
	}
	if err := os.WriteFile(k.Kubeconfig, []byte(k.kubeconfigYAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// RESTConfig returns a client-go configuration for the admin user.
func (k *KubeAPIServer) RESTConfig() *rest.Config {
	return &rest.Config{Host: k.URL, BearerToken: KubeToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
}

func (k *KubeAPIServer) ready() error {
	if k.Exited() {
		code, _ := k.ExitCode()
		return fmt.Errorf("exited with code %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.URL+"/readyz", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+KubeToken)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: HTTP %d", resp.StatusCode)
	}
	return nil
}

func (k *KubeAPIServer) kubeconfigYAML() string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin, namespace: default}
current-context: e2e
`, k.URL, KubeToken)
}

// writeServiceAccountKey writes sa.key and sa.pub, the service-account signing key pair
// every kube-apiserver needs, into dir.
func writeServiceAccountKey(t testing.TB, dir string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*pem.Block{
		"sa.key": {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)},
		"sa.pub": {Type: "PUBLIC KEY", Bytes: pub},
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

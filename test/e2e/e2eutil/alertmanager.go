package e2eutil

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Alertmanager is a running Alertmanager listening on Addr.
type Alertmanager struct {
	*Process
	Addr string // 127.0.0.1:port
	URL  string // http://127.0.0.1:port
}

// AlertmanagerBin returns the Alertmanager binary: $ALERTMANAGER_BIN, Debian's
// /usr/bin/prometheus-alertmanager, or alertmanager from PATH. It skips the test when
// there is none.
func AlertmanagerBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ALERTMANAGER_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	SkipMissing(t, "alertmanager not found: install Debian's prometheus-alertmanager package or set ALERTMANAGER_BIN")
	return ""
}

// StartAlertmanager starts an Alertmanager with configYAML (its alertmanager.yml), no
// clustering, on a free 127.0.0.1 port, and waits until it is ready.
func StartAlertmanager(t testing.TB, configYAML string) *Alertmanager {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(configYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	am := &Alertmanager{Addr: addr, URL: "http://" + addr}
	am.Process = StartProcess(t, ProcessSpec{Name: "alertmanager", Bin: AlertmanagerBin(t), Dir: dir, Args: []string{
		"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr, "--cluster.listen-address=",
	}})
	if err := WaitHTTP(am.URL+"/-/ready", http.StatusOK, 20*time.Second, am.Process); err != nil {
		t.Fatal(err)
	}
	return am
}

// AMAlert is an alert as Alertmanager's API v2 lists it.
type AMAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// Alerts lists the alerts Alertmanager holds.
func (am *Alertmanager) Alerts(ctx context.Context) ([]AMAlert, error) {
	code, body, err := HTTPGet(ctx, am.URL+"/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v2/alerts: HTTP %d: %s", code, body)
	}
	var out []AMAlert
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		return nil, fmt.Errorf("decode alerts: %w", err)
	}
	return out, nil
}

package e2eutil

import (
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

// NodeExporterStartTimeout bounds how long StartNodeExporter waits for /metrics.
const NodeExporterStartTimeout = 15 * time.Second

// NodeExporter is a running Prometheus node exporter listening on Addr.
type NodeExporter struct {
	*Process
	Addr string // 127.0.0.1:port
	URL  string // http://127.0.0.1:port
}

// NodeExporterBin returns the node exporter binary: $NODE_EXPORTER_BIN, Debian's
// /usr/bin/prometheus-node-exporter, or prometheus-node-exporter or node_exporter from
// PATH. It skips the test when there is none.
func NodeExporterBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NODE_EXPORTER_BIN"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus-node-exporter"); err == nil {
		return "/usr/bin/prometheus-node-exporter"
	}
	for _, name := range []string{"prometheus-node-exporter", "node_exporter"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	SkipMissing(t, "node exporter not found: install Debian's prometheus-node-exporter package or set NODE_EXPORTER_BIN")
	return ""
}

// StartNodeExporter starts a node exporter on a free 127.0.0.1 port with a few cheap
// collectors (cpu, loadavg, meminfo; no systemd, which needs D-Bus) plus extraArgs, and
// waits until /metrics answers 200.
func StartNodeExporter(t testing.TB, extraArgs ...string) *NodeExporter {
	t.Helper()
	bin := NodeExporterBin(t)
	addr := FreeAddr(t)
	args := []string{
		"--web.listen-address=" + addr,
		"--collector.disable-defaults",
		"--collector.cpu", "--collector.loadavg", "--collector.meminfo",
		"--no-collector.systemd",
		"--log.level=warn",
	}
	args = append(args, extraArgs...)
	n := &NodeExporter{Addr: addr, URL: "http://" + addr}
	n.Process = StartProcess(t, ProcessSpec{Name: "node-exporter", Bin: bin, Args: args})
	if err := WaitHTTP(n.URL+"/metrics", http.StatusOK, NodeExporterStartTimeout, n.Process); err != nil {
		t.Fatalf("start node exporter: %v", err)
	}
	return n
}

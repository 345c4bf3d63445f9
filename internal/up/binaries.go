package up

import (
	"fmt"
	"os"
	"os/exec"
)

// Auto-detected names of the optional programs, Debian's first.
var (
	alertmanagerNames = []string{"prometheus-alertmanager", "alertmanager"}
	nodeExporterNames = []string{"prometheus-node-exporter", "node_exporter"}
)

// none as the binary of an optional program turns it off.
const none = "none"

// findBinaries resolves the programs of the stack from cfg.
func findBinaries(cfg Config) (binaries, error) {
	var b binaries
	var err error
	if b.vigil = cfg.VigilBinary; b.vigil == "" {
		if b.vigil, err = os.Executable(); err != nil {
			return b, fmt.Errorf("finding the vigil executable: %w", err)
		}
	}
	if b.prometheus, err = exec.LookPath(cfg.PrometheusBinary); err != nil {
		return b, fmt.Errorf("Prometheus not found (--prometheus.binary=%q): run `make up` from a clone of Vigil (it builds one "+
			"into bin/), install it with `apt-get install prometheus` on Debian or Ubuntu, or download it from "+
			"https://prometheus.io/download/; then put it on PATH or pass --prometheus.binary=<path>: %w", cfg.PrometheusBinary, err)
	}
	if b.alertmanager, err = optional(cfg.AlertmanagerBinary, alertmanagerNames); err != nil {
		return b, fmt.Errorf("--alertmanager.binary: %w", err)
	}
	if b.nodeExporter, err = optional(cfg.NodeExporterBinary, nodeExporterNames); err != nil {
		return b, fmt.Errorf("--node-exporter.binary: %w", err)
	}
	return b, nil
}

// optional resolves an optional program: "" looks for each of names on PATH and returns
// "" when none is there; "none" returns ""; anything else must be found.
func optional(flag string, names []string) (string, error) {
	switch flag {
	case none:
		return "", nil
	case "":
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p, nil
			}
		}
		return "", nil
	}
	p, err := exec.LookPath(flag)
	if err != nil {
		return "", fmt.Errorf("%q not found: %w", flag, err)
	}
	return p, nil
}

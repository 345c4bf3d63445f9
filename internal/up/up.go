// Package up runs the whole Vigil system on one machine, as `vigil up`: two Prometheus
// replicas, a sidecar beside each, a store gateway, a compactor and a ruler over one
// bucket, and a querier over all of them; plus Alertmanager and a node exporter when
// they are installed. It writes their configuration under a data directory, picks free
// loopback ports, and supervises the processes: their output goes to one stream with
// each line prefixed by the part's name, a part that exits is restarted with backoff,
// and all of them are stopped when the context ends.
package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Config is what `vigil up` runs with.
type Config struct {
	// DataDir holds every part's data and configuration; created if missing.
	DataDir string
	// HTTPAddress is where the querier listens; the other parts get free loopback ports.
	HTTPAddress string
	// ObjstoreConfigFile, when set, is the bucket of every part instead of the directory
	// <DataDir>/bucket.
	ObjstoreConfigFile string
	// PrometheusBinary is the Prometheus program: a path, or a name looked up on PATH.
	PrometheusBinary string
	// AlertmanagerBinary and NodeExporterBinary are optional programs: empty looks for
	// the usual names on PATH and runs none if there is none, "none" runs none.
	AlertmanagerBinary, NodeExporterBinary string
	// VigilBinary runs the vigil parts; empty for the running executable.
	VigilBinary string
	// LogLevel is passed to every part: debug, info, warn or error.
	LogLevel string
	// Output receives the parts' output lines and the table of addresses.
	Output io.Writer
	// StopTimeout is how long a part gets after SIGTERM before SIGKILL; zero for 15s.
	StopTimeout time.Duration
}

// Run starts the stack and keeps it running until ctx is done, then stops every part
// and returns nil once all of them have exited. It returns an error, before anything
// starts, when a program is missing or the configuration cannot be written.
func Run(ctx context.Context, logger *slog.Logger, cfg Config) error {
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	l, err := prepare(logger, cfg)
	if err != nil {
		return err
	}
	release, err := lockDataDir(l.dataDir)
	if err != nil {
		return err
	}
	defer release()
	parts := l.parts()
	if err := writeConfigs(l, parts); err != nil {
		return err
	}
	sup := NewSupervisor(SupervisorOptions{Logger: logger, Output: cfg.Output, StopTimeout: cfg.StopTimeout})
	children := make([]Child, len(parts))
	for i, p := range parts {
		children[i] = p.Child
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go announce(actx, logger, sup.Output(), parts, l.dataDir, time.Now())
	logger.Info("starting", "parts", len(parts), "data_dir", l.dataDir, "query", parts[0].URL())
	err = sup.Run(ctx, children)
	logger.Info("every part has stopped")
	return err
}

// prepare finds the programs, creates the data directory, checks the querier's address
// and assigns the ports.
func prepare(logger *slog.Logger, cfg Config) (*layout, error) {
	bins, err := findBinaries(cfg)
	if err != nil {
		return nil, err
	}
	logger.Info("programs", "vigil", bins.vigil, "prometheus", bins.prometheus,
		"alertmanager", orNone(bins.alertmanager), "node_exporter", orNone(bins.nodeExporter))
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolving --data-dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating --data-dir: %w", err)
	}
	objstoreFile, err := bucketConfig(dataDir, cfg.ObjstoreConfigFile)
	if err != nil {
		return nil, err
	}
	queryPort, err := checkListen(cfg.HTTPAddress)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(portsNeeded(bins), queryPort)
	if err != nil {
		return nil, err
	}
	return newLayout(bins, dataDir, objstoreFile, cfg.LogLevel, cfg.HTTPAddress, ports)
}

func orNone(s string) string {
	if s == "" {
		return "(not run)"
	}
	return s
}

// bucketConfig returns the absolute path of the objstore configuration every part
// uses: file if set, else <dataDir>/bucket.yml for the directory <dataDir>/bucket,
// written at every start.
func bucketConfig(dataDir, file string) (string, error) {
	if file != "" {
		abs, err := filepath.Abs(file)
		if err != nil {
			return "", fmt.Errorf("resolving --objstore.config-file: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("--objstore.config-file: %w", err)
		}
		return abs, nil
	}
	dir := filepath.Join(dataDir, "bucket")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the bucket directory: %w", err)
	}
	b, err := renderBucket(dir)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, "bucket.yml")
	return path, writeFile(path, b)
}

// checkListen makes sure the querier can listen on addr, so that a port already taken
// (by a Prometheus on 9090, say) is reported at once instead of by a querier that keeps
// failing. It returns the port.
func checkListen(addr string) (int, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("--http-address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port == 0 {
		return 0, fmt.Errorf("--http-address %q: want host:port with a fixed port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("the querier cannot listen on --http-address %s (is a Prometheus or another vigil up running there?): "+
			"pass another one, e.g. --http-address=127.0.0.1:19090: %w", addr, err)
	}
	return port, ln.Close()
}

// writeConfigs writes the configuration files of the parts.
func writeConfigs(l *layout, parts []Part) error {
	jobs := scrapeJobs(parts)
	for i := range l.prometheus {
		b, err := renderPrometheus(promConfig{ScrapeInterval: scrapeInterval, Cluster: cluster, Replica: promName(i), Jobs: jobs})
		if err != nil {
			return err
		}
		if err := writeFile(l.promConfig(i), b); err != nil {
			return err
		}
	}
	if err := writeIfMissing(filepath.Join(l.rulesDir(), "vigil-up.yml"), exampleRules()); err != nil {
		return err
	}
	if l.alertmanager != "" {
		return writeIfMissing(l.alertmanagerConfig(), alertmanagerConfig())
	}
	return nil
}

// errLocked is returned when another `vigil up` uses the data directory.
var errLocked = errors.New("another vigil up is using this --data-dir")

package up

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
)

const (
	// cluster is the cluster external label of everything `vigil up` runs.
	cluster = "vigil-up"
	// replicaLabel tells the Prometheus replicas (and the ruler) apart.
	replicaLabel = "replica"
	// scrapeInterval of the Prometheus replicas: short, so data shows up quickly.
	scrapeInterval = "5s"
	// graceFlag is the HTTP and gRPC grace period of the vigil parts: requests in flight
	// get this long at shutdown, well within the supervisor's stop timeout.
	graceFlag = "5s"
)

// Part is one process of the stack: how to run it and where it listens.
type Part struct {
	Child
	Job       string // scrape job of its /metrics; empty: not scraped
	HTTPAddr  string // host:port of its HTTP server
	GRPCAddr  string // host:port of its gRPC server; empty if it has none
	ReadyPath string // HTTP path that answers 200 once it serves
	About     string // one line for the table
}

// URL returns the base URL of the part's HTTP server, with a loopback host when it
// listens on every address.
func (p Part) URL() string { return "http://" + dialAddr(p.HTTPAddr) }

// binaries are the programs the stack runs. alertmanager and nodeExporter are empty
// when they are not run.
type binaries struct {
	vigil, prometheus, alertmanager, nodeExporter string
}

// listen is a vigil part's pair of listen addresses.
type listen struct{ http, grpc string }

// layout is where every part of the stack listens and keeps its files.
type layout struct {
	bins         binaries
	dataDir      string // absolute
	objstoreFile string // absolute; every part that uses the bucket gets it
	logLevel     string
	query        listen // query.http is the user's --http-address
	prometheus   [2]string
	sidecar      [2]listen
	store, rule  listen
	compact      string
	alertmanager string // empty when not run
	nodeExporter string // empty when not run
}

// portsNeeded returns how many loopback ports newLayout assigns with these binaries.
func portsNeeded(b binaries) int {
	n := 2 + 4 + 2 + 2 + 1 + 1 // prometheus, sidecars, store, rule, compact, query gRPC
	if b.alertmanager != "" {
		n++
	}
	if b.nodeExporter != "" {
		n++
	}
	return n
}

// newLayout assigns ports (from portsNeeded(b) free ones) to every part.
func newLayout(b binaries, dataDir, objstoreFile, logLevel, queryHTTP string, ports []int) (*layout, error) {
	if len(ports) != portsNeeded(b) {
		return nil, fmt.Errorf("layout: got %d ports, need %d", len(ports), portsNeeded(b))
	}
	next := func() string {
		p := ports[0]
		ports = ports[1:]
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	l := &layout{bins: b, dataDir: dataDir, objstoreFile: objstoreFile, logLevel: logLevel}
	l.query = listen{http: queryHTTP, grpc: next()}
	for i := range l.prometheus {
		l.prometheus[i] = next()
		l.sidecar[i] = listen{http: next(), grpc: next()}
	}
	l.store = listen{http: next(), grpc: next()}
	l.rule = listen{http: next(), grpc: next()}
	l.compact = next()
	if b.alertmanager != "" {
		l.alertmanager = next()
	}
	if b.nodeExporter != "" {
		l.nodeExporter = next()
	}
	return l, nil
}

// Files under the data directory.
func (l *layout) promDir(i int) string    { return filepath.Join(l.dataDir, promName(i)) }
func (l *layout) promConfig(i int) string { return filepath.Join(l.promDir(i), "prometheus.yml") }
func (l *layout) promTSDB(i int) string   { return filepath.Join(l.promDir(i), "data") }
func (l *layout) rulesDir() string        { return filepath.Join(l.dataDir, "rules") }
func (l *layout) alertmanagerDir() string { return filepath.Join(l.dataDir, "alertmanager") }
func (l *layout) alertmanagerConfig() string {
	return filepath.Join(l.alertmanagerDir(), "alertmanager.yml")
}

func promName(i int) string    { return fmt.Sprintf("prometheus-%d", i) }
func sidecarName(i int) string { return fmt.Sprintf("sidecar-%d", i) }

// parts returns every part of the stack, the querier first.
func (l *layout) parts() []Part {
	ps := []Part{l.queryPart()}
	for i := range l.prometheus {
		ps = append(ps, l.prometheusPart(i))
	}
	for i := range l.sidecar {
		ps = append(ps, l.sidecarPart(i))
	}
	ps = append(ps, l.storePart(), l.compactPart(), l.rulePart())
	if l.alertmanager != "" {
		ps = append(ps, l.alertmanagerPart())
	}
	if l.nodeExporter != "" {
		ps = append(ps, l.nodeExporterPart())
	}
	return ps
}

// vigilPart is a `vigil <cmd>` part with the flags every vigil server shares.
func (l *layout) vigilPart(name, cmd string, addr listen, about string, args ...string) Part {
	all := []string{cmd, "--log.level=" + l.logLevel, "--http-address=" + addr.http, "--http-grace-period=" + graceFlag}
	if addr.grpc != "" {
		all = append(all, "--grpc-address="+addr.grpc, "--grpc-grace-period="+graceFlag)
	}
	return Part{
		Child: Child{Name: name, Path: l.bins.vigil, Args: append(all, args...), Dir: l.dataDir},
		Job:   "vigil-" + cmd, HTTPAddr: addr.http, GRPCAddr: addr.grpc, ReadyPath: "/-/ready", About: about,
	}
}

func (l *layout) queryPart() Part {
	args := []string{"--query.replica-label=" + replicaLabel}
	for _, s := range l.sidecar {
		args = append(args, "--endpoint="+s.grpc)
	}
	args = append(args, "--endpoint="+l.store.grpc, "--endpoint="+l.rule.grpc)
	return l.vigilPart("query", "query", l.query, "querier: Prometheus API and UI over everything (point Grafana here)", args...)
}

func (l *layout) sidecarPart(i int) Part {
	return l.vigilPart(sidecarName(i), "sidecar", l.sidecar[i], "sidecar of "+promName(i)+", uploads its blocks",
		"--prometheus.url=http://"+l.prometheus[i], "--tsdb.path="+l.promTSDB(i), "--objstore.config-file="+l.objstoreFile)
}

func (l *layout) storePart() Part {
	return l.vigilPart("store", "store", l.store, "store gateway: serves the blocks in the bucket",
		"--data-dir="+filepath.Join(l.dataDir, "store"), "--objstore.config-file="+l.objstoreFile, "--sync-block-duration=1m")
}

func (l *layout) compactPart() Part {
	return l.vigilPart("compact", "compact", listen{http: l.compact}, "compactor: compacts and downsamples the bucket",
		"--wait", "--data-dir="+filepath.Join(l.dataDir, "compact"), "--objstore.config-file="+l.objstoreFile)
}

func (l *layout) rulePart() Part {
	q := dialAddr(l.query.http)
	args := []string{
		"--query=" + q, "--alert.query-url=http://" + q, "--rule-file=" + l.rulesDir(), "--eval-interval=15s",
		"--data-dir=" + filepath.Join(l.dataDir, "rule"), "--objstore.config-file=" + l.objstoreFile,
		fmt.Sprintf("--label=cluster=%q", cluster), fmt.Sprintf("--label=%s=%q", replicaLabel, "rule-0"),
		"--alert.label-drop=" + replicaLabel,
	}
	if l.alertmanager != "" {
		args = append(args, "--alertmanagers.url=http://"+l.alertmanager)
	}
	return l.vigilPart("rule", "rule", l.rule, "ruler: example rules through the querier", args...)
}

func (l *layout) prometheusPart(i int) Part {
	return Part{
		Child: Child{Name: promName(i), Path: l.bins.prometheus, Dir: l.dataDir, Args: []string{
			"--config.file=" + l.promConfig(i), "--storage.tsdb.path=" + l.promTSDB(i),
			"--web.listen-address=" + l.prometheus[i], "--web.enable-lifecycle",
			"--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h",
			"--log.level=" + l.logLevel,
		}},
		Job: "prometheus", HTTPAddr: l.prometheus[i], ReadyPath: "/-/ready",
		About: fmt.Sprintf("Prometheus, %s=%q", replicaLabel, promName(i)),
	}
}

func (l *layout) alertmanagerPart() Part {
	return Part{
		Child: Child{Name: "alertmanager", Path: l.bins.alertmanager, Dir: l.dataDir, Args: []string{
			"--config.file=" + l.alertmanagerConfig(), "--storage.path=" + filepath.Join(l.alertmanagerDir(), "data"),
			"--web.listen-address=" + l.alertmanager, "--cluster.listen-address=", "--log.level=" + l.logLevel,
		}},
		Job: "alertmanager", HTTPAddr: l.alertmanager, ReadyPath: "/-/ready", About: "Alertmanager: receives the ruler's alerts",
	}
}

func (l *layout) nodeExporterPart() Part {
	return Part{
		Child: Child{Name: "node-exporter", Path: l.bins.nodeExporter, Dir: l.dataDir, Args: []string{
			"--web.listen-address=" + l.nodeExporter, "--no-collector.systemd", "--log.level=" + l.logLevel,
		}},
		Job: "node", HTTPAddr: l.nodeExporter, ReadyPath: "/metrics", About: "node exporter: this machine's metrics",
	}
}

// scrapeJobs returns the scrape jobs of the Prometheus replicas: every part's /metrics,
// one job per kind of part, in the order of parts.
func scrapeJobs(parts []Part) []scrapeJob {
	var jobs []scrapeJob
	index := map[string]int{}
	for _, p := range parts {
		if p.Job == "" {
			continue
		}
		i, ok := index[p.Job]
		if !ok {
			i = len(jobs)
			index[p.Job] = i
			jobs = append(jobs, scrapeJob{Name: p.Job})
		}
		jobs[i].Targets = append(jobs[i].Targets, scrapeTarget{Instance: p.Name, Addr: dialAddr(p.HTTPAddr)})
	}
	return jobs
}

// dialAddr returns addr with a loopback host when it names every address (":9090",
// "0.0.0.0:9090", "[::]:9090"), so that other parts can connect to it.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

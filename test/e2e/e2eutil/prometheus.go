package e2eutil

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
)

// PrometheusStartTimeout bounds how long StartPrometheus and Restart wait for /-/ready.
const PrometheusStartTimeout = 30 * time.Second

// PrometheusConfig configures a test Prometheus.
type PrometheusConfig struct {
	// ExternalLabels become global.external_labels; none are written when empty.
	ExternalLabels map[string]string
	// ScrapeInterval is the global scrape and rule evaluation interval; default 1s.
	ScrapeInterval time.Duration
	// NoSelfScrape drops the default job "prometheus" that scrapes Prometheus itself.
	NoSelfScrape bool
	// ScrapeConfigs are extra static scrape jobs.
	ScrapeConfigs []ScrapeConfig
	// ExtraYAML is appended verbatim to prometheus.yml at the top level, for sections such
	// as alerting, rule_files or remote_write.
	ExtraYAML string
	// Files are written into the directory of prometheus.yml (name → content), e.g. rule
	// files that ExtraYAML refers to by relative path.
	Files map[string]string
	// ExtraFlags are added to the Prometheus command line.
	ExtraFlags []string
	// BasicAuth, when set, makes Prometheus's web server ask for this user and password
	// (--web.config.file); its self-scrape then fails with 401.
	BasicAuth *BasicAuth
}

// BasicAuth is one user of a Prometheus web config.
type BasicAuth struct{ User, Password string }

// ScrapeConfig is one static scrape job.
type ScrapeConfig struct {
	JobName     string
	Targets     []string          // host:port
	MetricsPath string            // default /metrics
	Labels      map[string]string // target labels
}

// Prometheus is a running test Prometheus listening on Addr, with its config and data
// in Dir. Stop, Kill and the other Process methods act on it; Restart starts it again on
// the same port and data directory.
type Prometheus struct {
	*Process
	Addr       string // 127.0.0.1:port
	URL        string // http://127.0.0.1:port
	Dir        string // working directory holding prometheus.yml
	ConfigPath string
	DataDir    string
	basicAuth  *BasicAuth
}

// PrometheusBin returns the Prometheus binary: $PROMETHEUS_BIN, /usr/bin/prometheus or
// prometheus from PATH. It skips the test when there is none.
func PrometheusBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PROMETHEUS_BIN"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	SkipMissing(t, "Prometheus binary not found: install Debian's prometheus package or set PROMETHEUS_BIN")
	return ""
}

// StartPrometheus writes prometheus.yml for cfg, starts Prometheus on a free 127.0.0.1
// port with 2h block durations and the lifecycle API enabled, and waits for /-/ready.
func StartPrometheus(t testing.TB, cfg PrometheusConfig) *Prometheus {
	t.Helper()
	bin := PrometheusBin(t)
	dir := t.TempDir()
	addr := FreeAddr(t)
	p := &Prometheus{Addr: addr, URL: "http://" + addr, Dir: dir,
		ConfigPath: filepath.Join(dir, "prometheus.yml"), DataDir: filepath.Join(dir, "data"), basicAuth: cfg.BasicAuth}
	if err := p.WriteConfig(cfg); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--config.file=" + p.ConfigPath,
		"--storage.tsdb.path=" + p.DataDir,
		"--web.listen-address=" + addr,
		"--storage.tsdb.min-block-duration=2h",
		"--storage.tsdb.max-block-duration=2h",
		"--web.enable-lifecycle",
		"--log.level=info",
	}
	args = append(args, cfg.ExtraFlags...)
	if cfg.BasicAuth != nil {
		web, err := webConfig(dir, cfg.BasicAuth)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--web.config.file="+web)
	}
	p.Process = StartProcess(t, ProcessSpec{Name: "prometheus", Bin: bin, Args: args, Dir: dir})
	if err := p.WaitReady(PrometheusStartTimeout); err != nil {
		t.Fatalf("start Prometheus: %v", err)
	}
	return p
}

// WriteConfig (re)writes prometheus.yml and cfg.Files. Call Reload to apply it to a
// running Prometheus; ExtraFlags are ignored here.
func (p *Prometheus) WriteConfig(cfg PrometheusConfig) error {
	b, err := renderPrometheusConfig(cfg, p.Addr)
	if err != nil {
		return err
	}
	for name, content := range cfg.Files {
		if err := os.WriteFile(filepath.Join(p.Dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := os.WriteFile(p.ConfigPath, b, 0o644); err != nil {
		return fmt.Errorf("write prometheus.yml: %w", err)
	}
	return nil
}

type promYAML struct {
	Global struct {
		ScrapeInterval     string            `yaml:"scrape_interval"`
		EvaluationInterval string            `yaml:"evaluation_interval"`
		ExternalLabels     map[string]string `yaml:"external_labels,omitempty"`
	} `yaml:"global"`
	ScrapeConfigs []scrapeYAML `yaml:"scrape_configs,omitempty"`
}

type scrapeYAML struct {
	JobName       string `yaml:"job_name"`
	MetricsPath   string `yaml:"metrics_path,omitempty"`
	StaticConfigs []struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels,omitempty"`
	} `yaml:"static_configs"`
}

func renderPrometheusConfig(cfg PrometheusConfig, selfAddr string) ([]byte, error) {
	interval := cfg.ScrapeInterval
	if interval == 0 {
		interval = time.Second
	}
	var y promYAML
	y.Global.ScrapeInterval = interval.String()
	y.Global.EvaluationInterval = interval.String()
	if len(cfg.ExternalLabels) > 0 {
		y.Global.ExternalLabels = cfg.ExternalLabels
	}
	jobs := cfg.ScrapeConfigs
	if !cfg.NoSelfScrape {
		jobs = append([]ScrapeConfig{{JobName: "prometheus", Targets: []string{selfAddr}}}, jobs...)
	}
	for _, j := range jobs {
		sy := scrapeYAML{JobName: j.JobName, MetricsPath: j.MetricsPath}
		sy.StaticConfigs = append(sy.StaticConfigs, struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels,omitempty"`
		}{j.Targets, j.Labels})
		y.ScrapeConfigs = append(y.ScrapeConfigs, sy)
	}
	b, err := yaml.Marshal(&y)
	if err != nil {
		return nil, fmt.Errorf("render prometheus.yml: %w", err)
	}
	if cfg.ExtraYAML != "" {
		b = append(append(b, '\n'), cfg.ExtraYAML...)
		b = append(b, '\n')
	}
	return b, nil
}

// WaitReady waits until /-/ready returns 200, failing early if Prometheus exits.
// With basic auth, an unauthenticated /-/ready answers 401 as soon as the web server is
// up, which is all it can tell.
func (p *Prometheus) WaitReady(timeout time.Duration) error {
	if p.basicAuth != nil {
		return WaitHTTP(p.URL+"/-/ready", http.StatusUnauthorized, timeout, p.Process)
	}
	return WaitHTTP(p.URL+"/-/ready", http.StatusOK, timeout, p.Process)
}

// webConfig writes a Prometheus web config asking for a's user and password.
func webConfig(dir string, a *BasicAuth) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(a.Password), bcrypt.MinCost)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "web.yml")
	return path, os.WriteFile(path, []byte(fmt.Sprintf("basic_auth_users:\n  %s: %q\n", a.User, hash)), 0o600)
}

// Restart stops Prometheus if it is running (SIGTERM), starts it again with the same
// flags, port and data directory, and waits for /-/ready.
func (p *Prometheus) Restart() error {
	if err := p.Stop(DefaultStopTimeout); err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	return p.WaitReady(PrometheusStartTimeout)
}

// Reload asks Prometheus to re-read its configuration (POST /-/reload).
func (p *Prometheus) Reload() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("reload Prometheus: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reload Prometheus: HTTP %d", resp.StatusCode)
	}
	return nil
}

package up

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v2"

	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/rule"
)

// testLayout is a layout with every optional part and ports 20000 upwards.
func testLayout(t *testing.T) *layout {
	t.Helper()
	b := binaries{vigil: "/bin/vigil", prometheus: "/usr/bin/prometheus", alertmanager: "/usr/bin/am", nodeExporter: "/usr/bin/ne"}
	ports := make([]int, portsNeeded(b))
	for i := range ports {
		ports[i] = 20000 + i
	}
	l, err := newLayout(b, "/data", "/data/bucket.yml", "info", "127.0.0.1:9090", ports)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRenderPrometheus(t *testing.T) {
	l := testLayout(t)
	b, err := renderPrometheus(promConfig{ScrapeInterval: "5s", Cluster: cluster, Replica: "prometheus-1", Jobs: scrapeJobs(l.parts())})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(string(b), nil)
	if err != nil {
		t.Fatalf("Prometheus refuses the rendered config: %v\n%s", err, b)
	}
	if got := cfg.GlobalConfig.ExternalLabels.String(); got != `{cluster="vigil-up", replica="prometheus-1"}` {
		t.Errorf("external labels = %s", got)
	}
	if got := cfg.GlobalConfig.ScrapeInterval.String(); got != "5s" {
		t.Errorf("scrape interval = %s, want 5s", got)
	}
	want := map[string]map[string]string{ // job → instance → address
		"vigil-query":   {"query": "127.0.0.1:9090"},
		"prometheus":    {"prometheus-0": l.prometheus[0], "prometheus-1": l.prometheus[1]},
		"vigil-sidecar": {"sidecar-0": l.sidecar[0].http, "sidecar-1": l.sidecar[1].http},
		"vigil-store":   {"store": l.store.http}, "vigil-compact": {"compact": l.compact}, "vigil-rule": {"rule": l.rule.http},
		"alertmanager": {"alertmanager": l.alertmanager}, "node": {"node-exporter": l.nodeExporter},
	}
	got := map[string]map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		got[sc.JobName] = map[string]string{}
		for _, c := range sc.ServiceDiscoveryConfigs {
			for _, g := range c.(discovery.StaticConfig) {
				for _, tg := range g.Targets {
					got[sc.JobName][string(g.Labels["instance"])] = string(tg[model.AddressLabel])
				}
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scrape targets (job → instance → address):\n got %v\nwant %v", got, want)
	}
}

func TestScrapeJobsGroupByKind(t *testing.T) {
	jobs := scrapeJobs(testLayout(t).parts())
	if len(jobs) != 8 {
		t.Errorf("%d jobs, want 8: %v", len(jobs), jobs)
	}
	var sidecars scrapeJob
	for _, j := range jobs {
		if j.Name == "vigil-sidecar" {
			sidecars = j
		}
	}
	l := testLayout(t)
	want := []scrapeTarget{{"sidecar-0", l.sidecar[0].http}, {"sidecar-1", l.sidecar[1].http}}
	if !slices.Equal(sidecars.Targets, want) {
		t.Errorf("sidecar targets = %v, want %v", sidecars.Targets, want)
	}
}

func TestRenderPrometheusQuotes(t *testing.T) {
	b, err := renderPrometheus(promConfig{ScrapeInterval: "5s", Cluster: `a "b": c`, Replica: "r",
		Jobs: []scrapeJob{{Name: "j", Targets: []scrapeTarget{{Instance: "x: y", Addr: "127.0.0.1:1"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(string(b), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if got := cfg.GlobalConfig.ExternalLabels.Get("cluster"); got != `a "b": c` {
		t.Errorf("cluster = %q", got)
	}
}

func TestExampleRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, exampleRules(), 0o644); err != nil {
		t.Fatal(err)
	}
	groups, errs := rule.NewLoader(parser.NewParser(parser.Options{}), newTestLogger(os.Stderr)).Load(path, false, model.UTF8Validation)
	if len(errs) > 0 {
		t.Fatalf("the ruler refuses the example rules: %v", errs)
	}
	var records, alerts int
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records++
			} else {
				alerts++
			}
		}
	}
	if records == 0 || alerts == 0 {
		t.Errorf("%d recording and %d alerting rules, want some of each", records, alerts)
	}
}

func TestAlertmanagerConfig(t *testing.T) {
	var c struct {
		Route struct {
			Receiver string `yaml:"receiver"`
		} `yaml:"route"`
		Receivers []struct {
			Name string `yaml:"name"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(alertmanagerConfig(), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Receivers) != 1 || c.Receivers[0].Name != c.Route.Receiver {
		t.Errorf("route receiver %q is not the one receiver %v", c.Route.Receiver, c.Receivers)
	}
}

func TestRenderBucket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dir with: odd 'chars'")
	b, err := renderBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := objstore.ParseConfig(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if c.Type != "FILESYSTEM" {
		t.Errorf("type %q, want FILESYSTEM", c.Type)
	}
	if got := c.Config.(map[any]any)["directory"]; got != dir {
		t.Errorf("directory %q, want %q", got, dir)
	}
}

func TestWriteIfMissingKeepsEdits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules", "r.yml")
	if err := writeIfMissing(path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := writeIfMissing(path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first" {
		t.Errorf("file = %q, want the first content kept", b)
	}
}

func TestBucketConfig(t *testing.T) {
	dataDir := t.TempDir()
	path, err := bucketConfig(dataDir, "")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dataDir, "bucket.yml") {
		t.Errorf("default bucket config at %s", path)
	}
	b, _ := os.ReadFile(path)
	if c, err := objstore.ParseConfig(b); err != nil || c.Config.(map[any]any)["directory"] != filepath.Join(dataDir, "bucket") {
		t.Errorf("default bucket config %q: %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "bucket")); err != nil || !fi.IsDir() {
		t.Errorf("bucket directory not created: %v", err)
	}

	own := filepath.Join(t.TempDir(), "s3.yml")
	if err := os.WriteFile(own, []byte("type: S3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(own))
	if path, err := bucketConfig(dataDir, "s3.yml"); err != nil || path != own {
		t.Errorf("bucketConfig with a relative file = %q, %v; want the absolute %s", path, err, own)
	}
	if _, err := bucketConfig(dataDir, "missing.yml"); err == nil {
		t.Error("bucketConfig accepted a missing file")
	}
}

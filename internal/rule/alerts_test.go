package rule

import (
	"context"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"
)

// startNotifier runs a notifier.Manager for am, with am.Run feeding it the resolved
// addresses, until the test ends; it returns once wantAMs Alertmanagers are known.
func startNotifier(t *testing.T, am *Alertmanagers, rc []*relabel.Config, wantAMs int) *notifier.Manager {
	t.Helper()
	n := notifier.NewManager(&notifier.Options{QueueCapacity: 100, MaxBatchSize: 100, Registerer: prometheus.NewRegistry()}, model.UTF8Validation, discardLogger())
	if err := n.ApplyConfig(am.Config(rc)); err != nil {
		t.Fatal(err)
	}
	tsets := make(chan map[string][]*targetgroup.Group)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { n.Run(tsets) })
	wg.Go(func() { am.Run(ctx, 50*time.Millisecond, discardLogger(), tsets) })
	t.Cleanup(func() { cancel(); n.Stop(); wg.Wait() })
	waitFor(t, 5*time.Second, "Alertmanagers resolved", func() bool { return len(n.Alertmanagers()) == wantAMs })
	return n
}

func TestNotifyFuncThroughNotifier(t *testing.T) {
	fake := newFakeAlertmanager(t)
	am, err := ParseAlertmanagerURLs([]string{fake.URL + "/am/prefix"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rcFile := writeFile(t, t.TempDir(), "relabel.yaml", `
- source_labels: [region]
  target_label: dc
  replacement: dc-$1
- source_labels: [alertname]
  regex: DropMe
  action: drop
`)
	rc, err := ParseRelabelConfigs(readFile(t, rcFile))
	if err != nil {
		t.Fatal(err)
	}
	n := startNotifier(t, am, rc, 1)
	if u := n.Alertmanagers()[0].String(); u != fake.URL+"/am/prefix/api/v2/alerts" {
		t.Errorf("Alertmanager URL %s", u)
	}

	notify := NotifyFunc(n, AlertOptions{
		LabelDrop: []string{"replica"},
		External:  labels.FromStrings("cluster", "eu1", "region", "eu", "replica", "ruler-a"),
		QueryURL:  "http://query.example:9090/",
	})
	t0 := time.UnixMilli(1700000000123).UTC()
	expr := `rate(http_errors{code=~"5.."}[5m]) > 0.1`
	notify(context.Background(), expr,
		&rules.Alert{
			State:       rules.StateFiring,
			Labels:      labels.FromStrings("alertname", "HighErrors", "replica", "prom-0", "cluster", "own", "severity", "page"),
			Annotations: labels.FromStrings("summary", "too many errors"),
			FiredAt:     t0, ValidUntil: t0.Add(4 * time.Minute),
		},
		&rules.Alert{
			State:   rules.StateInactive,
			Labels:  labels.FromStrings("alertname", "Gone"),
			FiredAt: t0.Add(-10 * time.Minute), ResolvedAt: t0.Add(-time.Minute), ValidUntil: t0.Add(4 * time.Minute),
		},
		&rules.Alert{State: rules.StateFiring, Labels: labels.FromStrings("alertname", "DropMe"), FiredAt: t0, ValidUntil: t0},
	)
	notify(context.Background(), "nothing") // no alerts: nothing sent

	waitFor(t, 5*time.Second, "two alerts posted", func() bool { _, as := fake.received(); return len(as) >= 2 })
	time.Sleep(100 * time.Millisecond)
	paths, all := fake.received()
	if len(all) != 2 {
		t.Fatalf("got %d alerts, want 2 (DropMe dropped by relabelling): %+v", len(all), all)
	}
	for _, p := range paths {
		if p != "POST /am/prefix/api/v2/alerts" {
			t.Errorf("posted to %q", p)
		}
	}

	firing, _ := fake.alertNamed("HighErrors")
	wantLabels := map[string]string{"alertname": "HighErrors", "cluster": "eu1", "region": "eu", "dc": "dc-eu", "severity": "page"}
	if !maps.Equal(firing.Labels, wantLabels) {
		t.Errorf("firing alert labels %v, want %v (replica dropped, external labels override, relabelled after)", firing.Labels, wantLabels)
	}
	if firing.Annotations["summary"] != "too many errors" {
		t.Errorf("annotations %v", firing.Annotations)
	}
	if !firing.StartsAt.Equal(t0) || !firing.EndsAt.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("firing alert startsAt %v endsAt %v, want %v and ValidUntil %v", firing.StartsAt, firing.EndsAt, t0, t0.Add(4*time.Minute))
	}
	wantURL := "http://query.example:9090/graph?g0.expr=rate%28http_errors%7Bcode%3D~%225..%22%7D%5B5m%5D%29+%3E+0.1&g0.tab=1"
	if firing.GeneratorURL != wantURL {
		t.Errorf("generatorURL\n%s\nwant\n%s", firing.GeneratorURL, wantURL)
	}
	if u, err := url.Parse(firing.GeneratorURL); err != nil || u.Query().Get("g0.expr") != expr || u.Path != "/graph" {
		t.Errorf("generatorURL does not carry the expression: %v %v", u, err)
	}

	resolved, _ := fake.alertNamed("Gone")
	if want := map[string]string{"alertname": "Gone", "cluster": "eu1", "region": "eu", "dc": "dc-eu"}; !maps.Equal(resolved.Labels, want) {
		t.Errorf("resolved alert labels %v, want %v", resolved.Labels, want)
	}
	if !resolved.EndsAt.Equal(t0.Add(-time.Minute)) || !resolved.StartsAt.Equal(t0.Add(-10*time.Minute)) {
		t.Errorf("resolved alert startsAt %v endsAt %v, want endsAt = resolvedAt %v", resolved.StartsAt, resolved.EndsAt, t0.Add(-time.Minute))
	}
}

func TestAlertmanagersFileDelivers(t *testing.T) {
	fake := newFakeAlertmanager(t)
	hostport := strings.TrimPrefix(fake.URL, "http://")
	f := writeFile(t, t.TempDir(), "am.yaml", `alertmanagers:
- static_configs: ["`+hostport+`"]
  scheme: http
  path_prefix: /alertmanager
  timeout: 2s
  api_version: v2
`)
	am, err := ParseAlertmanagersConfig(readFile(t, f), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n := startNotifier(t, am, nil, 1)
	NotifyFunc(n, AlertOptions{})(context.Background(), "up == 0",
		&rules.Alert{Labels: labels.FromStrings("alertname", "A", "replica", "x"), FiredAt: time.Now(), ValidUntil: time.Now().Add(time.Minute)})
	waitFor(t, 5*time.Second, "alert posted", func() bool { _, as := fake.received(); return len(as) == 1 })
	paths, as := fake.received()
	if paths[0] != "POST /alertmanager/api/v2/alerts" {
		t.Errorf("posted to %q", paths[0])
	}
	// Without options the alert is sent as it is, and the generator URL is relative.
	if want := map[string]string{"alertname": "A", "replica": "x"}; !maps.Equal(as[0].Labels, want) {
		t.Errorf("labels %v, want %v", as[0].Labels, want)
	}
	if !strings.HasPrefix(as[0].GeneratorURL, "/graph?g0.expr=up+%3D%3D+0") {
		t.Errorf("generatorURL %q", as[0].GeneratorURL)
	}
}

func TestAlertmanagersFileSD(t *testing.T) {
	fake := newFakeAlertmanager(t)
	dir := t.TempDir()
	writeFile(t, dir, "sd/ams.json", `[{"targets": ["`+strings.TrimPrefix(fake.URL, "http://")+`"]}]`)
	f := writeFile(t, dir, "am.yaml", `alertmanagers:
- file_sd_configs:
  - files: [`+filepath.Join(dir, "sd", "*.json")+`]
`)
	am, err := ParseAlertmanagersConfig(readFile(t, f), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n := startNotifier(t, am, nil, 1)
	if u := n.Alertmanagers()[0].String(); u != fake.URL+"/api/v2/alerts" {
		t.Errorf("Alertmanager from file SD: %s", u)
	}
	NotifyFunc(n, AlertOptions{})(context.Background(), "x", &rules.Alert{Labels: labels.FromStrings("alertname", "SD"), FiredAt: time.Now()})
	waitFor(t, 5*time.Second, "alert posted", func() bool { _, ok := fake.alertNamed("SD"); return ok })
}

func TestParseAlertmanagerURLs(t *testing.T) {
	for _, tc := range []struct {
		in, scheme, prefix, spec string
	}{
		{"http://am.example:9094", "http", "/", "am.example:9094"},
		{"https://am.example", "https", "/", "am.example:9093"},
		{"http://10.0.0.1/path/prefix", "http", "/path/prefix", "10.0.0.1:9093"},
		{"http://am.example:9093/prefix/", "http", "/prefix/", "am.example:9093"},
		{"http://dns+am.example", "http", "/", "dns+am.example:9093"},
		{"http://dns+am.example:9095/x", "http", "/x", "dns+am.example:9095"},
		{"https://dnssrv+_web._tcp.am.example", "https", "/", "dnssrv+_web._tcp.am.example"},
		{"http://dnssrvnoa+_web._tcp.am.example", "http", "/", "dnssrvnoa+_web._tcp.am.example"},
	} {
		am, err := ParseAlertmanagerURLs([]string{tc.in}, 7*time.Second)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if len(am.configs) != 1 {
			t.Fatalf("%s: %d configs", tc.in, len(am.configs))
		}
		c := am.configs[0]
		if c.Scheme != tc.scheme || c.PathPrefix != tc.prefix || c.Timeout != model.Duration(7*time.Second) || c.APIVersion != config.AlertmanagerAPIVersionV2 {
			t.Errorf("%s: scheme %q prefix %q timeout %v api %q; want %q %q 7s v2", tc.in, c.Scheme, c.PathPrefix, c.Timeout, c.APIVersion, tc.scheme, tc.prefix)
		}
		if !slices.Equal(am.specs[0], []string{tc.spec}) {
			t.Errorf("%s: addresses %v, want [%s]", tc.in, am.specs[0], tc.spec)
		}
	}

	am, err := ParseAlertmanagerURLs([]string{"http://a:1", "http://b:2"}, time.Second)
	if err != nil || len(am.configs) != 2 || len(am.Config(nil).AlertingConfig.AlertmanagerConfigs) != 2 {
		t.Errorf("two URLs: %v %v", am, err)
	}
	if am, err := ParseAlertmanagerURLs(nil, time.Second); err != nil || len(am.configs) != 0 {
		t.Errorf("no URLs: %v %v", am, err)
	}

	for _, tc := range []struct{ in, want string }{
		{"am.example:9093", "http://"},
		{"ftp://am.example", "http://"},
		{"HTTP//am.example", "http://"},
		{"http://", "no host"},
		{"http:///prefix", "no host"},
		{"http://am.example:99999", "invalid port"},
		{"http://am.example:", "port"},
		{"http://consul+am.example:9093", "unknown prefix"},
		{"http://dns+", "missing host"},
	} {
		_, err := ParseAlertmanagerURLs([]string{"http://ok:9093", tc.in}, time.Second)
		if err == nil {
			t.Errorf("%s: accepted", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--alertmanagers.url") {
			t.Errorf("%s: error %q, want one naming the flag and saying %q", tc.in, err, tc.want)
		}
	}
}

// Thanos' form puts the DNS lookup on the scheme: dns+http://host, dnssrv+https://name.
func TestParseAlertmanagerURLsThanosDNSScheme(t *testing.T) {
	for in, spec := range map[string]string{
		"dns+http://alertmanager:9093":    "dns+alertmanager:9093",
		"dns+http://alertmanager":         "dns+alertmanager:9093",
		"dnssrv+https://_web._tcp.am.svc": "dnssrv+_web._tcp.am.svc",
	} {
		am, err := ParseAlertmanagerURLs([]string{in}, time.Second)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if !slices.Equal(am.specs[0], []string{spec}) {
			t.Errorf("%s: addresses %v, want [%s]", in, am.specs[0], spec)
		}
	}
}

func TestParseAlertmanagerURLsIPv6DefaultPort(t *testing.T) {
	am, err := ParseAlertmanagerURLs([]string{"http://[::1]"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(am.specs[0], []string{"[::1]:9093"}) {
		t.Errorf("addresses %v", am.specs[0])
	}
}

func TestParseAlertmanagersConfig(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "am.yaml", `alertmanagers:
- static_configs: ["127.0.0.1:9093", "dns+am.svc:9093", "dnssrv+_am._tcp.svc"]
  scheme: https
  path_prefix: /am
  timeout: 3s
  api_version: v2
  http_config:
    basic_auth:
      username: user
      password: secret
- file_sd_configs:
  - files: [/etc/am/*.json, /etc/am/more.yaml]
    refresh_interval: 1m
  - files: [/etc/am2/*.json]
`)
	am, err := ParseAlertmanagersConfig(readFile(t, f), 7*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(am.configs) != 2 {
		t.Fatalf("%d configs, want 2", len(am.configs))
	}
	c := am.configs[0]
	if c.Scheme != "https" || c.PathPrefix != "/am" || c.Timeout != model.Duration(3*time.Second) || c.APIVersion != config.AlertmanagerAPIVersionV2 {
		t.Errorf("entry 0: %+v", c)
	}
	if ba := c.HTTPClientConfig.BasicAuth; ba == nil || ba.Username != "user" || string(ba.Password) != "secret" {
		t.Errorf("entry 0: basic auth %+v", ba)
	}
	if want := []string{"127.0.0.1:9093", "dns+am.svc:9093", "dnssrv+_am._tcp.svc"}; !slices.Equal(am.specs[0], want) {
		t.Errorf("entry 0: addresses %v", am.specs[0])
	}
	c = am.configs[1]
	if c.Scheme != "http" || c.Timeout != model.Duration(7*time.Second) || c.APIVersion != config.AlertmanagerAPIVersionV2 {
		t.Errorf("entry 1 defaults: scheme %q timeout %v api %q", c.Scheme, c.Timeout, c.APIVersion)
	}
	if want := []string{"/etc/am/*.json", "/etc/am/more.yaml", "/etc/am2/*.json"}; !slices.Equal(am.fileSD[1], want) {
		t.Errorf("entry 1: SD files %v, want %v", am.fileSD[1], want)
	}
	if len(am.specs[1]) != 0 {
		t.Errorf("entry 1: static addresses %v", am.specs[1])
	}
	// The notifier accepts the resulting configuration.
	n := notifier.NewManager(&notifier.Options{}, model.UTF8Validation, discardLogger())
	if err := n.ApplyConfig(am.Config(nil)); err != nil {
		t.Errorf("ApplyConfig: %v", err)
	}

	for _, tc := range []struct{ name, content, want string }{
		{"api v1", "alertmanagers:\n- static_configs: [a:9093]\n  api_version: v1\n", `"v1"`},
		{"unknown entry field", "alertmanagers:\n- static_config: [a:9093]\n", "static_config"},
		{"unknown top-level field", "alertmanager:\n- static_configs: [a:9093]\n", "alertmanager"},
		{"address without port", "alertmanagers:\n- static_configs: [am.svc]\n", "am.svc"},
		{"bad timeout", "alertmanagers:\n- static_configs: [a:9093]\n  timeout: soon\n", "soon"},
	} {
		p := writeFile(t, dir, "bad.yaml", tc.content)
		_, err := ParseAlertmanagersConfig(readFile(t, p), time.Second)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %s", tc.name, err, tc.want)
		}
	}
}

func TestParseAlertmanagersConfigHTTPConfigIsStrict(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"unknown field": "alertmanagers:\n- static_configs: [a:9093]\n  http_config:\n    basic_auht: {username: u}\n",
		"wrong type":    "alertmanagers:\n- static_configs: [a:9093]\n  http_config:\n    follow_redirects: maybe\n",
	} {
		p := writeFile(t, dir, "am.yaml", content)
		if _, err := ParseAlertmanagersConfig(readFile(t, p), time.Second); err == nil {
			t.Errorf("%s: http_config accepted", name)
		}
	}
}

func TestParseRelabelConfigs(t *testing.T) {
	if rc, err := ParseRelabelConfigs(nil); rc != nil || err != nil {
		t.Errorf("no file: %v %v", rc, err)
	}
	dir := t.TempDir()
	p := writeFile(t, dir, "rc.yaml", `
- source_labels: [severity]
  regex: debug
  action: drop
- regex: replica|prometheus_replica
  action: labeldrop
- source_labels: [team]
  target_label: owner
`)
	rc, err := ParseRelabelConfigs(readFile(t, p))
	if err != nil {
		t.Fatal(err)
	}
	if len(rc) != 3 || rc[0].Action != relabel.Drop || rc[1].Action != relabel.LabelDrop || rc[2].Action != relabel.Replace {
		t.Fatalf("configs %+v", rc)
	}
	if rc[2].Replacement != "$1" || rc[2].Separator != ";" || rc[2].NameValidationScheme != model.UTF8Validation {
		t.Errorf("defaults not applied: %+v", rc[2])
	}
	lb := labels.NewBuilder(labels.FromStrings("alertname", "A", "replica", "r", "team", "db"))
	if keep := relabel.ProcessBuilder(lb, rc...); !keep {
		t.Fatal("alert dropped")
	}
	if got := lb.Labels(); !labels.Equal(got, labels.FromStrings("alertname", "A", "owner", "db", "team", "db")) {
		t.Errorf("relabelled to %v", got)
	}
	if relabel.ProcessBuilder(labels.NewBuilder(labels.FromStrings("severity", "debug")), rc...) {
		t.Error("debug alert kept")
	}

	for name, content := range map[string]string{
		"bad regex":          "- regex: '('\n  action: labeldrop\n",
		"unknown action":     "- action: explode\n",
		"replace w/o target": "- source_labels: [a]\n  action: replace\n  target_label: ''\n",
		"not a list":         "action: drop\n",
	} {
		if _, err := ParseRelabelConfigs(readFile(t, writeFile(t, dir, "bad.yaml", content))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseRelabelConfigsIsStrict(t *testing.T) {
	p := writeFile(t, t.TempDir(), "relabel.yaml", "- {sourc_labels: [severity], regex: info, action: drop}\n")
	if _, err := ParseRelabelConfigs(readFile(t, p)); err == nil {
		t.Error("misspelt field accepted")
	}
}

func TestAlertQueryTemplate(t *testing.T) {
	tmpl, err := ParseQueryTemplate("/explore?left={{.Expr}}&x=1")
	if err != nil {
		t.Fatal(err)
	}
	o := AlertOptions{QueryURL: "https://grafana.example/", QueryTemplate: tmpl}
	if got, want := o.generatorURL(`up{job="a b"} == 0`), "https://grafana.example/explore?left=up%7Bjob%3D%22a+b%22%7D+%3D%3D+0&x=1"; got != want {
		t.Errorf("generator URL %s, want %s", got, want)
	}
	for _, bad := range []string{"/graph?g0.expr={{.Expr", "/graph?g0.expr={{.Query}}"} {
		if _, err := ParseQueryTemplate(bad); err == nil || !strings.Contains(err.Error(), "--alert.query-template") {
			t.Errorf("%q: %v, want an error naming the flag", bad, err)
		}
	}
}

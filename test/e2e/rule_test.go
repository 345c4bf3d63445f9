package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// deploymentRules is the rule file of both Prometheus replicas and both rulers: an
// alert when a deployment has no replicas left.
const deploymentRules = `groups:
- name: deployments
  interval: 1s
  rules:
  - alert: DeploymentAtZero
    expr: deployment_replicas == 0
    labels: {severity: page}
    annotations: {summary: "{{ $labels.deployment }} has no replicas"}
`

// rulerRecording is recorded by the rulers only, through the querier.
const rulerRecording = `groups:
- name: recording
  interval: 1s
  partial_response_strategy: warn
  rules:
  - record: ruler:deployment_replicas:sum
    expr: sum by (deployment) (deployment_replicas)
`

// fakeDeployment serves deployment_replicas{deployment="web"} with a value the test sets.
type fakeDeployment struct {
	replicas atomic.Int64
	srv      *httptest.Server
}

func startFakeDeployment(t *testing.T, replicas int64) *fakeDeployment {
	d := &fakeDeployment{}
	d.replicas.Store(replicas)
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE deployment_replicas gauge\ndeployment_replicas{deployment=\"web\"} %d\n", d.replicas.Load())
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// webhook counts Alertmanager notifications and keeps their bodies.
type webhook struct {
	calls  atomic.Int64
	bodies chan string
	srv    *httptest.Server
}

func startWebhook(t *testing.T) *webhook {
	w := &webhook{bodies: make(chan string, 100)}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.calls.Add(1)
		select {
		case w.bodies <- string(b):
		default:
		}
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// alertPipeline is two Prometheus replicas with sidecars, a querier over them and the
// rulers, two rulers and an Alertmanager with a webhook.
type alertPipeline struct {
	dep     *fakeDeployment
	hook    *webhook
	am      *e2eutil.Alertmanager
	prom    [2]string // URLs of the Prometheus replicas
	side    [2]*e2eutil.Vigil
	queries [2]*e2eutil.Vigil
	rulers  [2]*e2eutil.Vigil
	q       *e2eutil.Vigil // over sidecars and rulers
}

func writeRuleFile(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startAlertPipeline(t *testing.T) *alertPipeline {
	p := &alertPipeline{dep: startFakeDeployment(t, 3), hook: startWebhook(t)}
	p.am = e2eutil.StartAlertmanager(t, fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1h
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs: [{url: %q, send_resolved: false}]
`, p.hook.srv.URL))
	depAddr := strings.TrimPrefix(p.dep.srv.URL, "http://")
	// Both replicas' configs are rendered by their sidecar's reloader from one template;
	// only $(REPLICA) differs.
	dir := t.TempDir()
	rules := writeRuleFile(t, "rules.yml", deploymentRules)
	tmpl := filepath.Join(dir, "prometheus.yml.tmpl")
	writeTemplate(t, tmpl, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels: {cluster: test, %[1]s: $(REPLICA)}
scrape_configs: [{job_name: deploy, static_configs: [{targets: [%[2]q]}]}]
rule_files: [%[3]q]
alerting:
  alert_relabel_configs: [{action: labeldrop, regex: %[1]s}]
  alertmanagers: [{static_configs: [{targets: [%[4]q]}]}]
`, replicaLabel, depAddr, rules, p.am.Addr)))
	for i := range p.prom {
		addr, out := e2eutil.FreeAddr(t), filepath.Join(dir, fmt.Sprintf("prometheus-%d.yml", i))
		p.prom[i] = "http://" + addr
		p.side[i] = e2eutil.StartVigilWith(t, e2eutil.VigilOptions{Env: []string{fmt.Sprintf("REPLICA=p%d", i)}, Args: []string{
			"sidecar", "--prometheus.url=" + p.prom[i], "--tsdb.path=" + t.TempDir(), "--prometheus.get_config_interval=1s",
			"--reloader.config-file=" + tmpl, "--reloader.config-envsubst-file=" + out}})
		e2eutil.Poll(t, 10*time.Second, 50*time.Millisecond, func() error {
			_, err := os.Stat(out)
			return err
		})
		startPrometheusOn(t, addr, out, "--rules.alert.resend-delay=1s")
	}
	for i := range p.side {
		p.side[i].MustWaitReady(t)
		p.queries[i] = e2eutil.StartVigil(t, "query", "--endpoint="+p.side[0].GRPCAddr, "--endpoint="+p.side[1].GRPCAddr,
			"--query.replica-label="+replicaLabel)
		p.queries[i].MustWaitReady(t)
	}
	alertRules := writeRuleFile(t, "alerts.yml", deploymentRules)
	recRules := writeRuleFile(t, "recording.yml", rulerRecording)
	for i := range p.rulers {
		p.rulers[i] = e2eutil.StartVigil(t, "rule", "--data-dir="+t.TempDir(),
			"--query="+p.queries[0].HTTPAddr, "--query="+p.queries[1].HTTPAddr,
			"--rule-file="+alertRules, "--rule-file="+recRules, "--eval-interval=1s", "--resend-delay=1s",
			"--alertmanagers.url="+p.am.URL, "--alert.label-drop="+replicaLabel,
			`--label=cluster="test"`, fmt.Sprintf(`--label=%s="ruler-%d"`, replicaLabel, i))
		p.rulers[i].MustWaitReady(t)
	}
	p.q = e2eutil.StartVigil(t, "query", "--endpoint="+p.side[0].GRPCAddr, "--endpoint="+p.side[1].GRPCAddr,
		"--endpoint="+p.rulers[0].GRPCAddr, "--endpoint="+p.rulers[1].GRPCAddr, "--query.replica-label="+replicaLabel)
	p.q.MustWaitReady(t)
	return p
}

// instantValue is the single value of an instant query, or an error.
func instantValue(base, query string, params url.Values) (float64, int, error) {
	v := url.Values{"query": {query}}
	for k, x := range params {
		v[k] = x
	}
	r, err := callAPI(base, "/api/v1/query", v)
	if err != nil {
		return 0, 0, err
	}
	if err := r.ok(); err != nil {
		return 0, 0, err
	}
	vec, err := r.series("vector")
	if err != nil || len(vec) == 0 {
		return 0, len(vec), err
	}
	var f float64
	_, err = fmt.Sscanf(strings.Trim(string(vec[0].Value[1]), `"`), "%g", &f)
	return f, len(vec), err
}

// TestRuleAlertsOnce: two Prometheus replicas and two rulers send the same alert; the
// Alertmanager holds it once and its webhook is notified once. The rulers' recorded
// series reach the querier, and a ruler keeps evaluating when its first querier dies.
func TestRuleAlertsOnce(t *testing.T) {
	t.Parallel()
	p := startAlertPipeline(t)
	e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error {
		v, n, err := instantValue(p.q.HTTPURL, "ruler:deployment_replicas:sum", nil)
		if err != nil || n != 1 || v != 3 {
			return fmt.Errorf("ruler:deployment_replicas:sum through the querier = %v (%d series, %v), want 3 in one deduplicated series", v, n, err)
		}
		if _, n, _ := instantValue(p.q.HTTPURL, "ruler:deployment_replicas:sum", url.Values{"dedup": {"false"}}); n != 2 {
			return fmt.Errorf("ruler:deployment_replicas:sum without dedup: %d series, want one per ruler", n)
		}
		return nil
	})
	t.Log("both rulers record through the querier; the deduplicated view has one series")

	p.dep.replicas.Store(0)
	scaled := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e2eutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() error {
		alerts, err := p.am.Alerts(ctx)
		if err != nil {
			return err
		}
		if n := countAlerts(alerts, "DeploymentAtZero"); n != 1 {
			return fmt.Errorf("Alertmanager holds %d DeploymentAtZero alerts, want 1: %+v", n, alerts)
		}
		return nil
	})
	t.Logf("DeploymentAtZero reached Alertmanager %s after scaling to 0", time.Since(scaled).Round(time.Millisecond))
	// Every sender keeps resending each second: still one alert, one notification.
	time.Sleep(5 * time.Second)
	alerts, err := p.am.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := countAlerts(alerts, "DeploymentAtZero"); n != 1 {
		t.Fatalf("after 5s of resends Alertmanager holds %d DeploymentAtZero alerts, want 1: %+v", n, alerts)
	}
	a := alerts[0]
	if _, ok := a.Labels[replicaLabel]; ok || a.Labels["cluster"] != "test" || a.Labels["deployment"] != "web" {
		t.Errorf("alert labels %v: want cluster=test, deployment=web and no %s", a.Labels, replicaLabel)
	}
	if n := p.hook.calls.Load(); n != 1 {
		t.Errorf("webhook notified %d times, want once for the group", n)
	}
	for i, r := range p.rulers {
		if sent, _, err := metricValue(r.HTTPURL, "prometheus_notifications_sent_total"); err != nil || sent == 0 {
			t.Errorf("ruler %d sent no notification (%v)", i, err)
		}
	}
	for i, pr := range p.prom {
		if sent, _, err := metricValue(pr, "prometheus_notifications_sent_total"); err != nil || sent == 0 {
			t.Errorf("Prometheus %d sent no notification (%v)", i, err)
		}
	}

	// The rules API: each ruler lists its firing alert; the querier merges the rulers'
	// and the Prometheus replicas' into one.
	for i, r := range p.rulers {
		if n := firingAlerts(t, r.HTTPURL, nil); n != 1 {
			t.Errorf("ruler %d /api/v1/alerts: %d firing DeploymentAtZero, want 1", i, n)
		}
	}
	if n := firingAlerts(t, p.q.HTTPURL, nil); n != 1 {
		t.Errorf("querier /api/v1/alerts over two rulers and two sidecars: %d firing DeploymentAtZero, want 1 (deduplicated)", n)
	}
	if n := firingAlerts(t, p.q.HTTPURL, url.Values{"dedup": {"false"}}); n != 4 {
		t.Errorf("querier /api/v1/alerts?dedup=false: %d firing DeploymentAtZero, want 4 (two rulers, two Prometheus)", n)
	}

	// Fail-over: the first querier dies; the rulers go on through the second.
	if err := p.queries[0].Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	time.Sleep(4 * time.Second)
	e2eutil.Poll(t, 10*time.Second, 250*time.Millisecond, func() error {
		v, n, err := instantValue(p.q.HTTPURL, "count_over_time(ruler:deployment_replicas:sum[3s])", url.Values{"dedup": {"false"}})
		if err != nil || n != 2 || v < 2 {
			return fmt.Errorf("recorded samples in the last 3s after the querier died: %v in %d series (%v); want each ruler still recording", v, n, err)
		}
		return nil
	})
	for i, r := range p.rulers {
		if f, _, err := metricValue(r.HTTPURL, "vigil_rule_query_failures_total"); err != nil || f != 0 {
			t.Errorf("ruler %d: %v evaluations failed although the second querier was up (%v)", i, f, err)
		}
	}
	t.Logf("rulers kept recording through the second querier %s after the first was killed", time.Since(killed).Round(time.Millisecond))
}

func countAlerts(alerts []e2eutil.AMAlert, name string) int {
	n := 0
	for _, a := range alerts {
		if a.Labels["alertname"] == name {
			n++
		}
	}
	return n
}

// firingAlerts counts the firing DeploymentAtZero alerts a component's /api/v1/alerts lists.
func firingAlerts(t *testing.T, base string, params url.Values) int {
	t.Helper()
	r := mustAPI(t, base, "/api/v1/alerts", params)
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(r.Data, &d); err != nil {
		t.Fatalf("decode /api/v1/alerts of %s: %v", base, err)
	}
	n := 0
	for _, a := range d.Alerts {
		if a.Labels["alertname"] == "DeploymentAtZero" && a.State == "firing" {
			n++
		}
	}
	return n
}

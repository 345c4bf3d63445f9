package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// reloaderTemplate is the Prometheus config template the sidecar renders; $(POD_NAME)
// comes from the sidecar's environment, as in a Kubernetes StatefulSet.
const reloaderTemplate = `global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    cluster: %s
    replica: $(POD_NAME)
%s`

// The sidecar renders the template before Prometheus starts, Prometheus runs on the
// rendered file, a template change reaches Prometheus within the watch interval, and
// broken templates are reported while Prometheus keeps the last good config.
func TestReloaderSidecar(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl, out := filepath.Join(dir, "prometheus.yml.tmpl"), filepath.Join(dir, "prometheus.yml")
	writeTemplate(t, tmpl, []byte(fmt.Sprintf(reloaderTemplate, "test", "")))

	// Prometheus' address is chosen first so that the sidecar, which renders the config
	// Prometheus needs to start, can be started before it.
	promAddr := e2eutil.FreeAddr(t)
	promURL := "http://" + promAddr
	sc := e2eutil.StartVigilWith(t, e2eutil.VigilOptions{Env: []string{"POD_NAME=prom-a"}, Args: []string{"sidecar",
		"--prometheus.url=" + promURL, "--prometheus.get_config_interval=1s",
		"--reloader.config-file=" + tmpl, "--reloader.config-envsubst-file=" + out,
		"--reloader.watch-interval=2s", "--reloader.retry-interval=500ms"}})

	t.Log("(1) rendered before Prometheus starts; Prometheus runs with it")
	e2eutil.Poll(t, 10*time.Second, 50*time.Millisecond, func() error {
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "replica: prom-a") {
			return fmt.Errorf("rendered config %q lacks replica: prom-a", b)
		}
		return nil
	})
	startPrometheusOn(t, promAddr, out)
	sc.MustWaitReady(t)
	waitPromConfig(t, promURL, 5*time.Second, "replica: prom-a", "cluster: test")
	waitInfoLabels(t, sc, map[string]string{"cluster": "test", "replica": "prom-a"})
	// The reload at start succeeds once Prometheus is up.
	e2eutil.Poll(t, 10*time.Second, 100*time.Millisecond, func() error {
		if v := mustMetric(t, sc.HTTPURL, "vigil_sidecar_reloader_last_reload_successful"); v != 1 {
			return fmt.Errorf("last_reload_successful = %v", v)
		}
		return nil
	})

	t.Log("(2) a template change (gzipped) reaches Prometheus within the watch interval, with one reload")
	reloads := mustMetric(t, sc.HTTPURL, "vigil_sidecar_reloader_reloads_total")
	changed := time.Now()
	writeTemplate(t, tmpl, gzipBytes(t, fmt.Sprintf(reloaderTemplate, "test2",
		"scrape_configs:\n  - job_name: self\n    static_configs: [{targets: ['"+promAddr+"']}]\n")))
	waitPromConfig(t, promURL, 10*time.Second, "cluster: test2", "job_name: self")
	if took := time.Since(changed); took > 3*time.Second {
		t.Errorf("new config served %s after the change, want within the 2s watch interval (+1s)", took)
	}
	time.Sleep(2500 * time.Millisecond) // a forced pass, which must not reload again
	if got := mustMetric(t, sc.HTTPURL, "vigil_sidecar_reloader_reloads_total"); got != reloads+1 {
		t.Errorf("reloads_total went from %v to %v, want one reload", reloads, got)
	}
	waitInfoLabels(t, sc, map[string]string{"cluster": "test2", "replica": "prom-a"})

	t.Log("(3) broken templates: reported, output unchanged, Prometheus keeps the last good config")
	good, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	reloads = mustMetric(t, sc.HTTPURL, "vigil_sidecar_reloader_reloads_total")
	for _, c := range []struct{ name, template, logged string }{
		{"unknown variable", fmt.Sprintf(reloaderTemplate, "$(NO_SUCH_VARIABLE)", ""), "NO_SUCH_VARIABLE"},
		{"invalid YAML", fmt.Sprintf(reloaderTemplate, "test3", "scrape_configs: [ {job_name: x\n"), "not valid YAML"},
	} {
		failures := mustMetric(t, sc.HTTPURL, "vigil_sidecar_reloader_config_apply_operations_failed_total")
		writeTemplate(t, tmpl, []byte(c.template))
		e2eutil.Poll(t, 5*time.Second, 100*time.Millisecond, func() error {
			if v := mustMetric(t, sc.HTTPURL, "vigil_sidecar_reloader_config_apply_operations_failed_total"); v <= failures {
				return fmt.Errorf("%s: config_apply_operations_failed_total still %v", c.name, v)
			}
			if !strings.Contains(sc.Log(), c.logged) {
				return fmt.Errorf("%s: no log line mentioning %q", c.name, c.logged)
			}
			return nil
		})
		time.Sleep(2500 * time.Millisecond) // past a forced pass too
		if b, _ := os.ReadFile(out); !bytes.Equal(b, good) {
			t.Errorf("%s: rendered output changed to %q", c.name, b)
		}
		waitPromConfig(t, promURL, time.Second, "cluster: test2", "job_name: self")
		if got := mustMetric(t, sc.HTTPURL, "vigil_sidecar_reloader_reloads_total"); got != reloads {
			t.Errorf("%s: Prometheus reloaded (reloads_total %v → %v)", c.name, reloads, got)
		}
	}
	if sc.Exited() {
		t.Error("sidecar exited on a broken template")
	}
}

// Settings the sidecar cannot honour stop it at start with a clear message.
func TestReloaderRefusedAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "prometheus.yml.tmpl")
	writeTemplate(t, tmpl, []byte("global:\n  external_labels:\n    replica: $(VIGIL_E2E_UNSET_VARIABLE)\n"))
	base := []string{"sidecar", "--prometheus.url=http://" + e2eutil.FreeAddr(t),
		"--http-address=" + e2eutil.FreeAddr(t), "--grpc-address=" + e2eutil.FreeAddr(t),
		"--reloader.config-file=" + tmpl, "--reloader.config-envsubst-file=" + filepath.Join(dir, "out.yml")}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unset variable", nil, "VIGIL_E2E_UNSET_VARIABLE"},
		{"signal method", []string{"--reloader.method=signal"}, "not supported yet"},
	} {
		code, output, err := e2eutil.ProcessExit(t, 30*time.Second, e2eutil.ProcessSpec{
			Bin: e2eutil.VigilBin(t), Args: append(append([]string(nil), base...), c.args...), Dir: dir})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if code != 1 || !strings.Contains(output, c.want) {
			t.Errorf("%s: exit code %d, output:\n%s\nwant code 1 and a message mentioning %q", c.name, code, output, c.want)
		}
	}
}

// writeTemplate replaces path by a rename, as an editor or a ConfigMap update would.
func writeTemplate(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

func gzipBytes(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// startPrometheusOn starts a real Prometheus on addr reading configPath, with the
// lifecycle API the HTTP reloader needs, and waits until it is ready. (StartPrometheus
// writes its own config and picks its own port, so it cannot start on a config that
// the sidecar, started first, renders.)
func startPrometheusOn(t *testing.T, addr, configPath string, extraArgs ...string) *e2eutil.Process {
	t.Helper()
	p := e2eutil.StartProcess(t, e2eutil.ProcessSpec{Name: "prometheus", Bin: e2eutil.PrometheusBin(t), Args: append([]string{
		"--config.file=" + configPath, "--storage.tsdb.path=" + filepath.Join(t.TempDir(), "data"),
		"--web.listen-address=" + addr, "--web.enable-lifecycle",
		"--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h",
	}, extraArgs...)})
	if err := e2eutil.WaitHTTP("http://"+addr+"/-/ready", 200, e2eutil.PrometheusStartTimeout, p); err != nil {
		t.Fatalf("start Prometheus: %v", err)
	}
	return p
}

// waitPromConfig waits until Prometheus' loaded config (/api/v1/status/config) holds
// every one of want.
func waitPromConfig(t *testing.T, promURL string, timeout time.Duration, want ...string) {
	t.Helper()
	e2eutil.Poll(t, timeout, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		code, body, err := e2eutil.HTTPGet(ctx, promURL+"/api/v1/status/config")
		if err != nil {
			return err
		}
		var resp struct {
			Data struct {
				YAML string `json:"yaml"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			return fmt.Errorf("HTTP %d: %w", code, err)
		}
		for _, w := range want {
			if !strings.Contains(resp.Data.YAML, w) {
				return fmt.Errorf("Prometheus config lacks %q:\n%s", w, resp.Data.YAML)
			}
		}
		return nil
	})
}

// waitInfoLabels waits until the sidecar's Info advertises exactly want as its label set.
func waitInfoLabels(t *testing.T, sc *e2eutil.Vigil, want map[string]string) {
	t.Helper()
	c := sc.StoreClient(t, "")
	e2eutil.Poll(t, 10*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if len(info.GetLabelSets()) != 1 {
			return fmt.Errorf("Info label sets %v, want one", info.GetLabelSets())
		}
		if got := storeapi.LabelsFromProto(info.GetLabelSets()[0].GetLabels()); !labels.Equal(got, labels.FromMap(want)) {
			return fmt.Errorf("Info labels %s, want %s", got, labels.FromMap(want))
		}
		return nil
	})
}

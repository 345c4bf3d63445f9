package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/prometheus/config"
	_ "github.com/prometheus/prometheus/discovery/dns"        // dns_sd_configs in prometheus.yml
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // kubernetes_sd_configs in prometheus.yml
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

func TestKubeManifestsAPIServer(t *testing.T) {
	objs := renderKube(t, kubeDeployDir(t))
	kas := e2eutil.StartKubeAPIServer(t)
	client := newKubeClient(t, kas.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The Namespace is created for real: namespaced objects cannot even be dry-run into a
	// namespace that does not exist. Its pod-security labels make the server warn about every
	// pod template below the "restricted" standard.
	var ns *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			ns = o
		}
	}
	if ns == nil {
		t.Fatal("rendered manifests have no Namespace")
	}
	if w, err := client.apply(ctx, ns, false); err != nil || len(w) > 0 {
		t.Fatalf("create %s: %v (warnings %q)", kubeID(ns), err, w)
	}

	start := time.Now()
	n := 0
	for _, o := range objs {
		if o == ns {
			continue
		}
		w, err := client.apply(ctx, o, true)
		if err != nil {
			t.Errorf("%s %s/%s: rejected by the server: %v", o.GetAPIVersion(), o.GetKind(), o.GetName(), err)
			continue
		}
		for _, msg := range w {
			t.Errorf("%s %s/%s: server warning: %s", o.GetAPIVersion(), o.GetKind(), o.GetName(), msg)
		}
		n++
	}
	t.Logf("kube-apiserver %s accepted %d of %d objects in a server-side dry run (%s)",
		e2eutil.KubeVersion, n, len(objs)-1, time.Since(start).Round(time.Millisecond))

	// Broken copies of one manifest prove that the check above can fail: each edit of
	// query/deployment.yaml must make the server reject the querier's Deployment, or warn.
	broken := []struct {
		name, old, new string
		want           string // in the error, or in a warning with wantWarning
		wantWarning    bool
	}{
		{name: "ReplicasNotANumber", old: "  replicas: 2\n", new: "  replicas: \"two\"\n", want: "replicas"},
		{name: "UnknownField", old: "readOnlyRootFilesystem: true", new: "readOnlyRootFileSystem: true", want: "readOnlyRootFileSystem"},
		{name: "PodSecurity", old: "allowPrivilegeEscalation: false", new: "allowPrivilegeEscalation: true",
			want: "allowPrivilegeEscalation", wantWarning: true},
	}
	for _, b := range broken {
		t.Run("Broken/"+b.name, func(t *testing.T) {
			dir := kubeCopyTree(t, kubeDeployDir(t))
			file := filepath.Join(dir, "query", "deployment.yaml")
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(string(src), b.old) != 1 {
				t.Fatalf("%s: want exactly one %q to break", file, b.old)
			}
			if err := os.WriteFile(file, []byte(strings.Replace(string(src), b.old, b.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			var dep *unstructured.Unstructured
			for _, o := range renderKube(t, dir) {
				if o.GetKind() == "Deployment" && o.GetName() == "vigil-query" {
					dep = o
				}
			}
			if dep == nil {
				t.Fatal("the broken copy renders no Deployment vigil-query")
			}
			w, err := client.apply(ctx, dep, true)
			t.Logf("server answer: err=%v warnings=%q", err, w)
			if b.wantWarning {
				if err != nil {
					t.Fatalf("want a warning, got an error: %v", err)
				}
				if !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, b.want) }) {
					t.Fatalf("want a warning mentioning %q, got %q", b.want, w)
				}
				return
			}
			if err == nil {
				t.Fatalf("the server accepted the broken Deployment (warnings %q)", w)
			}
			if !strings.Contains(err.Error(), b.want) {
				t.Fatalf("want an error mentioning %q, got: %v", b.want, err)
			}
		})
	}
}

// TestKubeManifestsVigilFlags runs `vigil <args of each vigil container> --help`. Kingpin
// parses the whole command line before it prints help, so an unknown or misspelt flag fails
// with exit code 2; flag values are not parsed that way, and the checks that the components
// make when they start (files, addresses, label syntax) do not run.
func TestKubeManifestsVigilFlags(t *testing.T) {
	bin := e2eutil.VigilBin(t)
	objs := renderKube(t, kubeDeployDir(t))
	// Fake values for the downward API variables; the kubelet substitutes the real ones.
	vals := map[string]string{"POD_NAME": "pod-0", "POD_NAMESPACE": kubeNamespace, "POD_IP": "10.0.0.1"}
	checked := 0
	for _, o := range objs {
		if kubePodTemplate(o) == nil {
			continue
		}
		for _, c := range kubePodSpecOf(t, o).Containers {
			if !c.isVigil() {
				continue
			}
			args := make([]string, 0, len(c.Args)+1)
			for _, a := range c.Args {
				args = append(args, expandKubeVars(a, vals))
			}
			if len(args) == 0 {
				t.Errorf("%s container %s: no args", kubeID(o), c.Name)
				continue
			}
			code, out, err := e2eutil.ProcessExit(t, 30*time.Second, e2eutil.ProcessSpec{
				Name: "vigil", Bin: bin, Args: append(args, "--help")})
			if err != nil || code != 0 {
				t.Errorf("%s container %s: vigil %s --help: exit %d, %v\n%s", kubeID(o), c.Name,
					strings.Join(args, " "), code, err, kubeLastLines(out, 3))
				continue
			}
			checked++
		}
	}
	t.Logf("%d vigil containers: every flag is known to %s", checked, bin)
}

// TestKubeManifestsConfigs checks the configuration files in the ConfigMaps and Secrets with
// the code or tools of the programs that read them: the Prometheus configuration as the
// sidecar renders it for pod prometheus-0, the Prometheus and ruler rule files, the
// Alertmanager configuration and the objstore configuration.
func TestKubeManifestsConfigs(t *testing.T) {
	objs := newKubeObjects(renderKube(t, kubeDeployDir(t)))
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	data := func(kind, name string) map[string]string {
		o := objs.get(t, kind, name)
		if kind == "Secret" {
			if sd, ok, _ := unstructured.NestedStringMap(o.Object, "stringData"); ok && len(sd) > 0 {
				return sd
			}
			enc, _, _ := unstructured.NestedStringMap(o.Object, "data")
			out := map[string]string{}
			for k, v := range enc {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Fatalf("%s/%s key %s: %v", kind, name, k, err)
				}
				out[k] = string(b)
			}
			return out
		}
		d, _, _ := unstructured.NestedStringMap(o.Object, "data")
		return d
	}

	t.Run("Prometheus", func(t *testing.T) {
		tmpl := data("ConfigMap", "prometheus-config")["prometheus.yml.tmpl"]
		rendered := expandKubeVars(tmpl, map[string]string{"POD_NAME": "prometheus-0", "POD_NAMESPACE": kubeNamespace})
		if m := kubeVarRef.FindString(rendered); m != "" {
			t.Fatalf("prometheus.yml.tmpl refers to %s, which the sidecar's environment does not define", m)
		}
		// Prometheus' own loader (the Prometheus module vigil builds against) with the
		// Kubernetes and DNS service discovery registered; Debian's promtool is built without
		// Kubernetes service discovery.
		cfg, err := promconfig.Load(rendered, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("prometheus.yml as rendered for prometheus-0: %v", err)
		}
		if got := cfg.GlobalConfig.ExternalLabels.Get("replica"); got != "prometheus-0" {
			t.Errorf("rendered external label replica=%q, want prometheus-0", got)
		}
		if len(cfg.ScrapeConfigs) == 0 {
			t.Errorf("prometheus.yml has no scrape configs")
		}
	})
	t.Run("Rules", func(t *testing.T) {
		var files []string
		for _, cm := range []string{"prometheus-rules", "vigil-rules"} {
			for k, v := range data("ConfigMap", cm) {
				files = append(files, write(cm+"-"+k, v))
			}
		}
		code, out, err := e2eutil.Promtool(t, time.Minute, append([]string{"check", "rules"}, files...)...)
		if err != nil || code != 0 {
			t.Fatalf("promtool check rules: exit %d, %v\n%s", code, err, out)
		}
	})
	t.Run("Alertmanager", func(t *testing.T) {
		amtool := os.Getenv("AMTOOL_BIN")
		if amtool == "" {
			amtool = "/usr/bin/amtool"
		}
		if _, err := os.Stat(amtool); err != nil {
			e2eutil.SkipMissing(t, "amtool not found: install Debian's prometheus-alertmanager or set AMTOOL_BIN")
		}
		cfg := write("alertmanager.yml", data("Secret", "alertmanager-config")["alertmanager.yml"])
		code, out, err := e2eutil.ProcessExit(t, time.Minute, e2eutil.ProcessSpec{Name: "amtool", Bin: amtool, Args: []string{"check-config", cfg}})
		if err != nil || code != 0 {
			t.Fatalf("amtool check-config: exit %d, %v\n%s", code, err, out)
		}
	})
	// The objstore configuration parses as vigil parses it, and points at the bucket the MinIO
	// pod creates, on the MinIO Service, with MinIO's credentials.
	t.Run("Objstore", func(t *testing.T) {
		d := data("Secret", "vigil-objstore")
		if _, ok := d["objstore.yml"]; !ok || len(d) != 1 {
			t.Fatalf("Secret vigil-objstore: want exactly the key objstore.yml, have %v", kubeKeys(d))
		}
		cfg, err := objstore.ParseConfig([]byte(d["objstore.yml"]))
		if err != nil {
			t.Fatalf("objstore.yml: %v", err)
		}
		s3, _ := cfg.Config.(map[any]any)
		if cfg.Type != "S3" || s3 == nil {
			t.Fatalf("objstore.yml: type %s, want S3 with a config section", cfg.Type)
		}
		creds := data("Secret", "minio-credentials")
		if s3["access_key"] != creds["MINIO_ROOT_USER"] || s3["secret_key"] != creds["MINIO_ROOT_PASSWORD"] {
			t.Errorf("objstore.yml access_key/secret_key differ from the Secret minio-credentials")
		}
		host, port, err := net.SplitHostPort(fmt.Sprint(s3["endpoint"]))
		if err != nil {
			t.Fatalf("objstore.yml endpoint %v: %v", s3["endpoint"], err)
		}
		svc := objs.get(t, "Service", strings.Split(host, ".")[0])
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		if !slices.ContainsFunc(ports, func(p any) bool { return fmt.Sprint(p.(map[string]any)["port"]) == port }) {
			t.Errorf("objstore.yml endpoint %s: Service %s has no port %s", s3["endpoint"], svc.GetName(), port)
		}
		minio := kubePodSpecOf(t, objs.get(t, "StatefulSet", "minio"))
		bucket := fmt.Sprint(s3["bucket"])
		if len(minio.InitContainers) != 1 || !slices.Contains(minio.InitContainers[0].Command, "/data/"+bucket) {
			t.Errorf("the MinIO pod does not create the bucket %q of objstore.yml (init containers %+v)", bucket, minio.InitContainers)
		}
	})
}

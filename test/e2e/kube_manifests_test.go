package e2e

import (
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	_ "github.com/prometheus/prometheus/discovery/dns"        // dns_sd_configs in prometheus.yml
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // kubernetes_sd_configs in prometheus.yml
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestKubeManifestsRendered(t *testing.T) {
	objs := newKubeObjects(renderKube(t, kubeDeployDir(t)))
	kinds := objs.kinds()
	names := make([]string, 0, len(kinds))
	for k, n := range kinds {
		names = append(names, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(names)
	t.Logf("rendered %d objects: %s", len(objs.all), strings.Join(names, " "))

	t.Run("Workloads", func(t *testing.T) {
		for _, w := range []struct {
			kind, name string
			replicas   int64
		}{
			{"StatefulSet", "prometheus", 2},
			{"StatefulSet", "vigil-store", 2},
			{"StatefulSet", "vigil-compact", 2},
			{"StatefulSet", "vigil-rule", 2},
			{"StatefulSet", "alertmanager", 2},
			{"StatefulSet", "minio", 1},
			{"Deployment", "vigil-query", 2},
		} {
			o := objs.get(t, w.kind, w.name)
			if r, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas"); r != w.replicas {
				t.Errorf("%s: replicas %d, want %d", kubeID(o), r, w.replicas)
			}
		}
		if n := kinds["Namespace"]; n != 1 {
			t.Errorf("%d Namespaces, want 1", n)
		}
	})

	t.Run("Labels", func(t *testing.T) {
		for _, o := range objs.all {
			l := o.GetLabels()
			if l["app.kubernetes.io/part-of"] != "vigil" {
				t.Errorf("%s: label app.kubernetes.io/part-of=%q, want vigil", kubeID(o), l["app.kubernetes.io/part-of"])
			}
			if o.GetKind() != "Namespace" && (l["app.kubernetes.io/name"] == "" || l["app.kubernetes.io/component"] == "") {
				t.Errorf("%s: labels app.kubernetes.io/name and component must be set: %v", kubeID(o), l)
			}
			switch o.GetKind() {
			case "Namespace", "ClusterRole", "ClusterRoleBinding":
			default:
				if o.GetNamespace() != kubeNamespace {
					t.Errorf("%s: namespace %q, want %q", kubeID(o), o.GetNamespace(), kubeNamespace)
				}
			}
			if tpl := kubePodTemplate(o); tpl != nil {
				tl, _, _ := unstructured.NestedStringMap(tpl, "metadata", "labels")
				sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
				for k, v := range sel {
					if tl[k] != v {
						t.Errorf("%s: selector %s=%s does not match the pod template's labels %v", kubeID(o), k, v, tl)
					}
				}
				if tl["app.kubernetes.io/part-of"] != "vigil" {
					t.Errorf("%s: pod template lacks app.kubernetes.io/part-of=vigil", kubeID(o))
				}
			}
		}
	})

	t.Run("StoreAPIDiscovery", func(t *testing.T) {
		svc := objs.get(t, "Service", "vigil-store-api")
		if ip, _, _ := unstructured.NestedString(svc.Object, "spec", "clusterIP"); ip != "None" {
			t.Errorf("%s: clusterIP %q, want None (headless: one SRV record per pod)", kubeID(svc), ip)
		}
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		if len(ports) != 1 || ports[0].(map[string]any)["name"] != "grpc" || ports[0].(map[string]any)["port"] != int64(10901) {
			t.Errorf("%s: ports %v, want one port grpc 10901", kubeID(svc), ports)
		}
		sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		selected := map[string]bool{}
		for _, o := range objs.all {
			tpl := kubePodTemplate(o)
			if tpl == nil {
				continue
			}
			tl, _, _ := unstructured.NestedStringMap(tpl, "metadata", "labels")
			match := len(sel) > 0
			for k, v := range sel {
				match = match && tl[k] == v
			}
			if !match {
				continue
			}
			selected[o.GetName()] = true
			for _, c := range kubePodSpecOf(t, o).Containers {
				if c.isVigil() && c.port("grpc") != 10901 {
					t.Errorf("%s: container %s is selected by %s but has no port grpc 10901", kubeID(o), c.Name, kubeID(svc))
				}
			}
		}
		want := map[string]bool{"prometheus": true, "vigil-store": true, "vigil-rule": true}
		if !maps.Equal(selected, want) {
			t.Errorf("%s selects %v, want the StoreAPI servers %v (not the querier itself)", kubeID(svc), kubeKeys(selected), kubeKeys(want))
		}
		q := kubeVigilContainer(t, objs.get(t, "Deployment", "vigil-query"), "query")
		if got, want := q.flag("store"), "dnssrv+_grpc._tcp.vigil-store-api.$(POD_NAMESPACE).svc.cluster.local"; !slices.Contains(got, want) {
			t.Errorf("querier --store=%v, want %s", got, want)
		}
		for _, l := range []string{"replica", "rule_replica"} {
			if !slices.Contains(q.flag("query.replica-label"), l) {
				t.Errorf("querier --query.replica-label=%v lacks %s", q.flag("query.replica-label"), l)
			}
		}
		r := kubeVigilContainer(t, objs.get(t, "StatefulSet", "vigil-rule"), "rule")
		if !slices.Contains(r.flag("label"), `rule_replica="$(POD_NAME)"`) {
			t.Errorf("ruler --label=%v lacks rule_replica=\"$(POD_NAME)\"", r.flag("label"))
		}
		qs := objs.get(t, "Service", "vigil-query")
		ports, _, _ = unstructured.NestedSlice(qs.Object, "spec", "ports")
		found := false
		for _, p := range ports {
			pm := p.(map[string]any)
			found = found || (pm["port"] == int64(9090) && pm["targetPort"] == "http")
		}
		if !found || q.port("http") != 10902 {
			t.Errorf("%s: want port 9090 to the querier's http port 10902, have %v", kubeID(qs), ports)
		}
	})

	t.Run("Sidecar", func(t *testing.T) {
		sts := objs.get(t, "StatefulSet", "prometheus")
		spec := kubePodSpecOf(t, sts)
		sc := kubeVigilContainer(t, sts, "sidecar")
		want := map[string]string{
			"prometheus.url":                "http://localhost:9090",
			"tsdb.path":                     "/prometheus",
			"reloader.config-file":          "/etc/prometheus/config/prometheus.yml.tmpl",
			"reloader.config-envsubst-file": "/etc/prometheus/config_out/prometheus.yml",
		}
		for f, v := range want {
			if got := sc.flag(f); len(got) != 1 || got[0] != v {
				t.Errorf("sidecar --%s=%v, want %s", f, got, v)
			}
		}
		var prom *kubeContainer
		for i := range spec.Containers {
			if spec.Containers[i].Name == "prometheus" {
				prom = &spec.Containers[i]
			}
		}
		if prom == nil {
			t.Fatal("the prometheus pod has no prometheus container")
		}
		for _, a := range []string{"--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h",
			"--web.enable-lifecycle", "--config.file=/etc/prometheus/config_out/prometheus.yml", "--storage.tsdb.path=/prometheus"} {
			if !slices.Contains(prom.Args, a) {
				t.Errorf("prometheus args %v lack %s", prom.Args, a)
			}
		}
		if sc.mountOf("data") != "/prometheus" || prom.mountOf("data") != "/prometheus" {
			t.Errorf("sidecar and prometheus must share the data volume at /prometheus")
		}
		if sc.mountOf("config-out") != "/etc/prometheus/config_out" || prom.mountOf("config-out") != "/etc/prometheus/config_out" {
			t.Errorf("sidecar and prometheus must share the config-out volume at /etc/prometheus/config_out")
		}
		tmpl, _, _ := unstructured.NestedString(objs.get(t, "ConfigMap", "prometheus-config").Object, "data", "prometheus.yml.tmpl")
		if !regexp.MustCompile(`(?m)^\s+replica: \$\(POD_NAME\)$`).MatchString(tmpl) {
			t.Errorf("prometheus.yml.tmpl has no external label replica: $(POD_NAME):\n%s", tmpl)
		}
		if !strings.Contains(tmpl, "kubernetes_sd_configs") {
			t.Errorf("prometheus.yml.tmpl does not use kubernetes_sd_configs")
		}
	})

	t.Run("LeaderElection", func(t *testing.T) {
		for comp, lease := range map[string]string{"compact": "vigil-compact", "rule": "vigil-rule"} {
			sts := objs.get(t, "StatefulSet", "vigil-"+comp)
			c := kubeVigilContainer(t, sts, comp)
			want := map[string]string{
				"leader-election.enabled": "", "leader-election.lease-name": lease,
				"leader-election.namespace": "$(POD_NAMESPACE)", "leader-election.identity": "$(POD_NAME)",
			}
			for f, v := range want {
				if got := c.flag(f); len(got) != 1 || got[0] != v {
					t.Errorf("%s --%s=%v, want %q", comp, f, got, v)
				}
			}
			sa := kubePodSpecOf(t, sts).ServiceAccountName
			if sa == "" {
				t.Errorf("%s: no serviceAccountName: leader election needs its own", kubeID(sts))
				continue
			}
			if !kubeCanOnLeases(objs, sa) {
				t.Errorf("%s: service account %s is not bound to a Role granting get/list/watch/create/update/patch on coordination.k8s.io leases", kubeID(sts), sa)
			}
		}
	})

	t.Run("Containers", func(t *testing.T) {
		for _, o := range objs.all {
			if kubePodTemplate(o) == nil {
				continue
			}
			spec := kubePodSpecOf(t, o)
			if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
				t.Errorf("%s: pod securityContext.runAsNonRoot must be true", kubeID(o))
			}
			if spec.ServiceAccountName != "" {
				objs.get(t, "ServiceAccount", spec.ServiceAccountName)
			}
			for _, c := range append(slices.Clone(spec.Containers), spec.InitContainers...) {
				id := kubeID(o) + " container " + c.Name
				if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
					t.Errorf("%s: want cpu and memory requests and a memory limit, have %+v", id, c.Resources)
				}
				if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: want readOnlyRootFilesystem: true and allowPrivilegeEscalation: false", id)
				}
				kubeCheckVarRefs(t, id, &c)
				if !c.isVigil() {
					continue
				}
				if c.port("http") != 10902 {
					t.Errorf("%s: want port http 10902", id)
				}
				if len(c.Args) == 0 || (c.Args[0] != "compact" && c.port("grpc") != 10901) {
					t.Errorf("%s: want port grpc 10901", id)
				}
				for probe, p := range map[string]*kubeProbe{"/-/healthy": c.LivenessProbe, "/-/ready": c.ReadinessProbe} {
					if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != probe || (p.HTTPGet.Port != "http" && p.HTTPGet.Port != int64(10902)) {
						t.Errorf("%s: want an HTTP probe on %s at port http (10902)", id, probe)
					}
				}
				for _, f := range []string{"http-address", "grpc-address"} {
					for _, v := range c.flag(f) {
						if !strings.HasSuffix(v, map[string]string{"http-address": ":10902", "grpc-address": ":10901"}[f]) {
							t.Errorf("%s: --%s=%s does not match the container port", id, f, v)
						}
					}
				}
			}
		}
	})

	t.Run("References", func(t *testing.T) {
		for _, o := range objs.all {
			if kubePodTemplate(o) == nil {
				continue
			}
			spec := kubePodSpecOf(t, o)
			for _, v := range spec.Volumes {
				switch {
				case v.ConfigMap != nil:
					if _, ok := objs.byName["ConfigMap/"+v.ConfigMap.Name]; !ok {
						t.Errorf("%s: volume %s refers to a missing ConfigMap %s", kubeID(o), v.Name, v.ConfigMap.Name)
					}
				case v.Secret != nil:
					if _, ok := objs.byName["Secret/"+v.Secret.SecretName]; !ok {
						t.Errorf("%s: volume %s refers to a missing Secret %s", kubeID(o), v.Name, v.Secret.SecretName)
					}
				}
			}
			// Every --objstore.config-file is the objstore Secret's key, mounted where the flag
			// points.
			for _, c := range spec.Containers {
				for _, f := range c.flag("objstore.config-file") {
					dir, key := filepath.Split(f)
					vol := ""
					for _, m := range c.VolumeMounts {
						if filepath.Clean(m.MountPath) == filepath.Clean(dir) {
							vol = m.Name
						}
					}
					secret := ""
					for _, v := range spec.Volumes {
						if v.Name == vol && v.Secret != nil {
							secret = v.Secret.SecretName
						}
					}
					s, ok := objs.byName["Secret/"+secret]
					if !ok || kubeHashSuffix.ReplaceAllString(secret, "") != "vigil-objstore" {
						t.Errorf("%s container %s: --objstore.config-file=%s is not the vigil-objstore Secret", kubeID(o), c.Name, f)
						continue
					}
					if _, ok, _ := unstructured.NestedString(s.Object, "data", key); !ok {
						t.Errorf("%s container %s: Secret %s has no key %s", kubeID(o), c.Name, secret, key)
					}
				}
			}
		}
	})
}

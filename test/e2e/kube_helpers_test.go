package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	_ "github.com/prometheus/prometheus/discovery/dns"        // dns_sd_configs in prometheus.yml
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // kubernetes_sd_configs in prometheus.yml
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const kubeNamespace = "vigil"

// kubeDeployDir is deploy/kubernetes at the repository root.
func kubeDeployDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "deploy", "kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); err != nil {
		t.Fatalf("deploy/kubernetes: %v", err)
	}
	return dir
}

// renderKube renders the kustomization in dir as kubectl kustomize does.
func renderKube(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range m.Resources() {
		// Through JSON, as the API server will read it: numbers become int64 and float64.
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(b); err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		objs = append(objs, obj)
	}
	return objs
}

func kubeID(o *unstructured.Unstructured) string {
	return o.GetKind() + "/" + o.GetName()
}

// kubeObjects indexes rendered objects by kind and name; generated ConfigMaps and Secrets are
// indexed under their name without the hash suffix too.
type kubeObjects struct {
	all    []*unstructured.Unstructured
	byName map[string]*unstructured.Unstructured // "Kind/name"
}

var kubeHashSuffix = regexp.MustCompile(`-[a-z0-9]{10}$`)

func newKubeObjects(objs []*unstructured.Unstructured) *kubeObjects {
	k := &kubeObjects{all: objs, byName: map[string]*unstructured.Unstructured{}}
	for _, o := range objs {
		k.byName[kubeID(o)] = o
		if o.GetKind() == "ConfigMap" || o.GetKind() == "Secret" {
			k.byName[o.GetKind()+"/"+kubeHashSuffix.ReplaceAllString(o.GetName(), "")] = o
		}
	}
	return k
}

func (k *kubeObjects) get(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o, ok := k.byName[kind+"/"+name]
	if !ok {
		t.Fatalf("rendered manifests have no %s/%s", kind, name)
	}
	return o
}

func (k *kubeObjects) kinds() map[string]int {
	n := map[string]int{}
	for _, o := range k.all {
		n[o.GetKind()]++
	}
	return n
}

// kubePodTemplate is the pod template of a Deployment or StatefulSet, nil for other kinds.
func kubePodTemplate(o *unstructured.Unstructured) map[string]any {
	if o.GetKind() != "Deployment" && o.GetKind() != "StatefulSet" {
		return nil
	}
	tpl, _, _ := unstructured.NestedMap(o.Object, "spec", "template")
	return tpl
}

// kubeContainer is the part of a container spec the checks read.
type kubeContainer struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Env     []struct {
		Name      string          `json:"name"`
		Value     *string         `json:"value"`
		ValueFrom json.RawMessage `json:"valueFrom"`
	} `json:"env"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int64  `json:"containerPort"`
	} `json:"ports"`
	LivenessProbe  *kubeProbe `json:"livenessProbe"`
	ReadinessProbe *kubeProbe `json:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
	} `json:"securityContext"`
	VolumeMounts []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
}

type kubeProbe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
}

type kubePodSpec struct {
	ServiceAccountName string          `json:"serviceAccountName"`
	Containers         []kubeContainer `json:"containers"`
	InitContainers     []kubeContainer `json:"initContainers"`
	SecurityContext    *struct {
		RunAsNonRoot *bool `json:"runAsNonRoot"`
	} `json:"securityContext"`
	Volumes []struct {
		Name      string `json:"name"`
		ConfigMap *struct {
			Name string `json:"name"`
		} `json:"configMap"`
		Secret *struct {
			SecretName string `json:"secretName"`
		} `json:"secret"`
	} `json:"volumes"`
}

func kubePodSpecOf(t testing.TB, o *unstructured.Unstructured) *kubePodSpec {
	t.Helper()
	tpl := kubePodTemplate(o)
	if tpl == nil {
		t.Fatalf("%s has no pod template", kubeID(o))
	}
	b, err := json.Marshal(tpl["spec"])
	if err != nil {
		t.Fatal(err)
	}
	var spec kubePodSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatalf("%s: pod spec: %v", kubeID(o), err)
	}
	return &spec
}

func (c *kubeContainer) port(name string) int64 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func (c *kubeContainer) mountOf(volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

// flag returns the values of --name=value in args.
func (c *kubeContainer) flag(name string) []string {
	var vals []string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			vals = append(vals, v)
		} else if a == "--"+name {
			vals = append(vals, "")
		}
	}
	return vals
}

// isVigil reports whether the container runs the vigil image (any registry or tag).
func (c *kubeContainer) isVigil() bool {
	repo := c.Image
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo == "vigil" || strings.HasSuffix(repo, "/vigil")
}

// kubeVarRef is a Kubernetes dependent environment variable reference, $(NAME), in command
// or args; "$$(" escapes it.
var kubeVarRef = regexp.MustCompile(`\$?\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandKubeVars replaces $(NAME) references as the kubelet does, with values from vals.
func expandKubeVars(s string, vals map[string]string) string {
	return kubeVarRef.ReplaceAllStringFunc(s, func(ref string) string {
		if strings.HasPrefix(ref, "$$") {
			return ref[1:]
		}
		name := ref[2 : len(ref)-1]
		if v, ok := vals[name]; ok {
			return v
		}
		return ref
	})
}

// kubeVigilContainer returns the vigil container named name of workload o.
func kubeVigilContainer(t testing.TB, o *unstructured.Unstructured, name string) *kubeContainer {
	t.Helper()
	for _, c := range kubePodSpecOf(t, o).Containers {
		if c.Name == name {
			if !c.isVigil() {
				t.Fatalf("%s: container %s runs %s, not the vigil image", kubeID(o), name, c.Image)
			}
			if len(c.Args) == 0 || c.Args[0] != name {
				t.Fatalf("%s: container %s runs %v, want the subcommand %s", kubeID(o), name, c.Args, name)
			}
			return &c
		}
	}
	t.Fatalf("%s has no container %s", kubeID(o), name)
	return nil
}

// kubeCheckVarRefs fails on a $(NAME) in command or args that the container does not define
// in env: the kubelet would leave it as it is, silently.
func kubeCheckVarRefs(t testing.TB, id string, c *kubeContainer) {
	t.Helper()
	defined := map[string]bool{}
	for _, e := range c.Env {
		defined[e.Name] = true
	}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		for _, m := range kubeVarRef.FindAllStringSubmatch(a, -1) {
			if !strings.HasPrefix(m[0], "$$") && !defined[m[1]] {
				t.Errorf("%s: %q refers to $(%s), which the container's env does not define", id, a, m[1])
			}
		}
	}
}

// kubeCanOnLeases reports whether service account sa is bound to a Role that grants what
// leader election needs on Leases.
func kubeCanOnLeases(objs *kubeObjects, sa string) bool {
	need := []string{"get", "list", "watch", "create", "update", "patch"}
	for _, rb := range objs.all {
		if rb.GetKind() != "RoleBinding" {
			continue
		}
		subjects, _, _ := unstructured.NestedSlice(rb.Object, "subjects")
		bound := false
		for _, s := range subjects {
			sm := s.(map[string]any)
			bound = bound || (sm["kind"] == "ServiceAccount" && sm["name"] == sa)
		}
		kind, _, _ := unstructured.NestedString(rb.Object, "roleRef", "kind")
		name, _, _ := unstructured.NestedString(rb.Object, "roleRef", "name")
		role, ok := objs.byName[kind+"/"+name]
		if !bound || !ok || kind != "Role" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
		for _, r := range rules {
			rm := r.(map[string]any)
			groups, _, _ := unstructured.NestedStringSlice(rm, "apiGroups")
			res, _, _ := unstructured.NestedStringSlice(rm, "resources")
			verbs, _, _ := unstructured.NestedStringSlice(rm, "verbs")
			if !slices.Contains(groups, "coordination.k8s.io") || !slices.Contains(res, "leases") {
				continue
			}
			all := true
			for _, v := range need {
				all = all && (slices.Contains(verbs, v) || slices.Contains(verbs, "*"))
			}
			if all {
				return true
			}
		}
	}
	return false
}

func kubeKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// kubeClient applies objects to a kube-apiserver through the dynamic client and collects the
// warnings the server returns with each call.
type kubeClient struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper

	mu       sync.Mutex
	warnings []string
}

func (k *kubeClient) HandleWarningHeader(_ int, _ string, text string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.warnings = append(k.warnings, text)
}

func (k *kubeClient) takeWarnings() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	w := k.warnings
	k.warnings = nil
	return w
}

func newKubeClient(t testing.TB, cfg *rest.Config) *kubeClient {
	t.Helper()
	k := &kubeClient{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = k
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	k.mapper = restmapper.NewDiscoveryRESTMapper(groups)
	if k.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return k
}

// apply sends o as a server-side apply with strict field validation: unknown or duplicate
// fields are errors, as are values of the wrong type. With dryRun the server validates and
// admits the object (defaulting, validation, admission plugins such as PodSecurity) but does
// not store it. It returns the warnings of the call.
func (k *kubeClient) apply(ctx context.Context, o *unstructured.Unstructured, dryRun bool) ([]string, error) {
	k.takeWarnings()
	gvk := o.GroupVersionKind()
	m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: no such resource on the server: %w", kubeID(o), err)
	}
	var ri dynamic.ResourceInterface = k.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = k.dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	data, err := runtime.Encode(unstructured.UnstructuredJSONScheme, o)
	if err != nil {
		return nil, err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: "vigil-e2e", Force: &force, FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts)
	return k.takeWarnings(), err
}

// kubeCopyTree copies the directory tree src into a new temporary directory.
func kubeCopyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

func kubeLastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

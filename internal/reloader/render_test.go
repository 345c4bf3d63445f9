package reloader

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
}

func TestExpandEnv(t *testing.T) {
	lookup := env(map[string]string{"POD_NAME": "prom-0", "EMPTY": "", "NS": "mon"})
	got, err := expandEnv([]byte(`replica: $(POD_NAME)-$(NS) empty: "$(EMPTY)" kept: $POD_NAME ${NS} $(not-a-name)`), lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := `replica: prom-0-mon empty: "" kept: $POD_NAME ${NS} $(not-a-name)`
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExpandEnvUnsetIsAnError(t *testing.T) {
	_, err := expandEnv([]byte("a: $(POD_NAME)\nb: $(MISSING_ONE)\nc: $(MISSING_ONE) $(MISSING_TWO)\n"),
		env(map[string]string{"POD_NAME": "p"}))
	if err == nil {
		t.Fatal("no error for unset variables")
	}
	if msg := err.Error(); !strings.Contains(msg, "MISSING_ONE, MISSING_TWO") {
		t.Errorf("error %q does not name both unset variables once each", msg)
	}
}

func gz(t *testing.T, s string) []byte {
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

func TestRender(t *testing.T) {
	lookup := env(map[string]string{"POD_NAME": "prom-0"})
	tmpl := "global:\n  external_labels:\n    replica: $(POD_NAME)\n"
	want := "global:\n  external_labels:\n    replica: prom-0\n"
	for name, in := range map[string][]byte{"plain": []byte(tmpl), "gzip": gz(t, tmpl)} {
		got, err := render(in, true, lookup)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(got) != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	// Without an output file the content is what Prometheus reads: no substitution.
	if got, err := render([]byte(tmpl), false, lookup); err != nil || string(got) != tmpl {
		t.Errorf("without substitution: got %q, %v; want the input unchanged", got, err)
	}
	if _, err := render(gz(t, tmpl), false, lookup); err == nil || !strings.Contains(err.Error(), "config-envsubst-file") {
		t.Errorf("gzip without output file: err %v, want a hint at --reloader.config-envsubst-file", err)
	}
}

func TestRenderRejectsBrokenConfigs(t *testing.T) {
	for name, in := range map[string]string{
		"invalid YAML":  "global:\n  external_labels: [unclosed\n",
		"not a mapping": "just a string\n",
		"empty":         "  \n",
		"corrupt gzip":  string(gzipMagic) + "garbage",
	} {
		if out, err := render([]byte(in), true, env(nil)); err == nil {
			t.Errorf("%s: rendered %q, want an error", name, out)
		}
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("content %q, want new", b)
	}
	// A new file renamed over the old one, never the old one rewritten in place: a
	// reader holding the old file sees it whole.
	if os.SameFile(before, after) {
		t.Error("file rewritten in place, want a rename")
	}
	if perm := after.Mode().Perm(); perm != 0o644 {
		t.Errorf("mode %v, want 0644 so that Prometheus running as another user can read it", perm)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the config (no temporary file left)", len(entries))
	}
	if err := writeAtomic(filepath.Join(dir, "missing", "x.yml"), []byte("x")); err == nil {
		t.Error("no error writing into a missing directory")
	}
}

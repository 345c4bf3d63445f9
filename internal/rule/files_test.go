package rule

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

func newTestLoader() *Loader {
	return NewLoader(parser.NewParser(parser.Options{}), discardLogger())
}

func joinErrs(errs []error) error { return errors.Join(errs...) }

const strategiesFile = `# Thanos rule file
groups:
  - name: warn-group
    interval: 30s
    partial_response_strategy: warn
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
  - name: abort-group
    partial_response_strategy: abort
    rules:
      - alert: Down
        expr: up == 0
        for: 5m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} is down"
  - name: default-group
    rules:
      - record: x:y
        expr: vector(1)
  - name: upper-warn
    partial_response_strategy: WARN
    rules:
      - record: a:b
        expr: vector(2)
`

func TestLoaderPartialResponseStrategies(t *testing.T) {
	l := newTestLoader()
	f := writeFile(t, t.TempDir(), "rules.yaml", strategiesFile)
	rgs, errs := l.Load(f, false, model.UTF8Validation)
	if errs != nil {
		t.Fatal(joinErrs(errs))
	}
	var names []string
	for _, g := range rgs.Groups {
		names = append(names, g.Name)
	}
	if want := []string{"warn-group", "abort-group", "default-group", "upper-warn"}; !slices.Equal(names, want) {
		t.Fatalf("groups %v, want %v", names, want)
	}
	// The rest of each group reaches Prometheus intact.
	if g := rgs.Groups[0]; g.Interval != model.Duration(30e9) || len(g.Rules) != 1 || g.Rules[0].Record != "job:up:sum" || g.Rules[0].Expr != "sum by (job) (up)" {
		t.Errorf("warn-group mangled: %+v", g)
	}
	if r := rgs.Groups[1].Rules[0]; r.Alert != "Down" || r.For != model.Duration(5*60e9) || r.Labels["severity"] != "page" || r.Annotations["summary"] != "{{ $labels.instance }} is down" {
		t.Errorf("abort-group alert mangled: %+v", r)
	}
	for _, tc := range []struct {
		group    string
		partial  bool
		strategy string
	}{
		{"warn-group", true, "WARN"},
		{"abort-group", false, "ABORT"},
		{"default-group", false, "ABORT"},
		{"upper-warn", true, "WARN"},
		{"no-such-group", false, "ABORT"},
	} {
		if got := l.PartialResponse(f, tc.group); got != tc.partial {
			t.Errorf("PartialResponse(%s) = %v, want %v", tc.group, got, tc.partial)
		}
		if got := l.Strategy(f, tc.group); got != tc.strategy {
			t.Errorf("Strategy(%s) = %q, want %q", tc.group, got, tc.strategy)
		}
	}
	// Strategies are per file: the same group name elsewhere is not affected.
	if l.PartialResponse(filepath.Join(filepath.Dir(f), "other.yaml"), "warn-group") {
		t.Error("strategy leaked to another file's group of the same name")
	}
	if _, err := l.Parse("sum(rate(x[5m]))"); err != nil {
		t.Errorf("Parse: %v", err)
	}
	if _, err := l.Parse("sum("); err == nil {
		t.Error("Parse accepted an invalid expression")
	}
}

func TestLoaderInvalidStrategy(t *testing.T) {
	f := writeFile(t, t.TempDir(), "bad.yaml", `groups:
- name: fine
  rules: [{record: a:b, expr: vector(1)}]
- name: the-bad-one
  partial_response_strategy: sometimes
  rules: [{record: a:c, expr: vector(1)}]
`)
	_, errs := newTestLoader().Load(f, false, model.UTF8Validation)
	err := joinErrs(errs)
	if err == nil {
		t.Fatal("want an error for partial_response_strategy: sometimes")
	}
	for _, want := range []string{`"the-bad-one"`, "partial_response_strategy", `"sometimes"`, f} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestLoaderStrictParsingStillApplies(t *testing.T) {
	for _, tc := range []struct{ name, content, field string }{
		{"group field, no strategy", `groups:
- name: g
  evaluation_delay: 1m
  rules: [{record: a:b, expr: vector(1)}]
`, "evaluation_delay"},
		{"group field next to strategy", `groups:
- name: g
  partial_response_strategy: warn
  evaluation_delay: 1m
  rules: [{record: a:b, expr: vector(1)}]
`, "evaluation_delay"},
		{"rule field next to strategy", `groups:
- name: g
  partial_response_strategy: abort
  rules:
  - record: a:b
    expr: vector(1)
    forr: 5m
`, "forr"},
		{"top-level field", `groups: []
partial_response_strategy: warn
`, "partial_response_strategy"},
	} {
		f := writeFile(t, t.TempDir(), "r.yaml", tc.content)
		_, errs := newTestLoader().Load(f, false, model.UTF8Validation)
		err := joinErrs(errs)
		if err == nil {
			t.Errorf("%s: accepted an unknown field", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name the field %s", tc.name, err, tc.field)
		}
	}

	// Other Prometheus checks still run after the strategy is stripped.
	for _, tc := range []struct{ name, content, want string }{
		{"bad expression", `groups:
- name: g
  partial_response_strategy: warn
  rules: [{record: a:b, expr: "sum("}]
`, "unclosed left parenthesis"},
		{"duplicate group", `groups:
- name: g
  partial_response_strategy: warn
  rules: [{record: a:b, expr: vector(1)}]
- name: g
  rules: [{record: a:b, expr: vector(1)}]
`, "repeated"},
		{"not YAML", "groups: [\n", "YAML"},
	} {
		f := writeFile(t, t.TempDir(), "r.yaml", tc.content)
		_, errs := newTestLoader().Load(f, false, model.UTF8Validation)
		if err := joinErrs(errs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, errs := newTestLoader().Load(filepath.Join(t.TempDir(), "missing.yaml"), false, model.UTF8Validation); errs == nil {
		t.Error("missing file loaded")
	}
}

func TestStripStrategiesPassesThroughUntouched(t *testing.T) {
	for _, in := range []string{
		// Comments, flow style, odd indentation, anchors and block scalars survive only
		// if the bytes are not re-encoded.
		`# leading comment
groups:
    - name: "g"   # trailing comment
      interval: 1m
      rules: &r
        - {record: "a:b", expr: "vector(1)"}
        - alert: X
          expr: |
            up
              == 0
    - name: h
      rules: *r
`,
		"",
		"groups: []\n",
		"- just a list\n",
		"groups: not-a-list\n",
	} {
		out, strategies, err := stripStrategies([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !bytes.Equal(out, []byte(in)) {
			t.Errorf("file without the strategy field changed:\n%s\n---- became ----\n%s", in, out)
		}
		if len(strategies) != 0 {
			t.Errorf("%q: strategies %v, want none", in, strategies)
		}
	}

	// Through Load, the same file parses as it would in Prometheus.
	f := writeFile(t, t.TempDir(), "plain.yaml", "groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: vector(1)\n")
	rgs, errs := newTestLoader().Load(f, false, model.UTF8Validation)
	if errs != nil || len(rgs.Groups) != 1 || rgs.Groups[0].Rules[0].Expr != "vector(1)" {
		t.Fatalf("plain file: %v %v", rgs, joinErrs(errs))
	}
}

// Error positions must point into the file the operator wrote, not into the re-encoded
// document without the strategy lines.
func TestLoaderErrorPositionsMatchTheFile(t *testing.T) {
	f := writeFile(t, t.TempDir(), "r.yaml", "groups:\n- name: g\n  partial_response_strategy: warn\n  rules: [{record: a:b, expr: \"sum(\"}]\n")
	_, errs := newTestLoader().Load(f, false, model.UTF8Validation)
	if err := joinErrs(errs); err == nil || !strings.Contains(err.Error(), ": 4:") {
		t.Errorf("error %v, want it at line 4 of the file", err)
	}
}

func TestStripStrategiesRemovesOnlyTheField(t *testing.T) {
	in := "groups:\n  - name: g\n    partial_response_strategy: warn\n    interval: 1m\n    rules:\n      - record: a:b\n        expr: vector(1)\n"
	out, strategies, err := stripStrategies([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	// The strategy's line is blanked, so every other line keeps its number.
	want := "groups:\n  - name: g\n" + strings.Repeat(" ", len("    partial_response_strategy: warn")) + "\n    interval: 1m\n    rules:\n      - record: a:b\n        expr: vector(1)\n"
	if string(out) != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
	// A strategy that shares its line with other fields makes the document re-encoded.
	out, strategies2, err := stripStrategies([]byte("groups:\n  - {name: g, partial_response_strategy: warn, rules: [{record: a:b, expr: vector(1)}]}\n"))
	if err != nil || strings.Contains(string(out), strategyField) || !strategies2["g"] {
		t.Errorf("flow mapping: %q %v %v", out, strategies2, err)
	}
	if !strategies["g"] || len(strategies) != 1 {
		t.Errorf("strategies %v", strategies)
	}
}

// A group switched from warn to abort (or to no strategy) must evaluate with abort after
// the reload.
func TestLoaderReloadForgetsOldStrategy(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "r.yaml", "groups:\n- name: g\n  partial_response_strategy: warn\n  rules: [{record: a:b, expr: vector(1)}]\n")
	l := newTestLoader()
	if _, errs := l.Load(f, false, model.UTF8Validation); errs != nil {
		t.Fatal(joinErrs(errs))
	}
	if !l.PartialResponse(f, "g") {
		t.Fatal("warn not seen")
	}
	for _, content := range []string{
		"groups:\n- name: g\n  partial_response_strategy: abort\n  rules: [{record: a:b, expr: vector(1)}]\n",
		"groups:\n- name: g\n  rules: [{record: a:b, expr: vector(1)}]\n",
	} {
		writeFile(t, dir, "r.yaml", "groups:\n- name: g\n  partial_response_strategy: warn\n  rules: [{record: a:b, expr: vector(1)}]\n")
		if _, errs := l.Load(f, false, model.UTF8Validation); errs != nil {
			t.Fatal(joinErrs(errs))
		}
		writeFile(t, dir, "r.yaml", content)
		if _, errs := l.Load(f, false, model.UTF8Validation); errs != nil {
			t.Fatal(joinErrs(errs))
		}
		if l.PartialResponse(f, "g") || l.Strategy(f, "g") != "ABORT" {
			t.Errorf("after reloading\n%s the group still has strategy %s", content, l.Strategy(f, "g"))
		}
	}
}

func TestExpandFiles(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", "groups: []\n")
	b := writeFile(t, dir, "b.yml", "groups: []\n")
	writeFile(t, dir, "notes.txt", "x")
	sub1 := writeFile(t, dir, "rules.d/one.yaml", "groups: []\n")
	sub2 := writeFile(t, dir, "rules.d/two.yaml", "groups: []\n")
	if err := os.MkdirAll(filepath.Join(dir, "rules.d", "nested"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		patterns []string
		want     []string
	}{
		{"glob", []string{filepath.Join(dir, "*.y*ml")}, []string{a, b}},
		{"directory stands for its files", []string{filepath.Join(dir, "rules.d")}, []string{sub1, sub2}},
		{"plain file", []string{b}, []string{b}},
		{"overlapping patterns sorted and deduplicated", []string{b, filepath.Join(dir, "*.yaml"), a}, []string{a, b}},
		{"non-matching glob", []string{filepath.Join(dir, "*.json")}, nil},
		{"missing plain file", []string{filepath.Join(dir, "missing.yaml")}, nil},
		{"none", nil, nil},
	} {
		got, err := ExpandFiles(tc.patterns)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	if _, err := ExpandFiles([]string{filepath.Join(dir, "[a-")}); err == nil || !strings.Contains(err.Error(), "--rule-file") {
		t.Errorf("malformed glob: error %v, want one naming --rule-file", err)
	}
}

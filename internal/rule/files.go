package rule

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// strategyField is the group-level field Thanos adds to Prometheus rule files:
// partial_response_strategy: warn | abort (the default).
const strategyField = "partial_response_strategy"

// Loader reads rule files for Prometheus' rules manager. Files are Prometheus rule
// files with one addition, a group's partial_response_strategy, which Prometheus'
// strict parser would refuse: the loader takes it out, remembers it per group, and hands
// the rest to Prometheus' parser unchanged.
type Loader struct {
	parser parser.Parser
	logger *slog.Logger

	mu    sync.RWMutex
	warns map[string]bool // rules.GroupKey(file, group) → partial response allowed
}

// NewLoader returns a loader parsing expressions with p.
func NewLoader(p parser.Parser, logger *slog.Logger) *Loader {
	return &Loader{parser: p, logger: logger, warns: map[string]bool{}}
}

// Load implements rules.GroupLoader.
func (l *Loader) Load(file string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, []error{fmt.Errorf("read rule file %s: %w", file, err)}
	}
	return l.parse(file, b, ignoreUnknownFields, scheme)
}

// parse is Load of file's content b.
func (l *Loader) parse(file string, b []byte, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	b, strategies, err := stripStrategies(b)
	if err != nil {
		return nil, []error{fmt.Errorf("rule file %s: %w", file, err)}
	}
	rgs, errs := rulefmt.Parse(b, ignoreUnknownFields, scheme, l.parser, l.logger)
	for i := range errs {
		errs[i] = fmt.Errorf("rule file %s: %w", file, errs[i])
	}
	if len(errs) > 0 {
		return nil, errs
	}
	l.mu.Lock()
	for _, g := range rgs.Groups { // every group: one that lost its warn is abort again
		l.warns[groupKey(file, g.Name)] = strategies[g.Name]
	}
	l.mu.Unlock()
	return rgs, nil
}

// Parse implements rules.GroupLoader.
func (l *Loader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// PartialResponse reports whether the group allows partial responses (strategy warn).
func (l *Loader) PartialResponse(file, group string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.warns[groupKey(file, group)]
}

// Strategy returns the group's strategy as Thanos names it: "WARN" or "ABORT".
func (l *Loader) Strategy(file, group string) string {
	if l.PartialResponse(file, group) {
		return "WARN"
	}
	return "ABORT"
}

func groupKey(file, group string) string { return file + "\xff" + group }

// stripStrategies removes partial_response_strategy from every group of a rule file and
// returns the groups' strategies (true for warn). The rest of the document is left as it
// was, so that Prometheus' strict parser still sees every other mistake.
func stripStrategies(b []byte) ([]byte, map[string]bool, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse YAML: %w", err)
	}
	out := map[string]bool{}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return b, out, nil // empty, or not a mapping: Prometheus' parser says what is wrong
	}
	groups := mappingValue(doc.Content[0], "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return b, out, nil
	}
	changed := false
	var blank []int // 1-based lines holding only a strategy field
	found := 0
	lines := bytes.Split(b, []byte("\n"))
	for _, g := range groups.Content {
		if g.Kind != yaml.MappingNode {
			continue
		}
		name := ""
		if n := mappingValue(g, "name"); n != nil {
			name = n.Value
		}
		for i := 0; i+1 < len(g.Content); i += 2 {
			if g.Content[i].Value != strategyField {
				continue
			}
			switch v := g.Content[i+1].Value; v {
			case "warn", "WARN":
				out[name] = true
			case "abort", "ABORT", "":
			default:
				return nil, nil, fmt.Errorf("group %q: %s must be warn or abort, got %q", name, strategyField, v)
			}
			found++
			if k, v := g.Content[i], g.Content[i+1]; k.Line == v.Line && k.Line <= len(lines) && onlyField(lines[k.Line-1]) {
				blank = append(blank, k.Line)
			}
			g.Content = slices.Delete(g.Content, i, i+2)
			changed = true
			break
		}
	}
	if !changed {
		return b, out, nil
	}
	if len(blank) == found {
		// Every strategy sat on a line of its own: blank those lines, so that Prometheus'
		// errors point at the lines of the file as written.
		for _, n := range blank {
			lines[n-1] = bytes.Repeat([]byte(" "), len(lines[n-1]))
		}
		return bytes.Join(lines, []byte("\n")), out, nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, fmt.Errorf("re-encode rule file: %w", err)
	}
	return buf.Bytes(), out, nil
}

// onlyField reports whether a line holds one "partial_response_strategy: value" entry and
// nothing else (a comment aside).
func onlyField(line []byte) bool {
	t := strings.TrimSpace(string(line))
	if !strings.HasPrefix(t, strategyField+":") {
		return false
	}
	return !strings.ContainsAny(t, "{},[]")
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// ExpandFiles resolves the --rule-file globs into a sorted list of files; a directory
// stands for the files in it (the default, rules/). A glob that matches nothing is not
// an error (the files may come later); a malformed one is.
func ExpandFiles(patterns []string) ([]string, error) {
	var files []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("--rule-file %q: %w", p, err)
		}
		for _, f := range m {
			st, err := os.Stat(f)
			if err != nil || !st.IsDir() {
				files = append(files, f)
				continue
			}
			entries, err := os.ReadDir(f)
			if err != nil {
				return nil, fmt.Errorf("--rule-file %q: %w", p, err)
			}
			for _, e := range entries {
				if e.Type().IsRegular() {
					files = append(files, filepath.Join(f, e.Name()))
				}
			}
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

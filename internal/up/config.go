package up

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/template"
)

//go:embed templates
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{"yaml": yamlString}).
	ParseFS(templateFS, "templates/*.tmpl"))

// yamlString quotes s as a YAML double-quoted scalar (JSON strings are valid YAML).
func yamlString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// promConfig is the data of templates/prometheus.yml.tmpl.
type promConfig struct {
	ScrapeInterval string
	Cluster        string
	Replica        string
	Jobs           []scrapeJob
}

// scrapeJob is one scrape job with static targets.
type scrapeJob struct {
	Name    string
	Targets []scrapeTarget
}

// scrapeTarget is one target; Instance replaces the address as its instance label, so
// that series keep their names when the ports change between runs.
type scrapeTarget struct {
	Instance string
	Addr     string
}

// renderPrometheus returns the prometheus.yml of one replica.
func renderPrometheus(c promConfig) ([]byte, error) {
	return render("prometheus.yml.tmpl", c)
}

// renderBucket returns the objstore configuration of a FILESYSTEM bucket in dir.
func renderBucket(dir string) ([]byte, error) {
	return render("bucket.yml.tmpl", struct{ Directory string }{dir})
}

func render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// exampleRules returns the rule file the ruler starts with.
func exampleRules() []byte { return mustRead("templates/rules.yml") }

// alertmanagerConfig returns the configuration of the Alertmanager.
func alertmanagerConfig() []byte { return mustRead("templates/alertmanager.yml") }

func mustRead(name string) []byte {
	b, err := templateFS.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("embedded %s: %v", name, err)) // the file is part of the binary
	}
	return b
}

// writeFile writes b to path, creating its directory.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", path, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeIfMissing writes b to path unless a file is there already, which then stays as
// the user left it.
func writeIfMissing(path string, b []byte) error {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("checking %s: %w", path, err)
	}
	return writeFile(path, b)
}

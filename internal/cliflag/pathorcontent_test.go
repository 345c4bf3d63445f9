package cliflag

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
)

func parsePathOrContent(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	app := kingpin.New("t", "")
	cmd := app.Command("c", "")
	p := RegisterPathOrContent(cmd, "query.config", "Query endpoints")
	if _, err := app.Parse(append([]string{"c"}, args...)); err != nil {
		t.Fatal(err)
	}
	return p.Content()
}

func TestPathOrContent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "q.yml")
	if err := os.WriteFile(file, []byte("- static_configs: [a:1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
		err  string
	}{
		{"neither", nil, "", ""},
		{"file", []string{"--query.config-file=" + file}, "- static_configs: [a:1]\n", ""},
		{"inline", []string{"--query.config=- static_configs: [b:2]"}, "- static_configs: [b:2]", ""},
		{"blank inline", []string{"--query.config=  \n"}, "", ""},
		{"both", []string{"--query.config-file=" + file, "--query.config=x"}, "", "both --query.config-file and --query.config are set"},
		{"missing file", []string{"--query.config-file=" + file + ".nope"}, "", "read --query.config-file"},
	} {
		b, err := parsePathOrContent(t, tc.args...)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || string(b) != tc.want):
			t.Errorf("%s: %q, %v; want %q", tc.name, b, err, tc.want)
		}
	}
}

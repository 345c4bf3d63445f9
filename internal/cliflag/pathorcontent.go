package cliflag

import (
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kingpin/v2"
)

// PathOrContent is a configuration given either as a file or inline, as Thanos takes each
// of its configuration files: --<name>-file=<path> or --<name>=<content>, never both.
// Operators such as the Prometheus Operator pass the inline form from an environment
// variable.
type PathOrContent struct {
	name          string
	file, content *string
}

// RegisterPathOrContent registers --<name>-file and --<name> on cmd; what says what the
// configuration is, for the help text.
func RegisterPathOrContent(cmd *kingpin.CmdClause, name, what string) *PathOrContent {
	return &PathOrContent{
		name:    name,
		file:    cmd.Flag(name+"-file", what+" (YAML file).").PlaceHolder("<file-path>").Default("").String(),
		content: cmd.Flag(name, "Alternative to --"+name+"-file (mutually exclusive): the YAML itself.").PlaceHolder("<content>").Default("").String(),
	}
}

// Content returns the configuration, or nil when neither flag is set or what it gives is
// empty. Setting both flags, or a file that cannot be read, is an error.
func (p *PathOrContent) Content() ([]byte, error) {
	file, content := strings.TrimSpace(*p.file), *p.content
	if file != "" && content != "" {
		return nil, fmt.Errorf("both --%s-file and --%s are set; use only one", p.name, p.name)
	}
	b := []byte(content)
	if file != "" {
		var err error
		if b, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("read --%s-file: %w", p.name, err)
		}
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil
	}
	return b, nil
}

// Name is the flag's name without -file, for messages: "--<name>[-file]".
func (p *PathOrContent) Name() string { return "--" + p.name + "[-file]" }

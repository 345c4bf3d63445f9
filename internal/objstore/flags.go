package objstore

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/alecthomas/kingpin/v2"
)

// Flags are the --objstore.config-file and --objstore.config flags.
type Flags struct {
	file, content *string
}

// RegisterFlags registers --objstore.config-file and --objstore.config on cmd, as Thanos
// does: a path or the YAML itself, mutually exclusive.
func RegisterFlags(cmd *kingpin.CmdClause) *Flags {
	const help = "YAML file that contains object store configuration (type, config, prefix; the same format as Thanos)."
	return &Flags{
		file: cmd.Flag("objstore.config-file", help).PlaceHolder("<file-path>").Default("").String(),
		content: cmd.Flag("objstore.config", "Alternative to 'objstore.config-file' flag (mutually exclusive). Content of "+
			help).PlaceHolder("<content>").Default("").String(),
	}
}

// Content returns the configuration YAML, or nil when neither flag is set (or the given
// file or content is empty), meaning object storage is not configured. Setting both flags
// is an error. References $(NAME) are replaced with environment variables, as in Thanos;
// an unset variable is an error.
func (f *Flags) Content() ([]byte, error) {
	file, content := strings.TrimSpace(*f.file), *f.content
	if file != "" && content != "" {
		return nil, errors.New("both --objstore.config-file and --objstore.config are set; use only one")
	}
	var b []byte
	switch {
	case file != "":
		var err error
		if b, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("read --objstore.config-file: %w", err)
		}
	case content != "":
		b = []byte(content)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil
	}
	return expandEnv(b)
}

var envRefRE = regexp.MustCompile(`\$\(([a-zA-Z_0-9]+)\)`)

// expandEnv replaces $(NAME) with the value of environment variable NAME.
func expandEnv(b []byte) ([]byte, error) {
	var missing []string
	out := envRefRE.ReplaceAllFunc(b, func(ref []byte) []byte {
		name := string(envRefRE.FindSubmatch(ref)[1])
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
			return ref
		}
		return []byte(v)
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("objstore config refers to unset environment variable(s) %s", strings.Join(missing, ", "))
	}
	return out, nil
}

package objstore

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/vigilhq/vigil/internal/cliflag"
)

// Flags are the --objstore.config-file and --objstore.config flags.
type Flags struct {
	config *cliflag.PathOrContent
}

// RegisterFlags registers --objstore.config-file and --objstore.config on cmd, as Thanos
// does: a path or the YAML itself, mutually exclusive.
func RegisterFlags(cmd *kingpin.CmdClause) *Flags {
	return &Flags{config: cliflag.RegisterPathOrContent(cmd, "objstore.config",
		"Object store configuration (type, config, prefix; the same format as Thanos)")}
}

// Content returns the configuration YAML, or nil when neither flag is set (or the given
// file or content is empty), meaning object storage is not configured. Setting both flags
// is an error. References $(NAME) are replaced with environment variables, as in Thanos;
// an unset variable is an error.
func (f *Flags) Content() ([]byte, error) {
	b, err := f.config.Content()
	if err != nil || b == nil {
		return nil, err
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

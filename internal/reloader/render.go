package reloader

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v2"
)

// gzipMagic starts every gzip stream (ID1, ID2 and the deflate method), as Thanos
// detects a compressed config: a Kubernetes ConfigMap holds at most 1 MiB, so large
// Prometheus configs are shipped gzipped.
var gzipMagic = []byte{0x1f, 0x8b, 0x08}

// envRef is a Kubernetes-style reference $(NAME), the only form substituted: $NAME and
// ${NAME} stay as they are, because Prometheus configs use them in relabel replacements.
var envRef = regexp.MustCompile(`\$\(([a-zA-Z_0-9]+)\)`)

// maxConfigSize bounds a decompressed config, so that a corrupt or hostile gzip input
// cannot exhaust memory.
const maxConfigSize = 64 << 20

// render turns the content of the config file into what Prometheus reads. With
// substitute set it decompresses gzip input and replaces every $(NAME) from lookup;
// without, the content is used as is. Either way the result must be a YAML mapping,
// so that a broken file is never handed to Prometheus.
func render(content []byte, substitute bool, lookup func(string) (string, bool)) ([]byte, error) {
	out := content
	if substitute {
		var err error
		if out, err = gunzipIfCompressed(content); err != nil {
			return nil, err
		}
		if out, err = expandEnv(out, lookup); err != nil {
			return nil, err
		}
	} else if bytes.HasPrefix(content, gzipMagic) {
		return nil, fmt.Errorf("config file is gzip-compressed, which Prometheus cannot read: set --reloader.config-envsubst-file to have it decompressed")
	}
	if err := checkYAML(out); err != nil {
		return nil, err
	}
	return out, nil
}

// gunzipIfCompressed returns content decompressed if it starts with the gzip magic,
// else content itself.
func gunzipIfCompressed(content []byte) ([]byte, error) {
	if !bytes.HasPrefix(content, gzipMagic) {
		return content, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(content))
	if err != nil {
		return nil, fmt.Errorf("decompress gzipped config: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompress gzipped config: %w", err)
	}
	if len(out) > maxConfigSize {
		return nil, fmt.Errorf("decompress gzipped config: larger than %d MiB", maxConfigSize>>20)
	}
	return out, nil
}

// expandEnv replaces every $(NAME) with the value lookup gives. A variable that is not
// set is an error naming it, not an empty string: an empty replica label, say, would
// silently merge two replicas' data.
func expandEnv(b []byte, lookup func(string) (string, bool)) ([]byte, error) {
	var unset []string
	out := envRef.ReplaceAllFunc(b, func(ref []byte) []byte {
		name := string(ref[2 : len(ref)-1])
		v, ok := lookup(name)
		if !ok {
			if !slices.Contains(unset, name) {
				unset = append(unset, name)
			}
			return ref
		}
		return []byte(v)
	})
	if len(unset) > 0 {
		return nil, fmt.Errorf("substitute $(NAME) references: environment variable not set: %s", strings.Join(unset, ", "))
	}
	return out, nil
}

// checkYAML accepts a non-empty YAML mapping, the shape of every Prometheus config. It
// does not validate the config itself: Prometheus does that on reload, and a rejected
// reload is reported as a failed reload.
func checkYAML(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("rendered config is empty")
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("rendered config is not valid YAML: %w", err)
	}
	return nil
}

// writeAtomic replaces path with content through a temporary file in the same
// directory and a rename, so that Prometheus never reads a half-written config. The
// file is made readable by all (0644): Prometheus often runs as another user.
func writeAtomic(path string, content []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(content); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	// Synced before the rename, so that a crash cannot leave the new name pointing at
	// an empty file.
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

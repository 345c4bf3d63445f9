package server

import (
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

// ServerTLS is the TLS of an HTTP server given as flags, as Thanos takes it for the
// receiver's remote-write server (--remote-write.server-tls-*). Prefix is the flags'
// common prefix, for messages.
type ServerTLS struct {
	Prefix          string
	Cert, Key, CA   string   // CA: require client certificates signed by it
	MinVersion      string   // "1.0" to "1.3"; "1.3" when empty
	Ciphers, Curves []string // Go names, as for the gRPC server
}

// Enabled reports whether any of the flags is set.
func (t ServerTLS) Enabled() bool {
	return t.Cert != "" || t.Key != "" || t.CA != "" || len(t.Ciphers) > 0 || len(t.Curves) > 0
}

// WriteWebConfig writes the exporter-toolkit web config file (the format of
// --http.config) that serves t, at path, and checks it: the HTTP server reads TLS
// settings from such a file, again at each handshake, so it must stay in place.
func (t ServerTLS) WriteWebConfig(path string) error {
	if t.Cert == "" || t.Key == "" {
		return fmt.Errorf("TLS of the server needs both --%s-cert and --%s-key", t.Prefix, t.Prefix)
	}
	if _, err := ParseTLSVersion("--"+t.Prefix+"-min-version", t.MinVersion); err != nil {
		return err
	}
	version := t.MinVersion
	if version == "" {
		version = "1.3"
	}
	cfg := map[string]any{
		"cert_file": t.Cert, "key_file": t.Key,
		"min_version": "TLS" + strings.ReplaceAll(version, ".", ""),
	}
	if t.CA != "" {
		cfg["client_ca_file"], cfg["client_auth_type"] = t.CA, "RequireAndVerifyClientCert"
	}
	if len(t.Ciphers) > 0 {
		cfg["cipher_suites"] = t.Ciphers
	}
	if len(t.Curves) > 0 {
		cfg["curve_preferences"] = t.Curves
	}
	b, err := yaml.Marshal(map[string]any{"tls_server_config": cfg})
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write web config for --%s-*: %w", t.Prefix, err)
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("--%s-*: %w", t.Prefix, err)
	}
	return nil
}

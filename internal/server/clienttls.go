package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ClientTLS is the TLS of a component's gRPC client towards its peers: the querier's
// --grpc-client-tls-* flags, the receiver's --remote-write.client-tls-*. Prefix is the
// flags' common prefix, for messages.
type ClientTLS struct {
	Prefix                    string
	Secure, SkipVerify        bool
	Cert, Key, CA, ServerName string
	MinVersion                string // "1.0" to "1.3"; "1.3" when empty
}

// Config is the client TLS configuration, or nil without Secure (plain connections).
func (c ClientTLS) Config() (*tls.Config, error) {
	if !c.Secure {
		return nil, nil
	}
	minVersion, err := ParseTLSVersion("--"+c.Prefix+"-min-version", c.MinVersion)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{InsecureSkipVerify: c.SkipVerify, ServerName: c.ServerName, MinVersion: minVersion}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("read --%s-ca: %w", c.Prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in --%s-ca %s", c.Prefix, c.CA)
		}
		cfg.RootCAs = pool
	}
	if c.Cert != "" || c.Key != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("load --%s-cert and --%s-key: %w", c.Prefix, c.Prefix, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

package server

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/tlstest"
)

// serverCert returns a certificate for 127.0.0.1 and its key (their CA is not needed:
// the tests' clients skip verification or trust the certificate itself).
func serverCert(t *testing.T) (certFile, keyFile string) {
	f := tlstest.Write(t)
	return f.Cert, f.Key
}

// handshake reports whether a client with at most TLS version maxVersion and curves
// completes a handshake with a server configured from cfg.
func handshake(t *testing.T, cfg GRPCConfig, maxVersion uint16, curves ...tls.CurveID) error {
	t.Helper()
	srvCfg, err := serverTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: maxVersion, CurvePreferences: curves})
	if err != nil {
		return err
	}
	return c.Close()
}

func TestServerTLSSettings(t *testing.T) {
	cert, key := serverCert(t)
	base := GRPCConfig{TLSCert: cert, TLSKey: key}
	if err := handshake(t, base, tls.VersionTLS12); err == nil {
		t.Error("a TLS 1.2 client was accepted by default (minimum 1.3)")
	}
	if err := handshake(t, base, tls.VersionTLS13); err != nil {
		t.Errorf("TLS 1.3 client refused: %v", err)
	}
	v12 := base
	v12.TLSMinVersion, v12.TLSCiphers = "1.2", []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}
	if err := handshake(t, v12, tls.VersionTLS12); err != nil {
		t.Errorf("TLS 1.2 client refused with --grpc-server-tls-min-version=1.2: %v", err)
	}
	p384 := base
	p384.TLSCurves = []string{"CurveP384"}
	if err := handshake(t, p384, tls.VersionTLS13, tls.CurveP256); err == nil {
		t.Error("a client offering only P-256 was accepted with --grpc-server-tls-curves=CurveP384")
	}
	if err := handshake(t, p384, tls.VersionTLS13, tls.CurveP384); err != nil {
		t.Errorf("P-384 client refused: %v", err)
	}

	for flag, bad := range map[string]GRPCConfig{
		"--grpc-server-tls-min-version": {TLSCert: cert, TLSKey: key, TLSMinVersion: "1.4"},
		"--grpc-server-tls-ciphers":     {TLSCert: cert, TLSKey: key, TLSCiphers: []string{"TLS_MADE_UP"}},
		"--grpc-server-tls-curves":      {TLSCert: cert, TLSKey: key, TLSCurves: []string{"P256"}},
	} {
		if _, err := serverTLS(bad); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s: %v, want an error naming the flag", flag, err)
		}
	}
}

func TestParseTLSVersion(t *testing.T) {
	for in, want := range map[string]uint16{"": tls.VersionTLS13, "1.0": tls.VersionTLS10, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13} {
		if got, err := ParseTLSVersion("--x", in); err != nil || got != want {
			t.Errorf("%q: %x, %v; want %x", in, got, err, want)
		}
	}
	if _, err := ParseTLSVersion("--grpc-client-tls-min-version", "TLS1.2"); err == nil || !strings.Contains(err.Error(), "--grpc-client-tls-min-version") {
		t.Errorf("bad version: %v", err)
	}
}

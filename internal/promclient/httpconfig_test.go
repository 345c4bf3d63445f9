package promclient

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsPrometheus is a TLS server that answers 200 only to the Authorization header
// want() returns, and the path of a CA file that trusts it.
func tlsPrometheus(t *testing.T, want func() string) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

func status(t *testing.T, c *http.Client, url string) (int, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestHTTPClientConfigBasicAuthAndTLS(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, ca := tlsPrometheus(t, func() string { return "Basic c2lkZWNhcjpzM2NyZXQ=" }) // sidecar:s3cret
	c, err := ParseHTTPClientConfig([]byte(fmt.Sprintf("basic_auth: {username: sidecar, password_file: %s}\ntls_config: {ca_file: %s}\n", pwFile, ca)))
	if err != nil {
		t.Fatal(err)
	}
	if code, err := status(t, c, srv.URL); err != nil || code != http.StatusOK {
		t.Fatalf("with credentials and CA: %d, %v", code, err)
	}
	noCA, _ := ParseHTTPClientConfig([]byte("basic_auth: {username: sidecar, password: s3cret}\n"))
	if _, err := status(t, noCA, srv.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v, want a certificate error", err)
	}
	noAuth, _ := ParseHTTPClientConfig([]byte(fmt.Sprintf("tls_config: {ca_file: %s}\n", ca)))
	if code, _ := status(t, noAuth, srv.URL); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", code)
	}
}

// A bearer token file is read at each request: rotating it needs no restart.
func TestHTTPClientConfigBearerTokenFileRotates(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "Bearer one"
	srv, ca := tlsPrometheus(t, func() string { return want })
	c, err := ParseHTTPClientConfig([]byte(fmt.Sprintf("bearer_token_file: %s\ntls_config: {ca_file: %s}\n", tokFile, ca)))
	if err != nil {
		t.Fatal(err)
	}
	if code, err := status(t, c, srv.URL); code != http.StatusOK {
		t.Fatalf("first token: %d, %v", code, err)
	}
	want = "Bearer two"
	if err := os.WriteFile(tokFile, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, err := status(t, c, srv.URL); code != http.StatusOK {
		t.Fatalf("rotated token: %d, %v", code, err)
	}
}

func TestHTTPClientConfigTransportAndErrors(t *testing.T) {
	c, err := ParseHTTPClientConfig([]byte("transport_config: {max_idle_conns_per_host: 5, response_header_timeout: 2000000000, disable_compression: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Transport.(*http.Transport)
	if tr.MaxIdleConnsPerHost != 5 || tr.ResponseHeaderTimeout != 2*time.Second || tr.DisableCompression {
		t.Errorf("transport %d %s %v", tr.MaxIdleConnsPerHost, tr.ResponseHeaderTimeout, tr.DisableCompression)
	}
	def, _ := ParseHTTPClientConfig(nil)
	if !def.Transport.(*http.Transport).DisableCompression {
		t.Error("the default client asks for compression")
	}
	for yaml, want := range map[string]string{
		"basic_auth: {usernme: x}\n":                               "usernme",
		"bearer_token: a\nbasic_auth: {username: u}\n":             "exclude",
		"basic_auth: {username: u, password: p, password_file: f}": "exclude",
		"bearer_token: a\nbearer_token_file: f\n":                  "exclude",
		"tls_config: {ca_file: /nonexistent/ca.pem}\n":             "tls_config",
		"proxy_url: \"http://[::1\"\n":                             "proxy_url",
	} {
		if _, err := ParseHTTPClientConfig([]byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error mentioning %q", yaml, err, want)
		}
	}
}

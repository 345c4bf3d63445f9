package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigilhq/vigil/internal/tlstest"
)

// The web config written for --remote-write.server-tls-* serves HTTPS, and with a client
// CA asks for a client certificate.
func TestServerTLSWebConfig(t *testing.T) {
	f := tlstest.Write(t)
	cert, key := f.Cert, f.Key
	path := filepath.Join(t.TempDir(), "web.yml")
	st := ServerTLS{Prefix: "remote-write.server-tls", Cert: cert, Key: key, CA: f.CA, MinVersion: "1.2", Curves: []string{"X25519", "CurveP256"}}
	if err := st.WriteWebConfig(path); err != nil {
		t.Fatal(err)
	}
	h, err := NewHTTP(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), NewProbe(), HTTPConfig{Address: "127.0.0.1:0", TLSConfig: path, GracePeriod: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()

	pem, _ := os.ReadFile(f.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	get := func(withCert bool) error {
		cfg := &tls.Config{RootCAs: pool}
		if withCert {
			cfg.Certificates = []tls.Certificate{pair}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + h.Addr().String() + "/-/healthy")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	var err2 error
	for range 50 { // Run starts serving on its own goroutine
		if err2 = get(true); err2 == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err2 != nil {
		t.Fatalf("client with a certificate: %v", err2)
	}
	if err := get(false); err == nil {
		t.Error("a client without a certificate was served")
	}

	for name, bad := range map[string]ServerTLS{
		"no key":      {Prefix: "remote-write.server-tls", Cert: cert},
		"bad version": {Prefix: "remote-write.server-tls", Cert: cert, Key: key, MinVersion: "2"},
		"bad curve":   {Prefix: "remote-write.server-tls", Cert: cert, Key: key, Curves: []string{"P256"}},
	} {
		if err := bad.WriteWebConfig(filepath.Join(t.TempDir(), "web.yml")); err == nil || !strings.Contains(err.Error(), "remote-write.server-tls") {
			t.Errorf("%s: %v, want an error naming the flags", name, err)
		}
	}
}

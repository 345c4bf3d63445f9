package promclient

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	commoncfg "github.com/prometheus/common/config"
	yamlv3 "go.yaml.in/yaml/v3"
)

// HTTPClientConfig is --prometheus.http-client[-file]: how to reach a Prometheus that
// asks for authentication or serves TLS, in the format Thanos takes.
type HTTPClientConfig struct {
	BasicAuth struct {
		Username     string `yaml:"username"`
		Password     string `yaml:"password"`
		PasswordFile string `yaml:"password_file"`
	} `yaml:"basic_auth"`
	BearerToken     string `yaml:"bearer_token"`
	BearerTokenFile string `yaml:"bearer_token_file"`
	ProxyURL        string `yaml:"proxy_url"`
	TLSConfig       struct {
		CAFile             string `yaml:"ca_file"`
		CertFile           string `yaml:"cert_file"`
		KeyFile            string `yaml:"key_file"`
		ServerName         string `yaml:"server_name"`
		InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	} `yaml:"tls_config"`
	// TransportConfig tunes the connection pool; durations are in nanoseconds, as in
	// Thanos. Zero values keep the sidecar's own settings.
	TransportConfig struct {
		MaxIdleConns          int   `yaml:"max_idle_conns"`
		MaxIdleConnsPerHost   int   `yaml:"max_idle_conns_per_host"`
		IdleConnTimeout       int64 `yaml:"idle_conn_timeout"`
		ResponseHeaderTimeout int64 `yaml:"response_header_timeout"`
		ExpectContinueTimeout int64 `yaml:"expect_continue_timeout"`
		MaxConnsPerHost       int   `yaml:"max_conns_per_host"`
		DisableCompression    *bool `yaml:"disable_compression"`
		TLSHandshakeTimeout   int64 `yaml:"tls_handshake_timeout"`
	} `yaml:"transport_config"`
}

// ParseHTTPClientConfig parses the YAML of --prometheus.http-client[-file], refusing
// unknown fields, and builds the client; nil gives NewHTTPClient's.
func ParseHTTPClientConfig(b []byte) (*http.Client, error) {
	if b == nil {
		return NewHTTPClient(), nil
	}
	var c HTTPClientConfig
	dec := yamlv3.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("parse Prometheus HTTP client config: %w", err)
	}
	return c.Client()
}

// Client builds the HTTP client: NewHTTPClient's transport with the TLS, proxy and pool
// settings, and the credentials added to every request. Password and token files are
// read at each request, so rotating them needs no restart.
func (c *HTTPClientConfig) Client() (*http.Client, error) {
	t := NewHTTPClient().Transport.(*http.Transport)
	tc := c.TLSConfig
	tlsCfg, err := commoncfg.NewTLSConfig(&commoncfg.TLSConfig{CAFile: tc.CAFile, CertFile: tc.CertFile, KeyFile: tc.KeyFile,
		ServerName: tc.ServerName, InsecureSkipVerify: tc.InsecureSkipVerify})
	if err != nil {
		return nil, fmt.Errorf("Prometheus HTTP client tls_config: %w", err)
	}
	t.TLSClientConfig = tlsCfg
	if c.ProxyURL != "" {
		u, err := url.Parse(c.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("Prometheus HTTP client proxy_url: %w", err)
		}
		t.Proxy = http.ProxyURL(u)
	}
	c.tune(t)
	rt, err := c.withCredentials(t)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt}, nil
}

// tune applies the transport_config fields that are set.
func (c *HTTPClientConfig) tune(t *http.Transport) {
	p := c.TransportConfig
	setInt := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setDur := func(dst *time.Duration, v int64) {
		if v > 0 {
			*dst = time.Duration(v)
		}
	}
	setInt(&t.MaxIdleConns, p.MaxIdleConns)
	setInt(&t.MaxIdleConnsPerHost, p.MaxIdleConnsPerHost)
	setInt(&t.MaxConnsPerHost, p.MaxConnsPerHost)
	setDur(&t.IdleConnTimeout, p.IdleConnTimeout)
	setDur(&t.ResponseHeaderTimeout, p.ResponseHeaderTimeout)
	setDur(&t.ExpectContinueTimeout, p.ExpectContinueTimeout)
	setDur(&t.TLSHandshakeTimeout, p.TLSHandshakeTimeout)
	if p.DisableCompression != nil {
		t.DisableCompression = *p.DisableCompression
	}
}

// withCredentials wraps rt with basic auth or a bearer token; both is an error.
func (c *HTTPClientConfig) withCredentials(rt http.RoundTripper) (http.RoundTripper, error) {
	ba := c.BasicAuth
	basic := ba.Username != "" || ba.Password != "" || ba.PasswordFile != ""
	bearer := c.BearerToken != "" || c.BearerTokenFile != ""
	switch {
	case basic && bearer:
		return nil, errors.New("Prometheus HTTP client: basic_auth and bearer_token exclude each other")
	case ba.Password != "" && ba.PasswordFile != "":
		return nil, errors.New("Prometheus HTTP client: basic_auth password and password_file exclude each other")
	case c.BearerToken != "" && c.BearerTokenFile != "":
		return nil, errors.New("Prometheus HTTP client: bearer_token and bearer_token_file exclude each other")
	case basic:
		return commoncfg.NewBasicAuthRoundTripper(commoncfg.NewInlineSecret(ba.Username), secret(ba.Password, ba.PasswordFile), rt), nil
	case bearer:
		return commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", secret(c.BearerToken, c.BearerTokenFile), rt), nil
	}
	return rt, nil
}

// secret is the inline value, or the file read at each use.
func secret(inline, file string) commoncfg.SecretReader {
	if file != "" {
		return commoncfg.NewFileSecret(file)
	}
	return commoncfg.NewInlineSecret(inline)
}

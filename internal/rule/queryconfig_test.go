package rule

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseQueryConfig(t *testing.T) {
	cfgs, err := ParseQueryConfig([]byte(`
- http_config:
    basic_auth:
      username: rule
      password: secret
    tls_config:
      insecure_skip_verify: true
  static_configs: ["query-0:10902", "dns+query.svc:10902"]
  scheme: https
  path_prefix: /thanos
- file_sd_configs:
  - files: [/etc/query/*.json]
    refresh_interval: 1m
  - files: [/etc/query/more.yaml]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 2 || cfgs[0].Scheme != "https" || cfgs[0].PathPrefix != "/thanos" || len(cfgs[0].StaticConfigs) != 2 {
		t.Fatalf("parsed %+v", cfgs)
	}
	hc, err := cfgs[0].httpClientConfig()
	if err != nil || hc.BasicAuth == nil || hc.BasicAuth.Username != "rule" || !hc.TLSConfig.InsecureSkipVerify {
		t.Fatalf("http_config %+v, %v", hc, err)
	}
	if files, refresh := cfgs[1].files(); len(files) != 2 || refresh != time.Minute {
		t.Fatalf("file SD %v every %s", files, refresh)
	}

	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown field":     {"- static_config: [a:1]\n", "static_config"},
		"address sans port": {"- static_configs: [query.svc]\n", "query.svc"},
		"bad scheme":        {"- static_configs: [a:1]\n  scheme: grpc\n", "grpc"},
		"bad http_config":   {"- static_configs: [a:1]\n  http_config: {bearer_tokn: x}\n", "bearer_tokn"},
		"two credentials":   {"- static_configs: [a:1]\n  http_config: {bearer_token: x, basic_auth: {username: u}}\n", "http_config"},
		"not a list":        {"static_configs: [a:1]\n", "parse query config"},
	} {
		if _, err := ParseQueryConfig([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
	}
}

// An entry's scheme, path prefix and HTTP client settings reach the query endpoint, and
// its file SD finds it.
func TestQueryConfigReachesEndpoints(t *testing.T) {
	api := newFakeQueryAPI(t, func(f url.Values) (int, string) { return vectorAnswer(f, "1", map[string]string{"a": "b"}) })
	sd := writeFile(t, t.TempDir(), "query.json", fmt.Sprintf(`[{"targets": [%q]}]`, api.hostPort()))
	cfgs, err := ParseQueryConfig([]byte(fmt.Sprintf(`
- static_configs: [%q]
  path_prefix: /thanos
  http_config:
    basic_auth: {username: rule, password: secret}
- file_sd_configs:
  - files: [%q]
`, api.hostPort(), filepath.Join(filepath.Dir(sd), "*.json"))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	groups, err := StartQueryConfig(ctx, cfgs, time.Second, discardLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both groups resolved", func() bool {
		return len(groups[0].Addrs()) == 1 && len(groups[1].Addrs()) == 1
	})
	q := NewQuerier(groups, "", 5*time.Second, prometheus.NewRegistry())
	for range 20 {
		if _, err := q.Query(context.Background(), "up", time.Now(), false); err != nil {
			t.Fatal(err)
		}
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("rule:secret"))
	seen := map[string]bool{}
	for _, r := range api.requests() {
		seen[r.Path] = true
		if r.Path == "/thanos/api/v1/query" && r.Auth != auth {
			t.Errorf("prefixed entry sent Authorization %q, want %q", r.Auth, auth)
		}
		if r.Path == "/api/v1/query" && r.Auth != "" {
			t.Errorf("file SD entry sent Authorization %q, want none", r.Auth)
		}
	}
	if !seen["/thanos/api/v1/query"] || !seen["/api/v1/query"] {
		t.Errorf("paths %v: want both groups used over 20 queries", seen)
	}
}

// A group whose endpoints are all down is passed over for the next.
func TestQuerierGroupFailover(t *testing.T) {
	api := newFakeQueryAPI(t, func(f url.Values) (int, string) { return vectorAnswer(f, "1") })
	down := closedAddr(t)
	q := NewQuerier([]QueryEndpoints{
		{Addrs: func() []string { return []string{down} }},
		{Addrs: func() []string { return nil }},
		{Addrs: func() []string { return []string{api.hostPort()} }},
	}, "", 5*time.Second, prometheus.NewRegistry())
	for range 10 {
		if _, err := q.Query(context.Background(), "up", time.Now(), false); err != nil {
			t.Fatal(err)
		}
	}
	empty := NewQuerier([]QueryEndpoints{{Addrs: func() []string { return nil }}}, "", time.Second, prometheus.NewRegistry())
	if _, err := empty.Query(context.Background(), "up", time.Now(), false); err == nil || !strings.Contains(err.Error(), "no query endpoint to evaluate rules with") {
		t.Errorf("no endpoints: %v", err)
	}
}

func TestQuerierGET(t *testing.T) {
	api := newFakeQueryAPI(t, func(f url.Values) (int, string) { return vectorAnswer(f, "1") })
	q := NewQuerier([]QueryEndpoints{{Addrs: func() []string { return []string{api.hostPort()} }}}, http.MethodGet, 5*time.Second, prometheus.NewRegistry())
	if _, err := q.Query(context.Background(), `up{a="b c"}`, time.UnixMilli(1700000000123), true); err != nil {
		t.Fatal(err)
	}
	r := api.requests()[0]
	if r.Method != http.MethodGet || r.Form.Get("query") != `up{a="b c"}` || r.Form.Get("time") != "1700000000.123" || r.Form.Get("partial_response") != "true" {
		t.Fatalf("request %+v: want a GET with the query parameters in the URL", r)
	}
}

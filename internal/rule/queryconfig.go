package rule

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/discovery"
)

// EndpointsConfig is what an entry of --query.config and of --alertmanagers.config have
// in common: a group of endpoints (static addresses, which may carry dns+, dnssrv+ or
// dnssrvnoa+, and file SD) and how to reach them.
type EndpointsConfig struct {
	HTTPConfig    map[string]any `yaml:"http_config"`
	StaticConfigs []string       `yaml:"static_configs"`
	FileSDConfigs []FileSDConfig `yaml:"file_sd_configs"`
	Scheme        string         `yaml:"scheme"`
	PathPrefix    string         `yaml:"path_prefix"`
}

// FileSDConfig is one file_sd_configs entry: files in Prometheus file SD format.
type FileSDConfig struct {
	Files           []string       `yaml:"files"`
	RefreshInterval model.Duration `yaml:"refresh_interval"`
}

// defaultFileSDRefresh is how often SD files are re-read when no entry says (they are
// also re-read when they change).
const defaultFileSDRefresh = 5 * time.Minute

// check validates the addresses and the scheme.
func (c *EndpointsConfig) check() error {
	for _, s := range c.StaticConfigs {
		if err := discovery.ValidateSpec(s); err != nil {
			return err
		}
	}
	if c.Scheme != "" && c.Scheme != "http" && c.Scheme != "https" {
		return fmt.Errorf("scheme %q: want http or https", c.Scheme)
	}
	return nil
}

// files returns the SD files of every file_sd_configs entry and the shortest refresh
// interval they ask for.
func (c *EndpointsConfig) files() ([]string, time.Duration) {
	var files []string
	refresh := defaultFileSDRefresh
	for _, sd := range c.FileSDConfigs {
		files = append(files, sd.Files...)
		if d := time.Duration(sd.RefreshInterval); d > 0 && d < refresh {
			refresh = d
		}
	}
	return files, refresh
}

// httpClientConfig is the http_config entry as Prometheus' HTTP client configuration
// (basic_auth, bearer_token[_file], proxy_url, tls_config...), unknown fields refused.
func (c *EndpointsConfig) httpClientConfig() (commoncfg.HTTPClientConfig, error) {
	hc := commoncfg.DefaultHTTPClientConfig
	if len(c.HTTPConfig) == 0 {
		return hc, nil
	}
	b, err := yaml.Marshal(c.HTTPConfig)
	if err != nil {
		return hc, fmt.Errorf("http_config: %w", err)
	}
	if err := decodeStrict(b, &hc); err != nil {
		return hc, fmt.Errorf("http_config: %w", err)
	}
	if err := hc.Validate(); err != nil {
		return hc, fmt.Errorf("http_config: %w", err)
	}
	return hc, nil
}

// ParseQueryConfig parses --query.config[-file]: a YAML list of groups of query
// endpoints, in Thanos's format.
func ParseQueryConfig(b []byte) ([]EndpointsConfig, error) {
	var cfgs []EndpointsConfig
	if err := decodeStrict(b, &cfgs); err != nil {
		return nil, fmt.Errorf("parse query config: %w", err)
	}
	for i := range cfgs {
		if err := cfgs[i].check(); err != nil {
			return nil, fmt.Errorf("query config, entry %d: %w", i, err)
		}
		if _, err := cfgs[i].httpClientConfig(); err != nil {
			return nil, fmt.Errorf("query config, entry %d: %w", i, err)
		}
	}
	return cfgs, nil
}

// QueryEndpoints is one group of query endpoints reached the same way: an entry of
// --query.config, or every --query and --query.sd-files address.
type QueryEndpoints struct {
	// Addrs returns the current addresses: host:port, or base URLs that keep their own
	// scheme and path.
	Addrs      func() []string
	Scheme     string // of host:port addresses; http when empty
	PathPrefix string
	Client     *http.Client // nil: a plain client
}

// baseURL is the URL the query API of addr is under.
func (g *QueryEndpoints) baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	scheme := g.Scheme
	if scheme == "" {
		scheme = "http"
	}
	prefix := strings.TrimRight(g.PathPrefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	return scheme + "://" + addr + prefix
}

// StartQueryConfig turns parsed --query.config entries into query endpoint groups whose
// addresses are resolved (DNS every dnsInterval, SD files when they change) until ctx
// is done.
func StartQueryConfig(ctx context.Context, cfgs []EndpointsConfig, dnsInterval time.Duration, logger *slog.Logger, reg prometheus.Registerer) ([]QueryEndpoints, error) {
	dns := discovery.NewDNS(net.DefaultResolver, logger, reg)
	groups := make([]QueryEndpoints, 0, len(cfgs))
	for i := range cfgs {
		c := &cfgs[i]
		hc, err := c.httpClientConfig()
		if err != nil {
			return nil, fmt.Errorf("query config, entry %d: %w", i, err)
		}
		client, err := commoncfg.NewClientFromConfig(hc, "vigil-rule-query")
		if err != nil {
			return nil, fmt.Errorf("query config, entry %d: %w", i, err)
		}
		var fsd *discovery.FileSD
		if files, refresh := c.files(); len(files) > 0 {
			fsd = discovery.NewFileSD(files, refresh, logger, reg)
		}
		eps := discovery.NewEndpoints(c.StaticConfigs, fsd, dns, dnsInterval, logger)
		go func() { _ = eps.Run(ctx) }()
		groups = append(groups, QueryEndpoints{Addrs: eps.Addresses, Scheme: c.Scheme, PathPrefix: c.PathPrefix, Client: client})
	}
	return groups, nil
}

// StartQueryFlags is the query endpoint group of --query (host:port with optional dns+,
// dnssrv+ or dnssrvnoa+, or http(s) URLs with a path) and --query.sd-files, resolved
// until ctx is done: DNS every dnsInterval, the SD files when they change and every
// sdInterval.
func StartQueryFlags(ctx context.Context, queries, sdFiles []string, dnsInterval, sdInterval time.Duration, logger *slog.Logger, reg prometheus.Registerer) (QueryEndpoints, error) {
	var urls, specs []string
	for _, q := range queries {
		if u, err := url.Parse(q); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			urls = append(urls, q)
			continue
		}
		if err := discovery.ValidateSpec(q); err != nil {
			return QueryEndpoints{}, fmt.Errorf("--query: %w", err)
		}
		specs = append(specs, q)
	}
	var fsd *discovery.FileSD
	if len(sdFiles) > 0 {
		fsd = discovery.NewFileSD(sdFiles, sdInterval, logger, reg)
	}
	eps := discovery.NewEndpoints(specs, fsd, discovery.NewDNS(net.DefaultResolver, logger, reg), dnsInterval, logger)
	go func() { _ = eps.Run(ctx) }()
	return QueryEndpoints{Addrs: func() []string { return append(eps.Addresses(), urls...) }}, nil
}

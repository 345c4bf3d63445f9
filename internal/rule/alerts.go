package rule

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"text/template"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/discovery"
)

// AlertOptions shape the alerts a ruler sends.
type AlertOptions struct {
	// LabelDrop are removed from every alert and from the external labels added to it
	// (--alert.label-drop): the replica label, so that Alertmanager sees the alerts of
	// HA rulers as one.
	LabelDrop []string
	// External are the ruler's external labels (--label); they override an alert's own.
	External labels.Labels
	// QueryURL is --alert.query-url, the base of each alert's generator URL.
	QueryURL string
	// QueryTemplate is --alert.query-template, the rest of it (ParseQueryTemplate); nil
	// means DefaultQueryTemplate.
	QueryTemplate *template.Template
}

// DefaultQueryTemplate is the default --alert.query-template: the querier UI's graph page.
const DefaultQueryTemplate = "/graph?g0.expr={{.Expr}}&g0.tab=1"

// ParseQueryTemplate parses an --alert.query-template: a Go text/template whose .Expr is
// the alert's expression, query-escaped.
func ParseQueryTemplate(s string) (*template.Template, error) {
	t, err := template.New("alert.query-template").Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--alert.query-template: %w", err)
	}
	if err := t.Execute(io.Discard, struct{ Expr string }{"up"}); err != nil {
		return nil, fmt.Errorf("--alert.query-template: %w", err)
	}
	return t, nil
}

// generatorURL is the link to expr that alerts carry.
func (o *AlertOptions) generatorURL(expr string) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(o.QueryURL, "/"))
	if err := o.QueryTemplate.Execute(&b, struct{ Expr string }{url.QueryEscape(expr)}); err != nil {
		// ParseQueryTemplate tried the template: only a failing writer could get here.
		return strings.TrimRight(o.QueryURL, "/")
	}
	return b.String()
}

// NotifyFunc turns the rules manager's alerts into notifications: labels dropped, then
// external labels set, then (in the notifier) the alert relabel configs applied.
func NotifyFunc(n *notifier.Manager, o AlertOptions) rules.NotifyFunc {
	ext := labels.NewBuilder(o.External)
	for _, name := range o.LabelDrop {
		ext.Del(name)
	}
	external := ext.Labels()
	if o.QueryTemplate == nil {
		o.QueryTemplate = template.Must(ParseQueryTemplate(DefaultQueryTemplate))
	}
	return func(_ context.Context, expr string, alerts ...*rules.Alert) {
		if len(alerts) == 0 {
			return
		}
		out := make([]*notifier.Alert, 0, len(alerts))
		for _, a := range alerts {
			b := labels.NewBuilder(a.Labels)
			for _, name := range o.LabelDrop {
				b.Del(name)
			}
			external.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
			na := &notifier.Alert{
				Labels: b.Labels(), Annotations: a.Annotations, StartsAt: a.FiredAt,
				GeneratorURL: o.generatorURL(expr),
			}
			if !a.ResolvedAt.IsZero() {
				na.EndsAt = a.ResolvedAt
			} else {
				na.EndsAt = a.ValidUntil
			}
			out = append(out, na)
		}
		n.Send(out...)
	}
}

// AlertmanagersFile is the --alertmanagers.config-file format.
type AlertmanagersFile struct {
	Alertmanagers []AlertmanagerFileConfig `yaml:"alertmanagers"`
}

// AlertmanagerFileConfig is one entry: a group of Alertmanagers, how to reach them, and
// the timeout and API version of the calls.
type AlertmanagerFileConfig struct {
	EndpointsConfig `yaml:",inline"`
	Timeout         model.Duration `yaml:"timeout"`
	APIVersion      string         `yaml:"api_version"`
}

// Alertmanagers is the set of Alertmanagers alerts go to.
type Alertmanagers struct {
	configs []*config.AlertmanagerConfig
	specs   [][]string // addresses of each config
	fileSD  [][]string // SD files of each config
}

// ParseAlertmanagerURLs reads --alertmanagers.url values: scheme://host[:port][/prefix],
// where host may carry dns+ or dnssrv+; the port defaults to 9093.
func ParseAlertmanagerURLs(urls []string, timeout time.Duration) (*Alertmanagers, error) {
	am := &Alertmanagers{}
	for _, raw := range urls {
		scheme, spec, path, err := parseAlertmanagerURL(raw)
		if err != nil {
			return nil, fmt.Errorf("--alertmanagers.url %q: %w", raw, err)
		}
		am.add(scheme, path, model.Duration(timeout), []string{spec}, nil, commoncfg.DefaultHTTPClientConfig)
	}
	return am, nil
}

// lookupPrefixes are the discovery prefixes an Alertmanager address may carry, on the
// scheme as Thanos writes it (dns+http://host) or on the host (http://dns+host).
var lookupPrefixes = []string{"dnssrvnoa+", "dnssrv+", "dns+"}

// parseAlertmanagerURL splits an --alertmanagers.url into its scheme, its address as a
// discovery spec (port 9093 when none is given, except for SRV lookups) and its path.
func parseAlertmanagerURL(raw string) (scheme, spec, path string, _ error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	lookup := ""
	for _, p := range lookupPrefixes {
		if s, found := strings.CutPrefix(scheme, p); found {
			lookup, scheme = p, s
			break
		}
	}
	if !ok || (scheme != "http" && scheme != "https") {
		return "", "", "", fmt.Errorf("want http:// or https:// (optionally dns+, dnssrv+ or dnssrvnoa+ before it) followed by the address")
	}
	hostport, path, _ := strings.Cut(rest, "/")
	for _, p := range lookupPrefixes {
		if h, found := strings.CutPrefix(hostport, p); found {
			if lookup != "" {
				return "", "", "", fmt.Errorf("two lookup prefixes (%s and %s)", lookup, p)
			}
			lookup, hostport = p, h
			break
		}
	}
	if hostport == "" {
		return "", "", "", fmt.Errorf("no host: missing host name")
	}
	if !strings.HasPrefix(lookup, "dnssrv") {
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			hostport = net.JoinHostPort(strings.Trim(hostport, "[]"), "9093")
		}
	}
	spec = lookup + hostport
	if err := discovery.ValidateSpec(spec); err != nil {
		return "", "", "", err
	}
	return scheme, spec, "/" + path, nil
}

// ParseAlertmanagersConfig parses --alertmanagers.config[-file].
func ParseAlertmanagersConfig(b []byte, defaultTimeout time.Duration) (*Alertmanagers, error) {
	var f AlertmanagersFile
	if err := decodeStrict(b, &f); err != nil {
		return nil, fmt.Errorf("parse alertmanagers config: %w", err)
	}
	am := &Alertmanagers{}
	for i, c := range f.Alertmanagers {
		if c.APIVersion != "" && c.APIVersion != "v2" {
			return nil, fmt.Errorf("alertmanagers config, entry %d: api_version %q: only v2 is supported (Alertmanager removed v1)", i, c.APIVersion)
		}
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("alertmanagers config, entry %d: %w", i, err)
		}
		timeout := c.Timeout
		if timeout == 0 {
			timeout = model.Duration(defaultTimeout)
		}
		hc, err := c.httpClientConfig()
		if err != nil {
			return nil, fmt.Errorf("alertmanagers config, entry %d: %w", i, err)
		}
		files, _ := c.files()
		am.add(c.Scheme, c.PathPrefix, timeout, c.StaticConfigs, files, hc)
	}
	return am, nil
}

func (am *Alertmanagers) add(scheme, prefix string, timeout model.Duration, specs, files []string, hc commoncfg.HTTPClientConfig) {
	c := &config.AlertmanagerConfig{Scheme: scheme, PathPrefix: prefix, Timeout: timeout, APIVersion: config.AlertmanagerAPIVersionV2,
		HTTPClientConfig: hc}
	if c.Scheme == "" {
		c.Scheme = "http"
	}
	am.configs = append(am.configs, c)
	am.specs = append(am.specs, specs)
	am.fileSD = append(am.fileSD, files)
}

// decodeStrict decodes YAML refusing unknown fields, so that a typo is an error rather
// than a setting silently left at its default.
func decodeStrict(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// Config is the Prometheus alerting configuration for the notifier.
func (am *Alertmanagers) Config(relabel []*relabel.Config) *config.Config {
	return &config.Config{AlertingConfig: config.AlertingConfig{AlertmanagerConfigs: am.configs, AlertRelabelConfigs: relabel}}
}

// Run resolves the Alertmanagers' addresses every interval and hands them to the
// notifier through tsets, until ctx is done.
func (am *Alertmanagers) Run(ctx context.Context, interval time.Duration, logger *slog.Logger, tsets chan<- map[string][]*targetgroup.Group) {
	eps := make([]*discovery.Endpoints, len(am.configs))
	for i := range am.configs {
		var fsd *discovery.FileSD
		if len(am.fileSD[i]) > 0 {
			fsd = discovery.NewFileSD(am.fileSD[i], interval, logger, nil)
		}
		eps[i] = discovery.NewEndpoints(am.specs[i], fsd, nil, interval, logger)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		groups := map[string][]*targetgroup.Group{}
		for i, e := range eps {
			if err := e.Refresh(ctx); err != nil {
				logger.Warn("resolving Alertmanager addresses; keeping the last good ones", "err", err)
			}
			g := &targetgroup.Group{Source: fmt.Sprintf("config-%d", i)}
			for _, a := range e.Addresses() {
				g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(a)})
			}
			groups[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{g}
		}
		select {
		case tsets <- groups:
		case <-ctx.Done():
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// ParseRelabelConfigs parses --alert.relabel-config[-file] (a YAML list of Prometheus
// relabel configs); nil gives none.
func ParseRelabelConfigs(b []byte) ([]*relabel.Config, error) {
	if b == nil {
		return nil, nil
	}
	var cfgs []*relabel.Config
	if err := decodeStrict(b, &cfgs); err != nil {
		return nil, fmt.Errorf("parse alert relabel config: %w", err)
	}
	for i, c := range cfgs {
		if c.NameValidationScheme == model.UnsetValidation {
			c.NameValidationScheme = model.UTF8Validation
		}
		if err := c.Validate(model.UTF8Validation); err != nil {
			return nil, fmt.Errorf("alert relabel config, entry %d: %w", i, err)
		}
	}
	return cfgs, nil
}

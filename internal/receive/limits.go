package receive

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/vigilhq/vigil/internal/filewatch"
)

// LimitsConfig is the --receive.limits-config file. A value of 0 means unlimited; a
// tenant's missing value inherits the default.
type LimitsConfig struct {
	Write WriteLimitsConfig `yaml:"write"`
}

// WriteLimitsConfig is the write section of the limits file.
type WriteLimitsConfig struct {
	Global  GlobalLimits            `yaml:"global"`
	Default TenantLimits            `yaml:"default"`
	Tenants map[string]TenantLimits `yaml:"tenants"`
}

// GlobalLimits apply to the receiver as a whole. The meta-monitoring fields are accepted
// for compatibility; the head-series limit is checked against the local TSDB instead,
// which is exact and needs no query.
type GlobalLimits struct {
	MaxConcurrency           int64          `yaml:"max_concurrency"`
	MetaMonitoringURL        string         `yaml:"meta_monitoring_url"`
	MetaMonitoringLimitQuery string         `yaml:"meta_monitoring_limit_query"`
	MetaMonitoringHTTPClient map[string]any `yaml:"meta_monitoring_http_client"`
}

// TenantLimits are the limits of one tenant (or the default).
type TenantLimits struct {
	Request         RequestLimits `yaml:"request"`
	HeadSeriesLimit *uint64       `yaml:"head_series_limit"`
}

// RequestLimits bound one remote-write request.
type RequestLimits struct {
	SizeBytesLimit *int64 `yaml:"size_bytes_limit"`
	SeriesLimit    *int64 `yaml:"series_limit"`
	SamplesLimit   *int64 `yaml:"samples_limit"`
}

// ParseLimits parses a limits file strictly: an unknown key is an error, so that a typo
// does not silently leave a tenant unlimited.
func ParseLimits(b []byte) (*LimitsConfig, error) {
	var c LimitsConfig
	if len(bytes.TrimSpace(b)) == 0 {
		return &c, nil
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("parse limits config: %w", err)
	}
	if c.Write.Global.MaxConcurrency < 0 {
		return nil, fmt.Errorf("parse limits config: negative max_concurrency")
	}
	if err := c.Write.Default.validate("default"); err != nil {
		return nil, fmt.Errorf("parse limits config: %w", err)
	}
	for name, t := range c.Write.Tenants {
		if err := ValidateTenant(name); err != nil {
			return nil, fmt.Errorf("parse limits config: %w", err)
		}
		if err := t.validate("tenant " + name); err != nil {
			return nil, fmt.Errorf("parse limits config: %w", err)
		}
	}
	return &c, nil
}

// validate refuses negative limits, which would otherwise silently mean unlimited.
func (t TenantLimits) validate(what string) error {
	for name, v := range map[string]*int64{"size_bytes_limit": t.Request.SizeBytesLimit, "series_limit": t.Request.SeriesLimit, "samples_limit": t.Request.SamplesLimit} {
		if v != nil && *v < 0 {
			return fmt.Errorf("%s: negative %s", what, name)
		}
	}
	return nil
}

// Limits holds the current limits; a reload replaces them at once for the next request.
// A nil *Limits imposes none.
type Limits struct {
	cfg atomic.Pointer[LimitsConfig]
}

// NewLimits returns limits from cfg (nil: none).
func NewLimits(cfg *LimitsConfig) *Limits {
	l := &Limits{}
	if cfg == nil {
		cfg = &LimitsConfig{}
	}
	l.cfg.Store(cfg)
	return l
}

// Set replaces the limits.
func (l *Limits) Set(cfg *LimitsConfig) { l.cfg.Store(cfg) }

// Request returns the tenant's size, series and samples limits (0 = none).
func (l *Limits) Request(tenant string) (size, series, samples int64) {
	if l == nil {
		return 0, 0, 0
	}
	c := l.cfg.Load().Write
	t := c.Tenants[tenant]
	pick := func(own, def *int64) int64 {
		if own != nil {
			return *own
		}
		if def != nil {
			return *def
		}
		return 0
	}
	d := c.Default.Request
	return pick(t.Request.SizeBytesLimit, d.SizeBytesLimit), pick(t.Request.SeriesLimit, d.SeriesLimit), pick(t.Request.SamplesLimit, d.SamplesLimit)
}

// HeadSeries returns the tenant's head-series limit (0 = none).
func (l *Limits) HeadSeries(tenant string) uint64 {
	if l == nil {
		return 0
	}
	c := l.cfg.Load().Write
	if v := c.Tenants[tenant].HeadSeriesLimit; v != nil {
		return *v
	}
	if v := c.Default.HeadSeriesLimit; v != nil {
		return *v
	}
	return 0
}

// MaxConcurrency returns the bound on requests written at once (0 = none).
func (l *Limits) MaxConcurrency() int64 {
	if l == nil {
		return 0
	}
	return l.cfg.Load().Write.Global.MaxConcurrency
}

// WatchLimitsFile re-reads path every interval and applies it when its content changed
// and parses; a broken or empty file keeps the limits in force and is logged. An empty
// file is what a file rewritten in place holds for a moment: lifting every limit then
// would be worse than keeping them a little longer.
func WatchLimitsFile(ctx context.Context, l *Limits, path string, interval time.Duration, logger *slog.Logger) {
	initial, _ := os.ReadFile(path)
	filewatch.Watch(ctx, filewatch.Options{Path: path, Poll: interval, Initial: initial}, func(b []byte, err error) {
		switch {
		case err != nil:
			logger.Error("read limits config; keeping the limits in force", "file", path, "err", err)
			return
		case len(bytes.TrimSpace(b)) == 0:
			logger.Warn("limits config is empty; keeping the limits in force", "file", path)
			return
		}
		cfg, err := ParseLimits(b)
		if err != nil {
			logger.Error("invalid limits config; keeping the limits in force", "file", path, "err", err)
			return
		}
		l.Set(cfg)
		logger.Info("reloaded limits config", "file", path)
	})
}

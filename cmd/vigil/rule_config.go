package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/cliflag"
	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/rule"
	"github.com/vigilhq/vigil/internal/tsdbstore"
)

// ruleConfig turns the parsed flags into the ruler's configuration; the returned function
// releases what it opened (bucket, discovery).
func ruleConfig(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, f *ruleFlags) (rule.Config, func(), error) {
	if f.concurrentEvals < 1 {
		return rule.Config{}, nil, fmt.Errorf("--rule-concurrent-evaluation must be at least 1, got %d", f.concurrentEvals)
	}
	cfg := rule.Config{
		RuleFiles: f.ruleFiles, EvalInterval: *f.eval, ConcurrentEvals: f.concurrentEvals, QueryOffset: *f.queryOffset,
		QueryMethod: f.queryMethod, QueryTimeout: *f.queryTimeout,
		AlertmanagersDNSInterval: *f.amDNSInterval, ResendDelay: *f.resendDelay,
		Outage: *f.outage, ForGrace: *f.forGrace, RestoreIgnored: f.restoreIgnored,
		DataDir: f.dataDir, BlockDuration: *f.block, Retention: *f.retention,
		UncompressedWAL: !f.tsdb.walCompression, NoLockfile: f.tsdb.noLockfile, Store: tsdbstore.Options{Limits: f.limits},
		UploadEvery: *f.upload, HashFunc: block.HashFunc(f.hashFunc), ShipperMetaFile: f.metaFile, UploadCompacted: f.uploadCompacted,
	}
	var err error
	if cfg.Labels, err = cliflag.ParseLabels(f.labels); err != nil {
		return cfg, nil, fmt.Errorf("--label: %w", err)
	}
	cfg.Alerts = rule.AlertOptions{LabelDrop: f.labelDrop, External: cfg.Labels, QueryURL: f.queryURL}
	if cfg.Alerts.QueryTemplate, err = rule.ParseQueryTemplate(f.queryTmpl); err != nil {
		return cfg, nil, err
	}
	if f.queryURL != "" {
		if cfg.ExternalURL, err = url.Parse(f.queryURL); err != nil {
			return cfg, nil, fmt.Errorf("--alert.query-url: %w", err)
		}
	}
	if cfg.Alertmanagers, err = alertmanagers(f); err != nil {
		return cfg, nil, err
	}
	b, err := f.alertRelabel.Content()
	if err != nil {
		return cfg, nil, err
	}
	if cfg.AlertRelabel, err = rule.ParseRelabelConfigs(b); err != nil {
		return cfg, nil, fmt.Errorf("%s: %w", f.alertRelabel.Name(), err)
	}
	if b, err = f.remoteWrite.Content(); err != nil {
		return cfg, nil, err
	}
	if b != nil {
		if cfg.RemoteWrite, err = config.Load(string(b), logger); err != nil {
			return cfg, nil, fmt.Errorf("%s: %w", f.remoteWrite.Name(), err)
		}
	}
	dctx, stop := context.WithCancel(ctx)
	if cfg.Queries, err = queryEndpoints(dctx, logger, reg, f); err != nil {
		stop()
		return cfg, nil, err
	}
	content, err := f.objstore.Content()
	if err != nil || content == nil {
		return cfg, stop, err
	}
	bkt, err := objstore.NewBucket(ctx, content, logger, reg, "rule")
	if err != nil {
		stop()
		return cfg, nil, err
	}
	cfg.Bucket = bkt
	return cfg, func() { stop(); _ = bkt.Close() }, nil
}

// queryEndpoints are the groups of query endpoints of --query.config[-file], or the one
// group of --query and --query.sd-files, resolved until ctx is done.
func queryEndpoints(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, f *ruleFlags) ([]rule.QueryEndpoints, error) {
	b, err := f.queryConfig.Content()
	if err != nil {
		return nil, err
	}
	if b == nil {
		g, err := rule.StartQueryFlags(ctx, f.queries, f.querySD, *f.dnsInterval, *f.sdInterval, logger, reg)
		return []rule.QueryEndpoints{g}, err
	}
	if len(f.queries) > 0 || len(f.querySD) > 0 {
		return nil, fmt.Errorf("--query and --query.sd-files exclude %s", f.queryConfig.Name())
	}
	cfgs, err := rule.ParseQueryConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.queryConfig.Name(), err)
	}
	return rule.StartQueryConfig(ctx, cfgs, *f.dnsInterval, logger, reg)
}

func alertmanagers(f *ruleFlags) (*rule.Alertmanagers, error) {
	b, err := f.amConfig.Content()
	if err != nil {
		return nil, err
	}
	if b != nil {
		if len(f.amURLs) > 0 {
			return nil, fmt.Errorf("--alertmanagers.url and %s exclude each other", f.amConfig.Name())
		}
		am, err := rule.ParseAlertmanagersConfig(b, *f.amTimeout)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.amConfig.Name(), err)
		}
		return am, nil
	}
	return rule.ParseAlertmanagerURLs(f.amURLs, *f.amTimeout)
}

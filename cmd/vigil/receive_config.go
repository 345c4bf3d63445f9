package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/cliflag"
	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/receive"
	"github.com/vigilhq/vigil/internal/storeapi"
)

// receiveConfig turns the parsed flags into the receiver's configuration; the returned
// function closes the bucket.
func receiveConfig(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, f *receiveFlags) (receive.Config, func(), error) {
	cfg := f.cfg
	ext, err := cliflag.ParseLabels(f.labels)
	if err != nil || ext.IsEmpty() {
		return cfg, nil, fmt.Errorf("--label: at least one label is required (%v)", err)
	}
	cfg.TSDB.Labels = ext
	cfg.TSDB.Retention, cfg.TSDB.OutOfOrderWindow, cfg.TSDB.BlockDuration = *f.retention, *f.ooo, *f.block
	cfg.TSDB.UncompressedWAL, cfg.TSDB.NoLockfile, cfg.TSDB.MaxBytes = !f.tsdb.walCompression, f.tsdb.noLockfile, int64(f.maxBytes)
	cfg.TSDB.HashFunc = block.HashFunc(f.hashFunc)
	cfg.Distributor.ForwardTimeout, cfg.UploadEvery = *f.forwardTimeout, *f.upload
	cfg.HashringsPoll, cfg.LimitsReload = *f.hashringsPoll, *f.limitsPoll
	cfg.Hashrings = []byte(f.hashringsInline)
	compression := f.compression
	if compression == "none" {
		compression = ""
	}
	peerTLS, err := f.peerTLS.Config()
	if err != nil {
		return cfg, nil, err
	}
	cfg.Distributor.DialOptions = storeapi.DialOptions(peerTLS, compression)
	if f.rwServerTLS.Enabled() {
		if f.rwTLS != "" {
			return cfg, nil, fmt.Errorf("--remote-write.server-http-config and --remote-write.server-tls-* exclude each other")
		}
		// The remote-write server reads its TLS from a web config file; it is written next
		// to the tenants' TSDBs, where the receiver may write.
		if err := os.MkdirAll(cfg.TSDB.Dir, 0o755); err != nil {
			return cfg, nil, err
		}
		f.rwTLS = filepath.Join(cfg.TSDB.Dir, "remote-write-web-config.yml")
		if err := f.rwServerTLS.WriteWebConfig(f.rwTLS); err != nil {
			return cfg, nil, err
		}
	}
	limits := []byte(f.limitsInline)
	if f.limitsFile != "" {
		if limits, err = os.ReadFile(f.limitsFile); err != nil {
			return cfg, nil, fmt.Errorf("read --receive.limits-config-file: %w", err)
		}
		cfg.LimitsFile = f.limitsFile
	}
	lc, err := receive.ParseLimits(limits)
	if err != nil {
		return cfg, nil, err
	}
	cfg.Handler.Limits = receive.NewLimits(lc)
	content, err := f.objstore.Content()
	if err != nil {
		return cfg, nil, err
	}
	if content == nil {
		logger.Info("no object storage configured (--objstore.config or --objstore.config-file); blocks stay local")
		return cfg, func() {}, nil
	}
	bkt, err := objstore.NewBucket(ctx, content, logger, reg, "receive")
	if err != nil {
		return cfg, nil, err
	}
	cfg.TSDB.Bucket = bkt
	return cfg, func() { _ = bkt.Close() }, nil
}

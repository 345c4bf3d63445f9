// Package sidecar exposes a running Prometheus through the StoreAPI: Series through
// streamed remote read, label calls through the HTTP API, and Info from the external
// labels and oldest sample time it keeps track of.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/promclient"
)

// ErrNoExternalLabels is returned when Prometheus has no external labels: without them,
// data from different Prometheus servers cannot be told apart in the bucket or querier.
var ErrNoExternalLabels = errors.New("Prometheus has no external labels configured; " +
	"set global.external_labels in prometheus.yml (for example cluster and a per-replica replica label) " +
	"so its data can be told apart from other Prometheus servers, then reload Prometheus")

// Prometheus tracks what the sidecar knows of its Prometheus: the external labels, the
// oldest sample time, and whether it is reachable.
type Prometheus struct {
	client  *promclient.Client
	logger  *slog.Logger
	minTime int64 // --min-time, ms

	mu        sync.RWMutex
	ext       labels.Labels
	lowest    int64
	reachable bool
	lastErr   error
	onChange  func(ready bool, reason string)
}

// NewPrometheus returns a tracker; onChange is called whenever readiness changes.
func NewPrometheus(client *promclient.Client, logger *slog.Logger, minTime int64, onChange func(ready bool, reason string)) *Prometheus {
	if onChange == nil {
		onChange = func(bool, string) {}
	}
	return &Prometheus{client: client, logger: logger, minTime: minTime, lowest: math.MinInt64, onChange: onChange}
}

// Refresh re-reads external labels and the oldest sample time. It returns
// ErrNoExternalLabels (wrapped) when Prometheus answers without external labels.
func (p *Prometheus) Refresh(ctx context.Context) error {
	ext, err := p.client.ExternalLabels(ctx)
	if err == nil && ext.IsEmpty() {
		err = ErrNoExternalLabels
	}
	var lowest int64 = math.MinInt64
	if err == nil {
		ms, ok, lerr := p.client.LowestTimestamp(ctx)
		switch {
		case lerr != nil:
			err = fmt.Errorf("read oldest sample time: %w", lerr)
		case ok:
			lowest = ms
		}
	}
	p.mu.Lock()
	wasReachable := p.reachable
	p.reachable, p.lastErr = err == nil, err
	if err == nil {
		if !labels.Equal(p.ext, ext) && !p.ext.IsEmpty() {
			p.logger.Info("Prometheus external labels changed", "old", p.ext.String(), "new", ext.String())
		}
		p.ext, p.lowest = ext, lowest
	}
	p.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("query Prometheus at %s: %w", p.client.URL().Redacted(), err)
	}
	if wasReachable != (err == nil) || err != nil {
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		p.onChange(err == nil, reason)
	}
	return err
}

// WaitReady refreshes until Prometheus answers with external labels or timeout passes. A
// Prometheus that answers without external labels is a configuration error, returned at once.
func (p *Prometheus) WaitReady(ctx context.Context, timeout, interval time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := p.Refresh(ctx)
		if err == nil || errors.Is(err, ErrNoExternalLabels) {
			return err
		}
		p.logger.Warn("Prometheus not ready yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("Prometheus did not become ready within %s: %w", timeout, err)
		case <-time.After(interval):
		}
	}
}

// Run refreshes every interval, each refresh bounded by timeout, until ctx is done;
// failures mark the sidecar not ready until Prometheus answers again.
func (p *Prometheus) Run(ctx context.Context, interval, timeout time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		if err := p.Refresh(rctx); err != nil && ctx.Err() == nil {
			p.logger.Warn("Prometheus unreachable or misconfigured; sidecar not ready", "err", err)
		}
		cancel()
	}
}

// State returns the current external labels, the StoreAPI min time and the last error
// (nil while Prometheus is reachable).
func (p *Prometheus) State() (labels.Labels, int64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.reachable {
		err := p.lastErr
		if err == nil {
			err = errors.New("Prometheus not contacted yet")
		}
		return p.ext, 0, err
	}
	mint := p.lowest
	if p.minTime > mint {
		mint = p.minTime
	}
	return p.ext, mint, nil
}

// UploadCheck tells CheckBlockDurations whether the sidecar uploads blocks.
type UploadCheck struct {
	// Enabled is true when object storage is configured.
	Enabled bool
	// ShipperFile is <tsdb.path>/<shipper.meta-file-name>; Prometheus ≥ 3.9 may point
	// --storage.tsdb.delay-compact-file.path at it instead of disabling compaction.
	ShipperFile string
	// IgnoreUnequal turns the unequal-durations error into a warning
	// (--shipper.ignore-unequal-block-size).
	IgnoreUnequal bool
}

// CheckBlockDurations checks that Prometheus does not compact blocks locally: with local
// compaction, Prometheus rewrites blocks the sidecar may already have uploaded, so the
// bucket would end up with overlapping blocks. Without uploads a mismatch is only a
// warning. With uploads it is an error unless Prometheus delays compaction until blocks
// are uploaded (--storage.tsdb.delay-compact-file.path set to up.ShipperFile) or
// up.IgnoreUnequal is set. A Prometheus without the flags endpoint is not checked.
func (p *Prometheus) CheckBlockDurations(ctx context.Context, up UploadCheck) error {
	flags, err := p.client.Flags(ctx)
	if err != nil {
		var apiErr *promclient.APIError
		if (errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound) || strings.Contains(err.Error(), "(HTTP 404)") {
			p.logger.Warn("Prometheus does not serve /api/v1/status/flags; skipping the block duration check")
			return nil
		}
		if !up.Enabled {
			p.logger.Warn("cannot read Prometheus flags to check block durations", "err", err)
			return nil
		}
		return fmt.Errorf("read Prometheus flags to check block durations before uploading blocks: %w", err)
	}
	minD, maxD := flags["storage.tsdb.min-block-duration"], flags["storage.tsdb.max-block-duration"]
	if !sameDuration(minD, maxD) {
		delayFile := flags["storage.tsdb.delay-compact-file.path"]
		switch {
		case !up.Enabled:
			p.logger.Warn("Prometheus compacts blocks locally: --storage.tsdb.min-block-duration and --storage.tsdb.max-block-duration differ; "+
				"set both to 2h before enabling uploads, or uploaded blocks will overlap with compacted ones", "min_block_duration", minD, "max_block_duration", maxD)
		case delayFile != "" && samePath(delayFile, up.ShipperFile):
			p.logger.Info("Prometheus compacts blocks locally but waits until the sidecar has uploaded them",
				"delay_compact_file", delayFile)
		case up.IgnoreUnequal:
			p.logger.Warn("Prometheus compacts blocks locally and uploads are enabled; uploaded blocks may overlap with compacted ones "+
				"(allowed by --shipper.ignore-unequal-block-size)", "min_block_duration", minD, "max_block_duration", maxD)
		case delayFile != "":
			return fmt.Errorf("Prometheus compacts blocks locally (--storage.tsdb.min-block-duration=%s, --storage.tsdb.max-block-duration=%s) "+
				"and its --storage.tsdb.delay-compact-file.path=%s is not the sidecar's shipper file %s; "+
				"point it at %s, or start Prometheus with --storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h",
				minD, maxD, delayFile, up.ShipperFile, up.ShipperFile)
		default:
			return fmt.Errorf("Prometheus compacts blocks locally (--storage.tsdb.min-block-duration=%s, --storage.tsdb.max-block-duration=%s), "+
				"so blocks the sidecar uploads would later be compacted into overlapping ones; "+
				"start Prometheus with --storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h "+
				"(or, on Prometheus 3.9 and later, --storage.tsdb.delay-compact-file.path=%s)", minD, maxD, up.ShipperFile)
		}
	}
	if minD != "" && !sameDuration(minD, "2h") {
		p.logger.Warn("Prometheus block duration is not 2h; the recommended setting is 2h", "block_duration", minD)
	}
	return nil
}

// sameDuration compares two duration flag values, as durations when both parse.
func sameDuration(a, b string) bool {
	da, errA := model.ParseDuration(a)
	db, errB := model.ParseDuration(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return da == db
}

// samePath reports whether two paths name the same file, comparing absolute paths (the
// sidecar and Prometheus usually share a working directory or use absolute paths).
func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return errA == nil && errB == nil && absA == absB
}

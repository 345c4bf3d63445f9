// Package reloader keeps a running Prometheus in step with its configuration sources,
// like the Thanos sidecar's reloader. It renders the config file (decompressing gzip
// and substituting $(VAR) from the environment) into the file Prometheus reads, follows
// that file and the rule directories, and asks Prometheus to reload when what
// Prometheus would read has changed, or when the last reload failed.
//
// Changes are found by polling content every second (not file system events, which
// miss the symlink swaps of Kubernetes ConfigMap updates), plus a forced pass every
// watch interval.
package reloader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/filewatch"
)

// Options configure a Reloader.
type Options struct {
	// ConfigFile is the Prometheus config, or with OutputFile its template.
	ConfigFile string
	// OutputFile, when set, receives the rendered ConfigFile; Prometheus must be started
	// with --config.file pointing at it.
	OutputFile string
	// RuleDirs are followed for changes (every file below, recursively).
	RuleDirs []string
	// WatchInterval is the period of forced passes, and bounds one run of retries.
	WatchInterval time.Duration
	// RetryInterval is the pause between failed reload requests.
	RetryInterval time.Duration
	// Trigger asks Prometheus to reload (see NewTrigger).
	Trigger Trigger

	// Poll is how often the inputs are compared with the last seen; 1s when 0, and at
	// most WatchInterval.
	Poll time.Duration
	// Settle is how long a changed input must stay unchanged before it is used; 100ms
	// when 0. It keeps a file caught while being written from being rendered.
	Settle time.Duration
	// LookupEnv resolves $(NAME); os.LookupEnv when nil.
	LookupEnv func(string) (string, bool)
}

// Enabled reports whether any reloader option is set, that is whether the reloader
// should run (New then checks that the options make sense together).
func (o Options) Enabled() bool {
	return o.ConfigFile != "" || o.OutputFile != "" || len(o.RuleDirs) > 0
}

// Reloader renders the config and reloads Prometheus. Create it with New; call Run once.
type Reloader struct {
	opts   Options
	logger *slog.Logger
	m      *metrics

	// Only Run's goroutine uses these.
	lastSeen     [sha256.Size]byte // digest of the last configuration rendered
	lastReloaded [sha256.Size]byte // digest Prometheus last reloaded successfully
	reloadFailed bool              // the last reload request failed
}

// New checks opts and registers the metrics on reg.
func New(logger *slog.Logger, reg prometheus.Registerer, opts Options) (*Reloader, error) {
	switch {
	case !opts.Enabled():
		return nil, errors.New("reloader: neither --reloader.config-file nor --reloader.rule-dir is set")
	case opts.OutputFile != "" && opts.ConfigFile == "":
		return nil, errors.New("reloader: --reloader.config-envsubst-file needs --reloader.config-file")
	case opts.OutputFile != "" && opts.OutputFile == opts.ConfigFile:
		return nil, errors.New("reloader: --reloader.config-envsubst-file must differ from --reloader.config-file, which it would overwrite")
	case opts.WatchInterval <= 0 || opts.RetryInterval <= 0:
		return nil, fmt.Errorf("reloader: --reloader.watch-interval (%s) and --reloader.retry-interval (%s) must be positive",
			opts.WatchInterval, opts.RetryInterval)
	case opts.Trigger == nil:
		return nil, errors.New("reloader: no reload trigger")
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	opts.Poll = min(opts.Poll, opts.WatchInterval)
	if opts.Settle <= 0 {
		opts.Settle = 100 * time.Millisecond
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reloader{opts: opts, logger: logger, m: newMetrics(reg)}, nil
}

// Run renders the config at once, without waiting for Prometheus, so that Prometheus
// can be started on the rendered file; it fails if that first render does. Then it
// asks Prometheus to reload (it may have started with an older rendered file), and
// follows the inputs until ctx is done.
func (r *Reloader) Run(ctx context.Context) error {
	r.m.applies.Inc()
	in, err := r.read()
	var sum [sha256.Size]byte
	if err == nil {
		sum, err = r.prepare(in)
	}
	if err != nil {
		r.m.applyFailures.Inc()
		return fmt.Errorf("reloader: initial config: %w", err)
	}
	r.logger.Info("reloader started", "config_file", r.opts.ConfigFile, "output_file", r.opts.OutputFile,
		"rule_dirs", r.opts.RuleDirs, "watch_interval", r.opts.WatchInterval)
	r.reloadIfNeeded(ctx, sum, in)
	filewatch.Watch(ctx, filewatch.Options{Read: r.read, Poll: r.opts.Poll, Refresh: r.opts.WatchInterval, Initial: in},
		func(in []byte, err error) { r.apply(ctx, in, err) })
	return nil
}

// apply is one pass over the inputs in (or the error reading them): it renders the
// config and reloads Prometheus if needed. A broken input keeps the last rendered
// config in place and Prometheus as it is.
func (r *Reloader) apply(ctx context.Context, in []byte, readErr error) {
	if readErr == nil && !r.settled(ctx, in) {
		return
	}
	r.m.applies.Inc()
	err := readErr
	var sum [sha256.Size]byte
	if err == nil {
		sum, err = r.prepare(in)
	}
	if err != nil {
		r.m.applyFailures.Inc()
		r.logger.Error("config not applied: keeping the last rendered config and not reloading Prometheus", "err", err)
		return
	}
	r.reloadIfNeeded(ctx, sum, in)
}

// settled waits Settle and reports whether the inputs are still in. os.WriteFile
// truncates before it writes, so a poll can catch a file empty or half written; such a
// pass is skipped, and the next poll sees the rest.
func (r *Reloader) settled(ctx context.Context, in []byte) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(r.opts.Settle):
	}
	again, err := r.read()
	return err == nil && bytes.Equal(again, in)
}

// read returns the inputs as one value for filewatch to compare: the config file's
// content followed by the digest of the rule directories.
func (r *Reloader) read() ([]byte, error) {
	var in []byte
	if r.opts.ConfigFile != "" {
		b, err := os.ReadFile(r.opts.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
		in = b
	}
	rules, err := hashDirs(r.opts.RuleDirs)
	if err != nil {
		return nil, err
	}
	return append(in, rules[:]...), nil
}

// prepare renders the config from the inputs, writes it to OutputFile if it changed,
// and returns the digest of what Prometheus reads: rendered config and rule files.
func (r *Reloader) prepare(in []byte) ([sha256.Size]byte, error) {
	content, rules := in[:len(in)-sha256.Size], in[len(in)-sha256.Size:]
	var cfg []byte
	if r.opts.ConfigFile != "" {
		out, err := render(content, r.opts.OutputFile != "", r.opts.LookupEnv)
		if err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("render %s: %w", r.opts.ConfigFile, err)
		}
		if err := r.writeOutput(out); err != nil {
			return [sha256.Size]byte{}, err
		}
		cfg = out
	}
	// The rules digest has a fixed size, so putting it first keeps the two apart.
	return sha256.Sum256(append(append([]byte(nil), rules...), cfg...)), nil
}

// writeOutput replaces OutputFile with cfg unless it already holds it, so that an
// unchanged config does not touch the file Prometheus reads.
func (r *Reloader) writeOutput(cfg []byte) error {
	if r.opts.OutputFile == "" {
		return nil
	}
	if cur, err := os.ReadFile(r.opts.OutputFile); err == nil && bytes.Equal(cur, cfg) {
		return nil
	}
	if err := writeAtomic(r.opts.OutputFile, cfg); err != nil {
		return fmt.Errorf("write rendered config: %w", err)
	}
	r.logger.Info("rendered config written", "from", r.opts.ConfigFile, "to", r.opts.OutputFile)
	return nil
}

// reloadIfNeeded reloads Prometheus when the configuration sum differs from the one
// it last reloaded, or the last reload failed.
func (r *Reloader) reloadIfNeeded(ctx context.Context, sum [sha256.Size]byte, in []byte) {
	if sum != r.lastSeen {
		r.lastSeen = sum
		r.m.lastConfigChange.SetToCurrentTime()
	}
	if sum == r.lastReloaded && !r.reloadFailed {
		return
	}
	r.reload(ctx, sum, in)
}

// reload asks Prometheus to reload every RetryInterval until it succeeds, the watch
// interval has passed (the next forced pass tries again), or the inputs change: then
// the next pass handles the new inputs at once, instead of retrying a config that may
// be why the reloads fail.
func (r *Reloader) reload(ctx context.Context, sum [sha256.Size]byte, in []byte) {
	rctx, cancel := context.WithTimeout(ctx, r.opts.WatchInterval)
	defer cancel()
	for {
		r.m.reloads.Inc()
		err := r.opts.Trigger(rctx)
		if err == nil {
			r.lastReloaded, r.reloadFailed = sum, false
			r.m.lastReloadOK.Set(1)
			r.m.lastReloadTime.SetToCurrentTime()
			r.logger.Info("Prometheus reloaded", "config_file", r.opts.ConfigFile, "rule_dirs", r.opts.RuleDirs)
			return
		}
		r.reloadFailed = true
		if ctx.Err() != nil {
			return // shutting down: not a failure of Prometheus
		}
		r.m.reloadFailures.Inc()
		r.m.lastReloadOK.Set(0)
		r.logger.Warn("reloading Prometheus failed; retrying", "retry_interval", r.opts.RetryInterval, "err", err)
		select {
		case <-rctx.Done():
			if ctx.Err() == nil {
				r.logger.Error("Prometheus not reloaded within the watch interval; trying again at the next pass",
					"watch_interval", r.opts.WatchInterval)
			}
			return
		case <-time.After(r.opts.RetryInterval):
		}
		if now, err := r.read(); err != nil || !bytes.Equal(now, in) {
			r.logger.Info("config or rules changed while retrying the reload; taking the new ones")
			return
		}
	}
}

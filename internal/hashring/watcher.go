package hashring

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vigilhq/vigil/internal/filewatch"
)

// pollInterval is how often the watcher looks for a changed file between
// forced re-reads. Polling content (not fsnotify) also catches the symlink
// swaps Kubernetes uses to update mounted ConfigMaps.
const pollInterval = time.Second

// Watcher keeps a Ring in sync with a hashrings file.
type Watcher struct {
	path             string
	interval         time.Duration
	defaultAlgorithm string
	logger           *slog.Logger

	ring atomic.Pointer[Ring]
	// loaded is the content hash behind ring; initial is the content read at start.
	// filewatch reports a broken file once per change (and again at each forced
	// re-read), not once per poll.
	loaded  [sha256.Size]byte
	initial []byte

	errors      prometheus.Counter
	changes     prometheus.Counter
	lastSuccess prometheus.Gauge
	successful  prometheus.Gauge
}

// NewWatcher reads the hashrings file at path once and fails if it is invalid.
// interval is the period of forced re-reads (the refresh-interval flag); the
// file is also polled for changes every second. logger and reg may be nil.
func NewWatcher(path string, interval time.Duration, defaultAlgorithm string, logger *slog.Logger, reg prometheus.Registerer) (*Watcher, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("hashrings file refresh interval must be positive, got %s", interval)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	w := &Watcher{
		path:             path,
		interval:         interval,
		defaultAlgorithm: defaultAlgorithm,
		logger:           logger,
		errors: f.NewCounter(prometheus.CounterOpts{Name: "vigil_receive_hashrings_file_errors_total",
			Help: "Reads of the hashrings file that failed or found an invalid config."}),
		changes: f.NewCounter(prometheus.CounterOpts{Name: "vigil_receive_hashrings_file_changes_total",
			Help: "Times a changed, valid hashrings file was loaded."}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{Name: "vigil_receive_hashrings_file_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful read of the hashrings file."}),
		successful: f.NewGauge(prometheus.GaugeOpts{Name: "vigil_receive_hashrings_file_last_reload_successful",
			Help: "1 if the last read of the hashrings file gave a valid config, else 0."}),
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading hashrings file: %w", err)
	}
	ring, err := w.parse(data)
	if err != nil {
		return nil, err
	}
	w.ring.Store(ring)
	w.loaded, w.initial = sha256.Sum256(data), data
	w.successful.Set(1)
	w.lastSuccess.SetToCurrentTime()
	return w, nil
}

// Ring returns the ring of the last valid file.
func (w *Watcher) Ring() *Ring {
	return w.ring.Load()
}

// Run watches the file until ctx is done, calling onChange (from Run's
// goroutine) with each new valid ring; the initial ring is not passed, read it
// with Ring. A missing or invalid file keeps the current ring. Call Run once.
func (w *Watcher) Run(ctx context.Context, onChange func(*Ring)) {
	filewatch.Watch(ctx, filewatch.Options{Path: w.path, Poll: min(pollInterval, w.interval), Refresh: w.interval, Initial: w.initial},
		func(data []byte, err error) {
			if err != nil {
				w.fail(fmt.Errorf("reading hashrings file: %w", err))
				return
			}
			w.apply(data, onChange)
		})
}

// apply swaps the ring for the file's new content if it is valid.
func (w *Watcher) apply(data []byte, onChange func(*Ring)) {
	sum := sha256.Sum256(data)
	if sum == w.loaded {
		w.succeed()
		return
	}
	ring, err := w.parse(data)
	if err != nil {
		w.fail(err)
		return
	}
	w.ring.Store(ring)
	w.loaded = sum
	w.changes.Inc()
	w.succeed()
	w.logger.Info("loaded changed hashrings file", "path", w.path, "endpoints", len(ring.Endpoints()))
	if onChange != nil {
		onChange(ring)
	}
}

// parse turns file content into a Ring.
func (w *Watcher) parse(data []byte) (*Ring, error) {
	cfgs, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("hashrings file %s: %w", w.path, err)
	}
	ring, err := New(cfgs, w.defaultAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("hashrings file %s: %w", w.path, err)
	}
	return ring, nil
}

func (w *Watcher) succeed() {
	w.successful.Set(1)
	w.lastSuccess.SetToCurrentTime()
}

func (w *Watcher) fail(err error) {
	w.errors.Inc()
	w.successful.Set(0)
	w.logger.Error("hashrings file is invalid, keeping the current hashrings", "path", w.path, "err", err)
}

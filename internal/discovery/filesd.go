package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v2"
)

// watchDebounce is how long FileSD waits after a file system event for more
// events before re-reading, so that a file written in several steps is read
// once, complete.
const watchDebounce = 100 * time.Millisecond

// targetGroup is one entry of a Prometheus file SD file. Labels are parsed
// (so malformed ones are reported) but not used.
type targetGroup struct {
	Targets []string          `json:"targets" yaml:"targets"`
	Labels  map[string]string `json:"labels" yaml:"labels"`
}

// FileSD reads endpoint specs from files in the Prometheus file SD format: a
// JSON (*.json) or YAML (any other extension) list of {targets, labels}
// groups. Targets are endpoint specs and may carry DNS prefixes; labels are
// ignored. A file name may be a glob pattern, as in Thanos.
//
// A file that cannot be read or parsed, or that holds an invalid target, keeps
// its last good targets and the error names the file. Files that stop matching
// a glob pattern are dropped.
type FileSD struct {
	patterns     []string
	interval     time.Duration
	logger       *slog.Logger
	reads        prometheus.Counter
	readFailures prometheus.Counter

	refreshMu sync.Mutex // serialises refresh

	mu      sync.Mutex          // guards the fields below
	perFile map[string][]string // file path -> last good targets
	targets []string            // sorted union of perFile
	loaded  bool                // at least one refresh happened
}

// NewFileSD returns a FileSD for the given files (or glob patterns), re-read
// every interval by Run (never, if interval <= 0) and whenever they change.
// Its metrics, vigil_sd_file_reads_total and vigil_sd_file_read_failures_total,
// are registered on reg unless reg is nil.
func NewFileSD(files []string, interval time.Duration, logger *slog.Logger, reg prometheus.Registerer) *FileSD {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FileSD{
		patterns: slices.Clone(files),
		interval: interval,
		logger:   logger,
		reads: newCounter(reg, "vigil_sd_file_reads_total",
			"Number of endpoint SD file reads."),
		readFailures: newCounter(reg, "vigil_sd_file_read_failures_total",
			"Number of endpoint SD file reads that failed to read or parse."),
		perFile: make(map[string][]string),
	}
}

// Targets returns the current targets of all files: sorted, de-duplicated
// endpoint specs, possibly with DNS prefixes.
func (f *FileSD) Targets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.targets)
}

// Refresh reads all files once. The returned error joins the errors of every
// file that failed; those files keep their previous targets.
func (f *FileSD) Refresh(ctx context.Context) error {
	_, err := f.refresh(ctx)
	return err
}

// Run watches the files' directories and re-reads the files on changes and
// every interval, until ctx is done; then it returns nil. It reads the files
// once at start. onChange (if non-nil) is called, from Run's goroutine, each
// time a read changes Targets, and after the very first read of the files. Errors are logged; the files' previous targets
// are kept. If watching is impossible, Run relies on the periodic re-reads.
func (f *FileSD) Run(ctx context.Context, onChange func()) error {
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if w := f.newWatcher(); w != nil {
		defer w.Close()
		events, watchErrs = w.Events, w.Errors
	}

	wasLoaded := f.isLoaded()
	// Read after the watch is set up, so that no change is missed. If Refresh
	// already reported errors to the caller, only log them at debug level.
	update := func(quiet bool) {
		changed, err := f.refresh(ctx)
		if err != nil && ctx.Err() == nil {
			lvl := slog.LevelError
			if quiet {
				lvl = slog.LevelDebug
			}
			f.logger.Log(ctx, lvl, "reading SD files failed; keeping their last good targets", "err", err)
		}
		if changed && onChange != nil {
			onChange()
		}
	}
	update(wasLoaded)

	var tick <-chan time.Time
	if f.interval > 0 {
		t := time.NewTicker(f.interval)
		defer t.Stop()
		tick = t.C
	}
	var debounce <-chan time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			update(false)
		case <-debounce:
			debounce = nil
			update(false)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(watchDebounce)
			} else {
				timer.Reset(watchDebounce)
			}
			debounce = timer.C
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			f.logger.Warn("watching SD files failed; relying on periodic re-reads", "err", err)
		}
	}
}

func (f *FileSD) isLoaded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loaded
}

// newWatcher returns a watcher on the directories of all patterns (watching
// directories catches files replaced by rename or symlink swaps), or nil.
func (f *FileSD) newWatcher() *fsnotify.Watcher {
	if len(f.patterns) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		f.logger.Warn("cannot watch SD files; relying on periodic re-reads", "err", err)
		return nil
	}
	watched := make(map[string]bool)
	for _, p := range f.patterns {
		dir := filepath.Dir(p)
		if watched[dir] {
			continue
		}
		watched[dir] = true
		if err := w.Add(dir); err != nil {
			f.logger.Warn("cannot watch SD file directory; relying on periodic re-reads", "dir", dir, "err", err)
		}
	}
	return w
}

// refresh reads all files and reports whether Targets changed. The first
// refresh always counts as a change.
func (f *FileSD) refresh(ctx context.Context) (bool, error) {
	f.refreshMu.Lock()
	defer f.refreshMu.Unlock()
	if err := ctx.Err(); err != nil {
		return false, err
	}

	f.mu.Lock()
	prev := f.perFile
	f.mu.Unlock()

	next := make(map[string][]string)
	var errs []error
	for _, pattern := range f.patterns {
		paths, err := expand(pattern)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, path := range paths {
			if _, done := next[path]; done {
				continue
			}
			targets, err := f.readFile(path)
			if err != nil {
				errs = append(errs, err)
				if old, ok := prev[path]; ok {
					next[path] = old
				}
				continue
			}
			next[path] = targets
		}
	}

	var union []string
	for _, ts := range next {
		union = append(union, ts...)
	}
	slices.Sort(union)
	union = slices.Compact(union)

	f.mu.Lock()
	changed := !f.loaded || !slices.Equal(union, f.targets)
	f.perFile, f.targets, f.loaded = next, union, true
	f.mu.Unlock()
	return changed, errors.Join(errs...)
}

// expand returns the files a pattern names. A pattern without glob
// meta-characters names one file, which must exist.
func expand(pattern string) ([]string, error) {
	if !strings.ContainsAny(pattern, `*?[\`) {
		return []string{pattern}, nil
	}
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("SD file pattern %q: %w", pattern, err)
	}
	return paths, nil
}

func (f *FileSD) readFile(path string) ([]string, error) {
	f.reads.Inc()
	data, err := os.ReadFile(path)
	if err == nil {
		var targets []string
		if targets, err = parseSDFile(path, data); err == nil {
			return targets, nil
		}
	}
	f.readFailures.Inc()
	return nil, fmt.Errorf("SD file %s: %w", path, err)
}

// parseSDFile parses a file SD file as JSON if its name ends in .json and as
// YAML otherwise (unknown fields are errors in YAML, as in Prometheus), and
// validates every target.
func parseSDFile(path string, data []byte) ([]string, error) {
	var groups []targetGroup
	if strings.EqualFold(filepath.Ext(path), ".json") {
		if err := json.Unmarshal(data, &groups); err != nil {
			return nil, fmt.Errorf("parse JSON: %w", err)
		}
	} else if err := yaml.UnmarshalStrict(data, &groups); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	var targets []string
	for i, g := range groups {
		for _, t := range g.Targets {
			if err := ValidateSpec(t); err != nil {
				return nil, fmt.Errorf("group %d: %w", i, err)
			}
			targets = append(targets, t)
		}
	}
	return targets, nil
}

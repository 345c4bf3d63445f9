// Package filewatch follows a configuration file that may be rewritten while a component
// runs (hashrings, limits, rules). It polls the content rather than waiting for file
// system events: polling also sees the symlink swaps Kubernetes uses to update a mounted
// ConfigMap, and costs one small read per poll.
package filewatch

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// Options configure Watch.
type Options struct {
	// Path is the file to follow.
	Path string
	// Poll is how often the content is compared with the last one seen; 1s when 0.
	Poll time.Duration
	// Refresh, when positive, hands the content over again this often even if it did
	// not change, so that a file that is still broken is reported again.
	Refresh time.Duration
	// Initial is the content the caller already applied, if any.
	Initial []byte
	// Read, when set, replaces reading Path: its result is what is compared and handed
	// over. It lets a caller follow several files as one content (the reloader follows a
	// config file plus a digest of rule directories).
	Read func() ([]byte, error)
}

// Watch calls apply from its own goroutine until ctx is done: with the file's content
// each time it differs from the last content seen (and at every Refresh), and with the
// read error when the file cannot be read (once per run of failures, and at every
// Refresh). apply decides what is valid; a content it refuses is not offered again until
// it changes or Refresh comes round.
func Watch(ctx context.Context, opts Options, apply func(content []byte, err error)) {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	poll := time.NewTicker(opts.Poll)
	defer poll.Stop()
	var force <-chan time.Time
	if opts.Refresh > 0 {
		t := time.NewTicker(opts.Refresh)
		defer t.Stop()
		force = t.C
	}
	read := opts.Read
	if read == nil {
		read = func() ([]byte, error) { return os.ReadFile(opts.Path) }
	}
	seen := sha256.Sum256(opts.Initial)
	readFailed := false
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-force:
			forced = true
		}
		b, err := read()
		if err != nil {
			if !readFailed || forced {
				apply(nil, err)
			}
			readFailed = true
			continue
		}
		sum := sha256.Sum256(b)
		if sum == seen && !readFailed && !forced {
			continue
		}
		seen, readFailed = sum, false
		apply(b, nil)
	}
}

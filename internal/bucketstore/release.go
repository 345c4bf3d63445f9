package bucketstore

import (
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// After a Series call the memory it used is garbage: the Go runtime keeps it (and the
// heap goal the call raised) until a later collection, and gives the pages back to the
// operating system only slowly. A store that answered one large query would so stay at
// its peak RSS for minutes while holding nothing. The releaser collects and returns that
// memory once the store has been idle for a moment after calls that held enough to
// matter; what stays is what the index cache holds, plus the blocks' index readers.
const (
	// releaseIdle is how long no Series call may run before memory is released.
	releaseIdle = 500 * time.Millisecond
	// releaseAfter is how many bytes Series calls must have held (summed over their
	// batches) since the last release for another to be worth a collection.
	releaseAfter = 32 << 20
)

type releaser struct {
	enabled  bool
	mu       sync.Mutex
	active   int    // Series calls running
	gen      uint64 // bumped when a call starts
	held     int64  // batch bytes taken by calls since the last release
	timer    *time.Timer
	releases prometheus.Counter
	free     func() // debug.FreeOSMemory; tests count calls instead
	idle     time.Duration
	after    int64
}

func newReleaser(enabled bool, reg prometheus.Registerer) *releaser {
	r := &releaser{enabled: enabled, free: debug.FreeOSMemory, idle: releaseIdle, after: releaseAfter,
		releases: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_store_memory_releases_total",
			Help: "Times the store, idle after Series calls, collected garbage and returned free memory to the operating system."})}
	if reg != nil {
		reg.MustRegister(r.releases)
	}
	return r
}

// start notes a Series call starting.
func (r *releaser) start() {
	r.mu.Lock()
	r.active++
	r.gen++
	r.mu.Unlock()
}

// done notes a Series call ending after it took held batch bytes in all.
func (r *releaser) done(held int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active--
	r.held += held
	r.schedule()
}

// schedule arms the timer when the store is idle and enough was held; r.mu is held.
func (r *releaser) schedule() {
	if !r.enabled || r.active > 0 || r.held < r.after || r.timer != nil {
		return
	}
	gen := r.gen
	r.timer = time.AfterFunc(r.idle, func() { r.fire(gen) })
}

func (r *releaser) fire(gen uint64) {
	r.mu.Lock()
	r.timer = nil
	if r.active > 0 {
		r.mu.Unlock() // busy again: the end of the call schedules the release anew
		return
	}
	if r.gen != gen {
		r.schedule() // calls came and went meanwhile: wait for a full idle period
		r.mu.Unlock()
		return
	}
	r.held = 0
	free := r.free
	r.mu.Unlock()
	free()
	r.releases.Inc()
}

// configure replaces the idle time, the threshold and the release function (tests).
func (r *releaser) configure(idle time.Duration, after int64, free func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle, r.after, r.free = idle, after, free
}

// stop cancels a pending release.
func (r *releaser) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.enabled = false
}

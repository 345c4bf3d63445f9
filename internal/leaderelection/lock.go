package leaderelection

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// guardedLock wraps the Lease lock of one term of client-go's elector. It notes when the
// last renewal that the other replicas can see was sent, so that the term can stop its
// work by its own deadline, and it holds back the release of the lease until the work
// has returned.
//
// A follower restarts its lease-duration wait only when the record it reads differs from
// the one it saw before, and client-go compares records with their times in whole
// seconds: a renewal in the same second as the previous one goes unnoticed. So the
// renewal that counts is the first write of each distinct record.
//
// client-go releases the lease (ReleaseOnCancel) as soon as its renew loop ends, before it
// cancels the leader's context, and without waiting for the work: passed through, a
// release could let a follower start while this process still works. client-go also
// decides whether to release from the holder it saw last, not from the lease it has just
// read: late in a partition that could empty a lease another replica has taken over
// meanwhile, and let a third one (or this one, campaigning again) start while the new
// holder still works.
type guardedLock struct {
	rl.Interface
	onRenew func(sent time.Time)

	mu       sync.Mutex
	read     string    // holder of the lease as last read
	written  string    // the last record written, as followers compare it
	renewed  time.Time // send time of the first successful write of that record
	stopWork func()    // cancels the work; set while it runs
	stopped  chan struct{}
	once     sync.Once
}

func newGuardedLock(l rl.Interface, onRenew func(time.Time)) *guardedLock {
	return &guardedLock{Interface: l, onRenew: onRenew, stopped: make(chan struct{})}
}

// Get reads the lease and notes its holder.
func (l *guardedLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	if err == nil {
		l.mu.Lock()
		l.read = rec.HolderIdentity
		l.mu.Unlock()
	}
	return rec, raw, err
}

// Create creates the lease; client-go does so only to acquire it.
func (l *guardedLock) Create(ctx context.Context, rec rl.LeaderElectionRecord) error {
	return l.write(ctx, rec, l.Interface.Create)
}

// Update acquires, renews or (with an empty holder) releases the lease. A release first
// asks the work to stop and waits until it has returned; it only empties a lease that
// was read (just before, by client-go) with this process as its holder. The write itself
// carries the resource version of that read, so a lease changed since then is not
// touched.
func (l *guardedLock) Update(ctx context.Context, rec rl.LeaderElectionRecord) error {
	if rec.HolderIdentity == "" {
		l.mu.Lock()
		stop := l.stopWork
		l.mu.Unlock()
		if stop != nil {
			stop()
		}
		select {
		case <-l.stopped:
		case <-ctx.Done():
			return ctx.Err() // the lease expires on its own instead
		}
		l.mu.Lock()
		ours := l.read == l.Identity()
		l.mu.Unlock()
		if !ours {
			return nil // another replica holds it now: nothing of ours to release
		}
	}
	return l.write(ctx, rec, l.Interface.Update)
}

func (l *guardedLock) write(ctx context.Context, rec rl.LeaderElectionRecord, op func(context.Context, rl.LeaderElectionRecord) error) error {
	// The lease runs from when the API server stored the write, which is after it was
	// sent: measuring from the send time errs on the safe side.
	sent := time.Now()
	if err := op(ctx, rec); err != nil {
		return err
	}
	if rec.HolderIdentity != l.Identity() {
		return nil
	}
	// What client-go's Get returns to the followers, who compare it byte for byte.
	key, err := json.Marshal(rec)
	if err != nil {
		return nil // cannot happen; then this renewal does not count
	}
	l.mu.Lock()
	seen := string(key) == l.written
	if !seen {
		l.written, l.renewed = string(key), sent
	}
	l.mu.Unlock()
	if !seen {
		l.onRenew(sent)
	}
	return nil
}

// lastRenewal is when the last acquisition or renewal that followers can tell apart from
// the previous one was sent.
func (l *guardedLock) lastRenewal() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed
}

// working registers the function that cancels the work of this term.
func (l *guardedLock) working(stop func()) {
	l.mu.Lock()
	l.stopWork = stop
	l.mu.Unlock()
}

// workStopped lets releases through: the work has returned, or never started.
func (l *guardedLock) workStopped() { l.once.Do(func() { close(l.stopped) }) }

// watch calls expire once deadline has passed since the last renewal without a newer
// one, then returns; it also returns when ctx is done.
func (l *guardedLock) watch(ctx context.Context, deadline time.Duration, expire func()) {
	t := time.NewTimer(time.Until(l.lastRenewal().Add(deadline)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		left := time.Until(l.lastRenewal().Add(deadline))
		if left <= 0 {
			expire()
			return
		}
		t.Reset(left)
	}
}

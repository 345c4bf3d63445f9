package leaderelection

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// recordingLock is a resource lock holding one record in memory.
type recordingLock struct {
	mu      sync.Mutex
	rec     rl.LeaderElectionRecord
	updates []rl.LeaderElectionRecord
}

func (l *recordingLock) Get(context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rec
	return &r, []byte(r.HolderIdentity), nil
}

func (l *recordingLock) Create(ctx context.Context, r rl.LeaderElectionRecord) error {
	return l.Update(ctx, r)
}

func (l *recordingLock) Update(_ context.Context, r rl.LeaderElectionRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec = r
	l.updates = append(l.updates, r)
	return nil
}

func (l *recordingLock) RecordEvent(string) {}
func (l *recordingLock) Identity() string   { return "a" }
func (l *recordingLock) Describe() string   { return "default/test" }
func (l *recordingLock) count() int         { l.mu.Lock(); defer l.mu.Unlock(); return len(l.updates) }
func (l *recordingLock) holder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.HolderIdentity
}
func (l *recordingLock) set(holder string) { l.mu.Lock(); l.rec.HolderIdentity = holder; l.mu.Unlock() }

// A release waits for the work, stops it first, and never empties a lease that another
// replica holds by the time it is read.
func TestGuardedLockRelease(t *testing.T) {
	inner := &recordingLock{}
	var renewals []time.Time
	l := newGuardedLock(inner, func(at time.Time) { renewals = append(renewals, at) })
	ctx := context.Background()
	if err := l.Create(ctx, rl.LeaderElectionRecord{HolderIdentity: "a"}); err != nil {
		t.Fatal(err)
	}
	if len(renewals) != 1 || l.lastRenewal().IsZero() {
		t.Fatalf("acquisition not noted as a renewal: %v", renewals)
	}
	stopped := make(chan struct{})
	var once sync.Once
	l.working(func() { once.Do(func() { close(stopped) }) }) // like a context's cancel

	// The release stops the work and waits for it to return.
	if _, _, err := l.Get(ctx); err != nil {
		t.Fatal(err)
	}
	released := make(chan error, 1)
	go func() { released <- l.Update(ctx, rl.LeaderElectionRecord{}) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("release did not stop the work")
	}
	time.Sleep(50 * time.Millisecond)
	if inner.holder() != "a" {
		t.Fatal("lease released before the work returned")
	}
	l.workStopped()
	if err := <-released; err != nil || inner.holder() != "" {
		t.Fatalf("release after the work returned: %v, holder %q", err, inner.holder())
	}

	// Another replica took the lease over: reading it shows b, so nothing is written.
	inner.set("b")
	n := inner.count()
	if _, _, err := l.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Update(ctx, rl.LeaderElectionRecord{}); err != nil || inner.count() != n || inner.holder() != "b" {
		t.Errorf("release of a lease held by b: err %v, %d writes, holder %q; want no write", err, inner.count()-n, inner.holder())
	}

	// A release that cannot wait for the work any longer gives up and writes nothing.
	l2 := newGuardedLock(&recordingLock{rec: rl.LeaderElectionRecord{HolderIdentity: "a"}}, func(time.Time) {})
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := l2.Update(tctx, rl.LeaderElectionRecord{}); err == nil {
		t.Error("release while the work runs succeeded after its context ended")
	}
}

// renewal is a record as client-go writes it, renewed at the given time.
func renewal(at time.Time) rl.LeaderElectionRecord {
	return rl.LeaderElectionRecord{HolderIdentity: "a", LeaseDurationSeconds: 3, RenewTime: metav1.NewTime(at)}
}

func TestGuardedLockWatch(t *testing.T) {
	l := newGuardedLock(&recordingLock{}, func(time.Time) {})
	ctx := context.Background()
	start := time.Now()
	base := start.Truncate(time.Second)
	if err := l.Update(ctx, renewal(base)); err != nil {
		t.Fatal(err)
	}
	expired := make(chan time.Time, 1)
	go l.watch(ctx, 300*time.Millisecond, func() { expired <- time.Now() })
	// Renewals every 100ms, each one a second later by the record, push the deadline on.
	for i := range 5 {
		time.Sleep(100 * time.Millisecond)
		if err := l.Update(ctx, renewal(base.Add(time.Duration(i+1)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	last := l.lastRenewal()
	select {
	case at := <-expired:
		if at.Sub(last) < 300*time.Millisecond-time.Millisecond || at.Sub(last) > 400*time.Millisecond {
			t.Errorf("expired %s after the last renewal, want at the 300ms deadline", at.Sub(last))
		}
		if at.Sub(start) < 700*time.Millisecond {
			t.Errorf("expired %s after start although renewals continued until 500ms", at.Sub(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not expire")
	}
}

// A renewal that followers cannot tell from the previous one (the same record to the
// second) does not move the deadline: a follower may be counting from the earlier one.
func TestGuardedLockSameSecondRenewal(t *testing.T) {
	var noted []time.Time
	l := newGuardedLock(&recordingLock{}, func(at time.Time) { noted = append(noted, at) })
	ctx := context.Background()
	sec := time.Now().Truncate(time.Second)
	if err := l.Update(ctx, renewal(sec.Add(100*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	first := l.lastRenewal()
	time.Sleep(10 * time.Millisecond)
	if err := l.Update(ctx, renewal(sec.Add(600*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	if !l.lastRenewal().Equal(first) || len(noted) != 1 {
		t.Errorf("a renewal within the same second moved the last renewal from %s to %s", first, l.lastRenewal())
	}
	if err := l.Update(ctx, renewal(sec.Add(1100*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	if !l.lastRenewal().After(first) || len(noted) != 2 {
		t.Error("a renewal in the next second did not count")
	}
}

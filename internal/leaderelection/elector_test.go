package leaderelection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Test timings: a follower takes over 3s after the last renewal it saw; the leader stops
// working 1.5s after its last renewal.
const (
	testLease    = 3 * time.Second
	testDeadline = 1500 * time.Millisecond
	testRetry    = 100 * time.Millisecond
)

// fakeAPI is a fake clientset whose Lease updates check the resource version, as the API
// server does (the plain fake accepts any update, so two candidates could both win), and
// whose writes for one holder can be made to fail.
type fakeAPI struct {
	cs      *fake.Clientset
	failFor atomic.Pointer[string] // holder whose lease writes (and releases) fail
	writes  atomic.Int64
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	api := &fakeAPI{cs: fake.NewClientset()}
	gvr := coordinationv1.SchemeGroupVersion.WithResource("leases")
	api.cs.PrependReactor("*", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		var lease *coordinationv1.Lease
		switch a := a.(type) {
		case k8stesting.CreateAction:
			lease = a.GetObject().(*coordinationv1.Lease)
		case k8stesting.UpdateAction:
			lease = a.GetObject().(*coordinationv1.Lease)
		default:
			return false, nil, nil
		}
		if id := api.failFor.Load(); id != nil && lease.Spec.HolderIdentity != nil && (*lease.Spec.HolderIdentity == *id || *lease.Spec.HolderIdentity == "") {
			return true, nil, errors.New("injected failure: API server unreachable")
		}
		api.writes.Add(1)
		if a.GetVerb() == "create" {
			lease.ResourceVersion = "1"
			return false, nil, nil // the tracker stores it, or says it exists
		}
		cur, err := api.cs.Tracker().Get(gvr, lease.Namespace, lease.Name)
		if err != nil {
			return true, nil, err
		}
		have := cur.(*coordinationv1.Lease).ResourceVersion
		if have != lease.ResourceVersion {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, lease.Name,
				fmt.Errorf("resource version %s, object has %s", lease.ResourceVersion, have))
		}
		n, _ := strconv.Atoi(have)
		lease.ResourceVersion = strconv.Itoa(n + 1)
		return false, nil, nil
	})
	return api
}

// holder is the lease's current holder ("" when released or absent).
func (api *fakeAPI) holder(t *testing.T) string {
	t.Helper()
	l, err := api.cs.CoordinationV1().Leases("default").Get(context.Background(), "test", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// candidate is one elector running a test work function.
type candidate struct {
	id      string
	e       *Elector
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run returned
	err     error         // what Run returned, once done is closed
	stopFor time.Duration // how long work takes to return once its context ends

	mu     sync.Mutex
	starts []time.Time // when work started, per term
	ends   []time.Time // when work's context ended
	rets   []time.Time // when work returned
}

// activeWork counts the candidates whose work runs, across a test.
type activeWork struct {
	n, max atomic.Int64
}

func startCandidate(t *testing.T, api *fakeAPI, id string, active *activeWork, work func(ctx context.Context) error) *candidate {
	t.Helper()
	c := &candidate{id: id, reg: prometheus.NewRegistry(), done: make(chan struct{}), stopFor: 100 * time.Millisecond}
	cfg := Config{Enabled: true, LeaseName: "test", Namespace: "default", Identity: id,
		LeaseDuration: testLease, RenewDeadline: testDeadline, RetryPeriod: testRetry}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e, err := newElector(cfg, api.cs.CoordinationV1(), logger.With("candidate", id), c.reg, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	c.e = e
	if work == nil {
		work = c.defaultWork(active)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		c.err = e.Run(ctx, work)
		close(c.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Run did not return after shutdown", id)
		}
	})
	return c
}

// defaultWork records its start, waits for its context, and takes stopFor to return.
func (c *candidate) defaultWork(active *activeWork) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		n := active.n.Add(1)
		for m := active.max.Load(); n > m && !active.max.CompareAndSwap(m, n); m = active.max.Load() {
		}
		c.mu.Lock()
		c.starts = append(c.starts, time.Now())
		c.mu.Unlock()
		<-ctx.Done()
		c.mu.Lock()
		c.ends = append(c.ends, time.Now())
		c.mu.Unlock()
		time.Sleep(c.stopFor)
		active.n.Add(-1)
		c.mu.Lock()
		c.rets = append(c.rets, time.Now())
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *candidate) terms() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.starts)
}

func (c *candidate) times() (starts, ends, rets []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.starts...), append([]time.Time(nil), c.ends...), append([]time.Time(nil), c.rets...)
}

// gauge reads a leader election metric of the candidate.
func (c *candidate) gauge(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := c.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s: no metric %s", c.id, name)
	return 0
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}

// leaderOf starts two candidates and returns (leader, follower) once one works.
func leaderOf(t *testing.T, api *fakeAPI, active *activeWork) (*candidate, *candidate) {
	t.Helper()
	a := startCandidate(t, api, "a", active, nil)
	b := startCandidate(t, api, "b", active, nil)
	waitFor(t, 5*time.Second, "a leader", func() bool { return a.terms()+b.terms() > 0 })
	if a.terms() > 0 {
		return a, b
	}
	return b, a
}

func TestOneOfTwoWorksAndShutdownHandsOver(t *testing.T) {
	api := newFakeAPI(t)
	var active activeWork
	leader, follower := leaderOf(t, api, &active)
	time.Sleep(3 * testLease) // many renewals; the follower must stay idle
	if follower.terms() != 0 || leader.terms() != 1 {
		t.Fatalf("terms: leader %d, follower %d; want 1 and 0", leader.terms(), follower.terms())
	}
	if got := api.holder(t); got != leader.id {
		t.Fatalf("lease held by %q, want %q", got, leader.id)
	}
	if leader.gauge(t, "vigil_leader_election_is_leader") != 1 || follower.gauge(t, "vigil_leader_election_is_leader") != 0 {
		t.Error("is_leader gauges do not say who leads")
	}
	if age := time.Since(time.Unix(0, int64(leader.gauge(t, "vigil_leader_election_last_renew_timestamp_seconds")*1e9))); age > testDeadline {
		t.Errorf("last renewal %s ago, want within the renew deadline", age)
	}

	// Shutdown: the work stops first (it takes 300ms); the lease is held meanwhile and
	// released afterwards, so the follower takes over at its next retry.
	leader.stopFor = 300 * time.Millisecond
	cancelled := time.Now()
	leader.cancel()
	time.Sleep(150 * time.Millisecond)
	if got := api.holder(t); got != leader.id {
		t.Errorf("lease held by %q while the leader's work was still stopping; want %q", got, leader.id)
	}
	if <-leader.done; leader.err != nil {
		t.Errorf("leader's Run at shutdown: %v", leader.err)
	}
	took := waitFor(t, testLease, "the follower to work", func() bool { return follower.terms() == 1 }).Sub(cancelled)
	t.Logf("handover after shutdown: %s (work stop 300ms, retry period %s)", took, testRetry)
	if took > 300*time.Millisecond+3*testRetry {
		t.Errorf("follower took over %s after shutdown began; want about the work's stop time plus a retry period", took)
	}
	if m := active.max.Load(); m != 1 {
		t.Errorf("%d works ran at once", m)
	}
	if leader.gauge(t, "vigil_leader_election_is_leader") != 0 || leader.gauge(t, "vigil_leader_election_transitions_total") != 1 {
		t.Error("old leader's gauges after shutdown: want is_leader 0 and one transition")
	}
}

// TestLossStopsWorkBeforeExpiry: the leader's lease writes fail; its work must be
// cancelled once the renew deadline has passed, and must have returned before the lease
// expires and before the follower starts. The old leader then campaigns again.
func TestLossStopsWorkBeforeExpiry(t *testing.T) {
	api := newFakeAPI(t)
	var active activeWork
	leader, follower := leaderOf(t, api, &active)
	leader.stopFor = time.Second // within lease − deadline = 1.5s
	time.Sleep(500 * time.Millisecond)
	api.failFor.Store(&leader.id)
	failedAt := time.Now()

	waitFor(t, 3*testLease, "the follower to work", func() bool { return follower.terms() == 1 })
	lastRenew := time.Unix(0, int64(leader.gauge(t, "vigil_leader_election_last_renew_timestamp_seconds")*1e9))
	_, ends, rets := leader.times()
	fstarts, _, _ := follower.times()
	if len(ends) != 1 || len(rets) != 1 {
		t.Fatalf("leader's work: %d cancellations, %d returns; want 1", len(ends), len(rets))
	}
	t.Logf("writes failing from %s after the last renewal; work cancelled %s after it, returned %s after it; "+
		"follower started %s after it, %s after the old leader's work returned (lease %s, deadline %s)", failedAt.Sub(lastRenew),
		ends[0].Sub(lastRenew), rets[0].Sub(lastRenew), fstarts[0].Sub(lastRenew), fstarts[0].Sub(rets[0]), testLease, testDeadline)
	if d := ends[0].Sub(lastRenew); d < testDeadline-50*time.Millisecond || d > testDeadline+testRetry {
		t.Errorf("work cancelled %s after the last renewal, want at the renew deadline %s", d, testDeadline)
	}
	if !rets[0].Before(lastRenew.Add(testLease)) {
		t.Errorf("work returned %s after the last renewal, not before the lease (%s) expired", rets[0].Sub(lastRenew), testLease)
	}
	if fstarts[0].Before(lastRenew.Add(testLease)) {
		t.Errorf("follower started %s after the last renewal counted, less than the lease duration: the deadline "+
			"must count from a renewal the follower saw", fstarts[0].Sub(lastRenew))
	}
	if !rets[0].Before(fstarts[0]) {
		t.Errorf("follower started %s before the old leader's work returned", rets[0].Sub(fstarts[0]))
	}
	if m := active.max.Load(); m != 1 {
		t.Errorf("%d works ran at once", m)
	}
	select {
	case <-leader.done:
		t.Fatalf("the old leader's Run returned (%v); it must campaign again", leader.err)
	default:
	}
	if leader.gauge(t, "vigil_leader_election_is_leader") != 0 {
		t.Error("old leader still reports is_leader 1")
	}

	// Writes work again: the old leader is a follower now, and takes over once the new
	// leader shuts down.
	api.failFor.Store(nil)
	time.Sleep(testLease)
	if leader.terms() != 1 {
		t.Errorf("old leader worked again while the other held the lease")
	}
	follower.cancel()
	waitFor(t, 2*testLease, "the old leader to lead again", func() bool { return leader.terms() == 2 })
	if m := active.max.Load(); m != 1 {
		t.Errorf("%d works ran at once", m)
	}
}

// A work error releases the lease and ends Run with the error; the other takes over.
func TestWorkErrorReleasesAndReturns(t *testing.T) {
	api := newFakeAPI(t)
	var active activeWork
	boom := errors.New("boom")
	fail := make(chan struct{})
	work := func(ctx context.Context) error {
		select {
		case <-fail:
			return boom
		case <-ctx.Done():
			return nil
		}
	}
	a := startCandidate(t, api, "a", &active, work)
	waitFor(t, 5*time.Second, "a to lead", func() bool { return api.holder(t) == "a" })
	b := startCandidate(t, api, "b", &active, nil)
	close(fail)
	select {
	case <-a.done:
		if !errors.Is(a.err, boom) {
			t.Errorf("Run returned %v, want the work's error", a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after work failed")
	}
	failed := time.Now()
	took := waitFor(t, testLease, "b to take over", func() bool { return b.terms() == 1 }).Sub(failed)
	t.Logf("b took over %s after a's work failed", took)
	if took > 3*testRetry {
		t.Errorf("takeover after a failure took %s: the lease was not released", took)
	}
}

// Without --leader-election.enabled the work runs at once and Run returns its result.
func TestDisabledRunsWork(t *testing.T) {
	e, err := New(Config{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := e.Run(context.Background(), func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Run = %v, want the work's error", err)
	}
}

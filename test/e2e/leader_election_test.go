package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// Leader election timings of these tests: the follower takes over 4s after the leader's
// last renewal; the leader stops working 3s after it, which leaves 1s for its work to stop.
const (
	leLease  = 4 * time.Second
	leRenew  = 3 * time.Second
	leRetry  = 500 * time.Millisecond
	leSample = 150 * time.Millisecond // how often the sampler reads both processes' /metrics
	// leTakeover bounds a takeover after the leader died: the lease duration, plus up to
	// two candidate retries (client-go waits 1 to 2.2 retry periods between them) to see
	// the last renewal and to acquire after expiry, plus sampling.
	leTakeover = leLease + 2*22*leRetry/10 + leSample + 200*time.Millisecond

	leIsLeader  = "vigil_leader_election_is_leader"
	leLastRenew = "vigil_leader_election_last_renew_timestamp_seconds"
)

// leaderElectionArgs are the flags of one elected replica.
func leaderElectionArgs(kubeconfig, lease, identity string) []string {
	return []string{"--leader-election.enabled", "--leader-election.kubeconfig=" + kubeconfig,
		"--leader-election.lease-name=" + lease, "--leader-election.identity=" + identity,
		"--leader-election.lease-duration=4s", "--leader-election.renew-deadline=3s", "--leader-election.retry-period=500ms"}
}

// proxiedKubeconfig writes a copy of k's kubeconfig that reaches the API server through addr.
func proxiedKubeconfig(t *testing.T, k *e2eutil.KubeAPIServer, addr string) string {
	t.Helper()
	b, err := os.ReadFile(k.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), k.URL, "https://"+addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// leState is what one read of a process's /metrics said.
type leState struct {
	at        time.Time
	up        bool    // /metrics answered
	leader    bool    // is_leader was 1
	work      float64 // the component's work counter
	lastRenew float64 // Unix seconds
}

// leSampler reads is_leader, the work counter and the last renewal of every process every
// leSample, from start to Stop.
type leSampler struct {
	procs   []*e2eutil.Vigil
	work    string
	mu      sync.Mutex
	samples [][]leState // per round, per process
	stop    chan struct{}
	done    chan struct{}
}

func startSampler(work string, procs ...*e2eutil.Vigil) *leSampler {
	s := &leSampler{procs: procs, work: work, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(leSample)
		defer t.Stop()
		for {
			round := make([]leState, len(procs))
			for i, p := range procs {
				round[i] = scrapeLE(p.HTTPURL, work)
			}
			s.mu.Lock()
			s.samples = append(s.samples, round)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func scrapeLE(base, work string) leState {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	code, body, err := e2eutil.HTTPGet(ctx, base+"/metrics")
	st := leState{at: time.Now()}
	if err != nil || code != 200 {
		return st
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return st
	}
	sum := func(name string) float64 {
		var v float64
		for _, m := range mfs[name].GetMetric() {
			v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
		return v
	}
	st.up, st.leader, st.work, st.lastRenew = true, sum(leIsLeader) == 1, sum(work), sum(leLastRenew)
	return st
}

// Stop ends sampling and returns every round.
func (s *leSampler) Stop() [][]leState {
	close(s.stop)
	<-s.done
	return s.snapshot()
}

func (s *leSampler) snapshot() [][]leState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]leState(nil), s.samples...)
}

// waitFor polls until process i of the latest round satisfies cond, and returns that state.
func (s *leSampler) waitFor(t *testing.T, timeout time.Duration, what string, i int, cond func(leState) bool) leState {
	t.Helper()
	var got leState
	e2eutil.Poll(t, timeout, 50*time.Millisecond, func() error {
		ss := s.snapshot()
		if len(ss) == 0 || !cond(ss[len(ss)-1][i]) {
			return fmt.Errorf("%s: not yet", what)
		}
		got = ss[len(ss)-1][i]
		return nil
	})
	return got
}

// leader returns the index of the process that leads in the latest round, or -1.
func (s *leSampler) leader() int {
	ss := s.snapshot()
	if len(ss) == 0 {
		return -1
	}
	for i, st := range ss[len(ss)-1] {
		if st.leader {
			return i
		}
	}
	return -1
}

// waitLeader waits until one of the processes leads and returns its index.
func (s *leSampler) waitLeader(t *testing.T) int {
	t.Helper()
	e2eutil.Poll(t, 20*time.Second, 50*time.Millisecond, func() error {
		if s.leader() < 0 {
			return fmt.Errorf("no leader yet")
		}
		return nil
	})
	return s.leader()
}

// startElectedRulers starts one ruler per name campaigning for lease, with args added,
// and waits until they are ready.
func startElectedRulers(t *testing.T, k *e2eutil.KubeAPIServer, lease string, names []string, args ...string) []*e2eutil.Vigil {
	t.Helper()
	var procs []*e2eutil.Vigil
	for _, name := range names {
		all := append([]string{"rule", "--data-dir=" + t.TempDir(), `--label=replica="` + name + `"`}, args...)
		procs = append(procs, e2eutil.StartVigil(t, append(all, leaderElectionArgs(k.Kubeconfig, lease, name)...)...))
	}
	for _, p := range procs {
		p.MustWaitReady(t)
	}
	return procs
}

// checkSamples asserts the safety properties over every round: never two leaders, and no
// process's work counter grows across two reads that both found it not leading.
func checkSamples(t *testing.T, rounds [][]leState, names []string) {
	t.Helper()
	for r, round := range rounds {
		var leaders []string
		for i, st := range round {
			if st.leader {
				leaders = append(leaders, names[i])
			}
			if r == 0 {
				continue
			}
			prev := rounds[r-1][i]
			if prev.up && st.up && !prev.leader && !st.leader && st.work > prev.work {
				t.Errorf("%s worked while not leader: work counter %v → %v between %s and %s", names[i], prev.work, st.work,
					prev.at.Format("15:04:05.000"), st.at.Format("15:04:05.000"))
			}
		}
		if len(leaders) > 1 {
			t.Errorf("two leaders at %s: %v", round[0].at.Format("15:04:05.000"), leaders)
		}
	}
	t.Logf("%d rounds of /metrics reads every %s: never two leaders, no work outside leadership", len(rounds), leSample)
}

// logElection logs the process's leadership changes as it logged them.
func logElection(t *testing.T, name string, p *e2eutil.Vigil) {
	t.Helper()
	for _, line := range strings.Split(p.Log(), "\n") {
		for _, msg := range []string{"became leader", "lost leadership", "stopped working", "leader observed"} {
			if strings.Contains(line, `msg="`+msg) {
				t.Logf("%s: %s", name, line)
			}
		}
	}
}

// lease reads the Lease: its holder and when the holder last renewed it (by its clock).
func lease(t *testing.T, k *e2eutil.KubeAPIServer, name string) (string, time.Time) {
	t.Helper()
	c, err := coordinationv1client.NewForConfig(k.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := c.Leases("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *l.Spec.HolderIdentity, l.Spec.RenewTime.Time
}

// killLeader reads the leader's last renewal that counts (its metric), SIGKILLs it, and
// reads the lease it left: held by name, renewed at written (by the leader's clock).
func killLeader(t *testing.T, k *e2eutil.KubeAPIServer, leader *e2eutil.Vigil, name, leaseName string) (killed, renewed, written time.Time) {
	t.Helper()
	renewed = unixTime(mustMetric(t, leader.HTTPURL, leLastRenew))
	killed = time.Now()
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	holder, written := lease(t, k, leaseName)
	if holder != name {
		t.Fatalf("lease held by %q after %s was killed, want %s", holder, name, name)
	}
	return killed, renewed, written
}

// checkTakeover checks when the follower took over after the leader died: within
// leTakeover of the kill, and not before a lease duration after the last renewal that
// counts (read before the kill: a later one only moves the bound on).
func checkTakeover(t *testing.T, killed, renewed, took time.Time) {
	t.Helper()
	if took.Sub(killed) > leTakeover {
		t.Errorf("takeover took %s after the kill, want within %s (lease duration, retries, sampling)", took.Sub(killed), leTakeover)
	}
	if took.Before(renewed.Add(leLease)) {
		t.Errorf("takeover %s after the last renewal: before the lease could have expired", took.Sub(renewed))
	}
}

func unixTime(sec float64) time.Time {
	return time.Unix(0, int64(math.Round(sec*1e9)))
}

// startElectedCompactor starts `vigil compact --wait` with leader election over cfg.
func startElectedCompactor(t *testing.T, cfg, kubeconfig, identity string) *e2eutil.Vigil {
	t.Helper()
	args := append(compactArgs(t, cfg), "--wait", "--wait-interval=1s")
	args = append(args, leaderElectionArgs(kubeconfig, "vigil-compact", identity)...)
	v := e2eutil.StartVigilWith(t, e2eutil.VigilOptions{Args: args, NoGRPC: true})
	v.MustWaitReady(t) // a follower is ready too
	return v
}

// compactionBucket uploads 20h of an HA pair (10 2h blocks per replica) under prefix and
// returns the objstore config and the ids of the uploaded blocks.
func compactionBucket(t *testing.T, m *e2eutil.MinIO, prefix string) (string, map[ulid.ULID]bool) {
	t.Helper()
	start, _ := compactWindow()
	dirs, _ := writeCompactBlocks(t, t.TempDir(), start, start+10*compactBlockMS)
	cfg := uploadCompactBlocks(t, m, prefix, dirs)
	ids := map[ulid.ULID]bool{}
	for _, b := range listBucketBlocks(t, m, prefix) {
		ids[b.id] = true
	}
	return cfg, ids
}

// checkCompactedOnce checks the bucket after compaction: the visible blocks are compacted
// and deduplicated, do not overlap, and hold every uploaded block exactly once.
func checkCompactedOnce(t *testing.T, bs []bucketBlock, uploaded map[ulid.ULID]bool) {
	t.Helper()
	seen := map[ulid.ULID]ulid.ULID{}
	compacted := 0
	for _, b := range bs {
		if !b.visible() {
			continue
		}
		if _, ok := b.meta.Thanos.Labels["replica"]; ok {
			t.Errorf("visible block %s still has the replica label", b.id)
		}
		if b.meta.Compaction.Level > 1 {
			compacted++
		}
		for _, src := range b.meta.Compaction.Sources {
			if other, ok := seen[src]; ok {
				t.Errorf("uploaded block %s is in two visible blocks, %s and %s", src, other, b.id)
			}
			seen[src] = b.id
		}
	}
	for id := range uploaded {
		if _, ok := seen[id]; !ok {
			t.Errorf("uploaded block %s is in no visible block", id)
		}
	}
	if compacted == 0 {
		t.Error("no visible compacted block")
	}
	for _, o := range overlaps(bs) {
		t.Error(o)
	}
	if t.Failed() {
		t.Logf("bucket:\n%s", describeBlocks(bs))
	}
}

// TestLeaderElectionCompactTakeover: two compactors with leader election over one bucket.
// Exactly one works; when it is killed (SIGKILL, no release), the other takes over within
// the lease duration and finds nothing left to compact.
func TestLeaderElectionCompactTakeover(t *testing.T) {
	k := e2eutil.StartKubeAPIServer(t)
	m := e2eutil.StartMinIO(t)
	cfg, uploaded := compactionBucket(t, m, "takeover")
	procs := []*e2eutil.Vigil{startElectedCompactor(t, cfg, k.Kubeconfig, "compact-0"), startElectedCompactor(t, cfg, k.Kubeconfig, "compact-1")}
	names := []string{"compact-0", "compact-1"}
	s := startSampler("vigil_compact_iterations_total", procs...)
	li := s.waitLeader(t)
	leader, follower := procs[li], procs[1-li]
	t.Logf("%s leads", names[li])
	e2eutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() error {
		if v, _, err := metricValue(leader.HTTPURL, "vigil_compact_last_successful_iteration_timestamp_seconds"); err != nil || v == 0 {
			return fmt.Errorf("no successful iteration of the leader yet (%v)", err)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // more iterations and renewals; the follower stays idle
	compactions, _, err := metricValue(leader.HTTPURL, "vigil_compact_compactions_total")
	if err != nil {
		t.Fatal(err)
	}
	killed, renewed, written := killLeader(t, k, leader, names[li], "vigil-compact")
	took := s.waitFor(t, 3*leLease, "takeover", 1-li, func(st leState) bool { return st.leader }).at
	t.Logf("takeover: %s became leader %s after the SIGKILL; %s after the old leader's last renewal counted "+
		"(%s after the last one written; lease %s, retry %s)", names[1-li], took.Sub(killed).Round(time.Millisecond),
		took.Sub(renewed).Round(time.Millisecond), took.Sub(written).Round(time.Millisecond), leLease, leRetry)
	checkTakeover(t, killed, renewed, took)
	e2eutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() error {
		if v, _, err := metricValue(follower.HTTPURL, "vigil_compact_last_successful_iteration_timestamp_seconds"); err != nil || v == 0 {
			return fmt.Errorf("no successful iteration of the new leader yet (%v)", err)
		}
		return nil
	})
	checkSamples(t, s.Stop(), names)
	if n, _, err := metricValue(follower.HTTPURL, "vigil_compact_compactions_total"); err != nil || n != 0 || compactions == 0 {
		t.Errorf("compactions: %v by the first leader, %v by the second; want all by the first (compaction done once)", compactions, n)
	}
	checkCompactedOnce(t, listBucketBlocks(t, m, "takeover"), uploaded)
}

// TestLeaderElectionCompactPartition: the leading compactor loses its connection to the
// API server (a proxy drops every byte). It must stop working (is_leader 0) before its
// lease can expire, hence before the other compactor becomes leader; it campaigns again
// and takes over once the other dies.
func TestLeaderElectionCompactPartition(t *testing.T) {
	k := e2eutil.StartKubeAPIServer(t)
	proxy := e2eutil.StartTCPProxy(t, strings.TrimPrefix(k.URL, "https://"))
	m := e2eutil.StartMinIO(t)
	cfg, uploaded := compactionBucket(t, m, "partition")
	a := startElectedCompactor(t, cfg, proxiedKubeconfig(t, k, proxy.Addr), "compact-a")
	s := startSampler("vigil_compact_iterations_total", a)
	s.waitFor(t, 20*time.Second, "compact-a to lead", 0, func(st leState) bool { return st.leader })
	b := startElectedCompactor(t, cfg, k.Kubeconfig, "compact-b")
	checkSamples(t, s.Stop(), []string{"compact-a"})
	s = startSampler("vigil_compact_iterations_total", a, b)
	e2eutil.Poll(t, 60*time.Second, 200*time.Millisecond, func() error {
		if v, _, err := metricValue(a.HTTPURL, "vigil_compact_last_successful_iteration_timestamp_seconds"); err != nil || v == 0 {
			return fmt.Errorf("no successful iteration of compact-a yet (%v)", err)
		}
		return nil
	})
	time.Sleep(2 * time.Second)

	cut := time.Now()
	proxy.Blackhole()
	s.waitFor(t, 4*leLease, "compact-b to lead", 1, func(st leState) bool { return st.leader })
	time.Sleep(time.Second)
	rounds := s.snapshot()
	var lastRenew time.Time
	var aStop, bLead, bLastFollower leState
	for _, r := range rounds {
		if ra := r[0]; ra.up && !ra.at.Before(cut) {
			lastRenew = unixTime(ra.lastRenew)
			if !ra.leader && aStop.at.IsZero() {
				aStop = ra
			}
		}
		if rb := r[1]; rb.up && !rb.leader && bLead.at.IsZero() {
			bLastFollower = rb
		} else if rb.leader && bLead.at.IsZero() {
			bLead = rb
		}
	}
	expiry := lastRenew.Add(leLease)
	t.Logf("partition at +%s after compact-a's last renewal; compact-a read as stopped at +%s, compact-b read as follower at +%s "+
		"and as leader at +%s (lease %s, renew deadline %s); compact-a stopped at least %s before its lease could expire",
		cut.Sub(lastRenew).Round(time.Millisecond), aStop.at.Sub(lastRenew).Round(time.Millisecond),
		bLastFollower.at.Sub(lastRenew).Round(time.Millisecond), bLead.at.Sub(lastRenew).Round(time.Millisecond),
		leLease, leRenew, expiry.Sub(aStop.at).Round(time.Millisecond))
	switch {
	case aStop.at.IsZero():
		t.Fatal("compact-a never reported is_leader 0 after the partition")
	case !aStop.at.Before(expiry):
		t.Errorf("compact-a still leading %s after its last renewal: not stopped before the lease expired", aStop.at.Sub(lastRenew))
	case !aStop.at.Before(bLastFollower.at):
		t.Errorf("compact-a read as stopped at %s, not before compact-b was last read as follower at %s",
			aStop.at.Format("15:04:05.000"), bLastFollower.at.Format("15:04:05.000"))
	}
	logElection(t, "compact-a", a)

	// The path heals: compact-a stays a follower, and takes over once compact-b dies.
	proxy.Restore()
	time.Sleep(2 * time.Second)
	if a.Exited() {
		t.Fatal("compact-a exited after losing leadership; it must campaign again")
	}
	if err := b.Kill(); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, 3*leLease, "compact-a to lead again", 0, func(st leState) bool { return st.leader })
	checkSamples(t, s.Stop(), []string{"compact-a", "compact-b"})
	checkCompactedOnce(t, listBucketBlocks(t, m, "partition"), uploaded)
}

// leRules is one recording rule evaluated every 500ms.
const leRules = "groups:\n- name: le\n  interval: 500ms\n  rules:\n  - record: le:one\n    expr: vector(1)\n"

// TestLeaderElectionRule: of two rulers with leader election only the leader evaluates;
// the follower serves its rules API and stays idle, and starts evaluating once the leader
// is killed.
func TestLeaderElectionRule(t *testing.T) {
	k := e2eutil.StartKubeAPIServer(t)
	q := e2eutil.StartVigil(t, "query")
	q.MustWaitReady(t)
	rules := writeRuleFile(t, "le.yml", leRules)
	names := []string{"ruler-0", "ruler-1"}
	procs := startElectedRulers(t, k, "vigil-rule", names, "--query="+q.HTTPAddr, "--rule-file="+rules)
	const evals = "prometheus_rule_evaluations_total"
	s := startSampler(evals, procs...)
	li := s.waitLeader(t)
	leader, follower := procs[li], procs[1-li]
	s.waitFor(t, 10*time.Second, "evaluations by the leader", li, func(st leState) bool { return st.work >= 3 })
	time.Sleep(3 * time.Second)
	if n := mustMetric(t, follower.HTTPURL, evals); n != 0 {
		t.Errorf("the follower evaluated %v times", n)
	}
	if !strings.Contains(mustAPI(t, follower.HTTPURL, "/api/v1/rules", nil).Body, `"le:one"`) {
		t.Error("the follower's /api/v1/rules does not list the rule")
	}
	killed, renewed, _ := killLeader(t, k, leader, names[li], "vigil-rule")
	took := s.waitFor(t, 3*leLease, "takeover", 1-li, func(st leState) bool { return st.leader }).at
	first := s.waitFor(t, 5*time.Second, "evaluations by the new leader", 1-li, func(st leState) bool { return st.work > 0 }).at
	t.Logf("%s led; killed; %s became leader %s after the kill (%s after the last renewal counted) and evaluated %s later",
		names[li], names[1-li], took.Sub(killed).Round(time.Millisecond), took.Sub(renewed).Round(time.Millisecond),
		first.Sub(took).Round(time.Millisecond))
	checkTakeover(t, killed, renewed, took)
	checkSamples(t, s.Stop(), names)
	t.Logf("killed %s at %s", names[li], killed.Format("15:04:05.000"))
	logElection(t, names[li], leader)
	logElection(t, names[1-li], follower)
}

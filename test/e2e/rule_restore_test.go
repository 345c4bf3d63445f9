package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// heldFor is the `for` of the alert of TestLeaderElectionRuleKeepsAlertFiring: longer
// than a takeover and the checks after it, so that an alert the new leader fires at once
// can only have been restored.
const heldFor = 15 * time.Second

// restoreRules hold one alert that is always active, evaluated every second.
var restoreRules = fmt.Sprintf("groups:\n- name: held\n  interval: 1s\n  rules:\n  - alert: AlwaysOn\n    expr: vector(1)\n    for: %s\n", heldFor)

// TestLeaderElectionRuleKeepsAlertFiring: two stateless rulers with leader election
// remote-write to a real receiver, read through a querier. The leader's alert fires after
// its `for`; the leader is killed; the new leader restores the alert's state through the
// querier (the old leader's ALERTS_FOR_STATE, with its replica label and the receiver's
// tenant and external labels ignored) and fires it at once, active since the same time, instead of holding it
// pending for another `for` while Alertmanager resolves it.
func TestLeaderElectionRuleKeepsAlertFiring(t *testing.T) {
	k := e2eutil.StartKubeAPIServer(t)
	recv, rwURL := startReceiver(t, t.TempDir(), `--label=receive_replica="r0"`)
	q := e2eutil.StartVigil(t, "query", "--endpoint="+recv.GRPCAddr, "--query.replica-label=replica")
	q.MustWaitReady(t)
	rules := writeRuleFile(t, "held.yml", restoreRules)
	rw := filepath.Join(t.TempDir(), "remote-write.yml")
	if err := os.WriteFile(rw, []byte("remote_write:\n- url: "+rwURL+"\n  queue_config:\n    batch_send_deadline: 200ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	names := []string{"ruler-0", "ruler-1"}
	procs := startElectedRulers(t, k, "vigil-rule-restore", names, "--query="+q.HTTPAddr, "--rule-file="+rules,
		"--remote-write.config-file="+rw, "--restore-ignored-label=tenant_id", "--restore-ignored-label=receive_replica")
	s := startSampler("prometheus_rule_evaluations_total", procs...)
	li := s.waitLeader(t)
	leader, follower := procs[li], procs[1-li]
	firing := mustAlertFiring(t, leader, heldFor+10*time.Second)
	// Let the leader's ALERTS_FOR_STATE samples since firing reach the receiver.
	time.Sleep(2 * time.Second)

	killed, renewed, _ := killLeader(t, k, leader, names[li], "vigil-rule-restore")
	took := s.waitFor(t, 3*leLease, "takeover", 1-li, func(st leState) bool { return st.leader }).at
	checkTakeover(t, killed, renewed, took)
	restored := mustAlertFiring(t, follower, heldFor/2)
	fired := time.Now()
	s.Stop()
	if !restored.Equal(firing.Truncate(time.Second)) {
		t.Errorf("the new leader's alert is active since %s, want %s as the old leader had it", restored, firing)
	}
	t.Logf("%s fired AlwaysOn (active since %s); killed; %s led %s after the kill and fired it %s later (for: %s)",
		names[li], firing.Format("15:04:05.000"), names[1-li], took.Sub(killed).Round(time.Millisecond),
		fired.Sub(took).Round(time.Millisecond), heldFor)
}

// mustAlertFiring waits until p's /api/v1/alerts has AlwaysOn firing, and returns since
// when it is active.
func mustAlertFiring(t *testing.T, p *e2eutil.Vigil, timeout time.Duration) time.Time {
	t.Helper()
	var since time.Time
	e2eutil.Poll(t, timeout, 200*time.Millisecond, func() error {
		alerts, _, err := getAlerts(p.HTTPURL, nil)
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "AlwaysOn" && a.State == "firing" {
				since, err = time.Parse(time.RFC3339Nano, a.ActiveAt)
				return err
			}
		}
		return fmt.Errorf("AlwaysOn not firing on %s: %+v", p.HTTPAddr, alerts)
	})
	return since
}

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// upTableRow matches a row of the table `vigil up` prints: name, URL, gRPC address or -.
var upTableRow = regexp.MustCompile(`(?m)^  ([a-z0-9-]+)\s+(http://\S+)\s+(\S+)\s`)

// upStack is a running `vigil up` and what it printed.
type upStack struct {
	proc  *e2eutil.Process
	urls  map[string]string // part name → URL from the table
	grpc  map[string]string // part name → gRPC address from the table, "-" for none
	names []string          // part names in table order: the instances every replica scrapes
	query string            // the querier's URL
}

// startUp runs `vigil up` on a free querier address and a new data directory and waits
// for its table.
func startUp(t *testing.T, start time.Time) *upStack {
	prom := e2eutil.PrometheusBin(t)
	addr := e2eutil.FreeAddr(t)
	s := &upStack{urls: map[string]string{}, grpc: map[string]string{}}
	s.proc = e2eutil.StartProcess(t, e2eutil.ProcessSpec{Name: "vigil-up", Bin: e2eutil.VigilBin(t), Args: []string{
		"up", "--http-address=" + addr, "--data-dir=" + filepath.Join(t.TempDir(), "data"), "--prometheus.binary=" + prom,
	}})
	e2eutil.Poll(t, time.Until(start.Add(60*time.Second)), 100*time.Millisecond, func() error {
		if s.proc.Exited() {
			code, _ := s.proc.ExitCode()
			return fmt.Errorf("vigil up exited with code %d before printing its table", code)
		}
		log := s.proc.Log()
		if !strings.Contains(log, "Vigil is up.") || !strings.Contains(log, "Press Ctrl-C") {
			return errors.New("no table printed yet")
		}
		return nil
	})
	for _, m := range upTableRow.FindAllStringSubmatch(s.proc.Log(), -1) {
		if m[1] == "name" {
			continue
		}
		s.urls[m[1]], s.grpc[m[1]] = m[2], m[3]
		s.names = append(s.names, m[1])
	}
	s.query = s.urls["query"]
	if s.query != "http://"+addr {
		t.Fatalf("table gives the querier at %q, want http://%s; parsed %v", s.query, addr, s.urls)
	}
	for _, want := range []string{"prometheus-0", "prometheus-1", "sidecar-0", "sidecar-1", "store", "compact", "rule"} {
		if s.urls[want] == "" {
			t.Fatalf("table lacks %s: %v", want, s.urls)
		}
	}
	return s
}

// checkUpDedup checks that `up` answers with one series per target, every part of the
// stack up, without a replica label; and with dedup=false one series per target and
// replica.
func checkUpDedup(s *upStack) error {
	dedup, err := upTargets(s.query, "up", nil)
	if err != nil {
		return err
	}
	var got []string
	for _, x := range dedup {
		if r, ok := x.Metric["replica"]; ok {
			return fmt.Errorf("deduplicated series %v has replica=%q", x.Metric, r)
		}
		if v := string(x.Value[1]); v != `"1"` {
			return fmt.Errorf("%v = %s, want 1", x.Metric, v)
		}
		got = append(got, x.Metric["instance"])
	}
	sort.Strings(got)
	want := slices.Sorted(slices.Values(s.names))
	if !slices.Equal(got, want) {
		return fmt.Errorf("deduplicated up: instances %v, want one series for each of %v", got, want)
	}
	raw, err := upTargets(s.query, "up", url.Values{"dedup": {"false"}})
	if err != nil {
		return err
	}
	perReplica := map[string][]string{}
	for _, x := range raw {
		perReplica[x.Metric["replica"]] = append(perReplica[x.Metric["replica"]], x.Metric["instance"])
	}
	for _, r := range []string{"prometheus-0", "prometheus-1"} {
		sort.Strings(perReplica[r])
		if !slices.Equal(perReplica[r], want) {
			return fmt.Errorf("dedup=false: replica %s has instances %v, want %v", r, perReplica[r], want)
		}
	}
	if len(raw) != 2*len(want) {
		return fmt.Errorf("dedup=false: %d series, want %d (two replicas of %d targets)", len(raw), 2*len(want), len(want))
	}
	return nil
}

// TestUp runs `vigil up` and checks the whole stack: deduplicated answers within 60s,
// loopback-only listeners, federation, restarts of killed parts, and a clean stop with
// no process left behind.
func TestUp(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := startUp(t, start)
	t.Logf("table printed %s after start: %v", time.Since(start).Round(time.Millisecond), s.urls)
	e2eutil.Poll(t, time.Until(start.Add(60*time.Second)), 250*time.Millisecond, func() error { return checkUpDedup(s) })
	t.Logf("first deduplicated answer with every target %s after start", time.Since(start).Round(time.Millisecond))

	seen := map[int]e2eutil.Proc{} // every child process seen, by pid
	collect := func() {
		ps, err := e2eutil.Descendants(s.proc.Pid())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			seen[p.Pid] = p
		}
	}
	collect()
	if n := len(seen); n < len(s.names) {
		t.Fatalf("%d child processes, want one per part (%d): %v", n, len(s.names), seen)
	}

	t.Run("LoopbackOnly", func(t *testing.T) { testUpLoopbackOnly(t, s, seen) })
	t.Run("Federate", func(t *testing.T) { testUpFederate(t, s) })
	t.Run("RulerAndAlertmanager", func(t *testing.T) { testUpRuler(t, s, start) })
	t.Run("RestartKilledChild", func(t *testing.T) {
		testUpRestart(t, s, "sidecar-0", collect)
		testUpRestart(t, s, "prometheus-1", collect)
	})
	collect()
	t.Run("Stop", func(t *testing.T) { testUpStop(t, s, seen) })
}

// testUpLoopbackOnly checks that no child listens on anything but 127.0.0.1.
func testUpLoopbackOnly(t *testing.T, s *upStack, procs map[int]e2eutil.Proc) {
	var all []string
	for _, p := range procs {
		addrs, err := e2eutil.ListenAddrs(p.Pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			host, _, _ := net.SplitHostPort(a)
			if host != "127.0.0.1" {
				t.Errorf("%s listens on %s, want loopback only", p, a)
			}
			all = append(all, a)
		}
	}
	if q := strings.TrimPrefix(s.query, "http://"); !slices.Contains(all, q) {
		t.Errorf("no child listens on the querier's %s; found %v", q, all)
	}
}

// testUpFederate checks /federate on the querier: up of every target once, without the
// replica label.
func testUpFederate(t *testing.T, s *upStack) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, err := e2eutil.HTTPGet(ctx, s.query+"/federate?match[]=up")
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK {
		t.Fatalf("/federate?match[]=up: HTTP %d: %.300s", code, body)
	}
	var instances []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "up{") && !strings.HasPrefix(line, "up ") {
			continue
		}
		if strings.Contains(line, `replica="`) {
			t.Errorf("federated sample with a replica label: %s", line)
		}
		if m := regexp.MustCompile(`instance="([^"]*)"`).FindStringSubmatch(line); m != nil {
			instances = append(instances, m[1])
		}
	}
	sort.Strings(instances)
	if want := slices.Sorted(slices.Values(s.names)); !slices.Equal(instances, want) {
		t.Errorf("federated up: instances %v, want one sample for each of %v\n%.2000s", instances, want, body)
	}
}

// testUpRuler checks that the ruler's recorded series reach the querier and, when
// Alertmanager runs, that the always-firing example alert reaches it.
func testUpRuler(t *testing.T, s *upStack, start time.Time) {
	e2eutil.Poll(t, 60*time.Second, 500*time.Millisecond, func() error {
		v, n, err := instantValue(s.query, `job:up:sum{job="vigil-sidecar"}`, nil)
		if err != nil || n != 1 || v != 2 {
			return fmt.Errorf(`job:up:sum{job="vigil-sidecar"} = %v in %d series (%v), want 2 in one`, v, n, err)
		}
		return nil
	})
	t.Logf("recorded series through the querier %s after start", time.Since(start).Round(time.Millisecond))
	if s.urls["alertmanager"] == "" {
		t.Log("no Alertmanager installed: not checking alerts")
		return
	}
	am := &e2eutil.Alertmanager{URL: s.urls["alertmanager"]}
	e2eutil.Poll(t, 60*time.Second, 500*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		alerts, err := am.Alerts(ctx)
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "Watchdog" {
				if _, ok := a.Labels["replica"]; ok || a.Labels["cluster"] != "vigil-up" {
					return fmt.Errorf("Watchdog alert labels %v: want cluster=vigil-up and no replica", a.Labels)
				}
				return nil
			}
		}
		return fmt.Errorf("no Watchdog alert in Alertmanager: %v", alerts)
	})
	t.Logf("Watchdog alert in Alertmanager %s after start", time.Since(start).Round(time.Millisecond))
}

// findChild returns the child of the stack that runs the part name: the one with a
// listen-address flag set to the part's HTTP address from the table.
func findChild(t *testing.T, s *upStack, name string) (e2eutil.Proc, error) {
	ps, err := e2eutil.Descendants(s.proc.Pid())
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(s.urls[name], "http://")
	var found []e2eutil.Proc
	for _, p := range ps {
		if p.PPid == s.proc.Pid() && slices.ContainsFunc(p.Cmdline, func(a string) bool { return strings.HasSuffix(a, "-address="+addr) }) {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return e2eutil.Proc{}, fmt.Errorf("%d processes of %s (listening on %s) among the children: %v", len(found), name, addr, found)
	}
	return found[0], nil
}

// testUpRestart kills the part name with SIGKILL and checks that `vigil up` logs the
// restart, runs it again, and that the stack answers as before.
func testUpRestart(t *testing.T, s *upStack, name string, collect func()) {
	old, err := findChild(t, s, name)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := syscall.Kill(old.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var again e2eutil.Proc
	e2eutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() error {
		p, err := findChild(t, s, name)
		if err != nil {
			return err
		}
		if p.Pid == old.Pid {
			return fmt.Errorf("%s still has pid %d", name, p.Pid)
		}
		again = p
		return nil
	})
	collect()
	restartLog := regexp.MustCompile(`msg="child exited; restarting it" component=up child=` + name + ` err="signal: killed"`)
	if !restartLog.MatchString(s.proc.Log()) {
		t.Errorf("no restart of %s logged", name)
	}
	e2eutil.Poll(t, 60*time.Second, 250*time.Millisecond, func() error {
		if err := checkUpDedup(s); err != nil {
			return err
		}
		return storesHealthy(s.query, "sidecar", s.grpc["sidecar-0"], s.grpc["sidecar-1"])
	})
	t.Logf("%s killed (pid %d), running again as pid %d, stack answering again %s after the kill",
		name, old.Pid, again.Pid, time.Since(killed).Round(time.Millisecond))
}

// testUpStop sends SIGINT and checks that `vigil up` exits 0 in bounded time and that no
// process it started is left.
func testUpStop(t *testing.T, s *upStack, procs map[int]e2eutil.Proc) {
	stopAt := time.Now()
	if err := s.proc.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := s.proc.Wait(30 * time.Second); err != nil {
		t.Fatalf("vigil up after SIGINT: %v", err)
	}
	if code, _ := s.proc.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	t.Logf("vigil up exited 0 %s after SIGINT", time.Since(stopAt).Round(time.Millisecond))
	var left []string
	for _, p := range procs {
		if p.Running() {
			left = append(left, p.String())
		}
	}
	if len(left) > 0 {
		t.Errorf("processes left running after vigil up exited: %v", left)
	}
	if !strings.Contains(s.proc.Log(), "every part has stopped") {
		t.Error(`no "every part has stopped" in the log`)
	}
	t.Logf("%d child processes seen, none left", len(procs))
}

// TestUpKilled kills `vigil up` with SIGKILL, which it cannot handle, and checks that the
// kernel takes every part down with it.
func TestUpKilled(t *testing.T) {
	t.Parallel()
	s := startUp(t, time.Now())
	children, err := e2eutil.Descendants(s.proc.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if len(children) < len(s.names) {
		t.Fatalf("%d child processes, want one per part (%d)", len(children), len(s.names))
	}
	if err := s.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	e2eutil.Poll(t, 10*time.Second, 100*time.Millisecond, func() error {
		var left []string
		for _, p := range children {
			if p.Running() {
				left = append(left, p.String())
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("still running after vigil up was killed: %v", left)
		}
		return nil
	})
	t.Logf("all %d parts gone after kill -9 of vigil up", len(children))
}

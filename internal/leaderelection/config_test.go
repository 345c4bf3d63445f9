package leaderelection

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

func TestFlags(t *testing.T) {
	app := kingpin.New("vigil", "")
	cmd := app.Command("compact", "")
	f := RegisterFlags(cmd, "vigil-compact")
	if _, err := app.Parse([]string{"compact"}); err != nil {
		t.Fatal(err)
	}
	want := Config{LeaseName: "vigil-compact", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	if got := f.Config(); got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	if _, err := app.Parse([]string{"compact", "--leader-election.enabled", "--leader-election.kubeconfig=/k", "--leader-election.namespace=mon",
		"--leader-election.lease-name=l", "--leader-election.identity=me", "--leader-election.lease-duration=4s",
		"--leader-election.renew-deadline=3s", "--leader-election.retry-period=500ms"}); err != nil {
		t.Fatal(err)
	}
	want = Config{Enabled: true, Kubeconfig: "/k", Namespace: "mon", LeaseName: "l", Identity: "me",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
	if got := f.Config(); got != want {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
	if err := want.Validate(); err != nil {
		t.Errorf("Validate(%+v): %v", want, err)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Enabled: true, LeaseName: "l", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"disabled ignores the rest", func(c *Config) { *c = Config{} }, ""},
		{"deadline equals lease", func(c *Config) { c.RenewDeadline = c.LeaseDuration }, "renew-deadline (15s) must be positive and shorter than --leader-election.lease-duration"},
		{"deadline above lease", func(c *Config) { c.RenewDeadline = 20 * time.Second }, "must stop working before its lease can expire"},
		{"retry equals deadline", func(c *Config) { c.RetryPeriod = c.RenewDeadline }, "retry-period (10s) must be positive and shorter than --leader-election.renew-deadline"},
		{"retry within jitter", func(c *Config) { c.RetryPeriod = 9 * time.Second }, "more than 1.2 × --leader-election.retry-period"},
		{"deadline within a second of retry", func(c *Config) { c.RenewDeadline, c.RetryPeriod = 2*time.Second, 1500*time.Millisecond }, "+ 1s: the lease records renewals to the second"},
		{"zero retry", func(c *Config) { c.RetryPeriod = 0 }, "retry-period (0s) must be positive"},
		{"fractional lease", func(c *Config) { c.LeaseDuration = 1500 * time.Millisecond }, "whole number of seconds"},
		{"no lease name", func(c *Config) { c.LeaseName = "" }, "lease-name must not be empty"},
	} {
		c := ok
		tc.mod(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	ns := filepath.Join(dir, "namespace")
	c, err := Config{}.withDefaults(ns)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if c.Namespace != "default" || !strings.HasPrefix(c.Identity, host+"_") || len(c.Identity) != len(host)+9 {
		t.Errorf("outside a pod: namespace %q identity %q; want default and %s_<8 hex digits>", c.Namespace, c.Identity, host)
	}
	if c2, _ := (Config{}).withDefaults(ns); c2.Identity == c.Identity {
		t.Errorf("two processes on one host got the same identity %q", c.Identity)
	}
	if err := os.WriteFile(ns, []byte("monitoring\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, _ = (Config{Identity: "me"}).withDefaults(ns); c.Namespace != "monitoring" || c.Identity != "me" {
		t.Errorf("in a pod: namespace %q identity %q; want monitoring and me", c.Namespace, c.Identity)
	}
	if c, _ = (Config{Namespace: "x"}).withDefaults(ns); c.Namespace != "x" {
		t.Errorf("the flag must win over the pod's namespace, got %q", c.Namespace)
	}
}

package leaderelection

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilhq/vigil/internal/cliflag"
)

// serviceAccountNamespace is where Kubernetes mounts the namespace of a pod's service
// account; it is the default namespace of the lease.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// jitterFactor is client-go's leaderelection.JitterFactor: a candidate retries after up to
// 1.2 retry periods, and the renew deadline must leave room for that.
const jitterFactor = 1.2

// Config is the leader election configuration of one component.
type Config struct {
	// Enabled turns leader election on; off, the component works alone, always.
	Enabled bool
	// Kubeconfig is the kubeconfig file to reach the API server; empty means the
	// in-cluster configuration of the pod's service account.
	Kubeconfig string
	// Namespace of the Lease; empty means the pod's namespace, or "default" outside a pod.
	Namespace string
	// LeaseName is the name of the Lease object.
	LeaseName string
	// Identity names this process in the Lease; empty means hostname_<random suffix>.
	Identity string
	// LeaseDuration is how long followers wait after the leader's last renewal before they
	// take over. The Lease stores whole seconds, so it must be a whole number of seconds.
	LeaseDuration time.Duration
	// RenewDeadline is how long after its last successful renewal a leader keeps working.
	// LeaseDuration − RenewDeadline must exceed the time the work takes to stop.
	RenewDeadline time.Duration
	// RetryPeriod is the time between attempts to acquire or renew the lease.
	RetryPeriod time.Duration
}

// Flags are the --leader-election.* flags of one component.
type Flags struct {
	enabled                                    *bool
	kubeconfig, namespace, leaseName, identity *string
	leaseDuration, renewDeadline, retryPeriod  *time.Duration
}

// RegisterFlags registers the --leader-election.* flags on cmd; leaseName is the default
// Lease name of the component (vigil-compact, vigil-rule).
func RegisterFlags(cmd *kingpin.CmdClause, leaseName string) *Flags {
	return &Flags{
		enabled: cmd.Flag("leader-election.enabled", "Elect one leader among the replicas of this component through a Kubernetes Lease; "+
			"only the leader works, the others wait to take over.").Default("false").Bool(),
		kubeconfig: cmd.Flag("leader-election.kubeconfig", "Kubeconfig file to reach the Kubernetes API server; empty: the in-cluster "+
			"configuration of the pod's service account.").Default("").String(),
		namespace: cmd.Flag("leader-election.namespace", "Namespace of the Lease; empty: the pod's namespace (from its service account), "+
			"else \"default\".").Default("").String(),
		leaseName: cmd.Flag("leader-election.lease-name", "Name of the Lease object.").Default(leaseName).String(),
		identity: cmd.Flag("leader-election.identity", "Name of this process in the Lease; empty: the hostname and a random suffix, "+
			"unique per process.").Default("").String(),
		leaseDuration: cliflag.Duration(cmd.Flag("leader-election.lease-duration", "How long the others wait after the leader's "+
			"last renewal before taking over (whole seconds).").Default("15s")),
		renewDeadline: cliflag.Duration(cmd.Flag("leader-election.renew-deadline", "How long after its last successful renewal "+
			"the leader keeps working; must be shorter than the lease duration by more than the time work takes to stop.").Default("10s")),
		retryPeriod: cliflag.Duration(cmd.Flag("leader-election.retry-period", "Time between attempts to acquire or renew the "+
			"lease.").Default("2s")),
	}
}

// Config returns the parsed flags. Call it after the command line was parsed.
func (f *Flags) Config() Config {
	return Config{
		Enabled: *f.enabled, Kubeconfig: *f.kubeconfig, Namespace: *f.namespace, LeaseName: *f.leaseName,
		Identity: *f.identity, LeaseDuration: *f.leaseDuration, RenewDeadline: *f.renewDeadline, RetryPeriod: *f.retryPeriod,
	}
}

// Validate checks the durations and names of an enabled configuration. A disabled one is
// always valid: its other fields are not used.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.LeaseName == "" {
		errs = append(errs, errors.New("--leader-election.lease-name must not be empty"))
	}
	switch {
	case c.LeaseDuration < time.Second || c.LeaseDuration%time.Second != 0:
		errs = append(errs, fmt.Errorf("--leader-election.lease-duration must be a whole number of seconds, at least 1s, got %s "+
			"(the Lease stores whole seconds)", c.LeaseDuration))
	case c.RenewDeadline <= 0 || c.RenewDeadline >= c.LeaseDuration:
		errs = append(errs, fmt.Errorf("--leader-election.renew-deadline (%s) must be positive and shorter than "+
			"--leader-election.lease-duration (%s): a leader must stop working before its lease can expire", c.RenewDeadline, c.LeaseDuration))
	}
	switch {
	case c.RetryPeriod <= 0 || c.RetryPeriod >= c.RenewDeadline:
		errs = append(errs, fmt.Errorf("--leader-election.retry-period (%s) must be positive and shorter than "+
			"--leader-election.renew-deadline (%s): the leader must be able to retry a renewal before its deadline", c.RetryPeriod, c.RenewDeadline))
	case float64(c.RenewDeadline) <= jitterFactor*float64(c.RetryPeriod):
		errs = append(errs, fmt.Errorf("--leader-election.renew-deadline (%s) must be more than 1.2 × --leader-election.retry-period (%s): "+
			"retries are spread by up to 20%%", c.RenewDeadline, c.RetryPeriod))
	case c.RenewDeadline <= c.RetryPeriod+time.Second:
		errs = append(errs, fmt.Errorf("--leader-election.renew-deadline (%s) must be more than --leader-election.retry-period (%s) + 1s: "+
			"the lease records renewals to the second, so the others may notice only one renewal a second", c.RenewDeadline, c.RetryPeriod))
	}
	return errors.Join(errs...)
}

// withDefaults fills in the namespace (from nsFile, else "default") and the identity.
func (c Config) withDefaults(nsFile string) (Config, error) {
	if c.Namespace == "" {
		c.Namespace = "default"
		if b, err := os.ReadFile(nsFile); err == nil && strings.TrimSpace(string(b)) != "" {
			c.Namespace = strings.TrimSpace(string(b))
		}
	}
	if c.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("leader election identity: %w", err)
		}
		// Two processes on one host (or two containers with the same hostname) must
		// differ, or both would believe they hold the lease.
		suffix := make([]byte, 4)
		if _, err := rand.Read(suffix); err != nil {
			return c, fmt.Errorf("leader election identity: %w", err)
		}
		c.Identity = host + "_" + hex.EncodeToString(suffix)
	}
	return c, nil
}

// Package leaderelection lets one replica of a component work at a time: the replicas
// campaign for a Kubernetes Lease through client-go's leader election
// (k8s.io/client-go/tools/leaderelection with a resourcelock.LeaseLock), and only the
// holder runs the component's work. The others wait and take over when the holder stops
// renewing.
//
// # The safety margin
//
// A follower takes the lease over once lease-duration has passed since it saw the
// leader's last renewal, which is after the leader sent that renewal. The leader cancels
// its work's context once renew-deadline has passed since it sent its last successful
// renewal, whatever client-go is still trying, and waits for the work to return before it
// does anything else (release the lease, campaign again). So two replicas never work at
// once provided that
//
//	lease-duration − renew-deadline > the time work takes to return after its context ends
//
// and the work honours its context. Clocks are only compared within one process; what
// matters between processes is that their clocks run at about the same rate.
//
// A follower sees a renewal only if the lease record changed, and client-go compares
// records with their times in whole seconds. The renewal the leader counts from is
// therefore the first one of each second (see guardedLock), and renew-deadline must
// exceed retry-period + 1s so that steady renewals always beat the deadline.
//
// After losing the lease the process campaigns again; it never exits because of it. At
// shutdown the work stops first and then the lease is released, so a follower takes over
// at its next retry instead of after a full lease duration.
package leaderelection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Causes of the end of a term's work.
var (
	errRenewDeadline = errors.New("no successful renewal within the renew deadline")
	errShutdown      = errors.New("shutting down")
	errReleasing     = errors.New("the lease is being released")
)

// Elector runs a component's work while this process holds the lease. A disabled
// Elector runs the work directly.
type Elector struct {
	cfg     Config
	leases  coordinationv1client.LeasesGetter
	logger  *slog.Logger
	klog    logr.Logger // for client-go, which logs through klog.FromContext
	metrics *metrics
}

// New returns an Elector for cfg. With leader election enabled it validates cfg, fills in
// the default namespace and identity, and builds the API server client (from
// cfg.Kubeconfig, or in-cluster); its metrics go to reg.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Elector, error) {
	if !cfg.Enabled {
		return &Elector{cfg: cfg}, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, err := coordinationv1client.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("leader election: Kubernetes client: %w", err)
	}
	return newElector(cfg, client, logger, reg, serviceAccountNamespace)
}

// newElector is New with a given Lease client and service account namespace file.
func newElector(cfg Config, leases coordinationv1client.LeasesGetter, logger *slog.Logger, reg prometheus.Registerer, nsFile string) (*Elector, error) {
	cfg, err := cfg.withDefaults(nsFile)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger = logger.With("lease", cfg.Namespace+"/"+cfg.LeaseName, "identity", cfg.Identity)
	return &Elector{
		cfg: cfg, leases: leases, logger: logger, metrics: newMetrics(reg, cfg.LeaseName),
		klog: logr.FromSlogHandler(clientGoHandler{logger.Handler()}),
	}, nil
}

// restConfig is the API server client configuration of cfg.
func restConfig(cfg Config) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig == "" {
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("leader election: in-cluster Kubernetes configuration (outside a cluster, set --leader-election.kubeconfig): %w", err)
		}
	} else if rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig); err != nil {
		return nil, fmt.Errorf("leader election: --leader-election.kubeconfig: %w", err)
	}
	// A request that hangs must not use up the whole renew deadline: with half of it a
	// renewal is tried at least twice before the leader gives up.
	rc.Timeout = cfg.RenewDeadline / 2
	rc.UserAgent = "vigil-leader-election"
	return rc, nil
}

// Run runs work while this process holds the lease, until ctx is done or work returns by
// itself; with leader election disabled it just runs work(ctx).
//
// work's context ends when leadership ends (renew deadline passed, or the lease is being
// released) or at shutdown; Run waits for work to return before it releases the lease or
// campaigns again, so work must honour its context promptly (see the package
// documentation for the margin). After a loss Run campaigns again.
//
// Run returns nil when ctx is done. When work returns by itself while leading, Run
// releases the lease and returns work's error (nil for a one-shot job that finished): a
// failing component exits as it would without leader election, and a replica takes over.
// An error returned after leadership was lost is logged only: the cancellation most
// likely caused it.
func (e *Elector) Run(ctx context.Context, work func(context.Context) error) error {
	if !e.cfg.Enabled {
		return work(ctx)
	}
	e.logger.Info("leader election enabled; campaigning for the lease", "lease_duration", e.cfg.LeaseDuration,
		"renew_deadline", e.cfg.RenewDeadline, "retry_period", e.cfg.RetryPeriod)
	for {
		done, err := e.term(ctx, work)
		if done {
			return err
		}
	}
}

// term campaigns once with a new client-go elector and, once elected, runs work until it
// returns. done reports that Run should return err.
func (e *Elector) term(ctx context.Context, work func(context.Context) error) (done bool, err error) {
	lock := newGuardedLock(&rl.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.cfg.Namespace, Name: e.cfg.LeaseName},
		Client:     e.leases,
		LockConfig: rl.ResourceLockConfig{Identity: e.cfg.Identity},
	}, e.metrics.renewed)
	leading := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: e.cfg.LeaseDuration, RenewDeadline: e.cfg.RenewDeadline, RetryPeriod: e.cfg.RetryPeriod,
		ReleaseOnCancel: true, Name: e.cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) { leading <- lctx },
			OnStoppedLeading: func() {},
			OnNewLeader:      e.newLeader,
		},
	})
	if err != nil {
		return true, fmt.Errorf("leader election: %w", err)
	}
	// The elector outlives ctx: at shutdown the work stops first, and only then does
	// cancelling electCtx end the renewals and release the lease.
	electCtx, stopElect := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), e.klog))
	elected := make(chan struct{})
	go func() {
		defer close(elected)
		le.Run(electCtx)
	}()
	defer func() {
		lock.workStopped()
		stopElect()
		<-elected
	}()
	select {
	case <-ctx.Done():
		return true, nil
	case lctx := <-leading:
		return e.lead(ctx, lctx, lock, work)
	}
}

// lead runs work as the leader. Its context ends at shutdown, once the renew deadline has
// passed since the last renewal, when client-go stops renewing, or when client-go is
// about to release the lease.
func (e *Elector) lead(ctx, lctx context.Context, lock *guardedLock, work func(context.Context) error) (bool, error) {
	wctx, cancel := context.WithCancelCause(lctx)
	defer cancel(nil)
	lock.working(func() { cancel(errReleasing) })
	defer context.AfterFunc(ctx, func() { cancel(errShutdown) })()
	go lock.watch(wctx, e.cfg.RenewDeadline, func() { cancel(errRenewDeadline) })

	e.metrics.transitions.Inc()
	e.metrics.isLeader.Set(1)
	e.logger.Info("became leader; starting work")
	err := work(wctx)
	e.metrics.isLeader.Set(0)
	lock.workStopped()

	sinceRenew := time.Since(lock.lastRenewal())
	switch {
	case ctx.Err() != nil:
		e.logger.Info("stopped working at shutdown; releasing the lease")
		if err != nil && !isCancel(err) {
			return true, err
		}
		return true, nil
	case wctx.Err() != nil:
		e.logger.Warn("lost leadership: work stopped; campaigning again", "reason", lossReason(wctx),
			"since_last_renew", sinceRenew, "lease_expires_in", e.cfg.LeaseDuration-sinceRenew)
		if err != nil && !isCancel(err) {
			e.logger.Warn("work returned an error after leadership was lost", "err", err)
		}
		return false, nil
	case err != nil:
		e.logger.Error("work failed; releasing the lease", "err", err)
		return true, err
	}
	e.logger.Info("work finished; releasing the lease")
	return true, nil
}

func (e *Elector) newLeader(identity string) {
	if identity == "" {
		return // released: nobody holds the lease
	}
	e.logger.Info("leader observed", "leader", identity, "self", identity == e.cfg.Identity)
}

// lossReason says why the work's context ended when it was not shutdown.
func lossReason(wctx context.Context) string {
	cause := context.Cause(wctx)
	if errors.Is(cause, errRenewDeadline) || errors.Is(cause, errReleasing) {
		return cause.Error()
	}
	return "client-go stopped renewing the lease"
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// clientGoHandler passes client-go's leader election logs on one level lower: its
// information repeats ours (debug), and its errors are failed attempts that it retries
// (warnings).
type clientGoHandler struct{ slog.Handler }

func demote(l slog.Level) slog.Level {
	if l >= slog.LevelError {
		return slog.LevelWarn
	}
	return l - 4
}

func (h clientGoHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, demote(l))
}

func (h clientGoHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h clientGoHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return clientGoHandler{h.Handler.WithAttrs(as)}
}

func (h clientGoHandler) WithGroup(name string) slog.Handler {
	return clientGoHandler{h.Handler.WithGroup(name)}
}

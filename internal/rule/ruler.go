// Package rule is the ruler: Prometheus' rules manager evaluating recording and alerting
// rules through the query API of --query endpoints (so over the global, deduplicated
// view), alerts sent to Alertmanager with the replica label dropped, and recorded series
// kept in a local TSDB that is served over the StoreAPI and shipped to object storage,
// or, in stateless mode, remote-written.
package rule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/agent"
	"github.com/prometheus/prometheus/util/compression"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/shipper"
	"github.com/vigilhq/vigil/internal/tsdbstore"
)

// Config is a ruler's configuration, the flags of `vigil rule`.
type Config struct {
	DataDir       string
	Labels        labels.Labels // --label: external labels of recorded data and alerts
	RuleFiles     []string      // --rule-file globs
	EvalInterval  time.Duration
	Queries       []QueryEndpoints // --query and --query.sd-files, or --query.config
	QueryMethod   string           // --query.http-method; POST when empty
	QueryTimeout  time.Duration
	Alertmanagers *Alertmanagers
	// AlertmanagersDNSInterval is how often Alertmanager addresses are resolved again
	// (--alertmanagers.sd-dns-interval; 30s when 0).
	AlertmanagersDNSInterval time.Duration
	Alerts                   AlertOptions
	AlertRelabel             []*relabel.Config
	ResendDelay              time.Duration
	Outage                   time.Duration // --for-outage-tolerance
	ForGrace                 time.Duration // --for-grace-period
	// RestoreIgnored are label names the query endpoints add to alert state that the
	// ruler's alerts lack, besides the Labels names (--restore-ignored-label).
	RestoreIgnored []string
	QueryOffset    time.Duration // --rule-query-offset
	// ConcurrentEvals is how many rules of a group may be evaluated at once
	// (--rule-concurrent-evaluation); 1 or less: one after the other.
	ConcurrentEvals int
	// UncompressedWAL (--no-tsdb.wal-compression) and NoLockfile (--tsdb.no-lockfile)
	// tune the local TSDB.
	UncompressedWAL, NoLockfile bool
	BlockDuration               time.Duration
	Retention                   time.Duration
	Bucket                      objstore.Bucket // nil: no upload
	UploadEvery                 time.Duration
	RemoteWrite                 *config.Config // stateless mode: the remote_write section; nil: stateful
	FlushDeadline               time.Duration  // stateless mode: how long shutdown waits for unsent samples; 1m when 0
	ExternalURL                 *url.URL       // --alert.query-url, for templates
	Store                       tsdbstore.Options
	// HashFunc (--hash-func) and ShipperMetaFile (--shipper.meta-file-name) shape uploads.
	HashFunc        block.HashFunc
	ShipperMetaFile string
	// UploadCompacted is --shipper.upload-compacted: blocks above level 1 are uploaded
	// too (the ruler's TSDB does not compact its own, but a data directory may hold some).
	UploadCompacted bool
}

// Ruler is the assembled ruler.
type Ruler struct {
	cfg      Config
	logger   *slog.Logger
	loader   *setLoader
	parser   parser.Parser
	querier  *Querier
	notifier *notifier.Manager
	db       *tsdb.DB        // stateful mode
	agentDB  *agent.DB       // stateless mode
	remote   *remote.Storage // stateless mode
	store    *tsdbstore.Store
	ship     *shipper.Shipper

	// managerOpts are the options of every rules manager; mgr is the current one, which
	// the APIs show (see Evaluate).
	managerOpts rules.ManagerOptions
	mgr         atomic.Pointer[manager]
	// reloadMu serialises loading rules: reloads, and the start of a term.
	reloadMu sync.Mutex
}

type strategyKey struct{}

// New opens the storage and builds the rules manager and notifier; nothing runs yet.
func New(logger *slog.Logger, reg prometheus.Registerer, cfg Config) (*Ruler, error) {
	r := &Ruler{cfg: cfg, logger: logger}
	p := parser.NewParser(parser.Options{})
	r.loader = &setLoader{Loader: NewLoader(p, logger), set: &ruleSet{}}
	r.parser = p
	r.querier = NewQuerier(cfg.Queries, cfg.QueryMethod, cfg.QueryTimeout, reg)
	appendable, queryable, err := r.openStorage(reg)
	if err != nil {
		return nil, err
	}
	if cfg.Alertmanagers == nil {
		cfg.Alertmanagers = &Alertmanagers{}
		r.cfg.Alertmanagers = cfg.Alertmanagers
	}
	r.notifier = notifier.NewManager(&notifier.Options{QueueCapacity: 10000, MaxBatchSize: 100, Registerer: reg, DrainOnShutdown: true}, model.UTF8Validation, logger)
	if err := r.notifier.ApplyConfig(cfg.Alertmanagers.Config(cfg.AlertRelabel)); err != nil {
		return nil, fmt.Errorf("alertmanagers: %w", err)
	}
	r.managerOpts = rules.ManagerOptions{
		ExternalURL: cfg.ExternalURL,
		QueryFunc: func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
			warn, _ := ctx.Value(strategyKey{}).(bool)
			return r.querier.Query(ctx, q, t, warn)
		},
		NotifyFunc:             NotifyFunc(r.notifier, cfg.Alerts),
		AppendableV2:           appendable,
		Queryable:              r.forStateQueryable(queryable),
		Logger:                 logger,
		Registerer:             reg,
		Metrics:                rules.NewGroupMetrics(reg), // shared by every manager
		OutageTolerance:        cfg.Outage,
		ForGracePeriod:         cfg.ForGrace,
		ResendDelay:            cfg.ResendDelay,
		GroupLoader:            r.loader,
		DefaultRuleQueryOffset: func() time.Duration { return cfg.QueryOffset },
		ConcurrentEvalsEnabled: cfg.ConcurrentEvals > 1,
		MaxConcurrentEvals:     int64(max(cfg.ConcurrentEvals, 1)),
		Parser:                 p,
	}
	r.mgr.Store(r.newManager())
	return r, nil
}

// openStorage opens the local TSDB (stateful) or the WAL-only agent storage with remote
// write (stateless). The queryable is the local TSDB, nil in stateless mode.
func (r *Ruler) openStorage(reg prometheus.Registerer) (storage.AppendableV2, storage.Queryable, error) {
	cfg := r.cfg
	if cfg.RemoteWrite != nil {
		walDir := filepath.Join(cfg.DataDir, "agent") // where the agent writes its WAL, which remote write reads
		flush := cfg.FlushDeadline
		if flush <= 0 {
			flush = time.Minute
		}
		r.remote = remote.NewStorage(r.logger, reg, func() (int64, error) { return 0, nil }, walDir, flush, nil, false)
		rw := *cfg.RemoteWrite
		rw.GlobalConfig.ExternalLabels = cfg.Labels
		if err := r.remote.ApplyConfig(&rw); err != nil {
			return nil, nil, fmt.Errorf("remote write config: %w", err)
		}
		ao := agent.DefaultOptions()
		ao.NoLockfile = cfg.NoLockfile
		if cfg.UncompressedWAL {
			ao.WALCompression = compression.None
		}
		db, err := agent.Open(r.logger, reg, r.remote, walDir, ao)
		if err != nil {
			return nil, nil, fmt.Errorf("open WAL of the stateless ruler: %w", err)
		}
		db.SetWriteNotified(r.remote) // read new samples at once rather than on the next poll
		r.agentDB = db
		// No local data: alert `for` state is restored through the query API alone.
		return db, nil, nil
	}
	o := tsdb.DefaultOptions()
	o.MinBlockDuration = cfg.BlockDuration.Milliseconds()
	o.MaxBlockDuration = o.MinBlockDuration
	o.RetentionDuration = cfg.Retention.Milliseconds()
	o.NoLockfile = cfg.NoLockfile
	if cfg.UncompressedWAL {
		o.WALCompression = compression.None
	}
	db, err := tsdb.Open(cfg.DataDir, r.logger, reg, o, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open ruler TSDB in %s: %w", cfg.DataDir, err)
	}
	r.db = db
	r.store = tsdbstore.New(db, cfg.Labels, cfg.Store)
	if cfg.Bucket != nil {
		r.ship, err = shipper.New(r.logger, reg, cfg.Bucket, shipper.Options{
			Dir: cfg.DataDir, Source: block.SourceRuler, Labels: func() labels.Labels { return cfg.Labels },
			HashFunc: cfg.HashFunc, MetaFileName: cfg.ShipperMetaFile, UploadCompacted: cfg.UploadCompacted,
		})
		if err != nil {
			_ = db.Close()
			return nil, nil, fmt.Errorf("shipper: %w", err)
		}
	}
	return db, db, nil
}

// Store is the StoreAPI of the recorded series; nil in stateless mode.
func (r *Ruler) Store() *tsdbstore.Store { return r.store }

// Manager is the current rules manager, for the rules and alerts APIs. With leader
// election a follower's manager is stopped (or never ran) and shows the rules in force
// with their last state.
func (r *Ruler) Manager() *rules.Manager { return r.mgr.Load().Manager }

// Loader is the rule file loader, which knows each group's partial response strategy.
func (r *Ruler) Loader() *Loader { return r.loader.Loader }

// Reload re-reads the rule files (--rule-file globs expanded anew). An invalid file
// fails the reload and keeps the rules in force. A follower's stopped manager ignores
// the update; the manager of its next term loads the new rules.
func (r *Ruler) Reload() error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	files, err := ExpandFiles(r.cfg.RuleFiles)
	if err != nil {
		return err
	}
	// Prometheus' manager only says that loading failed (it logs why): check the files
	// first, so that /-/reload can answer with the reason.
	set, errs := r.readRuleSet(files)
	if len(errs) > 0 {
		return fmt.Errorf("load rule files: %w", errors.Join(errs...))
	}
	prev := r.loader.set
	r.loader.set = set
	if err := r.load(r.mgr.Load()); err != nil {
		r.loader.set = prev
		return fmt.Errorf("load rule files: %w", err)
	}
	r.logger.Info("rule files loaded", "files", len(files), "groups", len(r.Manager().RuleGroups()))
	return nil
}

// Run evaluates rules and sends alerts until ctx is done; it is RunElected without
// leader election.
func (r *Ruler) Run(ctx context.Context) error { return r.RunElected(ctx, nil) }

// RunElected runs the notifier, the Alertmanager discovery and the block uploads until
// ctx is done, and evaluates the rules (Evaluate) through elect: only while this ruler
// leads, or always when elect is nil. A follower keeps serving and uploading what it
// recorded. At the end the evaluations stop first, then the notifier (sending what is
// queued). An error of elect ends everything and is returned.
func (r *Ruler) RunElected(ctx context.Context, elect Elector) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tsets := make(chan map[string][]*targetgroup.Group)
	var wg, resolver sync.WaitGroup
	wg.Go(func() { r.notifier.Run(tsets) })
	every := r.cfg.AlertmanagersDNSInterval
	if every <= 0 {
		every = 30 * time.Second
	}
	resolver.Go(func() { r.cfg.Alertmanagers.Run(ctx, every, r.logger, tsets) })
	if r.ship != nil {
		wg.Go(func() { _ = r.ship.Run(ctx, r.cfg.UploadEvery) })
	}
	var err error
	if elect == nil {
		err = r.Evaluate(ctx)
	} else {
		err = elect.Run(ctx, r.Evaluate)
	}
	cancel()
	r.notifier.Stop()
	resolver.Wait() // it sends on tsets until ctx is done: only then may tsets close
	close(tsets)
	wg.Wait()
	return err
}

// Close closes the storage. Call it after Run returned. With uploads on, the head is
// written into a block and uploaded first, so that the recorded series reach the bucket
// even if this ruler never runs again.
func (r *Ruler) Close(ctx context.Context) error {
	var errs []error
	if r.db != nil && r.ship != nil {
		if err := block.FlushHead(r.db); err != nil {
			errs = append(errs, fmt.Errorf("flush head: %w", err))
		} else if _, err := r.ship.Sync(ctx); err != nil {
			errs = append(errs, fmt.Errorf("upload on shutdown: %w", err))
		}
	}
	if r.db != nil {
		errs = append(errs, r.db.Close())
	}
	if r.agentDB != nil {
		errs = append(errs, r.agentDB.Close())
	}
	if r.remote != nil {
		errs = append(errs, r.remote.Close())
	}
	return errors.Join(errs...)
}

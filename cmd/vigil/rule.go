package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/cliflag"
	"github.com/vigilhq/vigil/internal/leaderelection"
	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/rule"
	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/shipper"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/internal/tsdbstore"
)

// ruleFlags are the flags of `vigil rule`.
type ruleFlags struct {
	srv                                        *serverFlags
	objstore                                   *objstore.Flags
	election                                   *leaderelection.Flags
	queries, querySD, ruleFiles, amURLs        []string
	labels, labelDrop, restoreIgnored          []string
	amConfig, alertRelabel, remoteWrite        *cliflag.PathOrContent
	queryConfig                                *cliflag.PathOrContent
	queryURL, dataDir, queryMethod, queryTmpl  string
	eval, queryTimeout, amTimeout, resendDelay *time.Duration
	outage, forGrace, queryOffset              *time.Duration
	block, retention, dnsInterval, upload      *time.Duration
	sdInterval, amDNSInterval                  *time.Duration
	concurrentEvals                            int
	tsdb                                       *tsdbFlags
	hashFunc, metaFile                         string
	uploadCompacted                            bool
	limits                                     storeapi.RequestLimits
}

func registerRule(app *kingpin.Application, cmds map[string]runFunc) {
	cmd := app.Command("rule", "Ruler: evaluates recording and alerting rules through the query API, sends alerts to Alertmanager, serves and uploads what it records.")
	f := &ruleFlags{srv: addServerFlags(cmd), objstore: objstore.RegisterFlags(cmd), election: leaderelection.RegisterFlags(cmd, "vigil-rule")}
	cmd.Flag("query", "Query API address (host:port, dns+, dnssrv+, or an http(s) URL) to evaluate rules with; repeatable. Each evaluation tries them in random order.").StringsVar(&f.queries)
	cmd.Flag("query.sd-files", "File in Prometheus file SD format listing query API addresses; repeatable.").StringsVar(&f.querySD)
	f.queryConfig = cliflag.RegisterPathOrContent(cmd, "query.config", "Groups of query API endpoints with their HTTP client settings, instead of --query and --query.sd-files")
	cmd.Flag("query.http-method", "HTTP method of the queries sent to query endpoints: POST or GET.").Default("POST").EnumVar(&f.queryMethod, "POST", "GET")
	f.queryTimeout = durationFlag(cmd, "query.timeout", "Timeout of each query sent to a --query endpoint.", "2m")
	f.dnsInterval = durationFlag(cmd, "query.sd-dns-interval", "Interval between DNS resolutions of --query addresses.", "30s")
	f.sdInterval = durationFlag(cmd, "query.sd-interval", "Interval between reads of --query.sd-files (they are also read when they change).", "5m")
	cmd.Flag("rule-file", "Rule files (globs; a directory stands for its files); repeatable.").Default("rules/").StringsVar(&f.ruleFiles)
	f.eval = durationFlag(cmd, "eval-interval", "Default evaluation interval of rule groups.", "1m")
	cmd.Flag("rule-concurrent-evaluation", "How many independent rules of a group may be evaluated at once.").Default("1").IntVar(&f.concurrentEvals)
	f.queryOffset = durationFlag(cmd, "rule-query-offset", "Default offset of rule evaluation queries, for data that arrives late.", "0s")
	cmd.Flag("alertmanagers.url", "Alertmanager URL (http(s)://host[:port][/prefix], host may carry dns+ or dnssrv+); repeatable.").StringsVar(&f.amURLs)
	f.amConfig = cliflag.RegisterPathOrContent(cmd, "alertmanagers.config", "Alertmanagers to send alerts to, instead of --alertmanagers.url")
	f.amDNSInterval = durationFlag(cmd, "alertmanagers.sd-dns-interval", "Interval between DNS resolutions of Alertmanager addresses.", "30s")
	f.amTimeout = durationFlag(cmd, "alertmanagers.send-timeout", "Timeout of each request to an Alertmanager.", "10s")
	cmd.Flag("alert.label-drop", "Label dropped from alerts before they are sent (the replica label of HA rulers); repeatable.").StringsVar(&f.labelDrop)
	f.alertRelabel = cliflag.RegisterPathOrContent(cmd, "alert.relabel-config", "Prometheus alert relabel configs applied to alerts before they are sent")
	cmd.Flag("alert.query-template", "Template of the path of alerts' generator URL after --alert.query-url; {{.Expr}} is the query-escaped expression.").Default(rule.DefaultQueryTemplate).StringVar(&f.queryTmpl)
	cmd.Flag("alert.query-url", "Base URL of the generator URL of alerts (a querier's UI).").Default("").StringVar(&f.queryURL)
	f.resendDelay = durationFlag(cmd, "resend-delay", "Minimum time before a firing alert is sent again.", "1m")
	f.outage = durationFlag(cmd, "for-outage-tolerance", "Maximum ruler outage tolerated when restoring the 'for' state of alerts.", "1h")
	f.forGrace = durationFlag(cmd, "for-grace-period", "Minimum 'for' left after a restore of alert state.", "10m")
	cmd.Flag("restore-ignored-label", "Label name the query endpoints add to alert state that the ruler's alerts lack (a receiver's tenant label, say), ignored when restoring alert 'for' state through them; repeatable. The --label names always are.").StringsVar(&f.restoreIgnored)
	cmd.Flag("label", `External label of the ruler's recorded data and alerts, name="value"; repeatable.`).StringsVar(&f.labels)
	cmd.Flag("data-dir", "Directory of the ruler's TSDB (or WAL in stateless mode).").Default("data/").StringVar(&f.dataDir)
	f.block = durationFlag(cmd, "tsdb.block-duration", "Length of the local blocks.", "2h")
	f.tsdb = addTSDBFlags(cmd)
	hashFuncFlag(cmd, &f.hashFunc)
	cmd.Flag("shipper.upload-compacted", "Also upload blocks above level 1 found in --data-dir.").Default("false").BoolVar(&f.uploadCompacted)
	cmd.Flag("shipper.meta-file-name", "File in --data-dir where the shipper records which blocks it has uploaded.").Default(shipper.DefaultMetaFilename).StringVar(&f.metaFile)
	cmd.Flag("store.limits.request-series", "Maximum series one Series request may return (0 = unlimited); over it the request fails with ResourceExhausted.").Default("0").Int64Var(&f.limits.Series)
	cmd.Flag("store.limits.request-samples", "Maximum samples one Series request may return (0 = unlimited); over it the request fails with ResourceExhausted.").Default("0").Int64Var(&f.limits.Samples)
	f.retention = durationFlag(cmd, "tsdb.retention", "How long local blocks are kept.", "48h")
	f.remoteWrite = cliflag.RegisterPathOrContent(cmd, "remote-write.config", "Prometheus remote_write configuration: stateless mode, recorded series are remote-written instead of kept")
	f.upload = durationFlag(cmd, "shipper.upload-interval", "How often finished blocks are uploaded.", "30s")
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		return runRule(ctx, logger, reg, f)
	}
}

func runRule(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, f *ruleFlags) error {
	// Only the leader evaluates and sends alerts; every ruler serves what it recorded.
	elect, err := leaderelection.New(f.election.Config(), logger, reg)
	if err != nil {
		return fmt.Errorf("rule: %w", err)
	}
	cfg, cleanup, err := ruleConfig(ctx, logger, reg, f)
	if err != nil {
		return fmt.Errorf("rule: %w", err)
	}
	defer cleanup()
	s, err := newServers(logger, reg, f.srv)
	if err != nil {
		return err
	}
	r, err := rule.New(logger, reg, cfg)
	if err != nil {
		return fmt.Errorf("rule: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		if err := r.Close(cctx); err != nil {
			logger.Error("closing the ruler's storage", "err", err)
		}
	}()
	if err := r.Reload(); err != nil {
		return fmt.Errorf("rule: %w", err)
	}
	if st := r.Store(); st != nil {
		tsdbstore.NewMulti(func() []*tsdbstore.Store { return []*tsdbstore.Store{st} }, storepb.StoreType_RULE,
			tsdbstore.MultiOptions{Logger: logger, Rules: true}).Register(s.grpc.Server())
	} else {
		infopb.RegisterInfoServer(s.grpc.Server(), rule.InfoServer(cfg.Labels))
	}
	rulesapi.Register(s.grpc.Server(), r.RulesSource())
	s.http.Handle("/api/v1/rules", rulesapi.RulesHandler(r.RulesSource()))
	s.http.Handle("/api/v1/alerts", rulesapi.AlertsHandler(r.RulesSource()))
	s.http.Handle("/-/reload", rule.ReloadHandler(r, logger))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s.probe.Healthy()
	s.probe.Ready()
	return s.run(ctx, func(ctx context.Context) error { return r.RunElected(ctx, elect) },
		func(ctx context.Context) error { rule.ReloadOnSignal(ctx, r, hup, logger); return nil })
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/promql"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/discovery"
	"github.com/vigilhq/vigil/internal/exemplarsapi"
	"github.com/vigilhq/vigil/internal/federate"
	"github.com/vigilhq/vigil/internal/metadataapi"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/queryapi"
	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/server"
	"github.com/vigilhq/vigil/internal/statusapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/internal/targetsapi"
	"github.com/vigilhq/vigil/internal/web"
)

type queryConfig struct {
	servers                             *serverFlags
	endpoints, stores, sdFiles          *[]string
	replicaLabels                       *[]string
	dedupFunc                           *string
	sdInterval, dnsInterval             *time.Duration
	unhealthyTimeout, responseTimeout   *time.Duration
	hedgeMin                            *time.Duration
	hedgeFactor                         *float64
	infoTimeout                         *time.Duration
	timeout, lookbackDelta, defaultStep *time.Duration
	maxConcurrent, maxSamples           *int
	limitSeries, limitSamples           *int64
	maxFetchedBytes                     *units.Base2Bytes
	partialResponse, autoDownsampling   *bool
	clientTLS                           *server.ClientTLS
	compression, engine, mode           *string
	subqueryStep, metadataRange         *time.Duration
	disableCORS                         *bool
}

func registerQuery(app *kingpin.Application, cmds map[string]runFunc) {
	cmd := app.Command("query", "Query node: Prometheus HTTP API and PromQL over every StoreAPI endpoint, with replica deduplication.")
	cfg := queryConfig{servers: addServerFlags(cmd)}
	cfg.endpoints = cmd.Flag("endpoint", "StoreAPI endpoint (host:port, dns+host:port, dnssrv+name, dnssrvnoa+name); repeatable.").Strings()
	cfg.stores = cmd.Flag("store", "Alias of --endpoint (removed from Thanos in v0.38, still used by tutorials); repeatable.").Strings()
	cfg.sdFiles = cmd.Flag("store.sd-files", "Path to a file in Prometheus file SD format listing endpoints; repeatable; watched for changes.").Strings()
	cfg.sdInterval = durationFlag(cmd, "store.sd-interval", "Re-read interval of --store.sd-files (besides change notifications).", "5m")
	cfg.dnsInterval = durationFlag(cmd, "store.sd-dns-interval", "Interval between DNS resolutions of endpoints.", "30s")
	cfg.unhealthyTimeout = durationFlag(cmd, "store.unhealthy-timeout", "Drop an endpoint after it has been unhealthy for this long.", "5m")
	cfg.responseTimeout = durationFlag(cmd, "store.response-timeout", "If an endpoint sends nothing for this long, give up on it (0 = wait for the query timeout).", "0ms")
	cfg.hedgeMin = durationFlag(cmd, "query.replica-hedge.min-delay", "Once a replica answered a deduplicated query, its sibling replicas get max(this, factor x its time) more before they are dropped with a warning (0 = off).", "250ms")
	cfg.hedgeFactor = cmd.Flag("query.replica-hedge.factor", "See --query.replica-hedge.min-delay.").Default("2").Float64()
	cfg.infoTimeout = durationFlag(cmd, "endpoint.info-timeout", "Timeout of each Info probe; endpoints are probed every 5s.", "5s")
	cfg.replicaLabels = cmd.Flag("query.replica-label", "Label that tells replicas apart; repeatable or comma-separated. Series that differ only in these labels are deduplicated.").Strings()
	cfg.dedupFunc = cmd.Flag("deduplication.func", "Deduplication algorithm: gapfill (Vigil's default: follow one replica, fill its gaps, keep counters continuous) or penalty (Thanos's).").Default("gapfill").Enum("gapfill", "penalty")
	cfg.timeout = durationFlag(cmd, "query.timeout", "Maximum time to process a query.", "2m")
	cfg.lookbackDelta = durationFlag(cmd, "query.lookback-delta", "How far back to look for a sample in instant vector selectors.", "5m")
	cfg.defaultStep = durationFlag(cmd, "query.default-step", "Default range query step when none is given.", "1s")
	cfg.subqueryStep = durationFlag(cmd, "query.default-evaluation-interval", "Step of subqueries that give none.", "1m")
	cfg.engine = cmd.Flag("query.promql-engine", "PromQL engine: prometheus (thanos is taken and runs the same Prometheus engine).").Default("prometheus").Enum("prometheus", "thanos")
	cfg.mode = cmd.Flag("query.mode", "PromQL query mode: local (distributed is refused).").Default("local").Enum("local", "distributed")
	cfg.metadataRange = durationFlag(cmd, "query.metadata.default-time-range", "Time range of series and label requests that give no start, before their end (0 = all time).", "0s")
	cfg.disableCORS = cmd.Flag("web.disable-cors", "Do not set CORS headers on the query API.").Default("false").Bool()
	cfg.maxConcurrent = cmd.Flag("query.max-concurrent", "Maximum number of queries processed concurrently.").Default("20").Int()
	cfg.maxSamples = cmd.Flag("query.max-samples", "Maximum samples a single query may load into memory; over it the query fails.").Default("50000000").Int()
	cfg.limitSeries = cmd.Flag("store.limits.request-series", "Maximum series one selector may receive from all endpoints together; over it the query fails (0 = no limit).").Default("0").Int64()
	cfg.limitSamples = cmd.Flag("store.limits.request-samples", "Maximum samples (from chunk headers) one selector may receive from all endpoints together; over it the query fails (0 = no limit).").Default("0").Int64()
	cfg.maxFetchedBytes = cmd.Flag("query.max-fetched-bytes", "Maximum label and chunk bytes one selector may receive from all endpoints together; over it the query fails instead of the querier running out of memory (0 = no limit).").Default("2GB").Bytes()
	cfg.partialResponse = cmd.Flag("query.partial-response", "Answer with the data of healthy endpoints plus warnings when some fail (per-request partial_response overrides).").Default("true").Bool()
	cfg.autoDownsampling = cmd.Flag("query.auto-downsampling", "Range queries without max_source_resolution read downsampled data up to step/5 (as max_source_resolution=auto) instead of raw data only.").Default("false").Bool()
	cfg.compression = cmd.Flag("grpc-compression", "Compression for StoreAPI calls: none or snappy.").Default("none").Enum("none", "snappy")
	cfg.clientTLS = addClientTLSFlags(cmd, "grpc-client-tls", "grpc-client-server-name", "endpoints")
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		return runQuery(ctx, logger, reg, cfg)
	}
}

func runQuery(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, cfg queryConfig) error {
	dedupFunc, err := dedup.ParseFunc(*cfg.dedupFunc)
	if err != nil {
		return err
	}
	if err := checkEngine(logger, *cfg.engine, *cfg.mode); err != nil {
		return err
	}
	specs := append(append([]string{}, *cfg.endpoints...), *cfg.stores...)
	for _, s := range specs {
		if err := discovery.ValidateSpec(s); err != nil {
			return err
		}
	}
	tlsCfg, err := cfg.clientTLS.Config()
	if err != nil {
		return err
	}
	s, err := newServers(logger, reg, cfg.servers)
	if err != nil {
		return err
	}
	var fsd *discovery.FileSD
	if len(*cfg.sdFiles) > 0 {
		fsd = discovery.NewFileSD(*cfg.sdFiles, *cfg.sdInterval, logger, reg)
	}
	eps := discovery.NewEndpoints(specs, fsd, discovery.NewDNS(net.DefaultResolver, logger, reg), *cfg.dnsInterval, logger)
	dialOpts := storeapi.DialOptions(tlsCfg, *cfg.compression)
	set := query.NewEndpointSet(query.EndpointSetConfig{
		Addresses: eps.Addresses, DialOptions: dialOpts,
		InfoTimeout: *cfg.infoTimeout, UnhealthyTimeout: *cfg.unhealthyTimeout,
	}, logger, reg)
	apis := query.NewAPIEndpoints(set, dialOpts, *cfg.infoTimeout) // connections for Rules, Metadata, Targets, Exemplars
	defer apis.Close()
	rulesProxy, metadataProxy := query.NewRulesProxy(apis), query.NewMetadataProxy(apis)
	targetsProxy, exemplarsProxy := query.NewTargetsProxy(apis), query.NewExemplarsProxy(apis, nil)
	statusProxy := query.NewStatusProxy(apis)
	proxy := query.NewProxy(set, *cfg.responseTimeout, logger).WithHedging(query.HedgeOptions{Min: *cfg.hedgeMin, Factor: *cfg.hedgeFactor}).WithLimits(storeapi.RequestLimits{
		Series: *cfg.limitSeries, Samples: *cfg.limitSamples, Bytes: int64(*cfg.maxFetchedBytes),
	})

	engine := promql.NewEngine(promql.EngineOpts{
		Logger: logger, Reg: reg, MaxSamples: *cfg.maxSamples, Timeout: *cfg.timeout,
		LookbackDelta: *cfg.lookbackDelta, EnableAtModifier: true, EnableNegativeOffset: true,
		ActiveQueryTracker: nil, NoStepSubqueryIntervalFn: func(int64) int64 { return cfg.subqueryStep.Milliseconds() },
	})
	queryable := query.NewQueryableFactory(proxy, dedupFunc)
	api := queryapi.New(queryapi.Config{
		Engine: query.NewGatedEngine(engine, *cfg.maxConcurrent), Queryable: queryable, Stores: set,
		Rules: rulesProxy, Metadata: metadataProxy, Targets: targetsProxy, Exemplars: exemplarsProxy, Status: statusProxy,
		ReplicaLabels: splitReplicaLabels(*cfg.replicaLabels), PartialResponse: *cfg.partialResponse,
		LookbackDelta: *cfg.lookbackDelta, DefaultStep: *cfg.defaultStep, Timeout: *cfg.timeout,
		AutoDownsampling: *cfg.autoDownsampling, DisableCORS: *cfg.disableCORS,
		MetadataDefaultRange: *cfg.metadataRange,
		BuildInfo: queryapi.BuildInfo{Version: version.Version, Revision: version.Revision, Branch: version.Branch,
			BuildUser: version.BuildUser, BuildDate: version.BuildDate, GoVersion: runtime.Version()},
		Logger: logger,
	})
	api.Register(s.http.Mux(), "")
	federate.New(federate.Config{API: api, Queryable: queryable, LookbackDelta: *cfg.lookbackDelta,
		MaxSamples: *cfg.maxSamples, Logger: logger, Registerer: reg}).Register(s.http.Mux(), "")
	web.Register(s.http.Mux()) // the UI at /, /graph, /stores, /rules, /alerts, /replicas
	store := query.NewStoreServer(proxy)
	storeapi.Register(s.grpc.Server(), store, store, storepb.StoreType_QUERY)
	metadataapi.Register(s.grpc.Server(), metadataProxy) // for queriers above this one
	rulesapi.Register(s.grpc.Server(), rulesProxy)
	targetsapi.Register(s.grpc.Server(), targetsProxy)
	exemplarsapi.Register(s.grpc.Server(), exemplarsProxy)
	statusapi.Register(s.grpc.Server(), statusProxy)
	s.probe.Healthy()
	// Resolve and probe once before reporting ready, so the first queries see endpoints.
	if err := eps.Refresh(ctx); err != nil {
		logger.Warn("initial endpoint discovery incomplete", "err", err)
	}
	set.Update(ctx)
	s.probe.Ready()
	logger.Info("starting query node", "endpoints", strings.Join(specs, ","), "sd_files", strings.Join(*cfg.sdFiles, ","),
		"replica_labels", strings.Join(splitReplicaLabels(*cfg.replicaLabels), ","))
	return s.run(ctx, eps.Run, func(ctx context.Context) error { return set.Run(ctx, 5*time.Second) })
}

// checkEngine takes the engine flags a Thanos querier may be started with: Vigil runs
// Prometheus' engine, locally.
func checkEngine(logger *slog.Logger, engine, mode string) error {
	if mode == "distributed" {
		return fmt.Errorf("--query.mode=distributed is not supported: Vigil evaluates queries in the querier that receives them (--query.mode=local)")
	}
	if engine == "thanos" {
		logger.Warn("--query.promql-engine=thanos: Vigil evaluates PromQL with Prometheus' engine")
	}
	return nil
}

// splitReplicaLabels accepts both repeated flags and comma-separated values.
func splitReplicaLabels(in []string) []string {
	var out []string
	for _, v := range in {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

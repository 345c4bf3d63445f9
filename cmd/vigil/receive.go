package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/cliflag"
	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/receive"
	"github.com/vigilhq/vigil/internal/server"
)

// receiveFlags are the flags of `vigil receive` that need work after parsing.
type receiveFlags struct {
	srv                       *serverFlags
	rwAddress, rwTLS          string
	labels                    []string
	limitsFile, limitsInline  string
	hashringsInline           string
	compression               string
	objstore                  *objstore.Flags
	retention, ooo, block     *time.Duration
	forwardTimeout, upload    *time.Duration
	hashringsPoll, limitsPoll *time.Duration
	tsdb                      *tsdbFlags
	maxBytes                  units.Base2Bytes
	hashFunc                  string
	peerTLS                   *server.ClientTLS
	rwServerTLS               server.ServerTLS
	cfg                       receive.Config
}

func registerReceive(app *kingpin.Application, cmds map[string]runFunc) {
	cmd := app.Command("receive", "Accepts Prometheus remote write and OTLP, replicates it over a hashring, serves it over the StoreAPI and uploads its blocks.")
	f := &receiveFlags{srv: addServerFlags(cmd), objstore: objstore.RegisterFlags(cmd)}
	c := &f.cfg
	cmd.Flag("remote-write.address", "Listen host:port for remote write (/api/v1/receive) and OTLP (/api/v1/otlp).").Default("0.0.0.0:19291").StringVar(&f.rwAddress)
	cmd.Flag("remote-write.server-http-config", "Exporter-toolkit web config file (TLS, basic auth) for the remote-write server.").Default("").StringVar(&f.rwTLS)
	addRemoteWriteServerTLSFlags(cmd, &f.rwServerTLS)
	f.peerTLS = addClientTLSFlags(cmd, "remote-write.client-tls", "remote-write.client-server-name", "other receivers")
	cmd.Flag("tsdb.path", "Directory of the per-tenant TSDBs.").Default("./data").StringVar(&c.TSDB.Dir)
	f.retention = durationFlag(cmd, "tsdb.retention", "How long to keep local blocks; a tenant without writes for this long is flushed, uploaded and removed.", "15d")
	f.ooo = durationFlag(cmd, "tsdb.out-of-order.time-window", "How far back out-of-order samples are accepted (0 = none); needs vertical compaction in the compactor.", "0s")
	f.block = durationFlag(cmd, "tsdb.block-duration", "Length of the local blocks.", "2h")
	cmd.Flag("tsdb.max-exemplars", "Exemplars kept in memory per tenant (0 = exemplar storage off).").Default("0").Int64Var(&c.TSDB.MaxExemplars)
	f.tsdb = addTSDBFlags(cmd)
	hashFuncFlag(cmd, &f.hashFunc)
	cmd.Flag("tsdb.max-retention-bytes", "Size bound of each tenant's blocks, oldest deleted first (0 = none); units B, KB, MB, GB...").Default("0").BytesVar(&f.maxBytes)
	cmd.Flag("tsdb.out-of-order.cap-max", "Samples per out-of-order chunk (0 = the TSDB's default of 32).").Default("0").Int64Var(&c.TSDB.OutOfOrderCapMax)
	cmd.Flag("label", `External label of this receiver's data, name="value"; repeatable, at least one.`).Required().StringsVar(&f.labels)
	cmd.Flag("receive.tenant-header", "HTTP header that names the tenant.").Default(receive.DefaultTenantHeader).StringVar(&c.Handler.TenantHeader)
	cmd.Flag("receive.default-tenant-id", "Tenant of requests that name none.").Default("default-tenant").StringVar(&c.Handler.DefaultTenant)
	cmd.Flag("receive.tenant-label-name", "Label that carries the tenant on series and blocks.").Default("tenant_id").StringVar(&c.TSDB.TenantLabel)
	cmd.Flag("receive.hashrings-file", "JSON hashring configuration, re-read when it changes.").Default("").StringVar(&c.HashringsFile)
	cmd.Flag("receive.hashrings", "Inline JSON hashring configuration (instead of a file).").Default("").StringVar(&f.hashringsInline)
	f.hashringsPoll = durationFlag(cmd, "receive.hashrings-file-refresh-interval", "How often the hashrings file is re-read even if unchanged.", "5m")
	cmd.Flag("receive.hashrings-algorithm", "Placement of hashrings that do not name one.").Default("hashmod").EnumVar(&c.HashringsAlgo, "hashmod", "ketama")
	cmd.Flag("receive.local-endpoint", "This receiver's gRPC address as the hashring lists it; without it the receiver only routes.").Default("").StringVar(&c.Distributor.LocalEndpoint)
	cmd.Flag("receive.replication-factor", "Receivers that store each series.").Default("1").IntVar(&c.Distributor.ReplicationFactor)
	cmd.Flag("receive.grpc-compression", "Compression of writes forwarded to other receivers: snappy or none.").Default("snappy").EnumVar(&f.compression, "snappy", "none")
	cmd.Flag("receive.limits-config-file", "YAML write limits (request size, series, samples; head series per tenant), re-read when it changes.").Default("").StringVar(&f.limitsFile)
	cmd.Flag("receive.limits-config", "Inline YAML write limits (instead of a file).").Default("").StringVar(&f.limitsInline)
	f.limitsPoll = durationFlag(cmd, "receive.limits-config-reload-interval", "How often the limits file is checked for changes.", "15s")
	f.forwardTimeout = cliflag.Duration(cmd.Flag("receive-forward-timeout", "Timeout of each write forwarded to another receiver.").Default("5s").Hidden())
	cmd.Flag("store.limits.request-series", "Maximum series one Series request may return (0 = unlimited); over it the request fails with ResourceExhausted.").Default("0").Int64Var(&c.TSDB.Store.Limits.Series)
	cmd.Flag("store.limits.request-samples", "Maximum samples one Series request may return (0 = unlimited); over it the request fails with ResourceExhausted.").Default("0").Int64Var(&c.TSDB.Store.Limits.Samples)
	f.upload = cliflag.Duration(cmd.Flag("shipper.upload-interval", "How often finished blocks are uploaded.").Default("30s").Hidden())
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		return runReceive(ctx, logger, reg, f)
	}
}

func runReceive(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry, f *receiveFlags) error {
	cfg, closeBucket, err := receiveConfig(ctx, logger, reg, f)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	defer closeBucket()
	f.srv.grpc.ReceiveWindow = receive.GRPCReceiveWindow
	s, err := newServers(logger, reg, f.srv)
	if err != nil {
		return err
	}
	rw, err := server.NewHTTP(logger.With("server", "remote-write"), reg, s.probe,
		server.HTTPConfig{Address: f.rwAddress, TLSConfig: f.rwTLS, GracePeriod: *f.srv.httpGrace})
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	r, err := receive.New(logger, reg, cfg)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	r.Register(s.grpc.Server(), rw)
	s.probe.Healthy()
	s.probe.Ready()
	err = s.run(ctx, rw.Run, r.Run)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if cerr := r.Close(cctx); cerr != nil {
		logger.Error("flushing and uploading on shutdown", "err", cerr)
	}
	return err
}

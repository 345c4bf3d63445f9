package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/cliflag"
	"github.com/vigilhq/vigil/internal/server"
)

// serverFlags are the HTTP and gRPC flags every serving component has.
type serverFlags struct {
	http                             server.HTTPConfig
	grpc                             server.GRPCConfig
	httpGrace, grpcGrace, maxConnAge *time.Duration
}

func addServerFlags(cmd *kingpin.CmdClause) *serverFlags {
	f := &serverFlags{}
	cmd.Flag("http-address", "Listen host:port for HTTP endpoints.").Default("0.0.0.0:10902").StringVar(&f.http.Address)
	cmd.Flag("http.config", "Path to an exporter-toolkit web config file (TLS, basic auth) for the HTTP server.").Default("").StringVar(&f.http.TLSConfig)
	f.httpGrace = cliflag.Duration(cmd.Flag("http-grace-period", "Time to wait after an interrupt for HTTP requests to finish.").Default("2m"))
	cmd.Flag("grpc-address", "Listen host:port for gRPC endpoints (StoreAPI, Info, health).").Default("0.0.0.0:10901").StringVar(&f.grpc.Address)
	cmd.Flag("grpc-server-tls-cert", "TLS certificate for the gRPC server; leave empty to disable TLS.").Default("").StringVar(&f.grpc.TLSCert)
	cmd.Flag("grpc-server-tls-key", "TLS key for the gRPC server; leave empty to disable TLS.").Default("").StringVar(&f.grpc.TLSKey)
	cmd.Flag("grpc-server-tls-client-ca", "TLS CA to verify clients against; client certificates are then required.").Default("").StringVar(&f.grpc.TLSClientCA)
	cmd.Flag("grpc-server-tls-min-version", "Minimum TLS version of the gRPC server: 1.0, 1.1, 1.2 or 1.3.").Default("1.3").StringVar(&f.grpc.TLSMinVersion)
	cmd.Flag("grpc-server-tls-ciphers", "TLS cipher suite of the gRPC server (Go name, TLS 1.2 and below); repeatable. Go's defaults when none.").StringsVar(&f.grpc.TLSCiphers)
	cmd.Flag("grpc-server-tls-curves", "TLS curve of the gRPC server (CurveP256, CurveP384, CurveP521, X25519); repeatable. Go's defaults when none.").StringsVar(&f.grpc.TLSCurves)
	f.grpcGrace = cliflag.Duration(cmd.Flag("grpc-grace-period", "Time to wait after an interrupt for gRPC calls to finish.").Default("2m"))
	f.maxConnAge = cliflag.Duration(cmd.Flag("grpc-server-max-connection-age", "Close gRPC connections after this age so clients rebalance.").Default("60m"))
	return f
}

// tsdbFlags are the flags of the components that keep a TSDB of their own (receive,
// rule) beside its path, retention and block length.
type tsdbFlags struct {
	walCompression, noLockfile bool
}

func addTSDBFlags(cmd *kingpin.CmdClause) *tsdbFlags {
	f := &tsdbFlags{}
	cmd.Flag("tsdb.wal-compression", "Compress the TSDB's write-ahead log (snappy).").Default("true").BoolVar(&f.walCompression)
	cmd.Flag("tsdb.no-lockfile", "Do not create a lock file in the TSDB directory.").Default("false").BoolVar(&f.noLockfile)
	return f
}

// addClientTLSFlags registers the TLS flags of a gRPC client towards peers (what names
// them in help texts): --<prefix>-secure, -skip-verify, -cert, -key, -ca, -min-version and
// --<serverName>, as Thanos names them.
func addClientTLSFlags(cmd *kingpin.CmdClause, prefix, serverName, peers string) *server.ClientTLS {
	c := &server.ClientTLS{Prefix: prefix}
	cmd.Flag(prefix+"-secure", "Use TLS when talking to "+peers+".").Default("false").BoolVar(&c.Secure)
	cmd.Flag(prefix+"-skip-verify", "Do not verify the certificates of "+peers+".").Default("false").BoolVar(&c.SkipVerify)
	cmd.Flag(prefix+"-cert", "Client certificate presented to "+peers+".").Default("").StringVar(&c.Cert)
	cmd.Flag(prefix+"-key", "Key of the client certificate.").Default("").StringVar(&c.Key)
	cmd.Flag(prefix+"-ca", "CA to verify the certificates of "+peers+" with.").Default("").StringVar(&c.CA)
	cmd.Flag(serverName, "Server name to verify the certificates of "+peers+" against.").Default("").StringVar(&c.ServerName)
	cmd.Flag(prefix+"-min-version", "Minimum TLS version towards "+peers+": 1.0, 1.1, 1.2 or 1.3.").Default("1.3").StringVar(&c.MinVersion)
	return c
}

// addRemoteWriteServerTLSFlags registers the receiver's --remote-write.server-tls-* flags,
// which Thanos takes instead of a web config file.
func addRemoteWriteServerTLSFlags(cmd *kingpin.CmdClause, t *server.ServerTLS) {
	t.Prefix = "remote-write.server-tls"
	cmd.Flag("remote-write.server-tls-cert", "TLS certificate of the remote-write server (instead of --remote-write.server-http-config).").Default("").StringVar(&t.Cert)
	cmd.Flag("remote-write.server-tls-key", "TLS key of the remote-write server.").Default("").StringVar(&t.Key)
	cmd.Flag("remote-write.server-tls-client-ca", "CA that remote-write clients' certificates must chain to; client certificates are then required.").Default("").StringVar(&t.CA)
	cmd.Flag("remote-write.server-tls-min-version", "Minimum TLS version of the remote-write server: 1.0, 1.1, 1.2 or 1.3.").Default("1.3").StringVar(&t.MinVersion)
	cmd.Flag("remote-write.server-tls-ciphers", "TLS cipher suite of the remote-write server (Go name); repeatable.").StringsVar(&t.Ciphers)
	cmd.Flag("remote-write.server-tls-curves", "TLS curve of the remote-write server (CurveP256, CurveP384, CurveP521, X25519); repeatable.").StringsVar(&t.Curves)
}

// hashFuncFlag registers --hash-func, the hash recorded in meta.json for each uploaded file.
func hashFuncFlag(cmd *kingpin.CmdClause, target *string) {
	cmd.Flag("hash-func", "Hash function recorded for each uploaded file in meta.json: SHA256, or empty for none.").
		Default("").EnumVar(target, "", string(block.HashSHA256))
}

// servers are a component's started HTTP and gRPC servers and its probe.
type servers struct {
	probe *server.Probe
	http  *server.HTTP
	grpc  *server.GRPC
}

// newServers binds both listeners. Flag values are read here, after parsing.
func newServers(logger *slog.Logger, reg *prometheus.Registry, f *serverFlags) (*servers, error) {
	f.http.GracePeriod, f.grpc.GracePeriod, f.grpc.MaxConnectionAge = *f.httpGrace, *f.grpcGrace, *f.maxConnAge
	probe := server.NewProbe()
	h, err := server.NewHTTP(logger, reg, probe, f.http)
	if err != nil {
		return nil, err
	}
	g, err := server.NewGRPC(logger, reg, probe, f.grpc)
	if err != nil {
		return nil, err
	}
	return &servers{probe: probe, http: h, grpc: g}, nil
}

// run runs the servers and the component's own loops until ctx is done or one fails.
func (s *servers) run(ctx context.Context, loops ...func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.http.Run(gctx) })
	g.Go(func() error { return s.grpc.Run(gctx) })
	for _, l := range loops {
		g.Go(func() error { return l(gctx) })
	}
	<-gctx.Done()
	s.probe.Shutdown()
	return g.Wait()
}

// durationFlag registers a model-duration flag.
func durationFlag(cmd *kingpin.CmdClause, name, help, def string) *time.Duration {
	return cliflag.Duration(cmd.Flag(name, help).Default(def))
}

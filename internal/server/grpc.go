package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/vigilhq/vigil/internal/grpcsnappy"
	"github.com/vigilhq/vigil/internal/storeapi"
)

// GRPCConfig configures the gRPC server of a component.
type GRPCConfig struct {
	Address          string        // --grpc-address
	TLSCert, TLSKey  string        // --grpc-server-tls-cert, --grpc-server-tls-key
	TLSClientCA      string        // --grpc-server-tls-client-ca: require and verify client certificates
	TLSMinVersion    string        // --grpc-server-tls-min-version: "1.0" to "1.3"; "1.3" when empty
	TLSCiphers       []string      // --grpc-server-tls-ciphers: Go cipher suite names (TLS 1.2 and below)
	TLSCurves        []string      // --grpc-server-tls-curves: CurveP256, CurveP384, CurveP521, X25519
	GracePeriod      time.Duration // --grpc-grace-period
	MaxConnectionAge time.Duration // --grpc-server-max-connection-age
	// ReceiveWindow, when set, is the flow-control window of each incoming stream (the
	// connection gets twice as much) instead of grpc-go's adaptive one. Components that
	// receive large messages from many concurrent callers (the receiver's forwarded
	// writes, 100s of KB each) need it: the adaptive window starts at 64 KiB and stalled
	// such calls for seconds. It bounds what one caller may send ahead unread.
	ReceiveWindow int32
}

// GRPC is a component's gRPC server with the transport settings Thanos peers expect:
// the snappy compressor, 10s client keepalive pings allowed, MaxInt32 message sizes and
// the standard health service.
type GRPC struct {
	cfg    GRPCConfig
	logger *slog.Logger
	srv    *grpc.Server
	ln     net.Listener
}

// NewGRPC binds the listener and builds the server; register services on Server() before Run.
func NewGRPC(logger *slog.Logger, reg prometheus.Registerer, probe *Probe, cfg GRPCConfig) (*GRPC, error) {
	grpcsnappy.Register()
	opts := []grpc.ServerOption{
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxRecvMsgSize(math.MaxInt32),
		// Thanos clients ping every 10s; grpc-go's default enforcement (5m) would answer
		// them with GOAWAY too_many_pings.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: cfg.MaxConnectionAge}),
		// Protobuf with a fast path for Series frames; the bytes on the wire are the same.
		grpc.ForceServerCodecV2(storeapi.Codec()),
	}
	if cfg.ReceiveWindow > 0 {
		opts = append(opts, grpc.InitialWindowSize(cfg.ReceiveWindow), grpc.InitialConnWindowSize(2*cfg.ReceiveWindow))
	}
	metrics := newGRPCMetrics(reg)
	opts = append(opts, grpc.ChainUnaryInterceptor(metrics.unary, recoverUnary(logger)),
		grpc.ChainStreamInterceptor(metrics.stream, recoverStream(logger)))
	if cfg.TLSCert != "" || cfg.TLSKey != "" || cfg.TLSClientCA != "" {
		tlsCfg, err := serverTLS(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listen on gRPC address %s: %w", cfg.Address, err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, probe.grpcState)
	return &GRPC{cfg: cfg, logger: logger, srv: srv, ln: ln}, nil
}

func serverTLS(cfg GRPCConfig) (*tls.Config, error) {
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, fmt.Errorf("gRPC TLS needs both --grpc-server-tls-cert and --grpc-server-tls-key")
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load gRPC server certificate: %w", err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if err := tlsSettings(tlsCfg, cfg); err != nil {
		return nil, err
	}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("read gRPC client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates found in gRPC client CA %s", cfg.TLSClientCA)
		}
		tlsCfg.ClientCAs = pool
		tlsCfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tlsCfg, nil
}

var tlsVersions = map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

var tlsCurves = map[string]tls.CurveID{"CurveP256": tls.CurveP256, "CurveP384": tls.CurveP384, "CurveP521": tls.CurveP521, "X25519": tls.X25519}

// ParseTLSVersion turns a --*-tls-min-version value ("1.0" to "1.3"; "1.3" when empty)
// into its crypto/tls constant; flag names the flag in the error.
func ParseTLSVersion(flag, v string) (uint16, error) {
	if v == "" {
		v = "1.3"
	}
	id, ok := tlsVersions[v]
	if !ok {
		return 0, fmt.Errorf("%s %q: want 1.0, 1.1, 1.2 or 1.3", flag, v)
	}
	return id, nil
}

// tlsSettings sets the minimum version, cipher suites and curves of the flags on c; an
// unknown value is an error naming the flag.
func tlsSettings(c *tls.Config, cfg GRPCConfig) error {
	var err error
	if c.MinVersion, err = ParseTLSVersion("--grpc-server-tls-min-version", cfg.TLSMinVersion); err != nil {
		return err
	}
	suites := map[string]uint16{}
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		suites[s.Name] = s.ID
	}
	for _, name := range cfg.TLSCiphers {
		id, ok := suites[name]
		if !ok {
			return fmt.Errorf("--grpc-server-tls-ciphers %q: not a cipher suite Go knows (see crypto/tls)", name)
		}
		c.CipherSuites = append(c.CipherSuites, id)
	}
	for _, name := range cfg.TLSCurves {
		id, ok := tlsCurves[name]
		if !ok {
			return fmt.Errorf("--grpc-server-tls-curves %q: want CurveP256, CurveP384, CurveP521 or X25519", name)
		}
		c.CurvePreferences = append(c.CurvePreferences, id)
	}
	return nil
}

// Server is the underlying gRPC server, for registering services.
func (g *GRPC) Server() *grpc.Server { return g.srv }

// Addr is the bound address.
func (g *GRPC) Addr() net.Addr { return g.ln.Addr() }

// Run serves until ctx is done, then stops gracefully within the grace period.
func (g *GRPC) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		g.logger.Info("listening for gRPC", "address", g.ln.Addr().String(), "tls", g.cfg.TLSCert != "")
		errc <- g.srv.Serve(g.ln)
	}()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("serve gRPC: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { g.srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(g.cfg.GracePeriod):
		g.logger.Warn("gRPC graceful stop timed out; stopping")
		g.srv.Stop()
	}
	return nil
}

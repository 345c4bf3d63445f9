package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// HTTPConfig configures the HTTP server of a component.
type HTTPConfig struct {
	Address     string        // --http-address
	TLSConfig   string        // --http.config: exporter-toolkit web config (TLS, basic auth)
	GracePeriod time.Duration // --http-grace-period
}

// HTTP is a component's HTTP server: /metrics, /-/healthy, /-/ready, /debug/pprof and
// whatever the component registers.
type HTTP struct {
	cfg    HTTPConfig
	logger *slog.Logger
	mux    *http.ServeMux
	srv    *http.Server
	ln     net.Listener
}

// NewHTTP binds the listener at once, so a bad address fails at start-up and the bound
// address is known before Run.
func NewHTTP(logger *slog.Logger, reg *prometheus.Registry, probe *Probe, cfg HTTPConfig) (*HTTP, error) {
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listen on HTTP address %s: %w", cfg.Address, err)
	}
	if cfg.TLSConfig != "" {
		if err := web.Validate(cfg.TLSConfig); err != nil {
			ln.Close()
			return nil, fmt.Errorf("validate --http.config %s: %w", cfg.TLSConfig, err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/-/healthy", probe.healthyHandler)
	mux.HandleFunc("/-/ready", probe.readyHandler)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	h := &HTTP{cfg: cfg, logger: logger, mux: mux, ln: ln}
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	return h, nil
}

// Handle registers a handler on the server's mux.
func (h *HTTP) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// Addr is the bound address.
func (h *HTTP) Addr() net.Addr { return h.ln.Addr() }

// Run serves until ctx is done, then shuts down gracefully within the grace period.
func (h *HTTP) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		h.logger.Info("listening for HTTP", "address", h.ln.Addr().String(), "tls_config", h.cfg.TLSConfig)
		cfgFile := h.cfg.TLSConfig
		systemd := false
		addrs := []string{h.cfg.Address}
		errc <- web.Serve(h.ln, h.srv, &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &cfgFile}, h.logger)
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), h.cfg.GracePeriod)
	defer cancel()
	if err := h.srv.Shutdown(sctx); err != nil {
		h.logger.Warn("HTTP graceful shutdown timed out; closing connections", "err", err)
		return h.srv.Close()
	}
	return nil
}

// Mux is the server's mux, for components that register many routes.
func (h *HTTP) Mux() *http.ServeMux { return h.mux }

// Package server holds the plumbing every Vigil component shares: the HTTP server with
// /metrics and the health probes, the gRPC server with Thanos-compatible transport
// settings, and the probe that ties their health states together.
package server

import (
	"net/http"
	"sync"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Probe tracks whether a component is healthy (set up) and ready (serving), and mirrors
// that state into the gRPC health service so HTTP and gRPC probes always agree.
type Probe struct {
	mu        sync.Mutex
	healthy   bool
	ready     bool
	notReady  string // why the component is not ready, shown by /-/ready
	grpcState *health.Server
}

// NewProbe returns a probe that is neither healthy nor ready.
func NewProbe() *Probe {
	p := &Probe{grpcState: health.NewServer(), notReady: "starting"}
	p.grpcState.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return p
}

// Healthy marks the component as set up.
func (p *Probe) Healthy() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthy = true
}

// Ready marks the component as serving.
func (p *Probe) Ready() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ready {
		p.grpcState.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	}
	p.ready, p.notReady = true, ""
}

// NotReady marks the component as not serving, with the reason /-/ready reports.
func (p *Probe) NotReady(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready {
		p.grpcState.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	p.ready, p.notReady = false, reason
}

// IsReady reports whether the component is serving.
func (p *Probe) IsReady() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready
}

// Shutdown marks the component as going away (both probes fail from now on).
func (p *Probe) Shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthy, p.ready, p.notReady = false, false, "shutting down"
	p.grpcState.Shutdown()
}

func (p *Probe) healthyHandler(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	ok := p.healthy
	p.mu.Unlock()
	if !ok {
		http.Error(w, "not healthy", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("OK\n"))
}

func (p *Probe) readyHandler(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	ok, reason := p.ready, p.notReady
	p.mu.Unlock()
	if !ok {
		http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("OK\n"))
}

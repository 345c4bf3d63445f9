package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// grpcMetrics counts handled RPCs by method and code, with their latency, under the
// metric names the grpc-ecosystem exporters use so existing dashboards keep working.
type grpcMetrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newGRPCMetrics(reg prometheus.Registerer) *grpcMetrics {
	m := &grpcMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "Total number of RPCs completed on the server, regardless of success or failure.",
		}, []string{"grpc_type", "grpc_service", "grpc_method", "grpc_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency of RPCs handled by the server.",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"grpc_type", "grpc_service", "grpc_method"}),
	}
	if reg != nil {
		reg.MustRegister(m.handled, m.duration)
	}
	return m
}

func (m *grpcMetrics) observe(kind, fullMethod string, start time.Time, err error) {
	service, method := splitMethod(fullMethod)
	m.handled.WithLabelValues(kind, service, method, status.Code(err).String()).Inc()
	m.duration.WithLabelValues(kind, service, method).Observe(time.Since(start).Seconds())
}

// splitMethod splits "/thanos.Store/Series" into "thanos.Store" and "Series".
func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

func (m *grpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.observe("unary", info.FullMethod, start, err)
	return resp, err
}

func (m *grpcMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	m.observe("server_stream", info.FullMethod, start, err)
	return err
}

// recoverUnary turns a panic in a handler into an Internal error instead of a crash of
// the whole process, logging the stack.
func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer recoverPanic(logger, info.FullMethod, &err)
		return handler(ctx, req)
	}
}

// recoverStream is recoverUnary for streaming handlers.
func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer recoverPanic(logger, info.FullMethod, &err)
		return handler(srv, ss)
	}
}

func recoverPanic(logger *slog.Logger, method string, err *error) {
	if r := recover(); r != nil {
		logger.Error("panic in gRPC handler", "method", method, "panic", r, "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "internal error in %s: %v", method, r)
	}
}

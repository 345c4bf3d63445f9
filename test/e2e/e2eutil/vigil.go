package e2eutil

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigilhq/vigil/internal/storeapi"
)

// VigilStartTimeout bounds how long WaitReady waits by default.
const VigilStartTimeout = 30 * time.Second

// VigilBin returns the vigil binary: $VIGIL_BIN, else bin/vigil at the repository root
// (found relative to this source file). It skips the test when neither exists.
func VigilBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("VIGIL_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("VIGIL_BIN=%s: %v", p, err)
		}
		return p
	}
	candidates := []string{"../../bin/vigil"}
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "..", "..", "bin", "vigil"))
	}
	for _, c := range candidates {
		if abs, err := filepath.Abs(c); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs
			}
		}
	}
	SkipMissing(t, "vigil binary not found: run `make build` and set VIGIL_BIN=<abs path to bin/vigil> (or use `make test-e2e`)")
	return ""
}

// VigilOptions configures StartVigilWith.
type VigilOptions struct {
	Args   []string // subcommand and flags, e.g. {"sidecar", "--prometheus.url=..."}
	Env    []string // extra KEY=VALUE entries
	Dir    string   // working directory; defaults to a new t.TempDir()
	NoGRPC bool     // do not add --grpc-address (for components without a gRPC server)
	NoHTTP bool     // do not add --http-address
}

// Vigil is a running vigil component with its HTTP and gRPC listen addresses.
type Vigil struct {
	*Process
	HTTPAddr string // 127.0.0.1:port, empty with NoHTTP
	GRPCAddr string // 127.0.0.1:port, empty with NoGRPC
	HTTPURL  string // http://HTTPAddr
}

// StartVigil starts `vigil args...` (args begin with the subcommand). Unless args set
// them, --http-address and --grpc-address are added on free 127.0.0.1 ports. It does
// not wait for readiness: call WaitReady.
func StartVigil(t testing.TB, args ...string) *Vigil {
	t.Helper()
	return StartVigilWith(t, VigilOptions{Args: args})
}

// StartVigilWith is StartVigil with environment, working directory and port options.
func StartVigilWith(t testing.TB, opts VigilOptions) *Vigil {
	t.Helper()
	v := &Vigil{}
	args := append([]string(nil), opts.Args...)
	if addr, ok := flagValue(args, "http-address"); ok {
		v.HTTPAddr = addr
	} else if !opts.NoHTTP {
		v.HTTPAddr = FreeAddr(t)
		args = append(args, "--http-address="+v.HTTPAddr)
	}
	if addr, ok := flagValue(args, "grpc-address"); ok {
		v.GRPCAddr = addr
	} else if !opts.NoGRPC {
		v.GRPCAddr = FreeAddr(t)
		args = append(args, "--grpc-address="+v.GRPCAddr)
	}
	if v.HTTPAddr != "" {
		v.HTTPURL = "http://" + v.HTTPAddr
	}
	name := "vigil"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name += "-" + args[0]
	}
	v.Process = StartProcess(t, ProcessSpec{Name: name, Bin: VigilBin(t), Args: args, Env: opts.Env, Dir: opts.Dir})
	return v
}

// flagValue returns the value of --name=value or --name value in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// WaitReady waits until /-/ready returns 200, failing early if the process exits.
func (v *Vigil) WaitReady(timeout time.Duration) error {
	return WaitHTTP(v.HTTPURL+"/-/ready", http.StatusOK, timeout, v.Process)
}

// MustWaitReady is WaitReady with VigilStartTimeout that fails the test on error.
func (v *Vigil) MustWaitReady(t testing.TB) {
	t.Helper()
	if err := v.WaitReady(VigilStartTimeout); err != nil {
		t.Fatal(err)
	}
}

// ReadyStatus returns the status code of /-/ready, or 0 if the request failed.
func (v *Vigil) ReadyStatus() int { return HTTPStatus(v.HTTPURL + "/-/ready") }

// StoreClient dials the gRPC address with the Thanos client settings, using compression
// ("snappy" or "" for none) and any extra options; the test's cleanup closes it.
func (v *Vigil) StoreClient(t testing.TB, compression string, extra ...grpc.DialOption) *storeapi.Client {
	t.Helper()
	c, err := storeapi.Dial(v.GRPCAddr, append(storeapi.DialOptions(nil, compression), extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// GRPCConn dials the gRPC address without TLS or compression, for services the
// StoreAPI client does not cover (such as health); the test's cleanup closes it.
func (v *Vigil) GRPCConn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(v.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// HealthStatus calls grpc.health.v1.Health/Check for the whole server (service "").
func HealthStatus(ctx context.Context, conn *grpc.ClientConn) (healthpb.HealthCheckResponse_ServingStatus, error) {
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, err
	}
	return resp.GetStatus(), nil
}

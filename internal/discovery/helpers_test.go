package discovery

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeResolver is an in-memory Resolver. Names are matched without a
// trailing dot.
type fakeResolver struct {
	mu  sync.Mutex
	ips map[string][]string   // host -> IPs
	srv map[string][]*net.SRV // SRV name -> records
	err map[string]error      // host or SRV name -> error to return
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{
		ips: make(map[string][]string),
		srv: make(map[string][]*net.SRV),
		err: make(map[string]error),
	}
}

func (r *fakeResolver) setIPs(host string, ips ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ips[host] = ips
	delete(r.err, host)
}

func (r *fakeResolver) setSRV(name string, recs ...*net.SRV) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.srv[name] = recs
	delete(r.err, name)
}

func (r *fakeResolver) setErr(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err[name] = err
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	host = strings.TrimSuffix(host, ".")
	if err := r.err[host]; err != nil {
		return nil, err
	}
	ips, ok := r.ips[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]net.IPAddr, 0, len(ips))
	for _, s := range ips {
		ip, zone, _ := strings.Cut(s, "%")
		out = append(out, net.IPAddr{IP: net.ParseIP(ip), Zone: zone})
	}
	return out, nil
}

func (r *fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if service != "" || proto != "" {
		return "", nil, &net.DNSError{Err: "unexpected service/proto", Name: name}
	}
	name = strings.TrimSuffix(name, ".")
	if err := r.err[name]; err != nil {
		return "", nil, err
	}
	recs, ok := r.srv[name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return name + ".", recs, nil
}

// timeoutErr is a transient DNS failure.
func timeoutErr(name string) error {
	return &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true, IsTemporary: true}
}

// logRecords is a slog.Handler sending every record's message and attributes,
// formatted as one string, to a channel (dropping them if it is full).
type logRecords chan string

func (c logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (c logRecords) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c logRecords) WithGroup(string) slog.Handler            { return c }
func (c logRecords) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	select {
	case c <- b.String():
	default:
	}
	return nil
}

// waitFor polls cond until it holds or the timeout expires.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

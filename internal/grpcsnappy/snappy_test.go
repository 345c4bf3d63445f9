package grpcsnappy

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func compress(t *testing.T, c *compressor, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := c.Compress(&buf)
	if err != nil {
		t.Fatalf("Compress: %v", err)
	}
	// Write in uneven pieces, as gRPC's buffer writer may.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)/3)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

func decompress(t *testing.T, c *compressor, data []byte) ([]byte, error) {
	t.Helper()
	r, err := c.Decompress(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Decompress: %v", err)
	}
	return io.ReadAll(r)
}

func TestRoundTripWithPooledReuse(t *testing.T) {
	c := newCompressor()
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 100, 64 << 10, 64<<10 + 1, 300 << 10, 5, 0, 1 << 20}
	for round := range 3 {
		for _, n := range sizes {
			data := make([]byte, n)
			for i := range data {
				// Compressible but not trivial.
				data[i] = byte('a' + rng.IntN(4))
			}
			enc := compress(t, c, data)
			if n > 0 && !bytes.HasPrefix(enc, []byte("\xff\x06\x00\x00sNaPpY")) {
				t.Fatalf("round %d size %d: output does not start with the snappy stream identifier", round, n)
			}
			got, err := decompress(t, c, enc)
			if err != nil {
				t.Fatalf("round %d size %d: decompress: %v", round, n, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("round %d size %d: round trip changed the data (got %d bytes)", round, n, len(got))
			}
		}
	}
}

// TestPooledWriterIsReset checks that a writer taken from the pool does not leak the
// previous stream's output into the next.
func TestPooledWriterIsReset(t *testing.T) {
	c := newCompressor()
	first := compress(t, c, []byte(strings.Repeat("first message ", 100)))
	second := compress(t, c, []byte("second"))
	fresh := compress(t, newCompressor(), []byte("second"))
	if !bytes.Equal(second, fresh) {
		t.Fatalf("reused writer produced %q, a fresh one %q", second, fresh)
	}
	got, err := decompress(t, c, second)
	if err != nil || string(got) != "second" {
		t.Fatalf("decompress second: %q, %v", got, err)
	}
	if got, err := decompress(t, c, first); err != nil || !strings.HasPrefix(string(got), "first message") {
		t.Fatalf("decompress first: %v", err)
	}
}

func TestDecompressCorrupt(t *testing.T) {
	c := newCompressor()
	enc := compress(t, c, bytes.Repeat([]byte("abc"), 1000))
	enc[len(enc)-1] ^= 0xff
	if _, err := decompress(t, c, enc); err == nil {
		t.Fatal("corrupt stream decompressed without error")
	}
	// The pool still works after a failed stream.
	got, err := decompress(t, c, compress(t, c, []byte("ok")))
	if err != nil || string(got) != "ok" {
		t.Fatalf("after corrupt stream: %q, %v", got, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	c := newCompressor()
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				msg := []byte(strings.Repeat(string(rune('a'+g)), 1000+i))
				var buf bytes.Buffer
				w, _ := c.Compress(&buf)
				_, _ = w.Write(msg)
				_ = w.Close()
				r, _ := c.Decompress(&buf)
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, msg) {
					errs <- "goroutine round trip mismatch"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// TestReadAfterEOF reads past the end of a stream, which io.Reader allows: the reader must
// keep answering io.EOF and must not be handed out by the pool while still in use.
// (Regression: the reader used to return itself to the pool at the first io.EOF and panic
// on the next Read.)
func TestReadAfterEOF(t *testing.T) {
	c := newCompressor()
	r, _ := c.Decompress(bytes.NewReader(compress(t, c, []byte("x"))))
	if got, err := io.ReadAll(r); err != nil || string(got) != "x" {
		t.Fatalf("ReadAll: %q, %v", got, err)
	}
	// Another message takes a reader from the pool meanwhile.
	r2, _ := c.Decompress(bytes.NewReader(compress(t, c, []byte("second message"))))
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Read after EOF panicked: %v", p)
			}
		}()
		for range 2 {
			if n, err := r.Read(make([]byte, 8)); n != 0 || err != io.EOF {
				t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
			}
		}
	}()
	if got, err := io.ReadAll(r2); err != nil || string(got) != "second message" {
		t.Fatalf("the other message read %q, %v: a finished reader disturbed it", got, err)
	}
}

func TestRegister(t *testing.T) {
	Register()
	Register() // idempotent
	if got := encoding.GetCompressor(Name); got == nil || got.Name() != "snappy" {
		t.Fatalf("GetCompressor(%q) = %v", Name, got)
	}
}

// sniffConn records the bytes a connection reads and writes.
type sniffConn struct {
	net.Conn
	mu       sync.Mutex
	in, out  bytes.Buffer
	listener *sniffListener
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *sniffConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

type sniffListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*sniffConn
}

func (l *sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &sniffConn{Conn: c, listener: l}
	l.mu.Lock()
	l.conns = append(l.conns, sc)
	l.mu.Unlock()
	return sc, nil
}

// traffic returns what the server received and sent so far.
func (l *sniffListener) traffic() (in, out []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.mu.Lock()
		in = append(in, c.in.Bytes()...)
		out = append(out, c.out.Bytes()...)
		c.mu.Unlock()
	}
	return in, out
}

// TestGRPCNegotiation runs a real gRPC call with and without the snappy compressor and
// checks on the wire that request and response were snappy streams only when asked for.
func TestGRPCNegotiation(t *testing.T) {
	Register()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := &sniffListener{Listener: ln}
	srv := grpc.NewServer()
	hs := health.NewServer()
	// A long service name makes the request large enough to be sure it was carried intact.
	service := "vigil.test." + strings.Repeat("snappy", 200)
	hs.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(sl) }()
	t.Cleanup(srv.Stop)

	magic := []byte("sNaPpY")
	for _, useSnappy := range []bool{false, true} {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if useSnappy {
			opts = append(opts, grpc.WithDefaultCallOptions(grpc.UseCompressor(Name)))
		}
		conn, err := grpc.NewClient(ln.Addr().String(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		_ = conn.Close()
		if err != nil {
			t.Fatalf("snappy=%v: Check: %v", useSnappy, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("snappy=%v: status %v, want SERVING (request mangled?)", useSnappy, resp.GetStatus())
		}
		in, out := sl.traffic()
		if got := bytes.Contains(in, magic); got != useSnappy {
			t.Errorf("snappy=%v: server received a snappy stream: %v", useSnappy, got)
		}
		if got := bytes.Contains(out, magic); got != useSnappy {
			t.Errorf("snappy=%v: server answered with a snappy stream: %v", useSnappy, got)
		}
		if !useSnappy && !bytes.Contains(in, []byte(service)) {
			t.Errorf("uncompressed request should carry the service name in clear")
		}
		if useSnappy {
			// Traffic of the second connection only: the long name must not appear in clear,
			// since "snappy" repeated compresses well.
			sl.mu.Lock()
			c := sl.conns[len(sl.conns)-1]
			sl.mu.Unlock()
			c.mu.Lock() // the server may still be reading from the connection
			last := bytes.Clone(c.in.Bytes())
			c.mu.Unlock()
			if bytes.Contains(last, []byte(service)) {
				t.Errorf("compressed request carries the service name uncompressed")
			}
		}
	}
}

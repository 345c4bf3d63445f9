// Package grpcsnappy provides the gRPC compressor named "snappy" that Thanos clients and
// servers negotiate: the snappy framed (stream) format. Without it, calls from a
// snappy-enabled Thanos client fail with Unimplemented.
package grpcsnappy

import (
	"io"
	"sync"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/grpc/encoding"
)

// Name is the compressor name on the wire (grpc-encoding header).
const Name = "snappy"

var registerOnce sync.Once

// Register registers the compressor with gRPC. gRPC keeps compressors in a process-wide
// registry, so this is idempotent and safe to call from every component.
func Register() {
	registerOnce.Do(func() { encoding.RegisterCompressor(newCompressor()) })
}

type compressor struct {
	writers sync.Pool
	readers sync.Pool
}

func newCompressor() *compressor {
	c := &compressor{}
	c.writers.New = func() any { return &writer{Writer: snappy.NewBufferedWriter(nil), pool: &c.writers} }
	c.readers.New = func() any { return snappy.NewReader(nil) }
	return c
}

func (c *compressor) Name() string { return Name }

func (c *compressor) Compress(w io.Writer) (io.WriteCloser, error) {
	wr := c.writers.Get().(*writer)
	wr.Reset(w)
	return wr, nil
}

func (c *compressor) Decompress(r io.Reader) (io.Reader, error) {
	sr := c.readers.Get().(*snappy.Reader)
	sr.Reset(r)
	return &reader{r: sr, pool: &c.readers}, nil
}

type writer struct {
	*snappy.Writer
	pool *sync.Pool
}

// Close flushes the frame and returns the writer to its pool.
func (w *writer) Close() error {
	err := w.Writer.Close()
	w.Reset(nil)
	w.pool.Put(w)
	return err
}

// reader is a per-message wrapper: the pooled snappy reader (with its large buffers) goes
// back to the pool at the end of the message, while the wrapper keeps answering io.EOF.
type reader struct {
	r    *snappy.Reader
	pool *sync.Pool
}

// Read returns the snappy reader to its pool once the message is fully consumed.
func (r *reader) Read(p []byte) (int, error) {
	if r.r == nil {
		return 0, io.EOF
	}
	n, err := r.r.Read(p)
	if err == io.EOF {
		r.r.Reset(nil)
		r.pool.Put(r.r)
		r.r = nil
	}
	return n, err
}

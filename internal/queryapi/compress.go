package queryapi

import (
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
)

// compressedWriter compresses a response with gzip or deflate when the client
// accepts it (first acceptable encoding in Accept-Encoding order), as Prometheus does.
type compressedWriter struct {
	http.ResponseWriter
	// enc is the compressor, or nil for identity.
	enc io.WriteCloser
}

// newCompressedWriter chooses the encoding for r and sets the response headers.
func newCompressedWriter(w http.ResponseWriter, r *http.Request) *compressedWriter {
	w.Header().Add("Vary", "Accept-Encoding")
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		// Parameters such as q-values are not considered.
		enc, _, _ := strings.Cut(part, ";")
		switch strings.TrimSpace(enc) {
		case "gzip":
			w.Header().Set("Content-Encoding", "gzip")
			return &compressedWriter{ResponseWriter: w, enc: gzip.NewWriter(w)}
		case "deflate":
			w.Header().Set("Content-Encoding", "deflate")
			return &compressedWriter{ResponseWriter: w, enc: zlib.NewWriter(w)}
		}
	}
	return &compressedWriter{ResponseWriter: w}
}

// WriteHeader drops any Content-Length, which would describe uncompressed bytes.
func (c *compressedWriter) WriteHeader(code int) {
	if c.enc != nil {
		c.Header().Del("Content-Length")
	}
	c.ResponseWriter.WriteHeader(code)
}

// Write compresses p when compression is on.
func (c *compressedWriter) Write(p []byte) (int, error) {
	if c.enc == nil {
		return c.ResponseWriter.Write(p)
	}
	return c.enc.Write(p)
}

// Close flushes the compressor.
func (c *compressedWriter) Close() {
	if c.enc != nil {
		_ = c.enc.Close()
	}
}

// Unwrap gives http.ResponseController access to the underlying writer.
func (c *compressedWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

package federate

import (
	"io"
	"net/http"
	"strings"

	"github.com/vigilhq/vigil/internal/queryapi"
)

// response holds the first holdBytes of the answer back, so that a failure within them
// can still be reported with an error status, and compresses with gzip when the client
// accepts it.
type response struct {
	w           http.ResponseWriter
	contentType string
	api         *queryapi.API  // whose pooled compressors it uses
	gz          io.WriteCloser // the querier's pooled compressor while compressing
	gzipped     bool
	buf         []byte
	committed   bool
	err         error // of a write to w
}

func newResponse(w http.ResponseWriter, r *http.Request, contentType string, api *queryapi.API) *response {
	resp := &response{w: w, contentType: contentType, api: api}
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, _, _ := strings.Cut(part, ";")
		if strings.TrimSpace(enc) == "gzip" {
			resp.gz, resp.gzipped = api.GzipWriter(writerFunc(resp.writeRaw)), true
			break
		}
	}
	return resp
}

// Write writes (compressed) response bytes.
func (r *response) Write(p []byte) (int, error) {
	if r.gz != nil {
		return r.gz.Write(p)
	}
	return r.writeRaw(p)
}

func (r *response) writeRaw(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if !r.committed {
		r.buf = append(r.buf, p...)
		if len(r.buf) >= holdBytes {
			r.commit()
		}
		return len(p), r.err
	}
	if _, err := r.w.Write(p); err != nil {
		r.err = err
		return 0, err
	}
	return len(p), nil
}

// commit sends the status line, the headers and what was held back.
func (r *response) commit() {
	r.committed = true
	h := r.w.Header()
	h.Set("Content-Type", r.contentType)
	h.Add("Vary", "Accept-Encoding")
	if r.gzipped {
		h.Set("Content-Encoding", "gzip")
	}
	r.w.WriteHeader(http.StatusOK)
	if _, err := r.w.Write(r.buf); err != nil {
		r.err = err
	}
	r.buf = nil
}

// finish completes a successful answer.
func (r *response) finish() error {
	if r.gz != nil {
		if err := r.gz.Close(); err != nil {
			return err
		}
		r.api.PutGzipWriter(r.gz)
		r.gz = nil
	}
	if !r.committed {
		r.commit()
	}
	return r.err
}

// fail answers with err and the status code when nothing has been sent yet, and
// reports whether it could.
func (r *response) fail(err error, code int) bool {
	if r.committed {
		return false
	}
	r.buf = nil
	http.Error(r.w, err.Error(), code)
	return true
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

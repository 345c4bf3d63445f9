package queryapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
)

// Reused compressors must not mix responses: many answers open at once, written in
// turns and closed in another order, each decode to exactly their own body.
func TestCompressedWriterReuse(t *testing.T) {
	for _, enc := range []string{"gzip", "deflate"} {
		t.Run(enc, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
			req.Header.Set("Accept-Encoding", enc)
			comp := newCompressors()
			for round := range 3 {
				const n = 20 // more than the pool keeps
				recs := make([]*httptest.ResponseRecorder, n)
				cws := make([]*compressedWriter, n)
				for i := range n {
					recs[i] = httptest.NewRecorder()
					cws[i] = comp.writer(recs[i], req)
				}
				for part := range 3 {
					for i := range n {
						if _, err := cws[i].Write(body(round, i, part)); err != nil {
							t.Fatal(err)
						}
					}
				}
				for i := n - 1; i >= 0; i-- {
					cws[i].Close()
					cws[i].Close() // a second Close does nothing
				}
				for i := range n {
					if got := recs[i].Header().Get("Content-Encoding"); got != enc {
						t.Fatalf("Content-Encoding %q, want %q", got, enc)
					}
					var r io.Reader
					var err error
					if enc == "gzip" {
						r, err = gzip.NewReader(recs[i].Body)
					} else {
						r, err = zlib.NewReader(recs[i].Body)
					}
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(r)
					if err != nil {
						t.Fatal(err)
					}
					want := bytes.Join([][]byte{body(round, i, 0), body(round, i, 1), body(round, i, 2)}, nil)
					if !bytes.Equal(got, want) {
						t.Fatalf("round %d response %d: got %.80q..., want %.80q...", round, i, got, want)
					}
				}
			}
			if l, c := len(comp.gzip.idle)+len(comp.zlib.idle), cap(comp.gzip.idle); l > c {
				t.Fatalf("%d idle compressors, at most %d kept", l, c)
			}
		})
	}
}

func body(round, i, part int) []byte {
	return []byte(strings.Repeat(string(rune('a'+i%26)), 100+i) + strings.Repeat("x", round*1000+part))
}

// An answer with no body is still a valid compressed stream.
func TestCompressedWriterEmpty(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	cw := newCompressors().writer(rec, req)
	cw.WriteHeader(http.StatusOK)
	cw.Close()
	r, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Fatalf("body %q, err %v", b, err)
	}
}

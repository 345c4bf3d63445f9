// Package web serves the querier's web UI: a single-page application built from web/ui
// (see `make ui`) whose assets are committed under static/ and embedded, so building
// Vigil needs no Node.js.
//
// The client routes (/, /graph, /stores, /rules, /alerts, /replicas) all serve
// index.html with Cache-Control: no-cache, so a new release is picked up at once; the
// content-hashed files under /assets/ are cached for a year. Assets are served
// gzip-compressed to clients that accept it.
package web

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed static
var staticFS embed.FS

// Routes are the client-side routes of the UI; each serves index.html.
var Routes = []string{"/graph", "/stores", "/rules", "/alerts", "/replicas"}

type asset struct {
	body, gz    []byte
	contentType string
}

// Handler serves the UI from an fs.FS laid out as Vite's dist/ directory.
type Handler struct {
	index  asset
	assets map[string]asset // by path under the root, e.g. "assets/index-abc.js"
}

// New returns the handler of the embedded UI.
func New() (*Handler, error) {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	return NewFromFS(sub)
}

// NewFromFS loads every file of fsys into memory (with a gzip copy of the compressible ones).
func NewFromFS(fsys fs.FS) (*Handler, error) {
	h := &Handler{assets: map[string]asset{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js", ".mjs":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		a := asset{body: b, contentType: ct}
		if len(b) > 1024 && (strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || strings.Contains(ct, "svg")) {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			if _, err := zw.Write(b); err != nil {
				return err
			}
			if err := zw.Close(); err != nil {
				return err
			}
			a.gz = buf.Bytes()
		}
		h.assets[p] = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	idx, ok := h.assets["index.html"]
	if !ok {
		return nil, fs.ErrNotExist
	}
	h.index = idx
	return h, nil
}

// Register mounts the UI on mux. The patterns are GET-only and match exact paths (plus
// the /assets/ subtree), so they conflict neither with the method-specific API patterns
// ("GET /api/v1/query") nor with catch-alls such as "/metrics" or "/debug/pprof/".
func Register(mux *http.ServeMux) {
	h, err := New()
	if err != nil {
		// The assets are embedded at build time; a broken build is a programming error.
		panic("web: embedded UI assets: " + err.Error())
	}
	h.Register(mux)
}

// Register mounts h on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", h.serveIndex)
	for _, r := range Routes {
		mux.HandleFunc("GET "+r, h.serveIndex)
		mux.HandleFunc("GET "+r+"/{$}", h.serveIndex)
	}
	mux.HandleFunc("GET /assets/", h.serveAsset)
}

// ServeHTTP serves index.html for the client routes and files for everything else that
// exists; it is what Register mounts, usable on its own (for example in tests).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	if strings.HasPrefix(p, "assets/") {
		h.serveAsset(w, r)
		return
	}
	h.serveIndex(w, r)
}

func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "SAMEORIGIN")
	h.write(w, r, h.index)
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	a, ok := h.assets[p]
	if !ok || !strings.HasPrefix(p, "assets/") {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	// Vite puts a content hash in every asset name: the content never changes.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.write(w, r, a)
}

func (h *Handler) write(w http.ResponseWriter, r *http.Request, a asset) {
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Add("Vary", "Accept-Encoding")
	body := a.body
	if a.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") || strings.TrimSpace(enc) == "*" {
			q = strings.ReplaceAll(strings.TrimSpace(q), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

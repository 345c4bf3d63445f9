package web

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func testMux(t *testing.T) *http.ServeMux {
	t.Helper()
	mux := http.NewServeMux()
	// The patterns the querier's HTTP server and API already mount: the UI must not
	// conflict with them (ServeMux panics on conflicting registrations).
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") })
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "healthy") })
	mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "pprof") })
	for _, m := range []string{"GET", "POST", "OPTIONS"} {
		mux.HandleFunc(m+" /api/v1/query", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "api") })
		mux.HandleFunc(m+" /api/v1/stores", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "api") })
	}
	Register(mux)
	return mux
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		rd = zr
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestClientRoutesServeIndex(t *testing.T) {
	mux := testMux(t)
	for _, p := range []string{"/", "/graph", "/graph?g0.expr=up&g0.tab=1", "/stores", "/rules", "/alerts", "/replicas", "/graph/"} {
		r := get(t, mux, "GET", p, nil)
		if r.StatusCode != 200 {
			t.Fatalf("GET %s: status %d", p, r.StatusCode)
		}
		if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", p, cc)
		}
		if b := body(t, r); !strings.Contains(b, `<div id="app">`) && !strings.Contains(b, `id="app"`) {
			t.Errorf("GET %s: not index.html: %.200s", p, b)
		}
	}
	if r := get(t, mux, "HEAD", "/graph", nil); r.StatusCode != 200 || body(t, r) != "" {
		t.Errorf("HEAD /graph: status %d", r.StatusCode)
	}
}

func TestOtherRoutesUntouched(t *testing.T) {
	mux := testMux(t)
	for p, want := range map[string]string{"/metrics": "metrics", "/-/healthy": "healthy", "/api/v1/query": "api", "/api/v1/stores": "api", "/debug/pprof/": "pprof"} {
		if b := body(t, get(t, mux, "GET", p, nil)); b != want {
			t.Errorf("GET %s = %q, want %q", p, b, want)
		}
	}
	for _, p := range []string{"/nope", "/graphs", "/api/v1/nope", "/assets/missing.js", "/static/index.html"} {
		if r := get(t, mux, "GET", p, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, r.StatusCode)
		}
	}
	if r := get(t, mux, "POST", "/graph", nil); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /graph: status %d, want 405", r.StatusCode)
	}
}

func TestEmbeddedAssets(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	mux := testMux(t)
	var js, css int
	for p, a := range h.assets {
		if !strings.HasPrefix(p, "assets/") {
			continue
		}
		// index.html must reference every asset (relatively, for path prefixes).
		if strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".css") {
			if !strings.Contains(string(h.index.body), "./"+p) {
				t.Errorf("index.html does not reference ./%s", p)
			}
		}
		r := get(t, mux, "GET", "/"+p, map[string]string{"Accept-Encoding": "gzip, br"})
		if r.StatusCode != 200 {
			t.Fatalf("GET /%s: %d", p, r.StatusCode)
		}
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET /%s: Cache-Control %q", p, cc)
		}
		ct := r.Header.Get("Content-Type")
		switch {
		case strings.HasSuffix(p, ".js"):
			js++
			if ct != "text/javascript; charset=utf-8" {
				t.Errorf("GET /%s: Content-Type %q", p, ct)
			}
			if r.Header.Get("Content-Encoding") != "gzip" {
				t.Errorf("GET /%s: not gzip-compressed", p)
			}
		case strings.HasSuffix(p, ".css"):
			css++
			if ct != "text/css; charset=utf-8" {
				t.Errorf("GET /%s: Content-Type %q", p, ct)
			}
		}
		if got := body(t, r); got != string(a.body) {
			t.Errorf("GET /%s: body differs from the embedded file", p)
		}
		// Without Accept-Encoding the plain body.
		r = get(t, mux, "GET", "/"+p, nil)
		if r.Header.Get("Content-Encoding") != "" || body(t, r) != string(a.body) {
			t.Errorf("GET /%s without gzip: wrong body or encoding", p)
		}
	}
	if js == 0 || css == 0 {
		t.Fatalf("embedded UI has %d JS and %d CSS assets; run `make ui`", js, css)
	}
}

func TestNewFromFS(t *testing.T) {
	h, err := NewFromFS(fstest.MapFS{
		"index.html":       {Data: []byte("<html>idx</html>")},
		"assets/a-123.js":  {Data: []byte("console.log(1)")},
		"assets/b-123.svg": {Data: []byte("<svg/>")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, get(t, h, "GET", "/replicas", nil)); b != "<html>idx</html>" {
		t.Errorf("ServeHTTP /replicas = %q", b)
	}
	if r := get(t, h, "GET", "/assets/b-123.svg", nil); r.Header.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("svg Content-Type %q", r.Header.Get("Content-Type"))
	}
	if r := get(t, h, "GET", "/assets/../index.html", nil); r.StatusCode != 404 {
		t.Errorf("path traversal: status %d", r.StatusCode)
	}
	if _, err := NewFromFS(fstest.MapFS{"assets/x.js": {Data: []byte("x")}}); err == nil {
		t.Error("NewFromFS without index.html: no error")
	}
}

func TestAcceptsGzip(t *testing.T) {
	for ae, want := range map[string]bool{"": false, "gzip": true, "br, gzip;q=0.8": true, "gzip;q=0": false, "*": true, "identity": false, "deflate, GZIP": true} {
		if got := acceptsGzip(ae); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", ae, got, want)
		}
	}
}

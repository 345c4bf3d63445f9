package rule

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// countingReloader counts reloads and fails them while err is set.
type countingReloader struct {
	mu  sync.Mutex
	n   int
	err error
}

func (r *countingReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	return r.err
}

func (r *countingReloader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func TestReloadHandler(t *testing.T) {
	r := &countingReloader{}
	srv := httptest.NewServer(ReloadHandler(r, discardLogger()))
	defer srv.Close()

	do := func(method string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+"/-/reload", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	if code, _, _ := do(http.MethodPost); code != http.StatusOK || r.count() != 1 {
		t.Errorf("POST: %d, %d reloads; want 200 and 1", code, r.count())
	}
	if code, _, _ := do(http.MethodPut); code != http.StatusOK || r.count() != 2 {
		t.Errorf("PUT: %d, %d reloads; want 200 and 2", code, r.count())
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		code, _, h := do(m)
		if code != http.StatusMethodNotAllowed || !strings.Contains(h.Get("Allow"), "POST") {
			t.Errorf("%s: %d, Allow %q; want 405 allowing POST", m, code, h.Get("Allow"))
		}
	}
	if r.count() != 2 {
		t.Errorf("%d reloads after refused methods, want 2", r.count())
	}

	r.mu.Lock()
	r.err = errors.New(`rule file r.yaml: group "g": could not parse expression`)
	r.mu.Unlock()
	code, body, _ := do(http.MethodPost)
	if code != http.StatusInternalServerError {
		t.Errorf("failing reload: %d, want 500", code)
	}
	if !strings.Contains(body, "failed to reload rule files") || !strings.Contains(body, "could not parse expression") {
		t.Errorf("failing reload body %q should carry the error", body)
	}
}

func TestReloadOnSignal(t *testing.T) {
	r := &countingReloader{err: errors.New("bad file")} // a failed reload must not stop the loop
	sig := make(chan os.Signal)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ReloadOnSignal(ctx, r, sig, discardLogger()); close(done) }()

	for i := 1; i <= 3; i++ {
		sig <- syscall.SIGHUP
		waitFor(t, 2*time.Second, "reload", func() bool { return r.count() == i })
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("ReloadOnSignal did not return after its context was done")
	}
	if r.count() != 3 {
		t.Errorf("%d reloads for 3 signals", r.count())
	}
}

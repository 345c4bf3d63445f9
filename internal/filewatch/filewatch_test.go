package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) apply(b []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.calls = append(r.calls, "error")
		return
	}
	r.calls = append(r.calls, string(b))
}

func (r *recorder) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		got := append([]string(nil), r.calls...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d calls: %q", n, r.calls)
	return nil
}

func TestWatchReportsChangesAndReadErrorsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg")
	// Written aside and renamed: a poll between os.WriteFile's truncate and its write
	// would otherwise see an empty file.
	write := func(s string) {
		if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, Options{Path: path, Poll: 10 * time.Millisecond, Initial: []byte("a")}, r.apply)
	}()
	time.Sleep(50 * time.Millisecond) // unchanged: no call
	write("b")
	r.waitFor(t, 1)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 2)
	time.Sleep(50 * time.Millisecond) // still missing: reported once only
	write("b")                        // back, with the content seen before the failure
	got := r.waitFor(t, 3)
	cancel()
	<-done
	want := []string{"b", "error", "b"}
	if len(got) != len(want) {
		t.Fatalf("calls %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("calls %q, want %q", got, want)
		}
	}
}

func TestWatchRefreshOffersUnchangedContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &recorder{}
	go Watch(ctx, Options{Path: path, Poll: time.Hour, Refresh: 20 * time.Millisecond, Initial: []byte("x")}, r.apply)
	if got := r.waitFor(t, 2); got[0] != "x" || got[1] != "x" {
		t.Fatalf("calls %q, want the unchanged content at each refresh", got)
	}
}

func TestWatchCustomRead(t *testing.T) {
	var mu sync.Mutex
	content := "a"
	read := func() ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		return []byte(content), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &recorder{}
	go Watch(ctx, Options{Read: read, Poll: 10 * time.Millisecond, Initial: []byte("a")}, r.apply)
	time.Sleep(50 * time.Millisecond) // unchanged: no call
	mu.Lock()
	content = "b"
	mu.Unlock()
	if got := r.waitFor(t, 1); got[0] != "b" {
		t.Fatalf("calls %q, want the content Read returned", got)
	}
}

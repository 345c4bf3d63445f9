package e2eutil

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // ports handed out by this test binary
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and has not been
// handed out before by this test binary, so parallel tests do not get the same port.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !ports[port] {
			ports[port] = true
			return port
		}
	}
	t.Fatalf("find a free port: no new port after 100 tries")
	return 0
}

// FreeAddr returns "127.0.0.1:<port>" for a FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// HTTPGet fetches url and returns the status code and body (at most 1 MiB).
func HTTPGet(ctx context.Context, url string) (status int, body string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// HTTPStatus returns the status code of GET url, or 0 if the request failed.
func HTTPStatus(url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, _, err := HTTPGet(ctx, url)
	if err != nil {
		return 0
	}
	return code
}

// WaitHTTP waits until GET url returns want, polling every 100ms. It gives up after
// timeout, or as soon as proc (if not nil) exits, and returns an error naming the last
// status or failure seen.
func WaitHTTP(url string, want int, timeout time.Duration, proc *Process) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		code, body, err := HTTPGet(ctx, url)
		cancel()
		switch {
		case err == nil && code == want:
			return nil
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("HTTP %d: %.200s", code, body)
		}
		if proc != nil && proc.Exited() {
			code, _ := proc.ExitCode()
			return fmt.Errorf("%s exited (code %d) while waiting for %s to return %d; last: %s", proc.Spec.Name, code, url, want, last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not return %d within %s; last: %s", url, want, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Poll calls f every interval until it returns nil, and fails the test with f's last
// error if that has not happened within timeout.
func Poll(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	if err := PollErr(timeout, interval, f); err != nil {
		t.Fatal(err)
	}
}

// PollErr calls f every interval until it returns nil and returns f's last error,
// wrapped, if that has not happened within timeout.
func PollErr(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

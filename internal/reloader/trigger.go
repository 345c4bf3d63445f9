package reloader

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Reload methods, the values of --reloader.method.
const (
	MethodHTTP   = "http"
	MethodSignal = "signal"
)

// Trigger asks Prometheus to re-read its configuration and rule files, and returns nil
// only once Prometheus reports success.
type Trigger func(ctx context.Context) error

// NewTrigger returns the Trigger for a --reloader.method. Only http is supported:
// signal (SIGHUP to a process found by name) needs a shared process namespace and a
// separate check of the outcome, and is refused rather than half done.
func NewTrigger(method string, hc *http.Client, promURL *url.URL) (Trigger, error) {
	switch method {
	case MethodHTTP:
		return HTTPTrigger(hc, promURL), nil
	case MethodSignal:
		return nil, fmt.Errorf("--reloader.method=signal is not supported yet; use --reloader.method=http " +
			"and start Prometheus with --web.enable-lifecycle")
	default:
		return nil, fmt.Errorf("unknown --reloader.method %q: want http", method)
	}
}

// HTTPTrigger POSTs to <promURL>/-/reload, which Prometheus serves with
// --web.enable-lifecycle, and expects 200. Prometheus answers only once the reload is
// done, with 500 and the reason if it rejected the new configuration. A path prefix in
// promURL (--web.route-prefix) is kept.
func HTTPTrigger(hc *http.Client, promURL *url.URL) Trigger {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := promURL.JoinPath("-", "reload")
	reloadURL, shown := u.String(), u.Redacted()
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, reloadURL, nil)
		if err != nil {
			return fmt.Errorf("reload Prometheus: %w", err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("reload Prometheus: %w", err)
		}
		defer resp.Body.Close()
		// The body says why a reload failed ("failed to reload config: ..."); a little of
		// it is enough for the log.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		msg := strings.TrimSpace(string(body))
		if resp.StatusCode == http.StatusForbidden {
			msg += " (start Prometheus with --web.enable-lifecycle)"
		}
		return fmt.Errorf("reload Prometheus: POST %s: HTTP %d: %s", shown, resp.StatusCode, msg)
	}
}

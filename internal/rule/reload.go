package rule

import (
	"context"
	"log/slog"
	"net/http"
	"os"
)

// reloader is what the reload triggers act on.
type reloader interface{ Reload() error }

// ReloadHandler serves POST /-/reload: the rule files are read again; an invalid file is
// a 500 with the error, and the rules in force stay.
func ReloadHandler(r reloader, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost && req.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "reload takes POST", http.StatusMethodNotAllowed)
			return
		}
		if err := r.Reload(); err != nil {
			logger.Error("reloading rule files failed; keeping the rules in force", "err", err)
			http.Error(w, "failed to reload rule files: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// ReloadOnSignal reloads the rule files on each signal from sig (SIGHUP) until ctx is
// done.
func ReloadOnSignal(ctx context.Context, r reloader, sig <-chan os.Signal, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if err := r.Reload(); err != nil {
				logger.Error("reloading rule files on SIGHUP failed; keeping the rules in force", "err", err)
			}
		}
	}
}

package buckettool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// Web refresh timing.
const (
	// pageRefreshTimeout bounds the refresh a page load triggers; on timeout the page
	// shows the previous state with the error.
	pageRefreshTimeout = 30 * time.Second
	// pageRefreshMinAge: a page load does not refresh a state younger than this, so a
	// burst of reloads reads the bucket once.
	pageRefreshMinAge = time.Second
	// retryInterval is how soon a failed background refresh is retried (at most).
	retryInterval = time.Minute
)

// WebOptions configure a Web.
type WebOptions struct {
	// Refresh is how often the bucket is read in the background (--refresh).
	Refresh time.Duration
	// Timeout bounds one background refresh (--timeout).
	Timeout time.Duration
	// OnReady is called once, after the first successful refresh.
	OnReady func()
}

// Web serves the bucket web view: the HTML timeline at /, each block's meta.json at
// /meta/<ULID> and /api/v1/blocks for scripts. It reads the bucket every
// WebOptions.Refresh and when the page is (re)loaded.
type Web struct {
	bkt     objstore.BucketReader
	fetcher *block.Fetcher
	logger  *slog.Logger
	opts    WebOptions
	ready   sync.Once
	// pageMinAge is pageRefreshMinAge; tests lower it.
	pageMinAge time.Duration

	refreshMu sync.Mutex // one refresh at a time

	mu      sync.RWMutex
	snap    *Snapshot // the last successful refresh; nil before
	lastErr error     // the error of the last refresh, nil if it worked
	lastTry time.Time
}

// NewWeb returns a Web over bkt; call Run to keep it refreshed.
func NewWeb(bkt objstore.BucketReader, logger *slog.Logger, opts WebOptions) *Web {
	if opts.OnReady == nil {
		opts.OnReady = func() {}
	}
	return &Web{bkt: bkt, fetcher: block.NewFetcher(bkt, logger, fetchConcurrency), logger: logger, opts: opts,
		pageMinAge: pageRefreshMinAge}
}

// Refresh reads the bucket now, within WebOptions.Timeout.
func (w *Web) Refresh(ctx context.Context) error {
	return w.refresh(ctx, w.opts.Timeout, 0)
}

// refresh reads the bucket unless the state is younger than minAge.
func (w *Web) refresh(ctx context.Context, timeout, minAge time.Duration) error {
	w.refreshMu.Lock()
	defer w.refreshMu.Unlock()
	w.mu.RLock()
	fresh := w.snap != nil && w.lastErr == nil && time.Since(w.snap.Taken) < minAge
	w.mu.RUnlock()
	if fresh {
		return nil
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	s, err := Fetch(ctx, w.fetcher)
	w.mu.Lock()
	w.lastTry, w.lastErr = time.Now(), err
	if err == nil {
		w.snap = s
	}
	w.mu.Unlock()
	if err != nil {
		return err
	}
	for _, d := range s.Corrupt() {
		w.logger.Warn("block with unreadable meta.json", "block", d.ID, "err", d.MetaErr)
	}
	w.logger.Debug("read bucket", "block_dirs", len(s.Dirs), "duration", time.Since(s.Taken))
	w.ready.Do(w.opts.OnReady)
	return nil
}

// Run refreshes every WebOptions.Refresh (failed refreshes sooner) until ctx ends.
func (w *Web) Run(ctx context.Context) error {
	for {
		next := w.opts.Refresh
		if err := w.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			next = min(next, retryInterval)
			w.logger.Warn("cannot read the bucket; the web view shows the last state read", "err", err, "retry_in", next)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
}

// state returns the last successful snapshot (nil before the first one), when the
// bucket was last read and that read's error.
func (w *Web) state() (snap *Snapshot, tried time.Time, lastErr error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.snap, w.lastTry, w.lastErr
}

// Register adds the web view's routes to mux: /, /meta/{id} and /api/v1/blocks.
func (w *Web) Register(mux *http.ServeMux) {
	mux.HandleFunc("/{$}", onlyGet(w.servePage))
	mux.HandleFunc("/meta/{id}", onlyGet(w.serveMeta))
	mux.HandleFunc("/api/v1/blocks", onlyGet(w.serveBlocks))
}

func onlyGet(h http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			rw.Header().Set("Allow", "GET, HEAD")
			http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h(rw, r)
	}
}

// servePage refreshes (see pageRefreshMinAge) and renders the page. A failed refresh
// is shown on the page above the last state read.
func (w *Web) servePage(rw http.ResponseWriter, r *http.Request) {
	ctx := context.WithoutCancel(r.Context()) // a refresh serves the next visitor too
	if err := w.refresh(ctx, min(pageRefreshTimeout, w.opts.Timeout), w.pageMinAge); err != nil {
		w.logger.Warn("cannot read the bucket for the web page", "err", err)
	}
	snap, tried, err := w.state()
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	if err := renderPage(rw, newPageData(snap, err, tried, w.opts.Refresh)); err != nil {
		w.logger.Warn("cannot write the web page", "err", err)
	}
}

// serveMeta serves <ULID>/meta.json as stored in the bucket, even when it is corrupt.
func (w *Web) serveMeta(rw http.ResponseWriter, r *http.Request) {
	id, ok := block.IsBlockDir(r.PathValue("id"))
	if !ok {
		http.Error(rw, fmt.Sprintf("%q is not a block ID (ULID)", r.PathValue("id")), http.StatusBadRequest)
		return
	}
	name := path.Join(id.String(), block.MetaFilename)
	rc, err := w.bkt.Get(r.Context(), name)
	if err != nil {
		if w.bkt.IsObjNotFoundErr(err) {
			http.Error(rw, fmt.Sprintf("block %s has no meta.json (no such block, or a partial upload)", id), http.StatusNotFound)
			return
		}
		http.Error(rw, fmt.Sprintf("read %s: %v", name, err), http.StatusBadGateway)
		return
	}
	defer rc.Close()
	rw.Header().Set("Content-Type", "application/json")
	if _, err := io.Copy(rw, rc); err != nil {
		w.logger.Warn("cannot send meta.json", "block", id, "err", err)
	}
}

// apiBlock is one block directory in /api/v1/blocks.
type apiBlock struct {
	ULID string      `json:"ulid"`
	Meta *block.Meta `json:"meta,omitempty"`
	// Marked maps marker file names to their content.
	Marked  map[string]block.Marker `json:"marked"`
	Partial bool                    `json:"partial,omitempty"`
	Error   string                  `json:"error,omitempty"`
}

// apiResponse is the /api/v1/blocks response, Prometheus API style.
type apiResponse struct {
	Status string   `json:"status"`
	Error  string   `json:"error,omitempty"`
	Data   *apiData `json:"data,omitempty"`
}

type apiData struct {
	RefreshedAt time.Time  `json:"refreshedAt"`
	LastError   string     `json:"lastError,omitempty"`
	Blocks      []apiBlock `json:"blocks"`
}

// serveBlocks serves the state of the last refresh as JSON.
func (w *Web) serveBlocks(rw http.ResponseWriter, _ *http.Request) {
	snap, _, err := w.state()
	resp := apiResponse{Status: "success"}
	code := http.StatusOK
	if snap == nil {
		resp.Status, code = "error", http.StatusServiceUnavailable
		resp.Error = "the bucket has not been read yet"
		if err != nil {
			resp.Error += ": " + err.Error()
		}
	} else {
		resp.Data = &apiData{RefreshedAt: snap.Taken.UTC(), Blocks: apiBlocks(snap)}
		if err != nil {
			resp.Data.LastError = err.Error()
		}
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	if err := json.NewEncoder(rw).Encode(resp); err != nil {
		w.logger.Warn("cannot write /api/v1/blocks", "err", err)
	}
}

func apiBlocks(s *Snapshot) []apiBlock {
	out := make([]apiBlock, 0, len(s.Dirs))
	for _, d := range s.Dirs {
		b := apiBlock{ULID: d.ID.String(), Meta: d.Meta, Marked: map[string]block.Marker{}, Partial: d.Partial()}
		if d.MetaErr != nil {
			b.Error = d.MetaErr.Error()
		}
		if d.Deletion != nil {
			b.Marked[block.DeletionMarkFilename] = d.Deletion
		}
		if d.NoCompact != nil {
			b.Marked[block.NoCompactMarkFilename] = d.NoCompact
		}
		if d.NoDownsample != nil {
			b.Marked[block.NoDownsampleMarkFilename] = d.NoDownsample
		}
		out = append(out, b)
	}
	return out
}

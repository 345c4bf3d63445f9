package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// stack is one `vigil store` (restartable, always on the same gRPC address so the querier
// keeps its endpoint) and one `vigil query` over it.
type stack struct {
	vigil, work    string
	objCfg         string // --objstore.config-file of the store
	dataDir        string // --data-dir of the store
	storeArgs      []string
	grpc, http     string // store addresses
	store, querier *benchkit.Proc
	queryURL       string
	labelSets      int // label sets the store reports once synced (one per replica)
	starts         int
}

// syncInfo is what a store start measured.
type syncInfo struct {
	took   time.Duration // start until /-/ready: the initial sync
	blocks int           // vigil_store_blocks_loaded
	mem    benchkit.Mem  // after the sync
	heap   float64       // go_memstats_heap_inuse_bytes after the sync
	// metrics are the store's unlabelled metrics after the sync.
	metrics map[string]float64
}

func newStack(vigil, work, objCfg, dataDir string, labelSets int, storeArgs ...string) (*stack, error) {
	grpc, err1 := benchkit.FreeAddr()
	http, err2 := benchkit.FreeAddr()
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("free port: %v %v", err1, err2)
	}
	return &stack{vigil: vigil, work: work, objCfg: objCfg, dataDir: dataDir, storeArgs: storeArgs,
		grpc: grpc, http: http, labelSets: labelSets}, nil
}

// startStore starts the store with the stack's flags plus extra (later flags win) and
// waits until its initial sync is done.
func (s *stack) startStore(ctx context.Context, extra ...string) (syncInfo, error) {
	if s.store != nil && !s.store.Exited() {
		return syncInfo{}, fmt.Errorf("store already running")
	}
	s.starts++
	args := []string{"store", "--objstore.config-file=" + s.objCfg, "--data-dir=" + s.dataDir,
		"--grpc-address=" + s.grpc, "--http-address=" + s.http, "--sync-block-duration=1h",
		"--http-grace-period=1s", "--grpc-grace-period=1s"}
	args = mergeFlags(append(args, s.storeArgs...), extra)
	began := time.Now()
	p, err := benchkit.StartProc(s.work, fmt.Sprintf("store-%d", s.starts), s.vigil, args...)
	if err != nil {
		return syncInfo{}, err
	}
	s.store = p
	if err := benchkit.WaitFor(ctx, "store ready", 15*time.Minute, p, func() error {
		return benchkit.HTTPOK(ctx, "http://"+s.http+"/-/ready")
	}); err != nil {
		return syncInfo{}, err
	}
	si := syncInfo{took: time.Since(began), mem: p.Mem()}
	m, err := s.storeMetrics(ctx)
	if err != nil {
		return si, err
	}
	si.blocks, si.heap, si.metrics = int(m["vigil_store_blocks_loaded"]), m["go_memstats_heap_inuse_bytes"], m
	if s.querier != nil {
		return si, s.waitQuerier(ctx, time.Now())
	}
	return si, nil
}

// mergeFlags returns base with the flags that extra sets replaced by extra's.
func mergeFlags(base, extra []string) []string {
	name := func(a string) string { n, _, _ := strings.Cut(a, "="); return n }
	out := slices.DeleteFunc(slices.Clone(base), func(a string) bool {
		return slices.ContainsFunc(extra, func(e string) bool { return name(e) == name(a) })
	})
	return append(out, extra...)
}

func (s *stack) stopStore() {
	if s.store != nil {
		s.store.Stop(30 * time.Second)
	}
}

// restartStore stops the store and starts it again (on the same addresses and data
// directory, so index-headers are reused but every in-memory cache is empty).
func (s *stack) restartStore(ctx context.Context, extra ...string) (syncInfo, error) {
	s.stopStore()
	return s.startStore(ctx, extra...)
}

// startQuerier starts `vigil query` over the store and waits until it sees the store.
func (s *stack) startQuerier(ctx context.Context) error {
	grpc, err1 := benchkit.FreeAddr()
	http, err2 := benchkit.FreeAddr()
	if err1 != nil || err2 != nil {
		return fmt.Errorf("free port: %v %v", err1, err2)
	}
	since := time.Now()
	p, err := benchkit.StartProc(s.work, "query", s.vigil, "query", "--query.replica-label=replica",
		"--endpoint="+s.grpc, "--grpc-address="+grpc, "--http-address="+http)
	if err != nil {
		return err
	}
	s.querier, s.queryURL = p, "http://"+http
	if err := benchkit.WaitFor(ctx, "query ready", 2*time.Minute, p, func() error {
		return benchkit.HTTPOK(ctx, s.queryURL+"/-/ready")
	}); err != nil {
		return err
	}
	return s.waitQuerier(ctx, since)
}

// waitQuerier waits until the querier has checked the store after since and sees every
// label set. It asks /api/v1/stores, which does not touch the store's caches.
func (s *stack) waitQuerier(ctx context.Context, since time.Time) error {
	return benchkit.WaitFor(ctx, "query sees the store", 2*time.Minute, s.querier, func() error {
		body, _, err := benchkit.Get(ctx, s.queryURL, "/api/v1/stores", nil)
		if err != nil {
			return err
		}
		var r struct {
			Data map[string][]struct {
				Name      string              `json:"name"`
				LastCheck time.Time           `json:"lastCheck"`
				LastError *string             `json:"lastError"`
				LabelSets []map[string]string `json:"labelSets"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		for _, sts := range r.Data {
			for _, st := range sts {
				if st.Name != s.grpc {
					continue
				}
				switch {
				case st.LastError != nil:
					return fmt.Errorf("store: %s", *st.LastError)
				case st.LastCheck.Before(since):
					return fmt.Errorf("store not checked since %s", since.Format(time.TimeOnly))
				case len(st.LabelSets) != s.labelSets:
					return fmt.Errorf("store has %d label sets, want %d", len(st.LabelSets), s.labelSets)
				}
				return nil
			}
		}
		return fmt.Errorf("store %s not listed", s.grpc)
	})
}

// stop stops the querier, then the store.
func (s *stack) stop() {
	if s.querier != nil {
		s.querier.Stop(15 * time.Second)
	}
	s.stopStore()
}

// query runs a deduplicated query_range through the querier, without partial responses
// (a store error is an error, not a warning).
func (s *stack) query(ctx context.Context, rp benchkit.RangeParams, expr string) (benchkit.Matrix, time.Duration, error) {
	body, took, err := benchkit.Get(ctx, s.queryURL, "/api/v1/query_range",
		rp.Values(expr, url.Values{"dedup": {"true"}, "partial_response": {"false"}}))
	if err != nil {
		return nil, took, err
	}
	m, warns, err := benchkit.Decode(body, "cluster")
	if err == nil && len(warns) > 0 {
		err = fmt.Errorf("warnings: %s", strings.Join(warns, "; "))
	}
	return m, took, err
}

// storeMetrics reads the store's unlabelled metrics.
func (s *stack) storeMetrics(ctx context.Context) (map[string]float64, error) {
	body, _, err := benchkit.Get(ctx, "http://"+s.http, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// maxMetric polls an unlabelled store metric every 50ms until ctx ends and returns the
// largest value seen.
func (s *stack) maxMetric(ctx context.Context, name string) float64 {
	var top float64
	for ctx.Err() == nil {
		if m, err := s.storeMetrics(ctx); err == nil {
			top = max(top, m[name])
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return top
}

// diskUsage is the space the files under dir take on disk (index-headers are sparse).
func diskUsage(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

func mibBytes(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

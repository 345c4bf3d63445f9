package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// profileQuery profiles q twice, saving the profiles under dir and printing their tops:
// first end to end (the store and the querier while q runs in a loop through the querier),
// then the store alone (while the direct Series calls of q run in a loop, which keeps the
// store busy all the time), followed by the store's heap profile.
func profileQuery(ctx context.Context, s *stack, rp benchkit.RangeParams, q benchkit.Query, seconds int, dir string) error {
	fmt.Printf("\nprofiling %s (the slowest warm query), %ds per phase\n", q.Name, seconds)
	if _, _, err := s.query(ctx, rp, q.Expr); err != nil { // warm the caches
		return err
	}
	store := "http://" + s.http
	files, n, med, err := profileWhile(ctx, dir, "e2e", seconds, map[string]string{"store": store, "query": s.queryURL}, func() (time.Duration, error) {
		_, took, err := s.query(ctx, rp, q.Expr)
		return took, err
	})
	if err != nil {
		return err
	}
	fmt.Printf("end to end: %d runs through the querier while profiling, median %s\n", n, benchkit.FmtDur(med))
	only, n, med, err := profileWhile(ctx, dir, "series", seconds, map[string]string{"store": store}, func() (time.Duration, error) {
		dc, err := directSeries(ctx, s.grpc, rp, q.Expr)
		return dc.took, err
	})
	if err != nil {
		return err
	}
	fmt.Printf("store alone: %d direct Series runs while profiling, median %s\n", n, benchkit.FmtDur(med))
	heap := filepath.Join(dir, "store-heap.pprof")
	if err := fetch(ctx, store+"/debug/pprof/heap", heap); err != nil {
		return err
	}
	fmt.Printf("profiles in %s\n", dir)
	for _, p := range []struct {
		title, file string
		args        []string
	}{
		{"store CPU during the query through the querier (flat)", files["store"], []string{"-top", "-nodecount=20"}},
		{"querier CPU during the query (flat)", files["query"], []string{"-top", "-nodecount=15"}},
		{"store CPU, store alone (flat)", only["store"], []string{"-top", "-nodecount=25"}},
		{"store CPU, store alone (cumulative)", only["store"], []string{"-top", "-cum", "-nodecount=30"}},
		{"store heap, bytes allocated since start", heap, []string{"-top", "-sample_index=alloc_space", "-nodecount=15"}},
		{"store heap, in use now", heap, []string{"-top", "-sample_index=inuse_space", "-nodecount=10"}},
	} {
		out, err := exec.CommandContext(ctx, "go", append(append([]string{"tool", "pprof"}, p.args...), p.file)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof %s: %v\n%s", p.file, err, out)
		}
		fmt.Printf("\n--- %s ---\n%s", p.title, trimPprof(string(out)))
	}
	return nil
}

// profileWhile takes CPU profiles of the targets (name → base URL) for seconds while it
// calls run in a loop; it returns the profile files, the number of runs and their median.
func profileWhile(ctx context.Context, dir, phase string, seconds int, targets map[string]string,
	run func() (time.Duration, error)) (map[string]string, int, time.Duration, error) {
	files := map[string]string{}
	errs := make(chan error, len(targets))
	var wg sync.WaitGroup
	for name, base := range targets {
		f := filepath.Join(dir, fmt.Sprintf("%s-cpu-%s.pprof", name, phase))
		files[name] = f
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fetch(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds), f)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var times []time.Duration
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		default:
			took, err := run()
			if err != nil {
				<-done
				return nil, 0, 0, err
			}
			times = append(times, took)
		}
	}
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, 0, 0, err
		}
	}
	return files, len(times), benchkit.Median(times), nil
}

// fetch saves GET url to file.
func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := benchkit.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// trimPprof drops pprof's header lines up to the summary.
func trimPprof(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "Showing nodes") || strings.HasPrefix(l, "Duration:") {
			return strings.Join(lines[i:], "\n")
		}
	}
	return out
}

// Command reliability reruns the table of issue 15 side by side: how Prometheus, the
// Thanos querier and the Vigil querier answer a query whose own timeout expires, a
// frozen replica, an endpoint that never speaks and malformed query-API requests.
//
// On loopback ports it starts two Prometheus replicas (external labels cluster and
// replica) scraping a generator served by this program (--series gauges) and each other,
// a `vigil sidecar` beside each, and over those two sidecars both a `vigil query` and a
// `thanos query` (and one more of each with an extra endpoint that accepts TCP and never
// speaks). For the interop checks it also runs a `thanos sidecar` beside r0 and a
// `vigil query` over it and r1's Vigil sidecar. Then, for --rounds rounds:
//
//  0. the heavy selector (query_range of {__name__=~".+"} over 1h) without a timeout;
//  1. the same with timeout=1ms (default partial response);
//  2. the same with timeout=1ms&partial_response=false;
//  3. r1's sidecar frozen with SIGSTOP: the next count(up) through one querier, timed;
//     SIGCONT as soon as it answered, then the time until that querier sees both replicas
//     again; the same for the other querier;
//  4. count(up) through the queriers that have the silent endpoint;
//
// and once the 17 malformed requests of badreq.go, to all three. It prints a markdown
// table, the errors and warnings, the interop findings, and compares Vigil's column with
// what issue 15 asks for (exit status 3 if it differs). Every process is stopped at the
// end, on error and on Ctrl-C.
//
//	make build && bench/build-thanos.sh
//	go run ./bench/reliability --vigil=bin/vigil --thanos=$(go env GOPATH)/bin/thanos-v0.42.4
package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	vigil, thanos, prom string
	series, rounds      int
	scrape              string
	warmup, maxWait     time.Duration
	freezeHold          time.Duration
	keep                bool
}

// logw receives progress lines (stderr), so that stdout is only the report.
var logw io.Writer = os.Stderr

// errVigilDiffers is returned when the run worked but Vigil's column is not what issue
// 15 asks for.
var errVigilDiffers = errors.New("the answers of vigil query differ from what issue 15 asks for")

func main() {
	var o options
	flag.StringVar(&o.vigil, "vigil", "./bin/vigil", "path of the vigil binary")
	flag.StringVar(&o.thanos, "thanos", os.ExpandEnv("$HOME/go/bin/thanos-v0.42.4"), "path of the thanos binary (bench/build-thanos.sh builds it)")
	flag.StringVar(&o.prom, "prometheus", "/usr/bin/prometheus", "path of the Prometheus binary")
	flag.IntVar(&o.series, "series", 5000, "gauges the generator serves (besides Prometheus's own series)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of cases 0-4 (the malformed requests run once)")
	flag.StringVar(&o.scrape, "scrape-interval", "2s", "scrape interval of both Prometheus")
	flag.DurationVar(&o.warmup, "warmup", 20*time.Second, "how long to let Prometheus scrape before the first case")
	flag.DurationVar(&o.maxWait, "max-wait", 150*time.Second, "client-side limit of one request")
	flag.DurationVar(&o.freezeHold, "freeze-hold", 0, "keep the sidecar frozen at least this long in case 3 (0: thaw as soon as the querier answered)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, configs, TSDBs)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	switch {
	case errors.Is(err, errVigilDiffers):
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(3)
	case err != nil:
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	for _, p := range []*string{&o.vigil, &o.thanos, &o.prom} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
		if _, err := os.Stat(*p); err != nil {
			return err
		}
	}
	if err := checkThanosBuild(o.thanos); err != nil {
		return err
	}
	if o.rounds < 1 {
		return fmt.Errorf("--rounds must be at least 1")
	}
	work, err := os.MkdirTemp("", "vigil-reliability-")
	if err != nil {
		return err
	}
	s := &stack{work: work}
	defer func() {
		s.stop()
		if left := s.running(); len(left) > 0 {
			err = errors.Join(err, fmt.Errorf("still running after stop: %v", left))
		}
		if (err != nil && !errors.Is(err, errVigilDiffers)) || o.keep {
			fmt.Fprintf(os.Stderr, "reliability: logs, configs and data kept in %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}()
	began := time.Now()
	fmt.Fprintln(logw, "starting 2 Prometheus, 3 sidecars, 5 queriers in", work)
	if err := s.start(ctx, o); err != nil {
		if ctx.Err() == nil {
			for _, p := range s.procs {
				fmt.Fprintf(os.Stderr, "--- %s (%s) ---\n%s\n", p.Name, p.Log, p.Tail(15))
			}
		}
		return err
	}
	fmt.Fprintf(logw, "everything ready after %s; letting Prometheus scrape for %s\n", time.Since(began).Round(time.Millisecond), o.warmup)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.warmup):
	}
	res, err := measure(ctx, o, s)
	if err != nil {
		return err
	}
	res.interop = checkInterop(ctx, s)
	for _, p := range s.procs {
		if p.Exited() {
			res.notes = append(res.notes, p.Name+" EXITED during the run:\n"+p.Tail(10))
		}
	}
	printReport(os.Stdout, o, res)
	if bad := vigilVerdict(res, s.hole.Addr); len(bad) > 0 {
		fmt.Println("\nVigil differs from issue 15's expectations:")
		for _, b := range bad {
			fmt.Println("  - " + b)
		}
		return errVigilDiffers
	}
	fmt.Println("\nVigil: every row as issue 15 asks (timeout → 503 timeout; frozen replica < 0.5 s, complete; silent endpoint at once with a warning; every malformed request a clear 4xx)")
	return nil
}

// checkThanosBuild refuses a Thanos binary built without the slicelabels build tag.
// Thanos's releases are built with -tags netgo,slicelabels (its .promu.yml): its label
// protobuf code casts label slices in place, which only fits the slice implementation of
// Prometheus's labels. Built without the tag (the default implementation is stringlabels)
// its querier panics on the first Info answer that carries labels, and its sidecar on
// the first Info call: no measurement is possible.
func checkThanosBuild(path string) error {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil // not a Go binary we can inspect: trust it
	}
	for _, s := range bi.Settings {
		if s.Key == "-tags" && slices.Contains(strings.Split(s.Value, ","), "slicelabels") {
			return nil
		}
	}
	return fmt.Errorf("%s was built without -tags slicelabels (Thanos releases use -tags netgo,slicelabels): "+
		"its querier and sidecar panic on StoreAPI Info; rebuild it with `go build -tags netgo,slicelabels`", path)
}

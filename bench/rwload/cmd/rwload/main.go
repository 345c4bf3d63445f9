// Command rwload sends Prometheus remote-write 1.0 load to one or more receivers and
// prints the throughput, request latencies and errors. See package
// github.com/vigilhq/vigil/bench/rwload for the shape of the load.
//
//	go run ./bench/rwload/cmd/rwload --url http://127.0.0.1:19291/api/v1/receive
//
// The whole load is encoded before the clock starts. It exits with status 1 if any
// request was given up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/bench/rwload"
)

func main() {
	shape := rwload.DefaultShape()
	var t rwload.Target
	flag.Func("url", "remote-write URL, e.g. http://127.0.0.1:19291/api/v1/receive (repeatable: requests go round-robin)", func(s string) error {
		t.URLs = append(t.URLs, s)
		return nil
	})
	flag.IntVar(&shape.Series, "series", shape.Series, "distinct series")
	flag.IntVar(&shape.Steps, "steps", shape.Steps, "samples per series (scrape steps)")
	flag.IntVar(&shape.Batch, "batch", shape.Batch, "samples per request")
	flag.IntVar(&shape.Concurrency, "concurrency", shape.Concurrency, "senders, each owning a disjoint set of series with one request in flight")
	flag.DurationVar(&shape.Interval, "interval", shape.Interval, "time between steps")
	flag.Uint64Var(&shape.Seed, "seed", shape.Seed, "seed of the values")
	flag.StringVar(&t.Tenant, "tenant", "", "tenant sent in --tenant-header (empty: none)")
	flag.StringVar(&t.TenantHeader, "tenant-header", "THANOS-TENANT", "header carrying --tenant")
	flag.DurationVar(&t.Timeout, "timeout", 30*time.Second, "timeout of one request attempt")
	flag.IntVar(&t.MaxRetries, "max-retries", rwload.DefaultMaxRetries, "retries of a request after 5xx, 429 or no answer (negative: none)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, shape, t)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rwload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, shape rwload.Shape, t rwload.Target) error {
	if len(t.URLs) == 0 {
		return errors.New("--url is required")
	}
	began := time.Now()
	p, err := rwload.Build(shape)
	if err != nil {
		return fmt.Errorf("build load: %w", err)
	}
	rwload.PrintPlan(os.Stdout, p, time.Since(began))
	res, err := rwload.Run(ctx, p, t)
	if res != nil {
		res.Print(os.Stdout)
	}
	if err != nil {
		return err
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d requests given up", res.Failed, p.Requests())
	}
	return nil
}

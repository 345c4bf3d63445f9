// Command receivebench measures `vigil receive` ingesting Prometheus remote write.
//
// It starts real receivers on loopback with temporary TSDB directories, sends them the
// load of bench/rwload (encoded before the clock starts) and prints the samples/s
// ingested, each receiver's peak and final RSS, RSS per million active series and CPU
// time, next to the reference figure for Thanos receive on this machine. Then it
// starts `vigil query` over the receivers and checks that every receiver holds every
// series, every acknowledged sample and the right sum of values.
//
// Modes:
//
//   - single: one receiver, no hashring;
//
//   - ring3: three receivers in one hashring with --receive.replication-factor=3 (each
//     stores every series); requests go round-robin to the three.
//
//     make build
//     go run ./bench/receivebench --vigil ./bin/vigil --mode single
//     go run ./bench/receivebench --mode ring3 --series 2000 --steps 20
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
	"github.com/vigilhq/vigil/bench/rwload"
)

// The reference: Thanos receive on this 2-core machine, default load shape.
const (
	refSamplesPerSec = 0.57e6
	refRSSMB         = 145.0
)

type options struct {
	vigil, mode string
	shape       rwload.Shape
	target      rwload.Target
	receiveArgs []string
	verify      bool
	keep        bool
}

func main() {
	o := options{shape: rwload.DefaultShape()}
	flag.StringVar(&o.vigil, "vigil", "./bin/vigil", "path of the vigil binary")
	flag.StringVar(&o.mode, "mode", "single", "single (one receiver) or ring3 (three, replication factor 3)")
	flag.IntVar(&o.shape.Series, "series", o.shape.Series, "distinct series")
	flag.IntVar(&o.shape.Steps, "steps", o.shape.Steps, "samples per series, 15s apart, ending now")
	flag.IntVar(&o.shape.Batch, "batch", o.shape.Batch, "samples per request")
	flag.IntVar(&o.shape.Concurrency, "concurrency", o.shape.Concurrency, "senders, one request in flight each")
	flag.StringVar(&o.target.Tenant, "tenant", "", "THANOS-TENANT header (empty: none, the receiver's default tenant)")
	flag.DurationVar(&o.target.Timeout, "timeout", 30*time.Second, "timeout of one request attempt")
	flag.Func("receive-arg", "extra flag for every receiver, e.g. --receive-arg=--tsdb.retention=1d (repeatable)", func(s string) error {
		o.receiveArgs = append(o.receiveArgs, s)
		return nil
	})
	flag.BoolVar(&o.verify, "verify", true, "check the receivers' data through `vigil query` after the load")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, TSDBs)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "receivebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	n := map[string]int{"single": 1, "ring3": 3}[o.mode]
	if n == 0 {
		return fmt.Errorf("--mode %q: want single or ring3", o.mode)
	}
	if o.vigil, err = filepath.Abs(o.vigil); err != nil {
		return err
	}
	if err := checkReceiveCommand(ctx, o.vigil); err != nil {
		return err
	}
	// Encode the whole load first: it takes both cores for a moment, and it must not
	// overlap the receivers' start or the measurement.
	began := time.Now()
	plan, err := rwload.Build(o.shape)
	if err != nil {
		return fmt.Errorf("build load: %w", err)
	}
	rwload.PrintPlan(os.Stdout, plan, time.Since(began))

	work, err := os.MkdirTemp("", "vigil-receivebench-")
	if err != nil {
		return err
	}
	rs, err := newReceivers(work, n)
	if err != nil {
		return err
	}
	var querier *benchkit.Proc
	defer func() { cleanup(ctx, err, o.keep, work, querier, rs) }()
	if err := startReceivers(ctx, o, work, rs); err != nil {
		return err
	}
	fmt.Printf("mode %s: %d receiver(s) ready, idle RSS %s\n", o.mode, n, idleRSS(rs))

	res, err := load(ctx, o, plan, rs)
	if err != nil {
		return err
	}
	printReceivers(rs, plan, res)
	if !o.verify {
		return loadErr(res, plan)
	}
	var base string
	querier, base, err = startQuerier(ctx, o, work, rs)
	if err != nil {
		return err
	}
	if err := verify(ctx, base, plan, res, rs); err != nil {
		return err
	}
	return loadErr(res, plan)
}

// load sends the plan round-robin to the receivers' remote-write URLs and prints what
// the generator measured, with the generator's own CPU time.
func load(ctx context.Context, o options, plan *rwload.Plan, rs []*receiver) (*rwload.Result, error) {
	t := o.target
	for _, r := range rs {
		t.URLs = append(t.URLs, r.writeURL())
	}
	cpu0 := selfCPU()
	res, err := rwload.Run(ctx, plan, t)
	cpu := selfCPU() - cpu0
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	res.Print(os.Stdout)
	fmt.Printf("generator CPU while sending: %.2f s (%.0f%% of one core)\n",
		cpu.Seconds(), 100*cpu.Seconds()/res.Duration.Seconds())
	return res, nil
}

// loadErr is an error if requests were given up, so that the exit status shows it.
func loadErr(res *rwload.Result, plan *rwload.Plan) error {
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d requests given up", res.Failed, plan.Requests())
	}
	return nil
}

// cleanup stops the querier, then the receivers, and removes the work directory unless
// something failed or --keep; on failure it prints the end of every log.
func cleanup(ctx context.Context, err error, keep bool, work string, querier *benchkit.Proc, rs []*receiver) {
	procs := []*benchkit.Proc{querier}
	for _, r := range rs {
		procs = append(procs, r.proc)
	}
	if err != nil && ctx.Err() == nil {
		for _, p := range procs {
			if p != nil {
				fmt.Fprintf(os.Stderr, "--- %s (%s) ---\n%s\n", p.Name, p.Log, p.Tail(15))
			}
		}
	}
	for _, p := range procs {
		if p != nil {
			p.Stop(30 * time.Second)
		}
	}
	if err != nil || keep {
		fmt.Fprintln(os.Stderr, "work directory kept:", work)
		return
	}
	if rmErr := os.RemoveAll(work); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "remove work directory:", rmErr)
	}
}

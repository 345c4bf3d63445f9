package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	thanosobj "github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
	"github.com/vigilhq/vigil/internal/objstore"
)

// vsOptions configure the --thanos mode: `vigil compact` and `thanos compact` run one
// pass each, interleaved, on fresh copies of the same filesystem bucket.
type vsOptions struct {
	thanos      string // thanos binary
	rounds      int    // rounds of (vigil, thanos)
	concurrency int    // --compact.concurrency and --downsample.concurrency for both; 0: each one's default
	dedup       bool   // pass --deduplication.replica-label=replica to both
	noDown      bool   // pass --downsampling.disable to both
	vigilArgs   string // extra vigil flags, space separated
	thanosArgs  string // extra thanos flags, space separated
}

// vsRun is one compactor's figures in one round.
type vsRun struct {
	name      string
	wall      time.Duration
	user, sys time.Duration
	peakKB    int64 // ru_maxrss: the exact peak RSS (the same as VmHWM at exit)
	hwmKB     int64 // the last VmHWM sampled from /proc/<pid>/status
	anonKB    int64 // the largest RssAnon sampled (heap, stacks)
	fileKB    int64 // the largest RssFile sampled (mapped block files, the binary)
	after     usage
}

// runVsThanos runs the side-by-side comparison on the uploaded bucket in master.
func runVsThanos(ctx context.Context, work, master, vigil string, samples int64, o vsOptions) error {
	thanos, err := filepath.Abs(o.thanos)
	if err != nil {
		return err
	}
	if _, err := os.Stat(thanos); err != nil {
		return fmt.Errorf("thanos binary: %w (bench/build-thanos.sh builds it)", err)
	}
	common := []string{"--consistency-delay=0s", "--delete-delay=0s"}
	if o.dedup {
		common = append(common, "--deduplication.replica-label=replica")
	}
	if o.concurrency > 0 {
		c := strconv.Itoa(o.concurrency)
		common = append(common, "--compact.concurrency="+c, "--downsample.concurrency="+c)
	}
	if o.noDown {
		common = append(common, "--downsampling.disable")
	}
	fmt.Printf("compactbench: common flags of both: %s\n", strings.Join(common, " "))
	var runs []vsRun
	for r := range o.rounds {
		for _, name := range []string{"vigil", "thanos"} {
			bin, extra := vigil, strings.Fields(o.vigilArgs)
			if name == "thanos" {
				bin, extra = thanos, strings.Fields(o.thanosArgs)
			}
			run, err := vsOnce(ctx, work, master, name, r, bin, append(slices.Clone(common), extra...))
			if err != nil {
				return err
			}
			fmt.Printf("  round %d %-6s wall %7s  user %7s  sys %6s  peak RSS %6.1f MiB  (VmHWM sampled %6.1f, max RssAnon %6.1f, max RssFile %6.1f MiB)  after: %d blocks, %.1f MiB raw, %.1f MiB 5m\n",
				r+1, name, run.wall.Round(time.Millisecond), run.user.Round(time.Millisecond), run.sys.Round(time.Millisecond),
				float64(run.peakKB)/1024, float64(run.hwmKB)/1024, float64(run.anonKB)/1024, float64(run.fileKB)/1024, run.after.blocks, mib(run.after.raw), mib(run.after.res5m))
			runs = append(runs, run)
		}
	}
	fmt.Printf("\ncompactbench --thanos: %d input samples, %d rounds, interleaved vigil/thanos\n\n", samples, o.rounds)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "compactor\twall min–max\tCPU (user+sys) min–max\tpeak RSS min–max\tM samples/s (best)")
	for _, name := range []string{"vigil", "thanos"} {
		var wall, cpu, peak []float64
		for _, r := range runs {
			if r.name == name {
				wall = append(wall, r.wall.Seconds())
				cpu = append(cpu, (r.user + r.sys).Seconds())
				peak = append(peak, float64(r.peakKB)/1024)
			}
		}
		fmt.Fprintf(tw, "%s\t%.2f–%.2f s\t%.2f–%.2f s\t%.0f–%.0f MiB\t%.2f\n", name,
			slices.Min(wall), slices.Max(wall), slices.Min(cpu), slices.Max(cpu), slices.Min(peak), slices.Max(peak),
			float64(samples)/slices.Min(wall)/1e6)
	}
	tw.Flush()
	var vw, tw2, vp, tp []float64
	for _, r := range runs {
		if r.name == "vigil" {
			vw, vp = append(vw, r.wall.Seconds()), append(vp, float64(r.peakKB))
		} else {
			tw2, tp = append(tw2, r.wall.Seconds()), append(tp, float64(r.peakKB))
		}
	}
	fmt.Printf("\nvigil/thanos: wall time %.2f× (medians), peak RSS %.2f× (maxima)\n",
		median(vw)/median(tw2), slices.Max(vp)/slices.Max(tp))
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// vsOnce copies master to a fresh bucket, runs one compactor pass over it and measures it.
func vsOnce(ctx context.Context, work, master, name string, round int, bin string, flags []string) (vsRun, error) {
	run := vsRun{name: name}
	bdir := filepath.Join(work, "bucket-"+name)
	ddir := filepath.Join(work, "data-"+name)
	for _, d := range []string{bdir, ddir} {
		if err := os.RemoveAll(d); err != nil {
			return run, err
		}
	}
	if err := copyTree(master, bdir); err != nil {
		return run, fmt.Errorf("copy bucket: %w", err)
	}
	cfg := filepath.Join(work, "objstore-"+name+".yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", bdir)), 0o644); err != nil {
		return run, err
	}
	httpAddr, err := benchkit.FreeAddr()
	if err != nil {
		return run, err
	}
	args := append([]string{"compact", "--objstore.config-file=" + cfg, "--data-dir=" + ddir, "--http-address=" + httpAddr}, flags...)
	syscall.Sync() // the copy's dirty pages must not be written back during the timed run
	start := time.Now()
	p, err := benchkit.StartProc(work, fmt.Sprintf("%s-compact-%d", name, round+1), bin, args...)
	if err != nil {
		return run, err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	for !p.Exited() {
		if m := p.Mem(); m.HWM > 0 {
			run.hwmKB = max(run.hwmKB, m.HWM)
			run.anonKB = max(run.anonKB, m.Anon)
			run.fileKB = max(run.fileKB, m.File)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			p.Stop(5 * time.Second)
			return run, ctx.Err()
		}
	}
	tick.Stop()
	run.wall = time.Since(start)
	ps := p.Cmd.ProcessState
	if code := ps.ExitCode(); code != 0 {
		return run, fmt.Errorf("%s compact exited %d:\n%s", name, code, p.Tail(40))
	}
	run.user, run.sys = ps.UserTime(), ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		run.peakKB = ru.Maxrss
	}
	run.after, err = dirUsage(ctx, bdir)
	return run, err
}

// fsBucket opens a filesystem bucket.
func fsBucket(ctx context.Context, dir string) (thanosobj.Bucket, error) {
	cfg := []byte(fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", dir))
	return objstore.NewBucket(ctx, cfg, slog.New(slog.DiscardHandler), nil, "compactbench")
}

// dirUsage is bucketBytes over a filesystem bucket directory.
func dirUsage(ctx context.Context, dir string) (usage, error) {
	bkt, err := fsBucket(ctx, dir)
	if err != nil {
		return usage{}, err
	}
	defer bkt.Close()
	return bucketBytes(ctx, bkt)
}

// copyTree copies the regular files under src to dst (real copies: a compactor must not
// be able to change the master bucket through a hard link).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

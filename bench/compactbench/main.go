// Command compactbench measures `vigil compact` with replica deduplication: it generates
// (bench/gen) N series × 2 replicas × H hours of 2h blocks, uploads them with external
// labels {cluster="bench", replica=<r>} to MinIO (or a filesystem bucket with --fs), runs
// one `vigil compact --deduplication.replica-label=replica` pass (compaction, vertical
// dedup and downsampling to 5m) and prints the wall time, the throughput (input samples /
// wall time), the compactor's peak RSS (VmHWM from /proc/<pid>/status, sampled) and the
// bucket's bytes before and after.
//
//	make build
//	go run ./bench/compactbench --series 10000 --hours 48 --vigil ./bin/vigil
//
// With --thanos PATH it compares `vigil compact` with `thanos compact` instead (filesystem
// bucket only): after the upload, each round copies the bucket twice and runs one pass of
// Vigil on one copy, then one of Thanos on the other, with the same flags
// (--consistency-delay=0s --delete-delay=0s, plus --deduplication.replica-label=replica
// unless --dedup=false, and --compact.concurrency/--downsample.concurrency only when
// --concurrency is given: otherwise each runs with its own default). It prints wall time,
// user and system CPU time, and peak RSS (ru_maxrss, the VmHWM at exit) of every run:
//
//	go run ./bench/compactbench --series 2000 --hours 96 --dedup=false \
//	  --vigil ./bin/vigil --thanos /root/go/bin/thanos-v0.42.4 --rounds 3
//
// The data ends at a 48h boundary plus 2h, so the first 48h form a complete 2d compaction
// window (compacted to one 48h block, which is then downsampled) and the last 2h block is
// the newest one the planner leaves out.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/oklog/ulid/v2"
	thanosobj "github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/objstore"
)

const (
	minioUser     = "minio"
	minioPassword = "minio123"
	bucketName    = "compactbench"
)

func main() {
	var (
		series      = flag.Int("series", 10000, "series per replica")
		hours       = flag.Int("hours", 48, "hours of data before the last (newest) 2h block; a multiple of 2")
		interval    = flag.Duration("interval", 15*time.Second, "scrape interval")
		work        = flag.String("work", "/tmp/vigil-compactbench", "work directory (data set, bucket, logs)")
		vigil       = flag.String("vigil", "./bin/vigil", "vigil binary")
		minioBin    = flag.String("minio", "", "MinIO binary (default $(go env GOPATH)/bin/minio)")
		fs          = flag.Bool("fs", false, "use a filesystem bucket instead of MinIO")
		reuse       = flag.Bool("reuse", false, "reuse the generated data set in --work if it is there")
		concurrency = flag.Int("concurrency", 1, "--compact.concurrency and --downsample.concurrency")
		noDown      = flag.Bool("downsampling.disable", false, "pass --downsampling.disable")
		thanos      = flag.String("thanos", "", "thanos binary: compare `vigil compact` with `thanos compact` on copies of one filesystem bucket (implies --fs)")
		rounds      = flag.Int("rounds", 2, "with --thanos: rounds of (vigil, thanos), interleaved")
		dedup       = flag.Bool("dedup", true, "pass --deduplication.replica-label=replica")
		vigilArgs   = flag.String("vigil-args", "", "with --thanos: extra vigil compact flags, space separated")
		thanosArgs  = flag.String("thanos-args", "", "with --thanos: extra thanos compact flags, space separated")
	)
	flag.Parse()
	if *thanos != "" {
		*fs = true
		conc := 0 // each compactor's default, unless --concurrency is given
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "concurrency" {
				conc = *concurrency
			}
		})
		vs = &vsOptions{thanos: *thanos, rounds: max(1, *rounds), concurrency: conc, dedup: *dedup, noDown: *noDown,
			vigilArgs: *vigilArgs, thanosArgs: *thanosArgs}
	}
	if err := run(*series, *hours, *interval, *work, *vigil, *minioBin, *fs, *reuse, *concurrency, *noDown, *dedup); err != nil {
		fmt.Fprintln(os.Stderr, "compactbench:", err)
		os.Exit(1)
	}
}

var wroteRE = regexp.MustCompile(`gen: wrote (\d+) samples`)

// vs is set in the --thanos mode.
var vs *vsOptions

func run(series, hours int, interval time.Duration, work, vigil, minioBin string, fs, reuse bool, concurrency int, noDown, dedup bool) error {
	ctx := context.Background()
	if hours <= 0 || hours%2 != 0 {
		return fmt.Errorf("--hours must be a positive multiple of 2")
	}
	vigil, err := filepath.Abs(vigil)
	if err != nil {
		return err
	}
	if _, err := os.Stat(vigil); err != nil {
		return fmt.Errorf("vigil binary: %w (run make build)", err)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	data := filepath.Join(work, "data")

	// 1. Generate.
	const twoDays = 48 * time.Hour
	end := time.Now().Add(-twoDays).Truncate(twoDays).Add(2 * time.Hour)
	samples, err := generate(ctx, data, series, hours+2, interval, end, reuse)
	if err != nil {
		return err
	}

	// 2. Bucket and upload.
	var bkt thanosobj.Bucket
	var cfg []byte
	if fs {
		dir := filepath.Join(work, "bucket")
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		cfg = []byte(fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", dir))
	} else {
		if minioBin == "" {
			minioBin = defaultMinio()
		}
		mdir := filepath.Join(work, "minio")
		if err := os.RemoveAll(mdir); err != nil {
			return err
		}
		endpoint, stop, err := startMinio(ctx, work, minioBin, mdir)
		if err != nil {
			return err
		}
		defer stop()
		cfg = []byte(fmt.Sprintf("type: S3\nconfig:\n  bucket: %s\n  endpoint: %s\n  access_key: %s\n  secret_key: %s\n  insecure: true\n",
			bucketName, endpoint, minioUser, minioPassword))
	}
	cfgPath := filepath.Join(work, "objstore.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return err
	}
	bkt, err = objstore.NewBucket(ctx, cfg, slog.New(slog.DiscardHandler), nil, "compactbench")
	if err != nil {
		return err
	}
	defer bkt.Close()
	began := time.Now()
	nblocks, err := uploadAll(ctx, bkt, data, filepath.Join(work, "stage"))
	if err != nil {
		return err
	}
	before, err := bucketBytes(ctx, bkt)
	if err != nil {
		return err
	}
	fmt.Printf("compactbench: uploaded %d blocks (%.1f MiB) in %s\n", nblocks, mib(before.raw), time.Since(began).Round(time.Millisecond))
	if vs != nil {
		return runVsThanos(ctx, work, filepath.Join(work, "bucket"), vigil, samples, *vs)
	}

	// 3. Compact once.
	httpAddr, err := benchkit.FreeAddr()
	if err != nil {
		return err
	}
	args := []string{"compact", "--objstore.config-file=" + cfgPath, "--data-dir=" + filepath.Join(work, "compact-data"),
		"--http-address=" + httpAddr, "--consistency-delay=0s", "--delete-delay=0s",
		"--compact.concurrency=" + strconv.Itoa(concurrency), "--downsample.concurrency=" + strconv.Itoa(concurrency)}
	if dedup {
		args = append(args, "--deduplication.replica-label=replica")
	}
	if noDown {
		args = append(args, "--downsampling.disable")
	}
	if err := os.RemoveAll(filepath.Join(work, "compact-data")); err != nil {
		return err
	}
	start := time.Now()
	p, err := benchkit.StartProc(work, "compact", vigil, args...)
	if err != nil {
		return err
	}
	var peak, peakRSS int64
	tick := time.NewTicker(50 * time.Millisecond)
	for !p.Exited() {
		if m := p.Mem(); m.HWM > 0 {
			peak = max(peak, m.HWM)
			peakRSS = max(peakRSS, m.RSS)
		}
		<-tick.C
	}
	tick.Stop()
	took := time.Since(start)
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("vigil compact exited %d:\n%s", code, p.Tail(40))
	}
	after, err := bucketBytes(ctx, bkt)
	if err != nil {
		return err
	}

	fmt.Printf("\ncompactbench: %d series × 2 replicas × %dh (+2h newest block) at %s, %s bucket, concurrency %d\n",
		series, hours, interval, map[bool]string{true: "filesystem", false: "MinIO"}[fs], concurrency)
	fmt.Printf("  input samples      %d (%d blocks)\n", samples, nblocks)
	fmt.Printf("  wall time          %s\n", took.Round(time.Millisecond))
	fmt.Printf("  throughput         %.2f M samples/s (input samples / wall time, compaction + dedup + downsampling)\n",
		float64(samples)/took.Seconds()/1e6)
	fmt.Printf("  peak RSS (VmHWM)   %.1f MiB (max sampled VmRSS %.1f MiB)\n", float64(peak)/1024, float64(peakRSS)/1024)
	fmt.Printf("  bucket before      %.2f MiB raw, %d blocks\n", mib(before.raw), before.blocks)
	fmt.Printf("  bucket after       %.2f MiB raw (%.3f×), %.2f MiB 5m, %.2f MiB 1h, %d blocks (%d raw level>1)\n",
		mib(after.raw), float64(after.raw)/float64(before.raw), mib(after.res5m), mib(after.res1h), after.blocks, after.compacted)
	fmt.Printf("  compactor log      %s\n", p.Log)
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// generate runs bench/gen (or reuses its output) and returns the number of samples.
func generate(ctx context.Context, data string, series, hours int, interval time.Duration, end time.Time, reuse bool) (int64, error) {
	countFile := filepath.Join(data, "samples.txt")
	key := fmt.Sprintf("%d %d %s %d", series, hours, interval, end.Unix())
	if reuse {
		if b, err := os.ReadFile(countFile); err == nil {
			if k, n, ok := strings.Cut(strings.TrimSpace(string(b)), "="); ok && k == key {
				if v, err := strconv.ParseInt(n, 10, 64); err == nil {
					fmt.Printf("compactbench: reusing %s (%d samples)\n", data, v)
					return v, nil
				}
			}
		}
	}
	cmd := exec.CommandContext(ctx, "go", "run", "./bench/gen", "--series", strconv.Itoa(series),
		"--hours", strconv.Itoa(hours), "--interval", interval.String(), "--end", strconv.FormatInt(end.Unix(), 10),
		"--out", data, "--force")
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, newLastLines(os.Stdout))
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("bench/gen (run from the repository root): %w", err)
	}
	m := wroteRE.FindStringSubmatch(out.String())
	if m == nil {
		return 0, fmt.Errorf("bench/gen printed no sample count")
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	if err := os.WriteFile(countFile, []byte(key+"="+m[1]+"\n"), 0o644); err != nil {
		return 0, err
	}
	return n, nil
}

// lastLines passes through only the lines of bench/gen's output that start with "gen:".
type lastLines struct{ w io.Writer }

func newLastLines(w io.Writer) io.Writer { return &lastLines{w: w} }

func (l *lastLines) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "gen:") {
			fmt.Fprintln(l.w, sc.Text())
		}
	}
	return len(p), nil
}

// uploadAll uploads every block of data/r0 and data/r1 with a thanos meta.json section
// (labels cluster=bench, replica=<r>, source sidecar).
func uploadAll(ctx context.Context, bkt thanosobj.Bucket, data, stage string) (int, error) {
	if err := os.RemoveAll(stage); err != nil {
		return 0, err
	}
	type job struct{ dir, replica string }
	var jobs []job
	for _, r := range []string{"r0", "r1"} {
		ents, err := os.ReadDir(filepath.Join(data, r))
		if err != nil {
			return 0, err
		}
		for _, e := range ents {
			if _, ok := block.IsBlockDir(e.Name()); ok && e.IsDir() {
				jobs = append(jobs, job{filepath.Join(data, r, e.Name()), r})
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, j := range jobs {
		g.Go(func() error { return uploadBlock(gctx, bkt, stage, j.dir, j.replica) })
	}
	return len(jobs), g.Wait()
}

func uploadBlock(ctx context.Context, bkt thanosobj.Bucket, stage, dir, replica string) error {
	m, err := block.ReadMeta(dir)
	if err != nil {
		return err
	}
	dst := filepath.Join(stage, m.ULID.String())
	if err := os.MkdirAll(filepath.Join(dst, block.ChunksDirname), 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dst)
	ents, err := os.ReadDir(filepath.Join(dir, block.ChunksDirname))
	if err != nil {
		return err
	}
	var segments []string
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		segments = append(segments, e.Name())
		rel := filepath.Join(block.ChunksDirname, e.Name())
		if err := linkOrCopy(filepath.Join(dir, rel), filepath.Join(dst, rel)); err != nil {
			return err
		}
	}
	if err := linkOrCopy(filepath.Join(dir, block.IndexFilename), filepath.Join(dst, block.IndexFilename)); err != nil {
		return err
	}
	m.Thanos = block.ThanosMeta{Version: block.ThanosVersion1, Source: block.SourceSidecar,
		Labels: map[string]string{"cluster": "bench", "replica": replica}, SegmentFiles: segments}
	if err := block.WriteMeta(dst, m); err != nil {
		return err
	}
	return block.Upload(ctx, slog.New(slog.DiscardHandler), bkt, dst)
}

func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// usage is the bucket's bytes by resolution of the blocks (blocks without meta.json count
// as raw).
type usage struct {
	raw, res5m, res1h int64
	blocks, compacted int
}

func bucketBytes(ctx context.Context, bkt thanosobj.Bucket) (usage, error) {
	var u usage
	sizes := map[ulid.ULID]int64{}
	err := bkt.Iter(ctx, "", func(name string) error {
		dir, _, ok := strings.Cut(name, "/")
		if !ok {
			return nil
		}
		id, err := ulid.ParseStrict(dir)
		if err != nil {
			return nil
		}
		a, err := bkt.Attributes(ctx, name)
		if err != nil {
			return err
		}
		sizes[id] += a.Size
		return nil
	}, thanosobj.WithRecursiveIter())
	if err != nil {
		return u, err
	}
	for id, n := range sizes {
		res := int64(0)
		rc, err := bkt.Get(ctx, id.String()+"/"+block.MetaFilename)
		if err == nil {
			m, derr := block.DecodeMeta(rc)
			rc.Close()
			if derr == nil {
				res = m.Thanos.Downsample.Resolution
				u.blocks++
				if res == 0 && m.Compaction.Level > 1 {
					u.compacted++
				}
			}
		}
		switch res {
		case block.Resolution5m:
			u.res5m += n
		case block.Resolution1h:
			u.res1h += n
		default:
			u.raw += n
		}
	}
	return u, nil
}

// defaultMinio is $(go env GOPATH)/bin/minio.
func defaultMinio() string {
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if gp := strings.TrimSpace(strings.Split(string(out), string(os.PathListSeparator))[0]); gp != "" {
			return filepath.Join(gp, "bin", "minio")
		}
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "go", "bin", "minio")
}

// startMinio starts MinIO on dir, waits until it is ready and creates the bucket.
func startMinio(ctx context.Context, work, bin, dir string) (string, func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	api, err1 := benchkit.FreeAddr()
	console, err2 := benchkit.FreeAddr()
	if err1 != nil || err2 != nil {
		return "", nil, fmt.Errorf("free port: %v %v", err1, err2)
	}
	p, err := benchkit.StartProcEnv(work, "minio", []string{"MINIO_ROOT_USER=" + minioUser, "MINIO_ROOT_PASSWORD=" + minioPassword,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1"},
		bin, "server", "--address", api, "--console-address", console, "--quiet", dir)
	if err != nil {
		return "", nil, err
	}
	stop := func() { p.Stop(10 * time.Second) }
	if err := benchkit.WaitFor(ctx, "MinIO ready", 30*time.Second, p, func() error {
		return benchkit.HTTPOK(ctx, "http://"+api+"/minio/health/ready")
	}); err != nil {
		stop()
		return "", nil, err
	}
	c, err := minio.New(api, &minio.Options{Creds: credentials.NewStaticV4(minioUser, minioPassword, ""), Secure: false})
	if err != nil {
		stop()
		return "", nil, err
	}
	if err := benchkit.WaitFor(ctx, "MinIO bucket", 20*time.Second, p, func() error {
		return c.MakeBucket(ctx, bucketName, minio.MakeBucketOptions{})
	}); err != nil {
		stop()
		return "", nil, err
	}
	return api, stop, nil
}

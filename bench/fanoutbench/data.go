package main

// The data set: one filesystem bucket per shard, each with --hours of --series series in
// 2h blocks, uploaded the way a sidecar would (meta.json with the thanos section, last).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/objstore"
)

// manifestName is the data set description in --data; its presence also marks the
// directory as ours, so that regenerating never deletes someone else's files.
const manifestName = "fanout.json"

// dataVersion changes when the generated series change, so old data sets are rebuilt.
const dataVersion = 1

const blockRange = 2 * time.Hour

// dataSet describes the generated buckets.
type dataSet struct {
	Version    int   `json:"version"`
	Buckets    int   `json:"buckets"`
	Series     int   `json:"series"`
	Up         int   `json:"up"`
	Hours      int   `json:"hours"`
	IntervalMS int64 `json:"intervalMs"`
	StartMS    int64 `json:"startMs"`
	EndMS      int64 `json:"endMs"` // exclusive
	dir        string
}

func (d *dataSet) shard(i int) string     { return fmt.Sprintf("s%02d", i) }
func (d *dataSet) bucketDir(i int) string { return filepath.Join(d.dir, d.shard(i)) }

// objstoreYAML is the objstore config of bucket i.
func (d *dataSet) objstoreYAML(i int) []byte {
	return fmt.Appendf(nil, "type: FILESYSTEM\nconfig:\n  directory: %s\n", d.bucketDir(i))
}

// ensureData reuses the data set in o.data when it was generated with the same flags and
// every bucket holds all its blocks; otherwise it generates it anew.
func ensureData(ctx context.Context, o options) (*dataSet, error) {
	want := dataSet{Version: dataVersion, Buckets: o.buckets, Series: o.series, Up: o.up,
		Hours: o.hours, IntervalMS: o.interval.Milliseconds(), dir: o.data}
	b, err := os.ReadFile(filepath.Join(o.data, manifestName))
	switch {
	case err == nil:
		var have dataSet
		if err := json.Unmarshal(b, &have); err != nil {
			return nil, fmt.Errorf("%s: %w", manifestName, err)
		}
		have.dir = o.data
		if have.StartMS != 0 && sameShape(have, want) && complete(&have) {
			fmt.Printf("reusing data in %s (%d buckets × %d series × %dh)\n", o.data, have.Buckets, have.Series, have.Hours)
			return &have, nil
		}
	case errors.Is(err, fs.ErrNotExist):
		if ents, err := os.ReadDir(o.data); err == nil && len(ents) > 0 {
			return nil, fmt.Errorf("%s is not empty and has no %s: not deleting it", o.data, manifestName)
		}
	default:
		return nil, err
	}
	return generate(ctx, want)
}

func sameShape(a, b dataSet) bool {
	return a.Version == b.Version && a.Buckets == b.Buckets && a.Series == b.Series &&
		a.Up == b.Up && a.Hours == b.Hours && a.IntervalMS == b.IntervalMS
}

// complete reports whether every bucket holds its Hours/2 blocks (meta.json present).
func complete(d *dataSet) bool {
	for i := range d.Buckets {
		ms, _ := filepath.Glob(filepath.Join(d.bucketDir(i), "*", block.MetaFilename))
		if len(ms) != d.Hours/2 {
			return false
		}
	}
	return true
}

// generate writes the data set: the window ends at the last 2h boundary before now, so
// the blocks look like what sidecars uploaded recently.
func generate(ctx context.Context, d dataSet) (*dataSet, error) {
	end := time.Now().Truncate(blockRange)
	d.EndMS = end.UnixMilli()
	d.StartMS = end.Add(-time.Duration(d.Hours) * time.Hour).UnixMilli()
	// The manifest goes first, so that a half-written data set is recognised as ours
	// (and not complete) next time.
	for i := range 100 {
		os.RemoveAll(filepath.Join(d.dir, fmt.Sprintf("s%02d", i)))
	}
	os.RemoveAll(filepath.Join(d.dir, ".stage"))
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return nil, err
	}
	mb, _ := json.MarshalIndent(&d, "", "  ")
	if err := os.WriteFile(filepath.Join(d.dir, manifestName), mb, 0o644); err != nil {
		return nil, err
	}
	began := time.Now()
	fmt.Printf("generating %d buckets × %d series × %dh at %s in %s ...\n", d.Buckets, d.Series, d.Hours,
		time.Duration(d.IntervalMS)*time.Millisecond, d.dir)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i := range d.Buckets {
		g.Go(func() error {
			if err := writeBucket(gctx, &d, i); err != nil {
				return fmt.Errorf("bucket %s: %w", d.shard(i), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	os.RemoveAll(filepath.Join(d.dir, ".stage"))
	fmt.Printf("generated in %s\n", time.Since(began).Round(100*time.Millisecond))
	return &d, nil
}

// writeBucket writes bucket i's blocks one at a time into a staging directory and uploads
// each to the bucket with block.Upload.
func writeBucket(ctx context.Context, d *dataSet, i int) error {
	logger := slog.New(slog.DiscardHandler)
	bkt, err := objstore.NewBucket(ctx, d.objstoreYAML(i), logger, nil, "fanoutbench")
	if err != nil {
		return fmt.Errorf("open bucket: %w", err)
	}
	defer bkt.Close()
	stage := filepath.Join(d.dir, ".stage", d.shard(i))
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	ss := shardSeries(d, i)
	for mint := d.StartMS; mint < d.EndMS; mint += blockRange.Milliseconds() {
		maxt := mint + blockRange.Milliseconds()
		dir, err := writeBlock(ctx, d, ss, stage, mint, maxt)
		if err != nil {
			return err
		}
		m, err := block.ReadMeta(dir)
		if err != nil {
			return err
		}
		// The block writer ends a block at its last sample + 1 ms; a sidecar's block spans
		// the whole 2h range, which is also what the stores advertise as their time range.
		m.MinTime, m.MaxTime = mint, maxt
		segs, _ := filepath.Glob(filepath.Join(dir, block.ChunksDirname, "*"))
		for j := range segs {
			segs[j] = filepath.Base(segs[j])
		}
		m.Thanos = block.ThanosMeta{Version: block.ThanosVersion1, Source: block.SourceSidecar,
			Labels:       map[string]string{"cluster": "fanout", "shard": d.shard(i)},
			Downsample:   block.ThanosDownsample{Resolution: block.ResolutionRaw},
			SegmentFiles: segs}
		if err := block.WriteMeta(dir, m); err != nil {
			return err
		}
		if err := block.Upload(ctx, logger, bkt, dir); err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	return nil
}

// genSeries is one series of a shard and the parameters of its value.
type genSeries struct {
	lset labels.Labels
	up   bool
	rate float64 // counter increase per second
	base float64 // counter value at the start of the data
}

// Shape of the counters: 18 series (handler × code) per instance, as an HTTP server has.
var (
	jobs     = []string{"api", "web", "db", "cache", "worker"}
	handlers = []string{"/", "/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/metrics", "/healthz"}
	codes    = []string{"200", "404", "500"}
)

// shardSeries returns shard i's series: d.Up `up` series, then counters. Every shard has
// the same label sets (the shards are alike clusters, told apart by their external label)
// but its own rates.
func shardSeries(d *dataSet, shard int) []genSeries {
	out := make([]genSeries, 0, d.Series)
	for j := range d.Up {
		out = append(out, genSeries{up: true, lset: labels.FromStrings("__name__", "up",
			"job", jobs[j%len(jobs)], "instance", instance(j))})
	}
	per := len(handlers) * len(codes)
	for j := range d.Series - d.Up {
		t, h, c := j/per, j%per/len(codes), j%len(codes)
		u := unit(uint64(shard)<<32 | uint64(j))
		out = append(out, genSeries{
			lset: labels.FromStrings("__name__", "http_requests_total", "job", jobs[t%len(jobs)],
				"instance", instance(t), "handler", handlers[h], "code", codes[c]),
			rate: 0.1 * math.Pow(200, u) * []float64{1, 0.05, 0.01}[c], // 0.1 .. 20 per second for 200s
			base: math.Floor(unit(uint64(shard)<<32|uint64(j)|1<<31) * 1e6),
		})
	}
	return out
}

func instance(t int) string {
	return "10.0." + strconv.Itoa(t>>8&255) + "." + strconv.Itoa(t&255) + ":8080"
}

// unit maps x to [0, 1) deterministically (splitmix64 finalizer).
func unit(x uint64) float64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// writeBlock writes the samples of ss in [mint, maxt) as one block into dir through
// Prometheus's block writer (an in-memory head compacted to a block) and returns the
// block's directory.
func writeBlock(ctx context.Context, d *dataSet, ss []genSeries, dir string, mint, maxt int64) (string, error) {
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, blockRange.Milliseconds())
	if err != nil {
		return "", fmt.Errorf("block writer: %w", err)
	}
	defer w.Close()
	app := w.Appender(ctx)
	for _, s := range ss {
		var ref storage.SeriesRef
		for t := mint; t < maxt; t += d.IntervalMS {
			v := 1.0
			if !s.up {
				v = s.base + math.Floor(s.rate*float64(t-d.StartMS)/1000)
			}
			if ref, err = app.Append(ref, s.lset, t, v); err != nil {
				app.Rollback()
				return "", fmt.Errorf("append %s: %w", s.lset, err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	id, err := w.Flush(ctx)
	if err != nil {
		return "", fmt.Errorf("flush block: %w", err)
	}
	return filepath.Join(dir, id.String()), nil
}

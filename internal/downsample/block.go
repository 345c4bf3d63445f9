package downsample

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/xorchunk"
)

// tmpSuffix marks a block directory that is still being written (as Prometheus does).
const tmpSuffix = ".tmp-for-creation"

// DownsampleDir opens the block in srcDir (with NewPool, so downsampled sources work),
// downsamples it to resolution and writes the result into a new block under dir.
func DownsampleDir(ctx context.Context, logger *slog.Logger, srcDir, dir string, resolution int64) (ulid.ULID, error) {
	meta, err := block.ReadMeta(srcDir)
	if err != nil {
		return ulid.ULID{}, fmt.Errorf("downsample: %w", err)
	}
	b, err := tsdb.OpenBlock(logger, srcDir, NewPool(), nil)
	if err != nil {
		return ulid.ULID{}, fmt.Errorf("downsample: open block %s: %w", srcDir, err)
	}
	// One pass over the whole block: read the chunks with pread, so that they do not
	// stay resident (see WithFileChunks).
	id, err := Downsample(ctx, logger, meta, WithFileChunks(b, srcDir, NewPool(), 0), dir, resolution)
	if cerr := b.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("downsample: close block %s: %w", srcDir, cerr)
	}
	return id, err
}

// Downsample writes a copy of the block b (whose meta.json is origMeta) downsampled to
// resolution (block.Resolution5m from raw, block.Resolution1h from 5m) into a new block
// dir/<ULID> and returns the ULID. The new block has the source's time range, external
// labels, extensions and compaction section (level, sources, parents), so the planner
// sees which raw blocks it covers; its source is "compactor" and its stats are
// recomputed (samples are aggregate samples, counted from the COUNT aggregate). A 5m
// source must be readable as AggrChunks, that is opened with NewPool. The block is
// written to dir/<ULID>.tmp-for-creation and renamed when complete. Tombstones are
// applied to raw sources only (blocks in a bucket have none). A nil logger discards.
func Downsample(ctx context.Context, logger *slog.Logger, origMeta *block.Meta, b tsdb.BlockReader, dir string, resolution int64) (id ulid.ULID, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	origRes := origMeta.Thanos.Downsample.Resolution
	if !(origRes == block.ResolutionRaw && resolution == block.Resolution5m) &&
		!(origRes == block.Resolution5m && resolution == block.Resolution1h) {
		return id, fmt.Errorf("downsample: block %s of resolution %d cannot be downsampled to %d (want 0 → %d or %d → %d)",
			origMeta.ULID, origRes, resolution, block.Resolution5m, block.Resolution5m, block.Resolution1h)
	}
	if bid := b.Meta().ULID; bid != origMeta.ULID {
		return id, fmt.Errorf("downsample: meta.json of block %s given for block %s", origMeta.ULID, bid)
	}
	id = ulid.Make()
	final := filepath.Join(dir, id.String())
	tmp := final + tmpSuffix
	defer func() {
		if err != nil {
			if rerr := os.RemoveAll(tmp); rerr != nil {
				logger.Error("remove unfinished downsampled block", "dir", tmp, "err", rerr)
			}
		}
	}()
	if err := os.MkdirAll(tmp, 0o777); err != nil {
		return id, fmt.Errorf("downsample: create block dir: %w", err)
	}
	st, err := writeSeries(ctx, b, tmp, origRes, resolution)
	if err != nil {
		return id, fmt.Errorf("downsample block %s to %d: %w", origMeta.ULID, resolution, err)
	}
	if st.histogramSamples > 0 || st.histogramChunks > 0 {
		logger.Warn("native histograms are not downsampled yet; skipped them", "block", origMeta.ULID,
			"resolution", resolution, "raw_histogram_samples", st.histogramSamples, "histogram_chunks", st.histogramChunks)
	}
	meta, err := newMeta(id, origMeta, tmp, resolution, st.BlockStats)
	if err != nil {
		return id, err
	}
	if err := block.WriteMeta(tmp, meta); err != nil {
		return id, fmt.Errorf("downsample: %w", err)
	}
	if err := fileutil.Replace(tmp, final); err != nil {
		return id, fmt.Errorf("downsample: rename %s to %s: %w", tmp, final, err)
	}
	logger.Info("downsampled block", "from", origMeta.ULID, "to", id, "resolution", resolution,
		"series", st.NumSeries, "chunks", st.NumChunks, "samples", st.NumSamples)
	return id, nil
}

// newMeta builds the meta.json of the downsampled block written in dir.
func newMeta(id ulid.ULID, orig *block.Meta, dir string, resolution int64, st tsdb.BlockStats) (*block.Meta, error) {
	comp := orig.Compaction
	comp.Sources = slices.Clone(comp.Sources)
	comp.Parents = slices.Clone(comp.Parents)
	comp.Hints = slices.Clone(comp.Hints)
	files, err := block.GatherFiles(dir, "")
	if err != nil {
		return nil, fmt.Errorf("downsample: %w", err)
	}
	var segments []string
	for _, f := range files {
		if filepath.Dir(f.RelPath) == block.ChunksDirname {
			segments = append(segments, filepath.Base(f.RelPath))
		}
	}
	return &block.Meta{
		BlockMeta: tsdb.BlockMeta{
			ULID:       id,
			MinTime:    orig.MinTime,
			MaxTime:    orig.MaxTime,
			Stats:      st,
			Compaction: comp,
			Version:    block.TSDBVersion1,
		},
		Thanos: block.ThanosMeta{
			Version:      block.ThanosVersion1,
			Labels:       maps.Clone(orig.Thanos.Labels),
			Downsample:   block.ThanosDownsample{Resolution: resolution},
			Source:       block.SourceCompactor,
			SegmentFiles: segments,
			Files:        files,
			Extensions:   orig.Thanos.Extensions,
		},
	}, nil
}

// writeStats are the new block's stats plus what was skipped.
type writeStats struct {
	tsdb.BlockStats
	histogramSamples, histogramChunks int
}

// writeSeries writes the index and chunks of the downsampled block into dir.
func writeSeries(ctx context.Context, b tsdb.BlockReader, dir string, origRes, resolution int64) (st writeStats, err error) {
	indexr, err := b.Index()
	if err != nil {
		return st, fmt.Errorf("open index: %w", err)
	}
	defer closeInto(&err, indexr, "index reader")
	chunkr, err := b.Chunks()
	if err != nil {
		return st, fmt.Errorf("open chunks: %w", err)
	}
	defer closeInto(&err, chunkr, "chunk reader")
	tombs, err := b.Tombstones()
	if err != nil {
		return st, fmt.Errorf("open tombstones: %w", err)
	}
	defer closeInto(&err, tombs, "tombstones reader")

	chunkw, err := chunks.NewWriter(filepath.Join(dir, block.ChunksDirname))
	if err != nil {
		return st, fmt.Errorf("create chunk writer: %w", err)
	}
	defer closeInto(&err, chunkw, "chunk writer")
	indexw, err := index.NewWriter(ctx, filepath.Join(dir, block.IndexFilename))
	if err != nil {
		return st, fmt.Errorf("create index writer: %w", err)
	}
	defer closeInto(&err, indexw, "index writer")

	// The source's symbols are a superset of the output's: series keep their labels.
	syms := indexr.Symbols()
	for syms.Next() {
		if err := indexw.AddSymbol(syms.At()); err != nil {
			return st, fmt.Errorf("add symbol: %w", err)
		}
	}
	if err := syms.Err(); err != nil {
		return st, fmt.Errorf("read symbols: %w", err)
	}

	name, value := index.AllPostingsKey()
	postings, err := indexr.Postings(ctx, name, value)
	if err != nil {
		return st, fmt.Errorf("read postings: %w", err)
	}
	postings = indexr.SortedPostings(postings)
	var (
		builder labels.ScratchBuilder
		metas   []chunks.Meta
		out     []chunks.Meta
		raw     rawReader
		aggr    aggrDownsampler
		ds      = newBuilder()
		ref     storage.SeriesRef
	)
	for postings.Next() {
		if st.NumSeries%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		if err := indexr.Series(postings.At(), &builder, &metas); err != nil {
			return st, fmt.Errorf("read series: %w", err)
		}
		lset := builder.Labels()
		out = out[:0]
		if origRes == block.ResolutionRaw {
			samples, err := raw.read(chunkr, tombs, postings.At(), metas, &st)
			if err != nil {
				return st, fmt.Errorf("series %s: %w", lset, err)
			}
			out = ds.downsampleRaw(out, samples, resolution, resolution*BatchWindows)
		} else {
			for i := range metas {
				if metas[i].Chunk, err = readChunk(chunkr, metas[i]); err != nil {
					return st, fmt.Errorf("series %s: %w", lset, err)
				}
			}
			var skipped int
			if out, skipped, err = aggr.downsample(out, metas, resolution); err != nil {
				return st, fmt.Errorf("series %s: %w", lset, err)
			}
			st.histogramChunks += skipped
		}
		if len(out) == 0 {
			continue
		}
		if err := chunkw.WriteChunks(out...); err != nil {
			return st, fmt.Errorf("write chunks of series %s: %w", lset, err)
		}
		if err := indexw.AddSeries(ref, lset, out...); err != nil {
			return st, fmt.Errorf("add series %s: %w", lset, err)
		}
		ref++
		st.NumSeries++
		st.NumChunks += uint64(len(out))
		for _, m := range out {
			st.NumSamples += uint64(m.Chunk.NumSamples())
		}
	}
	if err := postings.Err(); err != nil {
		return st, fmt.Errorf("iterate postings: %w", err)
	}
	st.NumFloatSamples = st.NumSamples
	return st, nil
}

// closeInto closes c and records a close error in *err if there is none yet.
func closeInto(err *error, c interface{ Close() error }, what string) {
	if cerr := c.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close %s: %w", what, cerr)
	}
}

// readChunk returns the chunk of m; iterables (only produced by head readers) are
// not expected in persisted blocks.
func readChunk(cr tsdb.ChunkReader, m chunks.Meta) (chunkenc.Chunk, error) {
	chk, iterable, err := cr.ChunkOrIterable(m)
	if err != nil {
		return nil, fmt.Errorf("read chunk %d [%d, %d]: %w", m.Ref, m.MinTime, m.MaxTime, err)
	}
	if chk == nil {
		if iterable != nil {
			return nil, fmt.Errorf("chunk %d [%d, %d] is an iterable, not a stored chunk", m.Ref, m.MinTime, m.MaxTime)
		}
		return nil, errors.New("chunk reader returned neither chunk nor iterable")
	}
	return chk, nil
}

// rawReader expands the chunks of raw series, reusing its buffers.
type rawReader struct {
	samples []Sample
	it      chunkenc.Iterator
	ts      []int64   // XOR chunks are decoded in bulk into ts and vs (xorchunk)
	vs      []float64 // and copied into samples
}

// read returns the float samples of series ref sorted by time without duplicates,
// dropping deleted (tombstoned) samples and counting histogram samples in st.
func (r *rawReader) read(cr tsdb.ChunkReader, tombs tombstones.Reader, ref storage.SeriesRef, metas []chunks.Meta, st *writeStats) ([]Sample, error) {
	deleted, err := tombs.Get(ref)
	if err != nil {
		return nil, fmt.Errorf("read tombstones: %w", err)
	}
	r.samples = r.samples[:0]
	sorted := true
	for _, m := range metas {
		chk, iterable, err := cr.ChunkOrIterable(m)
		if err != nil {
			return nil, fmt.Errorf("read chunk %d [%d, %d]: %w", m.Ref, m.MinTime, m.MaxTime, err)
		}
		if chk != nil && chk.Encoding() == chunkenc.EncXOR {
			if sorted, err = r.appendXOR(chk.Bytes(), deleted, sorted); err != nil {
				return nil, fmt.Errorf("decode chunk %d [%d, %d]: %w", m.Ref, m.MinTime, m.MaxTime, err)
			}
			continue
		}
		if chk != nil {
			r.it = chk.Iterator(r.it)
		} else {
			r.it = iterable.Iterator(r.it)
		}
	samples:
		for {
			switch r.it.Next() {
			case chunkenc.ValNone:
				break samples
			case chunkenc.ValFloat:
				if t, v := r.it.At(); !r.add(t, v, deleted) {
					sorted = false
				}
			default:
				st.histogramSamples++
			}
		}
		if err := r.it.Err(); err != nil {
			return nil, fmt.Errorf("iterate chunk %d [%d, %d]: %w", m.Ref, m.MinTime, m.MaxTime, err)
		}
	}
	if !sorted { // Overlapping chunks: order by time, keep the first of equal timestamps.
		sort.SliceStable(r.samples, func(i, j int) bool { return r.samples[i].T < r.samples[j].T })
		r.samples = slices.CompactFunc(r.samples, func(a, b Sample) bool { return a.T == b.T })
	}
	return r.samples, nil
}

// appendXOR appends the samples of XOR chunk b that deleted does not cover, and
// reports whether the samples are still sorted.
func (r *rawReader) appendXOR(b []byte, deleted tombstones.Intervals, sorted bool) (bool, error) {
	var err error
	if r.ts, r.vs, err = xorchunk.Append(r.ts[:0], r.vs[:0], b); err != nil {
		return sorted, err
	}
	for i, t := range r.ts {
		if !r.add(t, r.vs[i], deleted) {
			sorted = false
		}
	}
	return sorted, nil
}

// add appends the sample unless deleted covers it, and reports false when it does not
// come after the previous sample (overlapping chunks).
func (r *rawReader) add(t int64, v float64, deleted tombstones.Intervals) bool {
	if len(deleted) > 0 && isDeleted(deleted, t) {
		return true
	}
	n := len(r.samples)
	r.samples = append(r.samples, Sample{t, v})
	return n == 0 || t > r.samples[n-1].T
}

func isDeleted(ivs tombstones.Intervals, t int64) bool {
	for _, iv := range ivs {
		if iv.InBounds(t) {
			return true
		}
	}
	return false
}

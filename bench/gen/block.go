package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"
)

// samplesPerChunk is the chunk size Prometheus's head aims for.
const samplesPerChunk = 120

// blockJob is one block to write: the samples of every series of one replica whose
// timestamps fall in [mint, maxt).
type blockJob struct {
	replica    int
	dir        string // the replica's data directory
	mint, maxt int64  // block range, half-open
}

// genParams are the data-set parameters shared by every block.
type genParams struct {
	series   []series // sorted by labels
	symbols  []string // sorted, unique
	epoch    int64    // ms, a multiple of interval at or before start
	start    int64    // first timestamp to generate (inclusive), ms
	end      int64    // last timestamp to generate (exclusive), ms
	interval int64    // ms
	jitter   int64    // ms
}

// blockStats is what writeBlock produced.
type blockStats struct {
	id      ulid.ULID
	samples uint64
	chunks  uint64
}

// writeBlock writes one TSDB block directly with the index and chunk writers: series are
// generated, encoded and written one at a time in label order, so memory stays bounded
// by one series' samples plus the chunk metadata of the block.
func writeBlock(ctx context.Context, p *genParams, job blockJob) (blockStats, error) {
	id := ulid.MustNew(ulid.Timestamp(time.Now()), rand.Reader)
	tmp := filepath.Join(job.dir, id.String()+".tmp-for-creation")
	final := filepath.Join(job.dir, id.String())
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return blockStats{}, err
	}
	defer os.RemoveAll(tmp)

	cw, err := chunks.NewWriter(filepath.Join(tmp, "chunks"))
	if err != nil {
		return blockStats{}, fmt.Errorf("chunk writer: %w", err)
	}
	iw, err := index.NewWriter(ctx, filepath.Join(tmp, "index"))
	if err != nil {
		cw.Close()
		return blockStats{}, fmt.Errorf("index writer: %w", err)
	}
	st, err := writeSeries(p, job, cw, iw)
	cerr, ierr := cw.Close(), iw.Close()
	if err == nil {
		err = cerr
	}
	if err == nil {
		err = ierr
	}
	if err != nil {
		return blockStats{}, err
	}
	st.id = id
	logger := slog.New(slog.DiscardHandler)
	if _, err := tombstones.WriteFile(logger, tmp, tombstones.NewMemTombstones()); err != nil {
		return blockStats{}, fmt.Errorf("tombstones: %w", err)
	}
	meta := tsdb.BlockMeta{
		ULID: id, MinTime: max(job.mint, p.start), MaxTime: min(job.maxt, p.end),
		Stats: tsdb.BlockStats{NumSamples: st.samples, NumFloatSamples: st.samples,
			NumSeries: uint64(len(p.series)), NumChunks: st.chunks},
		Compaction: tsdb.BlockMetaCompaction{Level: 1, Sources: []ulid.ULID{id}},
		Version:    1,
	}
	b, err := json.MarshalIndent(&meta, "", "\t")
	if err != nil {
		return blockStats{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), b, 0o644); err != nil {
		return blockStats{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return blockStats{}, err
	}
	return st, nil
}

// writeSeries adds the symbols, then generates each series' samples in the block range,
// writes them as XOR chunks and adds the series to the index.
func writeSeries(p *genParams, job blockJob, cw *chunks.Writer, iw *index.Writer) (blockStats, error) {
	var st blockStats
	for _, s := range p.symbols {
		if err := iw.AddSymbol(s); err != nil {
			return st, err
		}
	}
	lo, hi := max(job.mint, p.start), min(job.maxt, p.end)
	var metas []chunks.Meta
	for ref, s := range p.series {
		metas = metas[:0]
		var (
			chk *chunkenc.XORChunk
			app chunkenc.Appender
			cur chunks.Meta
		)
		flush := func() {
			if chk != nil {
				chk.Compact()
				cur.Chunk = chk
				metas = append(metas, cur)
				chk = nil
			}
		}
		// First scrape index whose nominal time can fall in [lo, hi) given offset and jitter.
		k := (lo-p.epoch)/p.interval - 1
		for ; ; k++ {
			t := scrapeTime(p.epoch, k, s.target, job.replica, p.interval, p.jitter)
			if t < lo {
				continue
			}
			if t >= hi {
				break
			}
			if chk == nil {
				chk = chunkenc.NewXORChunk()
				app, _ = chk.Appender()
				cur = chunks.Meta{MinTime: t}
			}
			app.Append(0, t, s.value(t))
			cur.MaxTime = t
			st.samples++
			if chk.NumSamples() == samplesPerChunk {
				flush()
			}
		}
		flush()
		if len(metas) == 0 {
			continue
		}
		if err := cw.WriteChunks(metas...); err != nil {
			return st, fmt.Errorf("write chunks: %w", err)
		}
		for i := range metas {
			metas[i].Chunk = nil // the index needs only refs and times
		}
		if err := iw.AddSeries(storage.SeriesRef(ref), s.lset, metas...); err != nil {
			return st, fmt.Errorf("add series %s: %w", s.lset, err)
		}
		st.chunks += uint64(len(metas))
	}
	return st, nil
}

// symbolsOf returns the sorted unique label names and values of ss.
func symbolsOf(ss []series) []string {
	set := map[string]struct{}{}
	for _, s := range ss {
		s.lset.Range(func(l labels.Label) {
			set[l.Name] = struct{}{}
			set[l.Value] = struct{}{}
		})
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

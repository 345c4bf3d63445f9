// Package shipper uploads the finished blocks of a local TSDB (a Prometheus data
// directory) to object storage, as the Thanos sidecar does.
//
// Every pass reads the state file (thanos.shipper.json), walks the block directories in
// order of their minimum time, and uploads each new level-1 block with the "thanos"
// meta.json section filled in (external labels, source, resolution 0). A block whose
// meta.json is already in the bucket counts as uploaded, so neither a lost state file nor
// a restart uploads a block twice, and meta.json goes up last, so an interrupted upload is
// invisible and simply repeated on the next pass.
package shipper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// DefaultInterval is how often Run syncs by default.
const DefaultInterval = 30 * time.Second

// uploadDirName is the staging directory, relative to the TSDB directory.
var uploadDirName = filepath.Join("thanos", "upload")

// Options configure a Shipper.
type Options struct {
	// Dir is the TSDB directory whose blocks are uploaded.
	Dir string
	// MetaFileName is the state file name inside Dir; DefaultMetaFilename when empty.
	MetaFileName string
	// UploadCompacted also uploads blocks of compaction level > 1 (normally only level 1).
	UploadCompacted bool
	// Source is written to thanos.source; block.SourceSidecar when empty.
	Source block.SourceType
	// HashFunc, when set, records file hashes in meta.json.
	HashFunc block.HashFunc
	// Labels returns the current external labels, written to thanos.labels. Required.
	Labels func() labels.Labels
}

// Shipper uploads new blocks of a TSDB directory to a bucket.
type Shipper struct {
	logger  *slog.Logger
	bkt     objstore.Bucket
	opts    Options
	metrics metrics

	mu sync.Mutex // One sync at a time, so no block is uploaded twice concurrently.
}

type metrics struct {
	dirSyncs, dirSyncFailures, uploads, uploadFailures prometheus.Counter
	lastUpload                                         prometheus.Gauge
}

// New returns a Shipper; reg (may be nil) receives the vigil_shipper_* metrics.
func New(logger *slog.Logger, reg prometheus.Registerer, bkt objstore.Bucket, opts Options) (*Shipper, error) {
	if opts.Dir == "" {
		return nil, errors.New("new shipper: no TSDB directory")
	}
	if opts.Labels == nil {
		return nil, errors.New("new shipper: no external labels function")
	}
	if opts.MetaFileName == "" {
		opts.MetaFileName = DefaultMetaFilename
	}
	if opts.Source == "" {
		opts.Source = block.SourceSidecar
	}
	f := promauto.With(reg)
	return &Shipper{logger: logger, bkt: bkt, opts: opts, metrics: metrics{
		dirSyncs: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_shipper_dir_syncs_total", Help: "Total number of passes over the TSDB directory."}),
		dirSyncFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_shipper_dir_sync_failures_total", Help: "Total number of passes over the TSDB directory that failed."}),
		uploads: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_shipper_uploads_total", Help: "Total number of blocks uploaded."}),
		uploadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_shipper_upload_failures_total", Help: "Total number of block uploads that failed."}),
		lastUpload: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_shipper_last_successful_upload_time", Help: "Unix time in seconds of the last successful block upload."}),
	}}, nil
}

// MetaFilePath is the path of the state file.
func (s *Shipper) MetaFilePath() string { return filepath.Join(s.opts.Dir, s.opts.MetaFileName) }

// Run syncs at once and then every interval until ctx is done. Failures are logged and
// retried on the next pass.
func (s *Shipper) Run(ctx context.Context, interval time.Duration) error {
	s.logger.Info("shipper started", "dir", s.opts.Dir, "interval", interval, "upload_compacted", s.opts.UploadCompacted)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.logger.Error("shipper sync failed; retrying next pass", "uploaded", n, "err", err)
		} else if n > 0 {
			s.logger.Info("shipper sync done", "uploaded", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sync uploads every new block, in order of minimum time, and returns how many it
// uploaded. The first failed upload ends the pass; it is retried on the next one.
func (s *Shipper) Sync(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics.dirSyncs.Inc()
	n, err := s.sync(ctx)
	if err != nil {
		s.metrics.dirSyncFailures.Inc()
	}
	return n, err
}

func (s *Shipper) sync(ctx context.Context) (int, error) {
	done := map[ulid.ULID]bool{}
	state, err := ReadMetaFile(s.MetaFilePath())
	switch {
	case err == nil:
		for _, id := range state.Uploaded {
			done[id] = true
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		// The bucket check below still keeps blocks from being uploaded twice.
		s.logger.Warn("cannot read shipper state; checking the bucket for every block instead", "err", err)
	}
	if err := os.RemoveAll(filepath.Join(s.opts.Dir, uploadDirName)); err != nil {
		return 0, fmt.Errorf("clean upload staging directory: %w", err)
	}
	metas, err := s.localBlocks()
	if err != nil {
		return 0, err
	}

	var (
		uploaded int
		passErr  error
		checker  *overlapChecker
	)
	for _, m := range metas {
		if done[m.ULID] {
			continue
		}
		if m.Stats.NumSamples == 0 {
			s.logger.Debug("skipping block without samples", "block", m.ULID)
			continue
		}
		if m.Compaction.Level > 1 && !s.opts.UploadCompacted {
			continue
		}
		inBucket, err := block.MetaExists(ctx, s.bkt, m.ULID)
		if err != nil {
			passErr = fmt.Errorf("check whether block %s is in the bucket: %w", m.ULID, err)
			break
		}
		if inBucket {
			done[m.ULID] = true
			continue
		}
		if m.Compaction.Level > 1 {
			if checker == nil {
				checker = &overlapChecker{bkt: s.bkt}
			}
			if err := checker.check(ctx, m, s.opts.Labels()); err != nil {
				passErr = fmt.Errorf("cannot upload compacted block %s: %w", m.ULID, err)
				break
			}
		}
		if err := s.upload(ctx, m); err != nil {
			if ctx.Err() == nil {
				s.metrics.uploadFailures.Inc()
			}
			passErr = fmt.Errorf("upload block %s: %w", m.ULID, err)
			break
		}
		s.logger.Info("uploaded block", "block", m.ULID, "min_time", m.MinTime, "max_time", m.MaxTime, "level", m.Compaction.Level)
		s.metrics.uploads.Inc()
		s.metrics.lastUpload.SetToCurrentTime()
		done[m.ULID] = true
		uploaded++
	}

	// Record what is in the bucket among the blocks still present locally, also after a
	// failure, so the uploads of this pass are not checked against the bucket again.
	next := &MetaFile{Version: MetaVersion1, Uploaded: []ulid.ULID{}}
	for _, m := range metas {
		if done[m.ULID] {
			next.Uploaded = append(next.Uploaded, m.ULID)
		}
	}
	if err := WriteMetaFile(s.MetaFilePath(), next); err != nil {
		passErr = errors.Join(passErr, err)
	}
	return uploaded, passErr
}

// localBlocks reads the meta.json of every block directory in Dir, sorted by minimum time.
func (s *Shipper) localBlocks() ([]*block.Meta, error) {
	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("list TSDB directory: %w", err)
	}
	var metas []*block.Meta
	for _, e := range entries {
		if _, ok := block.IsBlockDir(e.Name()); !ok || !e.IsDir() {
			continue
		}
		m, err := block.ReadMeta(filepath.Join(s.opts.Dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read local block: %w", err)
		}
		metas = append(metas, m)
	}
	sort.SliceStable(metas, func(i, j int) bool {
		if metas[i].MinTime != metas[j].MinTime {
			return metas[i].MinTime < metas[j].MinTime
		}
		return metas[i].ULID.Compare(metas[j].ULID) < 0
	})
	return metas, nil
}

// upload stages block m under <dir>/thanos/upload/<ULID> (hard links plus a new meta.json
// with the thanos section), uploads it and removes the staging directory.
func (s *Shipper) upload(ctx context.Context, m *block.Meta) error {
	lset := s.opts.Labels()
	if lset.IsEmpty() {
		return errors.New("no external labels known; blocks without external labels cannot be told apart in the bucket")
	}
	src := filepath.Join(s.opts.Dir, m.ULID.String())
	stage := filepath.Join(s.opts.Dir, uploadDirName, m.ULID.String())
	if err := os.RemoveAll(stage); err != nil {
		return fmt.Errorf("clean staging directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(stage, block.ChunksDirname), 0o755); err != nil {
		return fmt.Errorf("create staging directory: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(stage); err != nil {
			s.logger.Warn("cannot remove staging directory", "dir", stage, "err", err)
		}
	}()

	entries, err := os.ReadDir(filepath.Join(src, block.ChunksDirname))
	if err != nil {
		return fmt.Errorf("list chunks: %w", err)
	}
	var segments []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		segments = append(segments, e.Name())
		if err := linkOrCopy(filepath.Join(src, block.ChunksDirname, e.Name()), filepath.Join(stage, block.ChunksDirname, e.Name())); err != nil {
			return err
		}
	}
	if err := linkOrCopy(filepath.Join(src, block.IndexFilename), filepath.Join(stage, block.IndexFilename)); err != nil {
		return err
	}

	meta := *m
	meta.Thanos.Version = block.ThanosVersion1
	meta.Thanos.Labels = lset.Map()
	meta.Thanos.Source = s.opts.Source
	meta.Thanos.Downsample.Resolution = block.ResolutionRaw
	meta.Thanos.SegmentFiles = segments
	meta.Thanos.Files = nil
	meta.Thanos.UploadTime = time.Time{}
	if err := block.WriteMeta(stage, &meta); err != nil {
		return fmt.Errorf("stage block: %w", err)
	}
	return block.Upload(ctx, s.logger, s.bkt, stage, block.WithHashFunc(s.opts.HashFunc))
}

// linkOrCopy hard-links src to dst, copying when the filesystem refuses hard links.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("stage %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("stage %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("stage %s: copy: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("stage %s: %w", src, err)
	}
	return nil
}

// overlapChecker refuses compacted uploads that overlap blocks of the same external
// labels already in the bucket: Prometheus compacted blocks the sidecar may have uploaded
// already, and uploading both would duplicate data.
type overlapChecker struct {
	bkt   objstore.Bucket
	metas []*block.Meta // nil until first use.
}

func (c *overlapChecker) check(ctx context.Context, m *block.Meta, ext labels.Labels) error {
	if c.metas == nil {
		ids, err := block.ListBlockIDs(ctx, c.bkt)
		if err != nil {
			return err
		}
		c.metas = []*block.Meta{}
		for _, id := range ids {
			bm, err := block.ReadMetaFromBucket(ctx, c.bkt, id)
			if errors.Is(err, block.ErrMetaNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("check bucket for overlapping blocks: %w", err)
			}
			c.metas = append(c.metas, bm)
		}
	}
	want := ext.Map()
	for _, bm := range c.metas {
		if bm.Thanos.Downsample.Resolution != block.ResolutionRaw || !maps.Equal(bm.Thanos.Labels, want) {
			continue
		}
		if bm.MinTime < m.MaxTime && m.MinTime < bm.MaxTime {
			return fmt.Errorf("it overlaps block %s [%d, %d) already in the bucket; "+
				"remove one of them or stop uploading compacted blocks (--shipper.upload-compacted)", bm.ULID, bm.MinTime, bm.MaxTime)
		}
	}
	return nil
}

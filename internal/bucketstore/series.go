package bucketstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// batchBuffer is how many batches each block may have ready ahead of the merge. One is
// enough to hide the next batch's reads: with two, a 24-block, 4500-series request held
// 10% more memory at its peak (670 vs 600 MiB RSS) and answered no faster.
const batchBuffer = 1

// seriesQuery is one Series request as every block reads it.
type seriesQuery struct {
	mint, maxt int64
	skipChunks bool
	aggrs      []storepb.Aggr // served from downsampled chunks
	stripped   []string
	shard      *storepb.ShardInfo // each block goroutine builds its own matcher
	batchBytes int64              // each block's batch budget
}

// blockStream produces one block's series, rewritten with external labels and sorted by
// their final labels, in batches.
type blockStream struct {
	b        *loadedBlock
	ch       chan []*storepb.Series
	batch    []*storepb.Series
	pos      int
	done     bool
	err      error
	reported bool // a failure already sent as a warning
}

// Series streams the series of every selected block, merged and sorted.
func (s *Store) Series(req *storepb.SeriesRequest, srv storepb.Store_SeriesServer) error {
	ms, err := storeapi.MatchersFromProto(req.GetMatchers())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if len(ms) == 0 {
		return status.Error(codes.InvalidArgument, "no matchers specified")
	}
	q := &seriesQuery{mint: req.GetMinTime(), maxt: req.GetMaxTime(), skipChunks: req.GetSkipChunks(),
		aggrs: req.GetAggregates(), stripped: req.GetWithoutReplicaLabels(), shard: req.GetShardInfo()}
	ctx, cancel := context.WithCancel(srv.Context())
	defer cancel()

	var streams []*blockStream
	var wg sync.WaitGroup
	held := &requestMemory{pool: s.pool, limit: s.cfg.RequestBytes}
	s.rel.start()
	defer func() {
		cancel()
		for _, bs := range streams {
			for batch := range bs.ch { // let producers finish
				held.releaseSeries(batch...)
			}
		}
		wg.Wait()
		held.releaseAll()
		if hook := s.peakHook.Load(); hook != nil {
			(*hook)(held.peak)
		}
		s.metrics.requestPeak.Observe(float64(held.peak))
		s.rel.done(held.taken)
	}()
	type selected struct {
		b    *loadedBlock
		rest []*labels.Matcher
	}
	var blocks []selected
	for _, set := range s.sets() {
		ok, rest := storeapi.MatchExternalLabels(set.ext, ms)
		if !ok {
			continue
		}
		for _, b := range selectBlocks(set.blocks, q.mint, q.maxt, req.GetMaxResolutionWindow()) {
			blocks = append(blocks, selected{b, rest})
		}
	}
	q.batchBytes = s.batchBytes(len(blocks))
	for _, sb := range blocks {
		b := sb.b
		bs := &blockStream{b: b, ch: make(chan []*storepb.Series, batchBuffer)}
		streams = append(streams, bs)
		b.inflight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer b.inflight.Done()
			defer close(bs.ch)
			bs.err = s.produce(ctx, bs, sb.rest, q, held)
		}()
	}
	return s.sendMerged(srv, req, streams, held)
}

// batchBytes is the batch budget of each of n blocks read by one request: the configured
// batch size, lowered so that all blocks' batches together stay within the request limit
// and the chunk pool.
func (s *Store) batchBytes(n int) int64 {
	b := s.cfg.BatchBytes
	for _, limit := range []int64{s.cfg.RequestBytes, s.cfg.ChunkPoolSize} {
		if limit > 0 && n > 0 {
			b = min(b, max(minBatchBytes, limit/int64(batchesPerBlock*n+1)))
		}
	}
	return b
}

// produce reads one block's matching series in batches and sends them, re-sorted after
// adding external labels, to bs.ch.
func (s *Store) produce(ctx context.Context, bs *blockStream, ms []*labels.Matcher, q *seriesQuery, held *requestMemory) error {
	b := bs.b
	p, err := b.postings(ctx, ms)
	if err != nil {
		return err
	}
	_, stripped := storeapi.StripSet(b.ext, q.stripped)
	lab := storeapi.NewExternalLabeler(b.ext, stripped)
	if b.ownExtNames {
		lab.WithOwnExternalLabels()
	}
	shard := storeapi.NewShardMatcher(q.shard)
	var out []*storepb.Series
	resorter := storeapi.NewResorter(0, func(sr *storepb.Series) error {
		out = append(out, sr)
		return nil
	})
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		select {
		case bs.ch <- out:
			out = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r := b.newSeriesReader(p, q, q.batchBytes, s.cfg.BatchSize)
	defer r.close()
	var estimate int64
	var bounds []int
	onEstimate := func(n int64) error {
		estimate = n
		return held.acquire(n) // refused before the chunks are read
	}
	for {
		raws, err := r.nextBatch(ctx, onEstimate)
		if err != nil {
			return err
		}
		if len(raws) == 0 {
			break
		}
		batch := make([]*storepb.Series, len(raws))
		bounds = bounds[:0]
		var actual int64
		for i, r := range raws {
			sr := &storepb.Series{Chunks: r.chunks}
			var bound int
			sr.Labels, bound = lab.Apply(r.lset)
			batch[i], bounds = sr, append(bounds, bound)
			actual += heldSize(sr)
		}
		// Replace the estimate with what the batch really holds.
		if err := held.acquire(actual - estimate); err != nil {
			held.release(estimate)
			return err
		}
		for i, sr := range batch {
			if !shard.Matches(sr.Labels) {
				held.releaseSeries(sr)
				continue
			}
			if err := resorter.Push(sr, bounds[i]); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	if err := resorter.Flush(); err != nil {
		return err
	}
	return flush()
}

// sendMerged k-way merges the block streams by labels, joining equal series, and sends
// them within the request's limits.
func (s *Store) sendMerged(srv storepb.Store_SeriesServer, req *storepb.SeriesRequest, streams []*blockStream, held *requestMemory) error {
	sender := storeapi.NewSeriesSender(srv, req.GetResponseBatchSize())
	for _, bs := range streams {
		bs.advance()
	}
	lim := storeapi.NewLimiter(storeapi.RequestLimits{Series: int64(s.cfg.SeriesLimit), Samples: int64(s.cfg.SamplesLimit)})
	for {
		var head *blockStream
		for _, bs := range streams {
			if !bs.done && (head == nil || storeapi.CompareLabels(bs.cur().Labels, head.cur().Labels) < 0) {
				head = bs
			}
		}
		if head == nil {
			break
		}
		out := &storepb.Series{Labels: head.cur().Labels}
		var parts []*storepb.Series
		for _, bs := range streams {
			for !bs.done && storeapi.CompareLabels(bs.cur().Labels, out.Labels) == 0 {
				parts = append(parts, bs.cur())
				out.Chunks = append(out.Chunks, bs.cur().Chunks...)
				bs.advance()
			}
		}
		if err := s.checkStreams(streams, sender); err != nil {
			return err
		}
		if err := lim.Add(out); err != nil {
			return err
		}
		if err := sender.Send(out); err != nil {
			return err
		}
		held.releaseSeries(parts...)
		if req.GetLimit() > 0 && int64(sender.Sent()) >= req.GetLimit() {
			break
		}
	}
	if err := s.checkStreams(streams, sender); err != nil {
		return err
	}
	return sender.Flush()
}

// checkStreams handles ended block streams that failed. Limits and cancellation end the
// request. Any other failure is one block's problem (a corrupt series entry, a missing
// chunk): it is logged, counted and reported as a warning frame, and the other blocks are
// still served; a client asking for ABORT turns the warning into an error.
func (s *Store) checkStreams(streams []*blockStream, sender *storeapi.SeriesSender) error {
	for _, bs := range streams {
		if !bs.done || bs.err == nil || bs.reported {
			continue
		}
		switch code := status.Code(bs.err); {
		case code == codes.ResourceExhausted, code == codes.Canceled, code == codes.DeadlineExceeded:
			return bs.err
		case errors.Is(bs.err, context.Canceled), errors.Is(bs.err, context.DeadlineExceeded):
			return storeapi.StatusError(bs.err, codes.Canceled)
		}
		bs.reported = true
		s.metrics.readFailures.Inc()
		s.logger.Error("reading block failed; answering without it", "block", bs.b.id, "err", bs.err)
		if err := sender.Warning(fmt.Sprintf("store gateway: block %s skipped: %v", bs.b.id, bs.err)); err != nil {
			return err
		}
	}
	return nil
}

func (bs *blockStream) cur() *storepb.Series { return bs.batch[bs.pos] }

// advance moves to the next series of the block; done when the block is exhausted.
func (bs *blockStream) advance() {
	if bs.batch != nil && bs.pos+1 < len(bs.batch) {
		bs.pos++
		return
	}
	batch, ok := <-bs.ch
	if !ok {
		bs.done, bs.batch = true, nil
		return
	}
	bs.batch, bs.pos = batch, 0
}

// requestMemory tracks the bytes of series batches one request holds, within the request's
// limit (--store.limits.request-bytes) and the store's pool (--chunk-pool-size).
type requestMemory struct {
	pool  *bytePool
	limit int64
	mu    sync.Mutex
	held  int64
	peak  int64 // most held at once
	taken int64 // all bytes taken, for the releaser
}

// acquire takes n more bytes (n < 0 gives -n back) or fails with ResourceExhausted.
func (h *requestMemory) acquire(n int64) error {
	if n <= 0 {
		h.release(-n)
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.limit > 0 && h.held+n > h.limit {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf(
			"request memory exhausted: reading %d more bytes of series would exceed --store.limits.request-bytes=%d (held by this request: %d); narrow the query or raise the flag",
			n, h.limit, h.held))
	}
	if err := h.pool.acquire(n); err != nil {
		return err
	}
	h.held += n
	h.taken += n
	h.peak = max(h.peak, h.held)
	return nil
}

func (h *requestMemory) release(n int64) {
	h.mu.Lock()
	n = min(n, h.held)
	h.held -= n
	h.mu.Unlock()
	h.pool.release(n)
}

// releaseSeries gives back the bytes of sent (or dropped) series.
func (h *requestMemory) releaseSeries(ss ...*storepb.Series) {
	var n int64
	for _, s := range ss {
		n += heldSize(s)
	}
	h.release(n)
}

func (h *requestMemory) releaseAll() {
	h.mu.Lock()
	n := h.held
	h.held = 0
	h.mu.Unlock()
	h.pool.release(n)
}

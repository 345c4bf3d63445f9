package tsdbstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// checkCtxEvery is how many stored series a stream reads between checks of the request
// context: series that fail the shard check are never sent, so a send error would not
// notice a cancellation.
const checkCtxEvery = 64

// seriesQuery is one Series request as every store reads it, parsed once.
type seriesQuery struct {
	mint, maxt int64
	matchers   []*labels.Matcher
	skipChunks bool
	without    []string
	shard      *storepb.ShardInfo
}

func newSeriesQuery(req *storepb.SeriesRequest) (*seriesQuery, error) {
	ms, err := matchersFromProto(req.GetMatchers())
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, errNoMatchers
	}
	if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches("") }) {
		// Every series matches: Prometheus refuses such selectors, and its index cannot
		// select with them alone.
		return nil, status.Error(codes.InvalidArgument, "at least one matcher must not match the empty string")
	}
	return &seriesQuery{mint: req.GetMinTime(), maxt: req.GetMaxTime(), matchers: ms, skipChunks: req.GetSkipChunks(),
		without: req.GetWithoutReplicaLabels(), shard: req.GetShardInfo()}, nil
}

// seriesStream is one store's answer to a Series request: its matching series with their
// final labels, in final order, read from the TSDB only as the merge pulls them. It is
// used from one goroutine, as the TSDB querier requires.
type seriesStream struct {
	store      *Store
	ctx        context.Context
	querier    storage.ChunkQuerier
	set        storage.ChunkSeriesSet
	labeler    *storeapi.ExternalLabeler
	shard      *storeapi.ShardMatcher
	resorter   *storeapi.Resorter
	chunks     chunkReader
	skipChunks bool

	ready []*storepb.Series // released by the resorter, in final order
	pos   int               // next of ready to hand out
	cur   *storepb.Series
	read  int // stored series read, for the context checks
	done  bool
	err   error
}

// open starts the store's answer to q. It returns nil when the external labels rule the
// store out or the store holds nothing in the time range.
func (s *Store) open(ctx context.Context, q *seriesQuery) (*seriesStream, error) {
	ok, rest := storeapi.MatchExternalLabels(s.ext, q.matchers)
	if !ok {
		return nil, nil
	}
	if len(rest) == 0 {
		return nil, errNoMatchers
	}
	start, _ := s.TimeRange()
	mint := max(q.mint, start)
	if mint > q.maxt {
		return nil, nil
	}
	cq, err := s.db.ChunkQuerier(mint, q.maxt)
	if err != nil {
		return nil, fmt.Errorf("open TSDB querier for [%d, %d]: %w", mint, q.maxt, err)
	}
	_, stripped := storeapi.StripSet(s.ext, q.without)
	st := &seriesStream{store: s, ctx: ctx, querier: cq, labeler: storeapi.NewExternalLabeler(s.ext, stripped),
		shard: storeapi.NewShardMatcher(q.shard), skipChunks: q.skipChunks}
	if s.ownExternalNames(ctx, cq) {
		st.labeler.WithOwnExternalLabels()
	}
	// The series limit bounds what the re-sort holds, as in the sidecar.
	st.resorter = storeapi.NewResorter(int(s.opts.Limits.Series), func(sr *storepb.Series) error {
		st.ready = append(st.ready, sr)
		return nil
	})
	// Without DisableTrimming the TSDB re-encodes every chunk reaching outside the range
	// (and the open head chunk, whose indexed max time is unbounded, always) to cut it;
	// StoreAPI clients trim samples themselves, so whole chunks are sent as they are.
	st.set = cq.Select(ctx, true, &storage.SelectHints{Start: mint, End: q.maxt, DisableTrimming: true}, rest...)
	return st, nil
}

// ownExternalNames reports whether stored series may carry labels named like external
// labels: they were sorted by values the external labels replace, so the re-sort must
// use its conservative bound. Label names come from the index (cheap); when they cannot
// be read the answer is yes, which costs memory, never order.
func (s *Store) ownExternalNames(ctx context.Context, q storage.LabelQuerier) bool {
	if s.ext.IsEmpty() {
		return false
	}
	names, _, err := q.LabelNames(ctx, nil)
	if err != nil {
		return true
	}
	for _, n := range names {
		if s.ext.Has(n) {
			return true
		}
	}
	return false
}

// Next advances to the next series in final order.
func (st *seriesStream) Next() bool {
	for st.pos == len(st.ready) {
		if st.done {
			return false
		}
		clear(st.ready)
		st.ready, st.pos = st.ready[:0], 0
		if err := st.pull(); err != nil {
			st.done, st.err = true, err
			return false
		}
	}
	st.cur = st.ready[st.pos]
	st.ready[st.pos] = nil
	st.pos++
	return true
}

// At returns the current series.
func (st *seriesStream) At() *storepb.Series { return st.cur }

// Err returns the error that ended the stream early, if any.
func (st *seriesStream) Err() error { return st.err }

// pull reads the next stored series into the re-sort, which releases the series it no
// longer needs to hold into ready; at the end it releases everything.
func (st *seriesStream) pull() error {
	if st.read++; st.read%checkCtxEvery == 0 {
		if err := st.ctx.Err(); err != nil {
			return err
		}
	}
	if !st.set.Next() {
		st.done = true
		if err := st.set.Err(); err != nil {
			return fmt.Errorf("select series from TSDB: %w", err)
		}
		return st.resorter.Flush()
	}
	cs := st.set.At()
	out := &storepb.Series{}
	var bound int
	out.Labels, bound = st.labeler.Apply(cs.Labels())
	if !st.shard.Matches(out.Labels) {
		return nil
	}
	if !st.skipChunks {
		var err error
		if out.Chunks, err = st.chunks.read(cs); err != nil {
			return fmt.Errorf("read chunks of series %s: %w", cs.Labels(), err)
		}
		if len(out.Chunks) == 0 { // every sample deleted
			return nil
		}
	}
	return st.resorter.Push(out, bound)
}

// Warnings returns what the TSDB reported about the selection.
func (st *seriesStream) Warnings() annotations.Annotations { return st.set.Warnings() }

// Close releases the querier. Chunk data of sent series may point into it, so streams
// are closed only after the last frame is sent.
func (st *seriesStream) Close() error {
	if err := st.querier.Close(); err != nil {
		return fmt.Errorf("close TSDB querier: %w", err)
	}
	return nil
}

func closeStreams(streams []*seriesStream) {
	for _, st := range streams {
		if err := st.Close(); err != nil {
			st.store.logger.Warn("closing TSDB querier failed", "labels", st.store.ext.String(), "err", err)
		}
	}
}

// isFatal reports whether a store's failure must end the whole request rather than
// become a warning: cancellation, exceeded limits and invalid requests are the request's
// problem, not the store's.
func isFatal(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(storeapi.StatusError(err, codes.Internal)) {
	case codes.Canceled, codes.DeadlineExceeded, codes.ResourceExhausted, codes.InvalidArgument:
		return true
	}
	return false
}

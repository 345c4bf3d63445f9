// Package tsdbstore serves local Prometheus TSDBs over the StoreAPI: a Store answers for
// one TSDB under a fixed external label set (a receiver tenant, a ruler), and a Multi
// serves several Stores as one endpoint (the receiver's tenants), merging their sorted
// series streams as it sends them.
//
// Series and chunks flow from the TSDB's chunk querier through the gRPC stream one at a
// time: nothing holds a whole answer, only what the external-label re-sort must hold
// back (see storeapi.Resorter), bounded by the series limit.
package tsdbstore

import (
	"log/slog"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// DB is what a Store reads. *tsdb.DB implements it; StartTime is the oldest sample time
// the database may hold (its first block's, or the head's).
type DB interface {
	storage.ChunkQueryable
	StartTime() (int64, error)
}

var (
	_ DB                = (*tsdb.DB)(nil)
	_ storeapi.StoreAPI = (*Store)(nil)
	_ storeapi.StoreAPI = (*Multi)(nil)
	_ infopb.InfoServer = (*Multi)(nil)
)

// Options configure a Store.
type Options struct {
	// Logger receives what is worth an operator's attention; nil discards.
	Logger *slog.Logger
	// Limits bound one Series request (--store.limits.request-series and
	// --store.limits.request-samples); zero values mean unlimited. The series limit also
	// bounds how many series the external-label re-sort may hold back, also when the
	// Store is served through a Multi (whose own limits count the merged answer).
	Limits storeapi.RequestLimits
}

// Store serves one local TSDB with a fixed external label set over the StoreAPI. It is
// safe for concurrent use: every request opens its own querier.
type Store struct {
	db     DB
	ext    labels.Labels
	opts   Options
	logger *slog.Logger
}

// New returns a Store serving db with the external labels ext (for the receiver: the
// --label flags plus tenant_id=<tenant>).
func New(db DB, ext labels.Labels, opts Options) *Store {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{db: db, ext: ext, opts: opts, logger: logger}
}

// LabelSet returns the external labels the Store adds to every series.
func (s *Store) LabelSet() labels.Labels { return s.ext }

// TimeRange returns the time range the Store may hold data for. Like a Thanos receiver or
// ruler it ends at math.MaxInt64, as the TSDB keeps ingesting; an empty TSDB starts at
// math.MaxInt64 (nothing to query yet), and one whose start is unknown at MinInt64.
func (s *Store) TimeRange() (mint, maxt int64) {
	start, err := s.db.StartTime()
	if err != nil {
		return math.MinInt64, math.MaxInt64
	}
	return start, math.MaxInt64
}

var errNoMatchers = status.Error(codes.InvalidArgument, "no matchers specified (excluding external labels)")

// Series streams the matching series sorted by their final labels (external labels
// added, replica labels stripped).
func (s *Store) Series(req *storepb.SeriesRequest, srv storepb.Store_SeriesServer) error {
	q, err := newSeriesQuery(req)
	if err != nil {
		return err
	}
	st, err := s.open(srv.Context(), q)
	if err != nil {
		return storeapi.StatusError(err, codes.Internal)
	}
	var streams []*seriesStream
	if st != nil {
		streams = append(streams, st)
	}
	defer closeStreams(streams)
	return sendMerged(srv, req, streams, s.opts.Limits, func(_ *seriesStream, err error) error { return storeapi.StatusError(err, codes.Internal) })
}

// endTime treats an unset label-call end (0) as "no upper bound", as the sidecar does.
func endTime(ms int64) int64 {
	if ms == 0 {
		return math.MaxInt64
	}
	return ms
}

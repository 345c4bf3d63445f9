package tsdbstore

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// MultiOptions configure a Multi.
type MultiOptions struct {
	// Logger receives store failures that became warnings; nil discards.
	Logger *slog.Logger
	// Limits bound the merged answer of one Series request, over all stores.
	Limits storeapi.RequestLimits
	// Ready, when set, is asked on every Info call: while it fails, Info fails with
	// Unavailable, which makes queriers treat the endpoint as unhealthy instead of
	// pruning on an incomplete label set.
	Ready func() error
	// Rules makes Info advertise the thanos.Rules service, which the component serves
	// beside the StoreAPI (the ruler).
	Rules bool
}

// Multi serves several Stores as one StoreAPI endpoint, as a receiver serves its tenants.
// It implements storeapi.StoreAPI and infopb.InfoServer.
type Multi struct {
	infopb.UnimplementedInfoServer

	stores func() []*Store
	typ    storepb.StoreType
	opts   MultiOptions
	logger *slog.Logger
}

// NewMulti returns a Multi over the stores that stores returns at each call (tenants come
// and go). typ names the component in Info (ComponentType is its lower-case name, e.g.
// "receive") and in the legacy Store.Info.
func NewMulti(stores func() []*Store, typ storepb.StoreType, opts MultiOptions) *Multi {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Multi{stores: stores, typ: typ, opts: opts, logger: logger}
}

// Register serves m on srv as thanos.Store (with the legacy Info) and thanos.info.Info.
func (m *Multi) Register(srv *grpc.Server) { storeapi.Register(srv, m, m, m.typ) }

// Info lists every store's external label set and the union of their time ranges. With
// no stores the range is unbounded: an endpoint that holds nothing yet is not pruned.
func (m *Multi) Info(context.Context, *infopb.InfoRequest) (*infopb.InfoResponse, error) {
	component := strings.ToLower(m.typ.String())
	if m.opts.Ready != nil {
		if err := m.opts.Ready(); err != nil {
			return nil, status.Error(codes.Unavailable, fmt.Sprintf("%s is not ready: %v", component, err))
		}
	}
	stores := slices.SortedFunc(slices.Values(m.stores()), func(a, b *Store) int { return labels.Compare(a.ext, b.ext) })
	info := &infopb.StoreInfo{MinTime: math.MinInt64, MaxTime: math.MaxInt64, SupportsSharding: true, SupportsWithoutReplicaLabels: true}
	if len(stores) > 0 {
		info.MinTime, info.MaxTime = math.MaxInt64, math.MinInt64
	}
	resp := &infopb.InfoResponse{ComponentType: component, Store: info}
	if m.opts.Rules {
		resp.Rules = &infopb.RulesInfo{}
	}
	for _, s := range stores {
		mint, maxt := s.TimeRange()
		info.MinTime, info.MaxTime = min(info.MinTime, mint), max(info.MaxTime, maxt)
		resp.LabelSets = append(resp.LabelSets, &storepb.LabelSet{Labels: storeapi.LabelsToProto(s.ext)})
		info.TsdbInfos = append(info.TsdbInfos, &infopb.TSDBInfo{
			Labels: &storepb.LabelSet{Labels: storeapi.LabelsToProto(s.ext)}, MinTime: mint, MaxTime: maxt,
		})
	}
	return resp, nil
}

// Series streams the series of every store whose external labels can match, merged into
// one sorted stream as they are read. A store that fails is left out with a warning (a
// client asking for ABORT turns it into an error); limits and cancellation end the call.
func (m *Multi) Series(req *storepb.SeriesRequest, srv storepb.Store_SeriesServer) error {
	q, err := newSeriesQuery(req)
	if err != nil {
		return err
	}
	var streams []*seriesStream
	defer func() { closeStreams(streams) }()
	failed := func(st *seriesStream, err error) error { return m.tolerate(srv, st.store, err) }
	for _, s := range m.stores() {
		st, err := s.open(srv.Context(), q)
		if err != nil {
			if err := m.tolerate(srv, s, err); err != nil {
				return err
			}
			continue
		}
		if st != nil {
			streams = append(streams, st)
		}
	}
	return sendMerged(srv, req, streams, m.opts.Limits, failed)
}

// tolerate turns one store's failure into a warning frame, or returns it as the
// request's error when it is fatal (see isFatal).
func (m *Multi) tolerate(srv storepb.Store_SeriesServer, s *Store, err error) error {
	if isFatal(err) {
		return storeapi.StatusError(err, codes.Internal)
	}
	return srv.Send(&storepb.SeriesResponse{Result: &storepb.SeriesResponse_Warning{Warning: m.skipped(s, err)}})
}

// skipped logs a store left out of an answer and returns the warning for the client.
func (m *Multi) skipped(s *Store, err error) string {
	m.logger.Error("reading TSDB failed; answering without it", "labels", s.ext.String(), "err", err)
	return fmt.Sprintf("%s: TSDB %s skipped: %v", strings.ToLower(m.typ.String()), s.ext, err)
}

// LabelNames returns the union of the stores' label names, sorted and limited.
func (m *Multi) LabelNames(ctx context.Context, req *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	ms, err := matchersFromProto(req.GetMatchers())
	if err != nil {
		return nil, err
	}
	names, warnings, err := m.union(ctx, ms, req.GetLimit(), func(ctx context.Context, s *Store) ([]string, []string, error) {
		return s.labelNames(ctx, req, ms)
	})
	if err != nil {
		return nil, err
	}
	return &storepb.LabelNamesResponse{Names: names, Warnings: warnings}, nil
}

// LabelValues returns the union of the stores' values of a label, sorted and limited.
func (m *Multi) LabelValues(ctx context.Context, req *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	if req.GetLabel() == "" {
		return nil, errEmptyLabel
	}
	ms, err := matchersFromProto(req.GetMatchers())
	if err != nil {
		return nil, err
	}
	values, warnings, err := m.union(ctx, ms, req.GetLimit(), func(ctx context.Context, s *Store) ([]string, []string, error) {
		return s.labelValues(ctx, req, ms)
	})
	if err != nil {
		return nil, err
	}
	return &storepb.LabelValuesResponse{Values: values, Warnings: warnings}, nil
}

// union calls call on the stores whose external labels can match ms, a few at a time,
// and merges their sorted answers into one sorted, deduplicated list cut to limit. A
// store that fails is left out with a warning unless the failure is fatal.
func (m *Multi) union(ctx context.Context, ms []*labels.Matcher, limit int64, call func(context.Context, *Store) ([]string, []string, error)) (values, warnings []string, _ error) {
	var stores []*Store
	for _, s := range m.stores() {
		if ok, _ := storeapi.MatchExternalLabels(s.ext, ms); ok {
			stores = append(stores, s)
		}
	}
	type answer struct {
		values, warnings []string
		err              error
	}
	answers := make([]answer, len(stores))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, s := range stores {
		g.Go(func() error {
			v, w, err := call(gctx, s)
			if err != nil && isFatal(err) {
				return storeapi.StatusError(err, codes.Internal)
			}
			answers[i] = answer{values: v, warnings: w, err: err}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	for i, a := range answers {
		if a.err != nil {
			warnings = append(warnings, m.skipped(stores[i], a.err))
			continue
		}
		values = append(values, a.values...)
		warnings = append(warnings, a.warnings...)
	}
	slices.Sort(values)
	return storeapi.LimitStrings(slices.Compact(values), limit), warnings, nil
}

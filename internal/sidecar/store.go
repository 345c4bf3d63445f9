package sidecar

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Limits bound one Series request; 0 means unlimited.
type Limits struct {
	Series  int // --store.limits.request-series
	Samples int // --store.limits.request-samples
}

// Store serves the StoreAPI and Info API from a Prometheus.
type Store struct {
	infopb.UnimplementedInfoServer

	prom   *Prometheus
	client *promclient.Client
	limits Limits
}

// NewStore returns the sidecar's StoreAPI server.
func NewStore(prom *Prometheus, client *promclient.Client, limits Limits) *Store {
	return &Store{prom: prom, client: client, limits: limits}
}

var errNoMatchers = status.Error(codes.InvalidArgument, "no matchers specified (excluding external labels)")

// Info describes the Prometheus external labels and time range; an error while
// Prometheus is unreachable makes queriers treat the sidecar as unhealthy.
func (s *Store) Info(context.Context, *infopb.InfoRequest) (*infopb.InfoResponse, error) {
	ext, mint, err := s.prom.State()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &infopb.InfoResponse{
		ComponentType: "sidecar",
		LabelSets:     []*storepb.LabelSet{{Labels: storeapi.LabelsToProto(ext)}},
		Store: &infopb.StoreInfo{
			MinTime: mint, MaxTime: math.MaxInt64,
			SupportsSharding: true, SupportsWithoutReplicaLabels: true,
		},
		// Served by RegisterRules, RegisterMetadata, RegisterTargets, RegisterExemplars and RegisterStatus.
		Rules: &infopb.RulesInfo{}, MetricMetadata: &infopb.MetricMetadataInfo{}, Targets: &infopb.TargetsInfo{},
		Exemplars: &infopb.ExemplarsInfo{MinTime: math.MinInt64, MaxTime: math.MaxInt64},
		Status:    &infopb.StatusInfo{},
	}, nil
}

// prepare validates matchers and prunes on external labels. ok=false means nothing can match.
func (s *Store) prepare(pms []*storepb.LabelMatcher) (ext labels.Labels, mint int64, rest []*labels.Matcher, ok bool, err error) {
	ext, mint, err = s.prom.State()
	if err != nil {
		return ext, 0, nil, false, status.Error(codes.Unavailable, err.Error())
	}
	ms, err := storeapi.MatchersFromProto(pms)
	if err != nil {
		return ext, 0, nil, false, status.Error(codes.InvalidArgument, err.Error())
	}
	ok, rest = storeapi.MatchExternalLabels(ext, ms)
	return ext, mint, rest, ok, nil
}

// Series streams the series Prometheus holds for the request, sorted by final labels.
func (s *Store) Series(req *storepb.SeriesRequest, srv storepb.Store_SeriesServer) error {
	ext, mint, rest, ok, err := s.prepare(req.GetMatchers())
	if err != nil {
		return err
	}
	if len(rest) == 0 && ok {
		return errNoMatchers
	}
	if !ok {
		return nil
	}
	mint = max(req.GetMinTime(), mint)
	if mint > req.GetMaxTime() {
		return nil
	}
	q, err := remoteReadQuery(mint, req.GetMaxTime(), rest, req.GetQueryHints())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	_, stripped := storeapi.StripSet(ext, req.GetWithoutReplicaLabels())
	conv := newConverter(ext, stripped, req.GetSkipChunks())
	if req.GetSkipChunks() {
		return s.seriesLabelsOnly(srv, req, conv, rest, mint)
	}
	// The label-name check and the remote read are two round trips to Prometheus; they
	// run at the same time, and the check's answer is needed only before the first series.
	ownExt := make(chan bool, 1)
	go func() { ownExt <- s.seriesCarryExternalNames(srv.Context(), ext, rest, mint, req.GetMaxTime()) }()
	stream, err := s.client.RemoteRead(srv.Context(), q)
	if <-ownExt {
		conv.withOwnExternalLabels()
	}
	if err != nil {
		return status.Error(codes.Unavailable, fmt.Sprintf("remote read from Prometheus: %v", err))
	}
	defer stream.Close()
	shard := storeapi.NewShardMatcher(req.GetShardInfo())
	sender := storeapi.NewSeriesSender(srv, req.GetResponseBatchSize())
	lim := newLimiter(s.limits, req.GetLimit())
	resorter := storeapi.NewResorter(s.limits.Series, func(series *storepb.Series) error {
		if lim.seriesDone(sender.Sent()) {
			return errLimitReached
		}
		return sender.Send(series)
	})
	if err := s.stream(stream, conv, shard, lim, resorter); err != nil {
		if errors.Is(err, errLimitReached) {
			return sender.Flush()
		}
		return err
	}
	if err := resorter.Flush(); err != nil && !errors.Is(err, errLimitReached) {
		return storeapi.StatusError(err, codes.Unavailable)
	}
	return sender.Flush()
}

// seriesLabelsOnly answers a skip_chunks request (the querier's /api/v1/series, Grafana's
// metric browser) from Prometheus' series API instead of a remote read, which would read
// every chunk only to drop it. That API answers in no particular order and without
// external labels, so the label sets are rewritten, sorted and deduplicated here: they
// are held whole, but they are labels only, bounded by --store.limits.request-series.
// Samples are not known on this path and not counted.
func (s *Store) seriesLabelsOnly(srv storepb.Store_SeriesServer, req *storepb.SeriesRequest, conv *converter, rest []*labels.Matcher, mint int64) error {
	sets, warnings, err := s.client.Series(srv.Context(), selectors(rest), msTime(mint), endTime(req.GetMaxTime()))
	if err != nil {
		return status.Error(codes.Unavailable, fmt.Sprintf("series from Prometheus: %v", err))
	}
	shard := storeapi.NewShardMatcher(req.GetShardInfo())
	lim := newLimiter(s.limits, req.GetLimit())
	out := make([]*storepb.Series, 0, len(sets))
	for _, ls := range sets {
		series, _ := conv.convert(&promclient.RawSeries{Labels: toPromLabels(ls)})
		if !shard.Matches(series.Labels) {
			continue
		}
		if err := lim.Count(0, 0); err != nil {
			return err
		}
		out = append(out, series)
	}
	slices.SortFunc(out, func(a, b *storepb.Series) int { return storeapi.CompareLabels(a.Labels, b.Labels) })
	// Stored series that differ only in labels the rewrite replaces or strips are one
	// series now.
	out = slices.CompactFunc(out, func(a, b *storepb.Series) bool { return storeapi.CompareLabels(a.Labels, b.Labels) == 0 })
	sender := storeapi.NewSeriesSender(srv, req.GetResponseBatchSize())
	for _, w := range warnings {
		if err := sender.Warning(w); err != nil {
			return err
		}
	}
	for _, series := range out {
		if lim.seriesDone(sender.Sent()) {
			break
		}
		if err := sender.Send(series); err != nil {
			return err
		}
	}
	return sender.Flush()
}

func toPromLabels(ls labels.Labels) []prompb.Label {
	out := make([]prompb.Label, 0, ls.Len())
	ls.Range(func(l labels.Label) { out = append(out, prompb.Label{Name: l.Name, Value: l.Value}) })
	return out
}

// seriesCarryExternalNames asks Prometheus whether any selected series has a label of its
// own named like an external label (its label API does not add external labels). Such
// series are sorted by values the external labels override, which the re-sort must know.
// When in doubt it answers true: that only costs memory, never order.
func (s *Store) seriesCarryExternalNames(ctx context.Context, ext labels.Labels, ms []*labels.Matcher, mint, maxt int64) bool {
	names, _, err := s.client.LabelNames(ctx, selectors(ms), msTime(mint), endTime(maxt))
	if err != nil {
		return true
	}
	for _, n := range names {
		if ext.Has(n) {
			return true
		}
	}
	return false
}

func (s *Store) stream(stream promclient.ReadStream, conv *converter, shard *storeapi.ShardMatcher, lim *limiter, r *storeapi.Resorter) error {
	for stream.Next() {
		raw := stream.At()
		series, bound := conv.convert(raw)
		if !shard.Matches(series.Labels) {
			continue
		}
		// Limits count what this request returns: series of other shards are not its.
		if err := lim.addSamples(raw.Chunks); err != nil {
			return err
		}
		if err := r.Push(series, bound); err != nil {
			if errors.Is(err, errLimitReached) {
				return err
			}
			return storeapi.StatusError(err, codes.Unavailable)
		}
	}
	if err := stream.Err(); err != nil {
		return status.Error(codes.Unavailable, fmt.Sprintf("read remote-read stream from Prometheus: %v", err))
	}
	return nil
}

// remoteReadQuery builds the remote-read query, passing the PromQL hints through so
// Prometheus can skip work it knows is not needed.
func remoteReadQuery(mint, maxt int64, ms []*labels.Matcher, qh *storepb.QueryHints) (*prompb.Query, error) {
	pms, err := toPromMatchers(ms)
	if err != nil {
		return nil, err
	}
	q := &prompb.Query{StartTimestampMs: mint, EndTimestampMs: maxt, Matchers: pms,
		Hints: &prompb.ReadHints{StartMs: mint, EndMs: maxt}}
	if qh != nil {
		q.Hints.StepMs = qh.GetStepMillis()
		q.Hints.Func = qh.GetFunc().GetName()
		q.Hints.RangeMs = qh.GetRange().GetMillis()
		q.Hints.By = qh.GetGrouping().GetBy()
		q.Hints.Grouping = qh.GetGrouping().GetLabels()
	}
	return q, nil
}

func toPromMatchers(ms []*labels.Matcher) ([]*prompb.LabelMatcher, error) {
	out := make([]*prompb.LabelMatcher, 0, len(ms))
	for _, m := range ms {
		var t prompb.LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = prompb.LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = prompb.LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = prompb.LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = prompb.LabelMatcher_NRE
		default:
			return nil, fmt.Errorf("unsupported matcher type %v", m.Type)
		}
		out = append(out, &prompb.LabelMatcher{Type: t, Name: m.Name, Value: m.Value})
	}
	return out, nil
}

// LabelNames returns label names from Prometheus plus the external label names.
func (s *Store) LabelNames(ctx context.Context, req *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	ext, _, rest, ok, err := s.prepare(req.GetMatchers())
	if err != nil || !ok {
		return &storepb.LabelNamesResponse{}, err
	}
	names, warnings, err := s.client.LabelNames(ctx, selectors(rest), msTime(req.GetStart()), endTime(req.GetEnd()))
	if err != nil {
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("label names from Prometheus: %v", err))
	}
	kept, stripped := storeapi.StripSet(ext, req.GetWithoutReplicaLabels())
	if len(names) > 0 {
		kept.Range(func(l labels.Label) { names = append(names, l.Name) })
	}
	names = slices.DeleteFunc(names, func(n string) bool { _, drop := stripped[n]; return drop })
	slices.Sort(names)
	names = slices.Compact(names)
	return &storepb.LabelNamesResponse{Names: storeapi.LimitStrings(names, req.GetLimit()), Warnings: warnings}, nil
}

// LabelValues returns values of one label; an external label answers its own value when
// any series match the other matchers.
func (s *Store) LabelValues(ctx context.Context, req *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	if req.GetLabel() == "" {
		return nil, status.Error(codes.InvalidArgument, "label name parameter cannot be empty")
	}
	ext, _, rest, ok, err := s.prepare(req.GetMatchers())
	// A label the client strips as a replica label has no values to show it.
	if err != nil || !ok || slices.Contains(req.GetWithoutReplicaLabels(), req.GetLabel()) {
		return &storepb.LabelValuesResponse{}, err
	}
	start, end := msTime(req.GetStart()), endTime(req.GetEnd())
	if ext.Has(req.GetLabel()) {
		// The external label overrides any series label of that name: its only value is
		// the external one, present if any series match.
		names, warnings, err := s.client.LabelNames(ctx, selectors(rest), start, end)
		if err != nil {
			return nil, status.Error(codes.Unavailable, fmt.Sprintf("label names from Prometheus: %v", err))
		}
		if len(names) == 0 {
			return &storepb.LabelValuesResponse{Warnings: warnings}, nil
		}
		return &storepb.LabelValuesResponse{Values: []string{ext.Get(req.GetLabel())}, Warnings: warnings}, nil
	}
	values, warnings, err := s.client.LabelValues(ctx, req.GetLabel(), selectors(rest), start, end)
	if err != nil {
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("label values from Prometheus: %v", err))
	}
	return &storepb.LabelValuesResponse{Values: storeapi.LimitStrings(values, req.GetLimit()), Warnings: warnings}, nil
}

func selectors(ms []*labels.Matcher) []string {
	if len(ms) == 0 {
		return nil
	}
	return []string{storeapi.Selector(ms)}
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms) }

// endTime treats an unset end (0) as "no upper bound".
func endTime(ms int64) time.Time {
	if ms == 0 {
		return time.UnixMilli(math.MaxInt64 / 2)
	}
	return time.UnixMilli(ms)
}

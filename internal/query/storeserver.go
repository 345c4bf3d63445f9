package query

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// StoreServer makes the querier itself a StoreAPI endpoint, so queriers stack: a global
// querier can read from per-cluster queriers. It merges, but does not deduplicate: the
// querier at the top does that.
type StoreServer struct {
	infopb.UnimplementedInfoServer
	proxy *Proxy
}

// NewStoreServer returns the querier's StoreAPI server.
func NewStoreServer(proxy *Proxy) *StoreServer { return &StoreServer{proxy: proxy} }

// Info reports the union of the healthy endpoints' label sets and time ranges, and
// the APIs the querier serves beside the StoreAPI.
func (s *StoreServer) Info(context.Context, *infopb.InfoRequest) (*infopb.InfoResponse, error) {
	eps, _ := s.proxy.endpoints.Healthy()
	resp := &infopb.InfoResponse{
		ComponentType: "query",
		Store: &infopb.StoreInfo{
			MinTime: math.MaxInt64, MaxTime: math.MinInt64, SupportsSharding: true, SupportsWithoutReplicaLabels: true,
		},
		// The querier also serves these (cmd/vigil/query.go registers the proxies).
		MetricMetadata: &infopb.MetricMetadataInfo{}, Targets: &infopb.TargetsInfo{}, Rules: &infopb.RulesInfo{},
		Exemplars: &infopb.ExemplarsInfo{MinTime: math.MinInt64, MaxTime: math.MaxInt64},
		Status:    &infopb.StatusInfo{},
	}
	var sets []labels.Labels
	for _, ep := range eps {
		resp.Store.MinTime = min(resp.Store.MinTime, ep.MinTime)
		resp.Store.MaxTime = max(resp.Store.MaxTime, ep.MaxTime)
		for _, ls := range ep.LabelSets {
			if !slices.ContainsFunc(sets, func(o labels.Labels) bool { return labels.Equal(o, ls) }) {
				sets = append(sets, ls)
			}
		}
	}
	if len(eps) == 0 {
		resp.Store.MinTime, resp.Store.MaxTime = math.MinInt64, math.MaxInt64
	}
	slices.SortFunc(sets, labels.Compare)
	for _, ls := range sets {
		resp.LabelSets = append(resp.LabelSets, &storepb.LabelSet{Labels: storeapi.LabelsToProto(ls)})
	}
	return resp, nil
}

// Series streams the merged series of every matching endpoint.
func (s *StoreServer) Series(req *storepb.SeriesRequest, srv storepb.Store_SeriesServer) error {
	if len(req.GetMatchers()) == 0 {
		return status.Error(codes.InvalidArgument, "no matchers specified")
	}
	stream, err := s.proxy.Series(srv.Context(), req, nil)
	if err != nil {
		return err
	}
	defer stream.Close()
	sender := storeapi.NewSeriesSender(srv, req.GetResponseBatchSize())
	for stream.Next() {
		m := stream.At()
		out := &storepb.Series{Labels: m.Labels}
		for _, src := range m.Sources {
			out.Chunks = append(out.Chunks, src...)
		}
		if len(m.Sources) > 1 {
			out.Chunks = dedupChunks(out.Chunks)
		}
		if err := sender.Send(out); err != nil {
			return err
		}
	}
	if err := stream.Err(); err != nil {
		return storeapi.StatusError(err, codes.Unknown)
	}
	for _, w := range stream.Warnings() {
		if err := sender.Warning(w); err != nil {
			return err
		}
	}
	return sender.Flush()
}

// dedupChunks sorts chunks by time and drops exact duplicates (same range and hash).
func dedupChunks(chks []*storepb.AggrChunk) []*storepb.AggrChunk {
	insertionSortByMinTime(chks)
	out := chks[:0]
	for _, c := range chks {
		dup := false
		for j := len(out) - 1; j >= 0 && out[j].MinTime == c.MinTime; j-- {
			if out[j].MaxTime == c.MaxTime && sameRaw(out[j], c) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}

// LabelNames merges label names from the matching endpoints.
func (s *StoreServer) LabelNames(ctx context.Context, req *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	q, ms, err := s.labelQuerier(req.GetStart(), req.GetEnd(), req.GetMatchers(), req.GetWithoutReplicaLabels(), req.GetPartialResponseStrategy())
	if err != nil {
		return nil, err
	}
	names, ws, err := q.LabelNames(ctx, &storage.LabelHints{Limit: int(req.GetLimit())}, ms...)
	if err != nil {
		return nil, storeapi.StatusError(err, codes.Unavailable)
	}
	return &storepb.LabelNamesResponse{Names: names, Warnings: warningStrings(ws)}, nil
}

// LabelValues merges label values from the matching endpoints.
func (s *StoreServer) LabelValues(ctx context.Context, req *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	if req.GetLabel() == "" {
		return nil, status.Error(codes.InvalidArgument, "label name parameter cannot be empty")
	}
	q, ms, err := s.labelQuerier(req.GetStart(), req.GetEnd(), req.GetMatchers(), req.GetWithoutReplicaLabels(), req.GetPartialResponseStrategy())
	if err != nil {
		return nil, err
	}
	vals, ws, err := q.LabelValues(ctx, req.GetLabel(), &storage.LabelHints{Limit: int(req.GetLimit())}, ms...)
	if err != nil {
		return nil, storeapi.StatusError(err, codes.Unavailable)
	}
	return &storepb.LabelValuesResponse{Values: vals, Warnings: warningStrings(ws)}, nil
}

func (s *StoreServer) labelQuerier(start, end int64, pms []*storepb.LabelMatcher, replicas []string, strategy storepb.PartialResponseStrategy) (*querier, []*labels.Matcher, error) {
	ms, err := storeapi.MatchersFromProto(pms)
	if err != nil {
		return nil, nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if end == 0 {
		end = math.MaxInt64
	}
	opts := Options{Dedup: len(replicas) > 0, ReplicaLabels: replicas, PartialResponse: strategy == storepb.PartialResponseStrategy_WARN}
	return &querier{Queryable: &Queryable{proxy: s.proxy, opts: opts}, mint: start, maxt: end}, ms, nil
}

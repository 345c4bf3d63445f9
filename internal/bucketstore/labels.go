package bucketstore

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// labelScope is the blocks a label call reads and the matchers left for each block set.
type labelScope struct {
	set  *blockSet
	rest []*labels.Matcher
	bs   []*loadedBlock
}

func (s *Store) labelScopes(pms []*storepb.LabelMatcher, start, end int64) ([]labelScope, error) {
	ms, err := storeapi.MatchersFromProto(pms)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if end == 0 {
		end = s.cfg.MaxTime
	}
	var out []labelScope
	for _, set := range s.sets() {
		ok, rest := storeapi.MatchExternalLabels(set.ext, ms)
		if !ok {
			continue
		}
		var bs []*loadedBlock
		for _, b := range set.blocks {
			if b.meta.MaxTime > start && b.meta.MinTime <= end {
				bs = append(bs, b)
			}
		}
		if len(bs) > 0 {
			out = append(out, labelScope{set: set, rest: rest, bs: bs})
		}
	}
	return out, nil
}

// forEachSeries calls f with the stored labels of every series of b matching ms.
func (s *Store) forEachSeries(ctx context.Context, b *loadedBlock, ms []*labels.Matcher, f func(labels.Labels)) error {
	p, err := b.postings(ctx, ms)
	if err != nil {
		return err
	}
	r := b.newSeriesReader(p, &seriesQuery{mint: math.MinInt64, maxt: math.MaxInt64, skipChunks: true}, s.cfg.BatchBytes, s.cfg.BatchSize)
	defer r.close()
	for {
		raws, err := r.nextBatch(ctx, nil)
		if err != nil {
			return err
		}
		if len(raws) == 0 {
			return nil
		}
		for _, r := range raws {
			f(r.lset)
		}
	}
}

// LabelNames returns the label names of the matching series, with external labels.
func (s *Store) LabelNames(ctx context.Context, req *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	scopes, err := s.labelScopes(req.GetMatchers(), req.GetStart(), req.GetEnd())
	if err != nil {
		return nil, err
	}
	seen := map[string]struct{}{}
	for _, sc := range scopes {
		found := false
		for _, b := range sc.bs {
			var names []string
			if len(sc.rest) == 0 {
				err = b.readIndex(ctx, "read label names", func() (err error) {
					names, err = b.index.LabelNames(ctx)
					return err
				})
			} else {
				err = s.forEachSeries(ctx, b, sc.rest, func(ls labels.Labels) {
					ls.Range(func(l labels.Label) { names = append(names, l.Name) })
				})
			}
			if err != nil {
				return nil, storeapi.StatusError(err, codes.Internal)
			}
			found = found || len(names) > 0
			for _, n := range names {
				seen[n] = struct{}{}
			}
		}
		if found {
			sc.set.ext.Range(func(l labels.Label) { seen[l.Name] = struct{}{} })
		}
	}
	// Like Series, only external labels are stripped: a stored label that shares a
	// replica label's name is data.
	for _, sc := range scopes {
		for _, n := range req.GetWithoutReplicaLabels() {
			if sc.set.ext.Has(n) {
				delete(seen, n)
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return &storepb.LabelNamesResponse{Names: storeapi.LimitStrings(names, req.GetLimit())}, nil
}

// LabelValues returns the values of a label over the matching series; an external label
// has its block set's value.
func (s *Store) LabelValues(ctx context.Context, req *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	name := req.GetLabel()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "label name parameter cannot be empty")
	}
	if slices.Contains(req.GetWithoutReplicaLabels(), name) {
		return &storepb.LabelValuesResponse{}, nil
	}
	scopes, err := s.labelScopes(req.GetMatchers(), req.GetStart(), req.GetEnd())
	if err != nil {
		return nil, err
	}
	seen := map[string]struct{}{}
	for _, sc := range scopes {
		for _, b := range sc.bs {
			if err := s.blockLabelValues(ctx, b, sc, name, seen); err != nil {
				return nil, storeapi.StatusError(err, codes.Internal)
			}
		}
	}
	values := make([]string, 0, len(seen))
	for v := range seen {
		values = append(values, v)
	}
	slices.Sort(values)
	return &storepb.LabelValuesResponse{Values: storeapi.LimitStrings(values, req.GetLimit())}, nil
}

func (s *Store) blockLabelValues(ctx context.Context, b *loadedBlock, sc labelScope, name string, seen map[string]struct{}) error {
	if sc.set.ext.Has(name) {
		any := len(sc.rest) == 0
		if !any {
			err := s.forEachSeries(ctx, b, sc.rest, func(labels.Labels) { any = true })
			if err != nil {
				return err
			}
		}
		if any {
			seen[sc.set.ext.Get(name)] = struct{}{}
		}
		return nil
	}
	if len(sc.rest) == 0 {
		var vals []string
		if err := b.readIndex(ctx, "read label values", func() (err error) {
			vals, err = b.index.SortedLabelValues(ctx, name, nil)
			return err
		}); err != nil {
			return err
		}
		for _, v := range vals {
			seen[v] = struct{}{}
		}
		return nil
	}
	return s.forEachSeries(ctx, b, sc.rest, func(ls labels.Labels) {
		if v := ls.Get(name); v != "" {
			seen[v] = struct{}{}
		}
	})
}

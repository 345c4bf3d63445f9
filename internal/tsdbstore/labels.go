package tsdbstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

var errEmptyLabel = status.Error(codes.InvalidArgument, "label name parameter cannot be empty")

// LabelNames returns the label names of the series matching the request, plus the
// external label names if any series match, minus the stripped replica labels; sorted
// and cut to the request's limit. As in Prometheus' label APIs, the time range selects
// blocks and the head, not single series.
func (s *Store) LabelNames(ctx context.Context, req *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	ms, err := matchersFromProto(req.GetMatchers())
	if err != nil {
		return nil, err
	}
	names, warnings, err := s.labelNames(ctx, req, ms)
	if err != nil {
		return nil, storeapi.StatusError(err, codes.Internal)
	}
	return &storepb.LabelNamesResponse{Names: names, Warnings: warnings}, nil
}

// LabelValues returns the values of one label over the matching series, sorted and cut
// to the request's limit. An external label has just its own value, if any series match.
func (s *Store) LabelValues(ctx context.Context, req *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	if req.GetLabel() == "" {
		return nil, errEmptyLabel
	}
	ms, err := matchersFromProto(req.GetMatchers())
	if err != nil {
		return nil, err
	}
	values, warnings, err := s.labelValues(ctx, req, ms)
	if err != nil {
		return nil, storeapi.StatusError(err, codes.Internal)
	}
	return &storepb.LabelValuesResponse{Values: values, Warnings: warnings}, nil
}

// labelNames answers LabelNames for the parsed request matchers ms.
func (s *Store) labelNames(ctx context.Context, req *storepb.LabelNamesRequest, ms []*labels.Matcher) (names, warnings []string, err error) {
	err = s.withLabelQuerier(ms, req.GetStart(), req.GetEnd(), func(q storage.LabelQuerier, rest []*labels.Matcher) error {
		kept, stripped := storeapi.StripSet(s.ext, req.GetWithoutReplicaLabels())
		// The smallest limit+len(stripped) stored names hold the smallest limit names
		// left once the stripped ones are gone.
		stored, ws, err := q.LabelNames(ctx, limitHints(req.GetLimit(), len(stripped)), rest...)
		if err != nil {
			return fmt.Errorf("read label names from TSDB: %w", err)
		}
		names = cloneStrings(stored)
		if len(names) > 0 {
			kept.Range(func(l labels.Label) { names = append(names, l.Name) })
		}
		names = slices.DeleteFunc(names, func(n string) bool { _, drop := stripped[n]; return drop })
		warnings = warningStrings(ws)
		return nil
	})
	slices.Sort(names)
	return storeapi.LimitStrings(slices.Compact(names), req.GetLimit()), warnings, err
}

// labelValues answers LabelValues for the parsed request matchers ms.
func (s *Store) labelValues(ctx context.Context, req *storepb.LabelValuesRequest, ms []*labels.Matcher) (values, warnings []string, err error) {
	name := req.GetLabel()
	// A label the client strips as a replica label has no values to show it.
	if slices.Contains(req.GetWithoutReplicaLabels(), name) {
		return nil, nil, nil
	}
	err = s.withLabelQuerier(ms, req.GetStart(), req.GetEnd(), func(q storage.LabelQuerier, rest []*labels.Matcher) error {
		if s.ext.Has(name) {
			// The external label replaces any stored label of that name.
			found, ws, err := q.LabelNames(ctx, &storage.LabelHints{Limit: 1}, rest...)
			if err != nil {
				return fmt.Errorf("check for series in TSDB: %w", err)
			}
			if len(found) > 0 {
				values = []string{s.ext.Get(name)}
			}
			warnings = warningStrings(ws)
			return nil
		}
		stored, ws, err := q.LabelValues(ctx, name, limitHints(req.GetLimit(), 0), rest...)
		if err != nil {
			return fmt.Errorf("read values of label %q from TSDB: %w", name, err)
		}
		values, warnings = cloneStrings(stored), warningStrings(ws)
		return nil
	})
	return storeapi.LimitStrings(values, req.GetLimit()), warnings, err
}

// matchersFromProto parses request matchers; a bad one is the client's error.
func matchersFromProto(pms []*storepb.LabelMatcher) ([]*labels.Matcher, error) {
	ms, err := storeapi.MatchersFromProto(pms)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return ms, nil
}

// withLabelQuerier prunes by external labels and calls f with a querier over [start,
// end] and the matchers left for the TSDB; f is not called when the external labels rule
// the store out.
func (s *Store) withLabelQuerier(ms []*labels.Matcher, start, end int64, f func(storage.LabelQuerier, []*labels.Matcher) error) error {
	ok, rest := storeapi.MatchExternalLabels(s.ext, ms)
	if !ok {
		return nil
	}
	end = endTime(end)
	q, err := s.db.ChunkQuerier(start, end)
	if err != nil {
		return fmt.Errorf("open TSDB querier for [%d, %d]: %w", start, end, err)
	}
	defer func() {
		if err := q.Close(); err != nil {
			s.logger.Warn("closing TSDB querier failed", "labels", s.ext.String(), "err", err)
		}
	}()
	return f(q, rest)
}

// limitHints asks the TSDB for the smallest limit+extra values (all of them when limit
// is 0): any N values would not do, the answer is the N smallest.
func limitHints(limit int64, extra int) *storage.LabelHints {
	if limit <= 0 {
		return nil
	}
	return &storage.LabelHints{Limit: int(limit) + extra, LimitSmallest: true}
}

// cloneStrings copies strings that may point into the querier's memory-mapped index,
// which the response outlives.
func cloneStrings(in []string) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = strings.Clone(v)
	}
	return out
}

func warningStrings(ws annotations.Annotations) []string {
	if len(ws) == 0 {
		return nil
	}
	out := make([]string, 0, len(ws))
	for _, err := range ws.AsErrors() {
		out = append(out, err.Error())
	}
	return out
}

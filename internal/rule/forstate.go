package rule

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// forStateQueryable is where a starting rules manager restores the `for` state of its
// alerts (the ALERTS_FOR_STATE series, whose last sample says since when an alert has
// been active): after a restart, and when this ruler wins the lease. local is the
// ruler's own TSDB, nil in stateless mode. The query endpoints add what this ruler
// cannot hold itself: the state written by the other ruler of an HA pair that led until
// now, or what a stateless ruler remote-wrote before it restarted. Local data comes
// first; a query endpoint that fails only leaves the restore to it.
func (r *Ruler) forStateQueryable(local storage.Queryable) storage.Queryable {
	ignored := map[string]struct{}{}
	r.cfg.Labels.Range(func(l labels.Label) { ignored[l.Name] = struct{}{} })
	for _, n := range r.cfg.RestoreIgnored {
		ignored[n] = struct{}{}
	}
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		remote := &remoteForState{q: r.querier, ignored: ignored, mint: mint, maxt: maxt}
		if local == nil {
			return remote, nil
		}
		lq, err := local.Querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		return storage.NewMergeQuerier([]storage.Querier{lq}, []storage.Querier{remote}, storage.ChainedSeriesMerge), nil
	})
}

// remoteForState reads alert state through the query API: one instant query of a range
// selector, which answers the raw samples of (mint, maxt].
type remoteForState struct {
	q *Querier
	// ignored are the label names the query endpoints add that this ruler's alerts do
	// not have: the external labels of the ruler that wrote the state (the --label names,
	// replica label included, which HA rulers share), and --restore-ignored-label (a
	// receiver's tenant label, say).
	ignored    map[string]struct{}
	mint, maxt int64
}

// Select answers the series of ms over the querier's range, without the ignored labels.
// Series that are the same once those are dropped (the two rulers of a pair) are merged
// into one, so that the restore sees the latest sample of either.
func (s *remoteForState) Select(ctx context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	sel := make([]string, len(ms))
	for i, m := range ms {
		sel[i] = m.String()
	}
	expr := "{" + strings.Join(sel, ",") + "}[" + strconv.FormatInt(max(s.maxt-s.mint, 1), 10) + "ms]"
	var series []promql.Series
	err := s.q.instant(ctx, expr, time.UnixMilli(s.maxt), true, func(r *apiResponse) (err error) {
		series, err = resultMatrix(r, s.ignored)
		return err
	})
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("read alert state through the query API: %w", err))
	}
	out := make([]storage.Series, len(series))
	for i, ser := range series {
		out[i] = promql.NewStorageSeries(ser)
	}
	return &seriesList{series: out, pos: -1}
}

// LabelValues is not needed to restore alert state.
func (s *remoteForState) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

// LabelNames is not needed to restore alert state.
func (s *remoteForState) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

// Close implements storage.Querier.
func (s *remoteForState) Close() error { return nil }

// matrixSeries is one series of a matrix answer.
type matrixSeries struct {
	Metric map[string]string    `json:"metric"`
	Values [][2]json.RawMessage `json:"values"`
}

// resultMatrix decodes a matrix answer into series sorted by labels, without the label
// names in drop; series equal once those are dropped become one, samples in time order.
func resultMatrix(r *apiResponse, drop map[string]struct{}) ([]promql.Series, error) {
	if r.Data.ResultType != "matrix" {
		return nil, &QueryError{Status: http.StatusOK, Type: "bad_data", Msg: "a range selector must give a matrix, got " + r.Data.ResultType}
	}
	var in []matrixSeries
	if err := json.Unmarshal(r.Data.Result, &in); err != nil {
		return nil, fmt.Errorf("decode matrix result: %w", err)
	}
	byLabels := map[string]int{}
	var out []promql.Series
	for _, ms := range in {
		for n := range drop {
			delete(ms.Metric, n)
		}
		lset := labels.FromMap(ms.Metric)
		key := lset.String()
		i, ok := byLabels[key]
		if !ok {
			i = len(out)
			byLabels[key] = i
			out = append(out, promql.Series{Metric: lset})
		}
		for _, v := range ms.Values {
			t, err := parseTime(v[0])
			if err != nil {
				return nil, err
			}
			f, err := parseValue(v[1])
			if err != nil {
				return nil, err
			}
			out[i].Floats = append(out[i].Floats, promql.FPoint{T: t, F: f})
		}
	}
	for i := range out {
		pts := out[i].Floats
		slices.SortStableFunc(pts, func(a, b promql.FPoint) int { return cmp.Compare(a.T, b.T) })
		out[i].Floats = slices.CompactFunc(pts, func(a, b promql.FPoint) bool { return a.T == b.T })
	}
	slices.SortFunc(out, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	return out, nil
}

// seriesList is a storage.SeriesSet over series in memory.
type seriesList struct {
	series []storage.Series
	pos    int
}

func (l *seriesList) Next() bool                        { l.pos++; return l.pos < len(l.series) }
func (l *seriesList) At() storage.Series                { return l.series[l.pos] }
func (l *seriesList) Err() error                        { return nil }
func (l *seriesList) Warnings() annotations.Annotations { return nil }

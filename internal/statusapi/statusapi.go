// Package statusapi is Vigil's side of the Thanos Status API
// (thanos.Status/TSDBStatistics) and of Prometheus's /api/v1/status/tsdb, shared by the
// sidecar and the querier:
//
//   - Server serves thanos.Status from any Source (the sidecar's Prometheus, the
//     querier's fan-out);
//   - Frames, Collect and Fetch read TSDBStatistics streams (streamapi does the fan-out);
//   - Merge adds up the statistics of several TSDBs, replicas of one TSDB once;
//   - Status is Prometheus's JSON, FromJSON and JSON convert.
package statusapi

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/storeapi/statuspb"
	"github.com/vigilhq/vigil/internal/streamapi"
)

// DefaultLimit is Prometheus's default limit of /api/v1/status/tsdb, used for a
// request's limit of 0 or less; MaxLimit is Prometheus's upper bound.
const (
	DefaultLimit = 10
	MaxLimit     = 10000
)

// Source yields the TSDB statistics of a component for a request, plus warnings.
type Source interface {
	TSDBStatistics(ctx context.Context, req *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context, req *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error)

// TSDBStatistics calls f.
func (f SourceFunc) TSDBStatistics(ctx context.Context, req *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error) {
	return f(ctx, req)
}

// Frames describes the TSDBStatisticsResponse frames (streamapi).
var Frames = streamapi.Frames[statuspb.TSDBStatisticsResponse, *statuspb.TSDBStatistics]{
	What: "TSDB statistics",
	Item: func(r *statuspb.TSDBStatisticsResponse) (*statuspb.TSDBStatistics, bool) {
		return r.GetStatistics(), r.GetStatistics() != nil
	},
	Warning: (*statuspb.TSDBStatisticsResponse).GetWarning,
	NewItem: func(s *statuspb.TSDBStatistics) *statuspb.TSDBStatisticsResponse {
		return &statuspb.TSDBStatisticsResponse{Result: &statuspb.TSDBStatisticsResponse_Statistics{Statistics: s}}
	},
	NewWarning: func(w string) *statuspb.TSDBStatisticsResponse {
		return &statuspb.TSDBStatisticsResponse{Result: &statuspb.TSDBStatisticsResponse_Warning{Warning: w}}
	},
}

// Collect reads a TSDBStatistics stream to its end.
func Collect(stream statuspb.Status_TSDBStatisticsClient) ([]*statuspb.TSDBStatistics, []string, error) {
	return Frames.Collect(stream)
}

// Fetch calls TSDBStatistics on c and collects the answer.
func Fetch(ctx context.Context, c statuspb.StatusClient, req *statuspb.TSDBStatisticsRequest) ([]*statuspb.TSDBStatistics, []string, error) {
	stream, err := c.TSDBStatistics(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return Collect(stream)
}

// Server serves thanos.Status from a Source: warnings first, then its statistics.
type Server struct {
	statuspb.UnimplementedStatusServer
	src Source
}

// NewServer returns a thanos.Status server over src.
func NewServer(src Source) *Server { return &Server{src: src} }

// Register serves src as thanos.Status on srv.
func Register(srv *grpc.Server, src Source) { statuspb.RegisterStatusServer(srv, NewServer(src)) }

// TSDBStatistics implements statuspb.StatusServer.
func (s *Server) TSDBStatistics(req *statuspb.TSDBStatisticsRequest, srv statuspb.Status_TSDBStatisticsServer) error {
	return streamapi.Serve(Frames, srv, func(ctx context.Context) ([]*statuspb.TSDBStatistics, []string, error) {
		return s.src.TSDBStatistics(ctx, req)
	})
}

// Limit returns the top-list length a request asks for: its limit, DefaultLimit when
// 0 or less.
func Limit(req *statuspb.TSDBStatisticsRequest) int {
	if l := int(req.GetLimit()); l > 0 {
		return l
	}
	return DefaultLimit
}

// Merge adds up the statistics of several TSDBs (every entry of every item) into one.
//
// The key of an entry names its TSDB: its external label set as a string (as the
// sidecar sends it), or a tenant. Entries whose keys are equal once replicaLabels are
// removed are replicas of one TSDB and count once: per statistic the largest value
// among them. The groups are then added up. Without replicaLabels every entry is added
// (Thanos's querier always adds). A key that is not a label set is its own group. The
// head's min and max time are the earliest and latest of all. Each top list is sorted
// by value (descending, then name) and cut to limit (0 or less: DefaultLimit); as the
// TSDBs only send their own top lists, a merged list is exact only for names in every
// TSDB's list. The input is not modified.
func Merge(in []*statuspb.TSDBStatistics, replicaLabels []string, limit int) *statuspb.TSDBStatisticsEntry {
	if limit <= 0 {
		limit = DefaultLimit
	}
	p := parser.NewParser(parser.Options{})
	var (
		groups = map[string]*group{}
		order  []*group
		n      int
	)
	for _, st := range in {
		keys := make([]string, 0, len(st.GetStatistics()))
		for k := range st.GetStatistics() {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			e := st.GetStatistics()[k]
			gk := groupKey(p, k, replicaLabels)
			if len(replicaLabels) == 0 {
				gk = strconv.Itoa(n) // every entry its own group
			}
			n++
			g, ok := groups[gk]
			if !ok {
				g = newGroup()
				groups[gk] = g
				order = append(order, g)
			}
			g.add(e)
		}
	}
	out := newGroup()
	for _, g := range order {
		out.sum(g)
	}
	return out.entry(limit)
}

// groupKey is a key with replicaLabels removed, the key itself if it is not a label set.
func groupKey(p parser.Parser, key string, replicaLabels []string) string {
	if len(replicaLabels) == 0 {
		return key
	}
	ls, err := p.ParseMetric(key)
	if err != nil {
		return "\x00" + key
	}
	return labels.NewBuilder(ls).Del(replicaLabels...).Labels().String()
}

// group is the statistics of one TSDB, or of a sum of TSDBs.
type group struct {
	numSeries        uint64
	numLabelPairs    int64
	chunkCount       int64
	minTime, maxTime int64
	lists            [4]map[string]uint64
}

func newGroup() *group {
	g := &group{minTime: math.MaxInt64, maxTime: math.MinInt64}
	for i := range g.lists {
		g.lists[i] = map[string]uint64{}
	}
	return g
}

func lists(e *statuspb.TSDBStatisticsEntry) [4][]*statuspb.Statistic {
	return [4][]*statuspb.Statistic{e.GetSeriesCountByMetricName(), e.GetLabelValueCountByLabelName(),
		e.GetMemoryInBytesByLabelName(), e.GetSeriesCountByLabelValuePair()}
}

// add takes in a replica: the largest value of each statistic.
func (g *group) add(e *statuspb.TSDBStatisticsEntry) {
	h := e.GetHeadStatistics()
	g.numSeries = max(g.numSeries, h.GetNumSeries())
	g.numLabelPairs = max(g.numLabelPairs, h.GetNumLabelPairs())
	g.chunkCount = max(g.chunkCount, h.GetChunkCount())
	g.times(h.GetMinTime(), h.GetMaxTime())
	for i, l := range lists(e) {
		for _, s := range l {
			g.lists[i][s.GetName()] = max(g.lists[i][s.GetName()], s.GetValue())
		}
	}
}

// times widens the time range to [minT, maxT], unless that is empty (an empty head).
func (g *group) times(minT, maxT int64) {
	if minT > maxT {
		return
	}
	g.minTime, g.maxTime = min(g.minTime, minT), max(g.maxTime, maxT)
}

// sum adds another group.
func (g *group) sum(o *group) {
	g.numSeries += o.numSeries
	g.numLabelPairs += o.numLabelPairs
	g.chunkCount += o.chunkCount
	g.times(o.minTime, o.maxTime)
	for i, l := range o.lists {
		for name, v := range l {
			g.lists[i][name] += v
		}
	}
}

func (g *group) entry(limit int) *statuspb.TSDBStatisticsEntry {
	top := func(m map[string]uint64) []*statuspb.Statistic {
		out := make([]*statuspb.Statistic, 0, len(m))
		for name, v := range m {
			out = append(out, &statuspb.Statistic{Name: name, Value: v})
		}
		slices.SortFunc(out, func(a, b *statuspb.Statistic) int {
			if c := cmp.Compare(b.Value, a.Value); c != 0 {
				return c
			}
			return cmp.Compare(a.Name, b.Name)
		})
		if len(out) > limit {
			out = out[:limit]
		}
		return out
	}
	return &statuspb.TSDBStatisticsEntry{
		HeadStatistics: &statuspb.HeadStatistics{NumSeries: g.numSeries, NumLabelPairs: g.numLabelPairs,
			ChunkCount: g.chunkCount, MinTime: g.minTime, MaxTime: g.maxTime},
		SeriesCountByMetricName:     top(g.lists[0]),
		LabelValueCountByLabelName:  top(g.lists[1]),
		MemoryInBytesByLabelName:    top(g.lists[2]),
		SeriesCountByLabelValuePair: top(g.lists[3]),
	}
}

// Stat is one entry of a top list in Prometheus's JSON.
type Stat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// HeadStats is Prometheus's headStats.
type HeadStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int64  `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

// Status is the data of Prometheus's /api/v1/status/tsdb.
type Status struct {
	HeadStats                   HeadStats `json:"headStats"`
	SeriesCountByMetricName     []Stat    `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []Stat    `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []Stat    `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []Stat    `json:"seriesCountByLabelValuePair"`
}

// FromJSON converts Prometheus's JSON to an entry.
func FromJSON(s *Status) *statuspb.TSDBStatisticsEntry {
	conv := func(in []Stat) []*statuspb.Statistic {
		out := make([]*statuspb.Statistic, 0, len(in))
		for _, st := range in {
			out = append(out, &statuspb.Statistic{Name: st.Name, Value: st.Value})
		}
		return out
	}
	h := s.HeadStats
	return &statuspb.TSDBStatisticsEntry{
		HeadStatistics: &statuspb.HeadStatistics{NumSeries: h.NumSeries, NumLabelPairs: h.NumLabelPairs,
			ChunkCount: h.ChunkCount, MinTime: h.MinTime, MaxTime: h.MaxTime},
		SeriesCountByMetricName:     conv(s.SeriesCountByMetricName),
		LabelValueCountByLabelName:  conv(s.LabelValueCountByLabelName),
		MemoryInBytesByLabelName:    conv(s.MemoryInBytesByLabelName),
		SeriesCountByLabelValuePair: conv(s.SeriesCountByLabelValuePair),
	}
}

// JSON converts an entry to Prometheus's JSON; lists are never null.
func JSON(e *statuspb.TSDBStatisticsEntry) *Status {
	conv := func(in []*statuspb.Statistic) []Stat {
		out := make([]Stat, 0, len(in))
		for _, st := range in {
			out = append(out, Stat{Name: st.GetName(), Value: st.GetValue()})
		}
		return out
	}
	h := e.GetHeadStatistics()
	return &Status{
		HeadStats: HeadStats{NumSeries: h.GetNumSeries(), NumLabelPairs: h.GetNumLabelPairs(),
			ChunkCount: h.GetChunkCount(), MinTime: h.GetMinTime(), MaxTime: h.GetMaxTime()},
		SeriesCountByMetricName:     conv(e.GetSeriesCountByMetricName()),
		LabelValueCountByLabelName:  conv(e.GetLabelValueCountByLabelName()),
		MemoryInBytesByLabelName:    conv(e.GetMemoryInBytesByLabelName()),
		SeriesCountByLabelValuePair: conv(e.GetSeriesCountByLabelValuePair()),
	}
}

// Package metadataapi is Vigil's side of the Thanos Metadata API
// (thanos.Metadata/MetricMetadata) and of Prometheus's /api/v1/metadata, shared by the
// sidecar and the querier:
//
//   - Server serves thanos.Metadata from any Source (the sidecar's Prometheus, the
//     querier's fan-out);
//   - Frames, Collect and Fetch read MetricMetadata streams (streamapi does the fan-out);
//   - Merge unites the metadata of several endpoints, each entry once.
package metadataapi

import (
	"context"
	"slices"

	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/storeapi/metadatapb"
	"github.com/vigilhq/vigil/internal/streamapi"
)

// Source yields the metric metadata of a component for a request, plus warnings.
type Source interface {
	MetricMetadata(ctx context.Context, req *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context, req *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error)

// MetricMetadata calls f.
func (f SourceFunc) MetricMetadata(ctx context.Context, req *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error) {
	return f(ctx, req)
}

// Frames describes the MetricMetadataResponse frames (streamapi).
var Frames = streamapi.Frames[metadatapb.MetricMetadataResponse, *metadatapb.MetricMetadata]{
	What: "metadata",
	Item: func(r *metadatapb.MetricMetadataResponse) (*metadatapb.MetricMetadata, bool) {
		return r.GetMetadata(), r.GetMetadata() != nil
	},
	Warning: (*metadatapb.MetricMetadataResponse).GetWarning,
	NewItem: func(m *metadatapb.MetricMetadata) *metadatapb.MetricMetadataResponse {
		return &metadatapb.MetricMetadataResponse{Result: &metadatapb.MetricMetadataResponse_Metadata{Metadata: m}}
	},
	NewWarning: func(w string) *metadatapb.MetricMetadataResponse {
		return &metadatapb.MetricMetadataResponse{Result: &metadatapb.MetricMetadataResponse_Warning{Warning: w}}
	},
}

// Collect reads a MetricMetadata stream to its end.
func Collect(stream metadatapb.Metadata_MetricMetadataClient) ([]*metadatapb.MetricMetadata, []string, error) {
	return Frames.Collect(stream)
}

// Fetch calls MetricMetadata on c and collects the answer.
func Fetch(ctx context.Context, c metadatapb.MetadataClient, req *metadatapb.MetricMetadataRequest) ([]*metadatapb.MetricMetadata, []string, error) {
	stream, err := c.MetricMetadata(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return Collect(stream)
}

// Server serves thanos.Metadata from a Source: warnings first, then its metadata.
type Server struct {
	metadatapb.UnimplementedMetadataServer
	src Source
}

// NewServer returns a thanos.Metadata server over src.
func NewServer(src Source) *Server { return &Server{src: src} }

// Register serves src as thanos.Metadata on srv.
func Register(srv *grpc.Server, src Source) { metadatapb.RegisterMetadataServer(srv, NewServer(src)) }

// MetricMetadata implements metadatapb.MetadataServer.
func (s *Server) MetricMetadata(req *metadatapb.MetricMetadataRequest, srv metadatapb.Metadata_MetricMetadataServer) error {
	return streamapi.Serve(Frames, srv, func(ctx context.Context) ([]*metadatapb.MetricMetadata, []string, error) {
		return s.src.MetricMetadata(ctx, req)
	})
}

// Merge unites the metadata of several endpoints, as Thanos's querier does: per metric
// name, every distinct (type, help, unit) entry once, in the order first seen. metric,
// if not empty, keeps that metric only (a peer may not filter). limit bounds the number
// of metrics (negative: no bound, 0: none, as Prometheus's limit), the first names in
// sort order; limitPerMetric, when positive, the entries of each metric (Prometheus's
// limit_per_metric). The input is not modified.
func Merge(in []*metadatapb.MetricMetadata, metric string, limit, limitPerMetric int) map[string][]*metadatapb.Meta {
	out := map[string][]*metadatapb.Meta{}
	if limit == 0 {
		return out
	}
	for _, md := range in {
		for name, e := range md.GetMetadata() {
			if metric != "" && name != metric {
				continue
			}
			metas := out[name]
			for _, m := range e.GetMetas() {
				if limitPerMetric > 0 && len(metas) >= limitPerMetric {
					break
				}
				if !slices.ContainsFunc(metas, func(o *metadatapb.Meta) bool { return equal(o, m) }) {
					metas = append(metas, m)
				}
			}
			out[name] = metas
		}
	}
	if limit > 0 && len(out) > limit {
		names := make([]string, 0, len(out))
		for n := range out {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names[limit:] {
			delete(out, n)
		}
	}
	return out
}

func equal(a, b *metadatapb.Meta) bool {
	return a.GetType() == b.GetType() && a.GetHelp() == b.GetHelp() && a.GetUnit() == b.GetUnit()
}

// Entry is one metadata entry as Prometheus's /api/v1/metadata writes it.
type Entry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// JSON returns merged metadata as the "data" of /api/v1/metadata: an object from
// metric name (in sort order) to its entries.
func JSON(md map[string][]*metadatapb.Meta) map[string][]Entry {
	out := make(map[string][]Entry, len(md))
	for name, metas := range md {
		es := make([]Entry, 0, len(metas))
		for _, m := range metas {
			es = append(es, Entry{Type: m.GetType(), Help: m.GetHelp(), Unit: m.GetUnit()})
		}
		out[name] = es
	}
	return out
}

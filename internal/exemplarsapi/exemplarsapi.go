// Package exemplarsapi is Vigil's side of the Thanos Exemplars API
// (thanos.Exemplars/Exemplars) and of Prometheus's /api/v1/query_exemplars, shared by
// the sidecar and the querier:
//
//   - Server serves thanos.Exemplars from any Source (the sidecar's Prometheus, the
//     querier's fan-out);
//   - Frames, Collect and Fetch read Exemplars streams (streamapi does the fan-out);
//   - QueryFor rewrites a query for one endpoint's external labels, as Thanos's querier
//     does; AddExternalLabels labels a component's series, and Merge deduplicates the
//     series of HA replicas on the replica labels.
package exemplarsapi

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
	"github.com/vigilhq/vigil/internal/streamapi"
)

// Source yields the exemplars a component holds for a request, series labels with
// external labels, plus warnings.
type Source interface {
	Exemplars(ctx context.Context, req *exemplarspb.ExemplarsRequest) ([]*exemplarspb.ExemplarData, []string, error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context, req *exemplarspb.ExemplarsRequest) ([]*exemplarspb.ExemplarData, []string, error)

// Exemplars calls f.
func (f SourceFunc) Exemplars(ctx context.Context, req *exemplarspb.ExemplarsRequest) ([]*exemplarspb.ExemplarData, []string, error) {
	return f(ctx, req)
}

// Frames describes the ExemplarsResponse frames (streamapi).
var Frames = streamapi.Frames[exemplarspb.ExemplarsResponse, *exemplarspb.ExemplarData]{
	What: "exemplars",
	Item: func(r *exemplarspb.ExemplarsResponse) (*exemplarspb.ExemplarData, bool) {
		return r.GetData(), r.GetData() != nil
	},
	Warning: (*exemplarspb.ExemplarsResponse).GetWarning,
	NewItem: func(d *exemplarspb.ExemplarData) *exemplarspb.ExemplarsResponse {
		return &exemplarspb.ExemplarsResponse{Result: &exemplarspb.ExemplarsResponse_Data{Data: d}}
	},
	NewWarning: func(w string) *exemplarspb.ExemplarsResponse {
		return &exemplarspb.ExemplarsResponse{Result: &exemplarspb.ExemplarsResponse_Warning{Warning: w}}
	},
}

// Collect reads an Exemplars stream to its end.
func Collect(stream exemplarspb.Exemplars_ExemplarsClient) ([]*exemplarspb.ExemplarData, []string, error) {
	return Frames.Collect(stream)
}

// Fetch calls Exemplars on c and collects the answer.
func Fetch(ctx context.Context, c exemplarspb.ExemplarsClient, req *exemplarspb.ExemplarsRequest) ([]*exemplarspb.ExemplarData, []string, error) {
	stream, err := c.Exemplars(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return Collect(stream)
}

// Server serves thanos.Exemplars from a Source: warnings first, then one frame per
// series.
type Server struct {
	exemplarspb.UnimplementedExemplarsServer
	src Source
}

// NewServer returns a thanos.Exemplars server over src.
func NewServer(src Source) *Server { return &Server{src: src} }

// Register serves src as thanos.Exemplars on srv.
func Register(srv *grpc.Server, src Source) { exemplarspb.RegisterExemplarsServer(srv, NewServer(src)) }

// Exemplars implements exemplarspb.ExemplarsServer.
func (s *Server) Exemplars(req *exemplarspb.ExemplarsRequest, srv exemplarspb.Exemplars_ExemplarsServer) error {
	return streamapi.Serve(Frames, srv, func(ctx context.Context) ([]*exemplarspb.ExemplarData, []string, error) {
		return s.src.Exemplars(ctx, req)
	})
}

// AddExternalLabels adds ext to the series labels of every entry, in place, as
// Thanos's sidecar does. External labels override labels of the same name.
func AddExternalLabels(data []*exemplarspb.ExemplarData, ext labels.Labels) {
	if ext.IsEmpty() {
		return
	}
	for _, d := range data {
		d.SeriesLabels = storeapi.ExtendLabelSet(d.GetSeriesLabels(), ext)
	}
}

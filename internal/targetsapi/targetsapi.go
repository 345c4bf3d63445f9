// Package targetsapi is Vigil's side of the Thanos Targets API (thanos.Targets/Targets)
// and of Prometheus's /api/v1/targets, shared by the sidecar and the querier:
//
//   - Server serves thanos.Targets from any Source (the sidecar's Prometheus, the
//     querier's fan-out), keeping the state the request asks for;
//   - Frames, Collect and Fetch read Targets streams (streamapi does the fan-out);
//   - AddExternalLabels labels a component's targets, Merge deduplicates the targets of
//     HA replicas on the replica labels, as Thanos does.
package targetsapi

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/targetspb"
	"github.com/vigilhq/vigil/internal/streamapi"
)

// Source yields the targets of a component for a request, external labels included,
// plus warnings. It may ignore the requested state: Server applies it again.
type Source interface {
	Targets(ctx context.Context, req *targetspb.TargetsRequest) ([]*targetspb.TargetDiscovery, []string, error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context, req *targetspb.TargetsRequest) ([]*targetspb.TargetDiscovery, []string, error)

// Targets calls f.
func (f SourceFunc) Targets(ctx context.Context, req *targetspb.TargetsRequest) ([]*targetspb.TargetDiscovery, []string, error) {
	return f(ctx, req)
}

// Frames describes the TargetsResponse frames (streamapi).
var Frames = streamapi.Frames[targetspb.TargetsResponse, *targetspb.TargetDiscovery]{
	What: "targets",
	Item: func(r *targetspb.TargetsResponse) (*targetspb.TargetDiscovery, bool) {
		return r.GetTargets(), r.GetTargets() != nil
	},
	Warning: (*targetspb.TargetsResponse).GetWarning,
	NewItem: func(t *targetspb.TargetDiscovery) *targetspb.TargetsResponse {
		return &targetspb.TargetsResponse{Result: &targetspb.TargetsResponse_Targets{Targets: t}}
	},
	NewWarning: func(w string) *targetspb.TargetsResponse {
		return &targetspb.TargetsResponse{Result: &targetspb.TargetsResponse_Warning{Warning: w}}
	},
}

// Collect reads a Targets stream to its end.
func Collect(stream targetspb.Targets_TargetsClient) ([]*targetspb.TargetDiscovery, []string, error) {
	return Frames.Collect(stream)
}

// Fetch calls Targets on c and collects the answer.
func Fetch(ctx context.Context, c targetspb.TargetsClient, req *targetspb.TargetsRequest) ([]*targetspb.TargetDiscovery, []string, error) {
	stream, err := c.Targets(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return Collect(stream)
}

// Server serves thanos.Targets from a Source: warnings first, then its targets.
type Server struct {
	targetspb.UnimplementedTargetsServer
	src Source
}

// NewServer returns a thanos.Targets server over src.
func NewServer(src Source) *Server { return &Server{src: src} }

// Register serves src as thanos.Targets on srv.
func Register(srv *grpc.Server, src Source) { targetspb.RegisterTargetsServer(srv, NewServer(src)) }

// Targets implements targetspb.TargetsServer.
func (s *Server) Targets(req *targetspb.TargetsRequest, srv targetspb.Targets_TargetsServer) error {
	return streamapi.Serve(Frames, srv, func(ctx context.Context) ([]*targetspb.TargetDiscovery, []string, error) {
		tds, warnings, err := s.src.Targets(ctx, req)
		for i, td := range tds {
			tds[i] = Filter(td, req.GetState(), "")
		}
		return tds, warnings, err
	})
}

// ParseState parses Prometheus's state parameter: active, dropped, any or empty (any),
// in any case.
func ParseState(s string) (targetspb.TargetsRequest_State, error) {
	if s == "" {
		return targetspb.TargetsRequest_ANY, nil
	}
	v, ok := targetspb.TargetsRequest_State_value[strings.ToUpper(s)]
	if !ok {
		return 0, fmt.Errorf("invalid targets parameter state=%q: want active, dropped or any", s)
	}
	return targetspb.TargetsRequest_State(v), nil
}

// StateParam is the value of Prometheus's state parameter for a state, "" for ANY.
func StateParam(s targetspb.TargetsRequest_State) string {
	if s == targetspb.TargetsRequest_ANY {
		return ""
	}
	return strings.ToLower(s.String())
}

// Health is the JSON form of a target health: "up", "down" or "unknown".
func Health(h targetspb.TargetHealth) string {
	switch h {
	case targetspb.TargetHealth_UP:
		return "up"
	case targetspb.TargetHealth_DOWN:
		return "down"
	}
	return "unknown"
}

// ParseHealth parses the JSON form of a target health; anything else is unknown.
func ParseHealth(s string) targetspb.TargetHealth {
	switch strings.ToLower(s) {
	case "up":
		return targetspb.TargetHealth_UP
	case "down":
		return targetspb.TargetHealth_DOWN
	}
	return targetspb.TargetHealth_UNKNOWN_HEALTH
}

// Filter keeps the targets of a state and, if pool is not empty, of one scrape pool:
// an active target's scrapePool, a dropped target's job label (the pool it was
// discovered for). It returns td itself when nothing is removed, a copy otherwise.
func Filter(td *targetspb.TargetDiscovery, state targetspb.TargetsRequest_State, pool string) *targetspb.TargetDiscovery {
	if td == nil || state == targetspb.TargetsRequest_ANY && pool == "" {
		return td
	}
	out := &targetspb.TargetDiscovery{}
	if state != targetspb.TargetsRequest_DROPPED {
		for _, t := range td.GetActiveTargets() {
			if pool == "" || t.GetScrapePool() == pool {
				out.ActiveTargets = append(out.ActiveTargets, t)
			}
		}
	}
	if state != targetspb.TargetsRequest_ACTIVE {
		for _, t := range td.GetDroppedTargets() {
			if pool == "" || storeapi.LabelsFromProto(t.GetDiscoveredLabels().GetLabels()).Get("job") == pool {
				out.DroppedTargets = append(out.DroppedTargets, t)
			}
		}
	}
	return out
}

// AddExternalLabels adds ext to the labels and discovered labels of every target, in
// place, as Thanos's sidecar does. External labels override labels of the same name.
func AddExternalLabels(td *targetspb.TargetDiscovery, ext labels.Labels) {
	if ext.IsEmpty() {
		return
	}
	for _, t := range td.GetActiveTargets() {
		t.DiscoveredLabels = storeapi.ExtendLabelSet(t.GetDiscoveredLabels(), ext)
		t.Labels = storeapi.ExtendLabelSet(t.GetLabels(), ext)
	}
	for _, t := range td.GetDroppedTargets() {
		t.DiscoveredLabels = storeapi.ExtendLabelSet(t.GetDiscoveredLabels(), ext)
	}
}

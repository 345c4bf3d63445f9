package rulesapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Collect reads a Rules stream to its end and returns its groups and warnings.
func Collect(stream rulespb.Rules_RulesClient) ([]*rulespb.RuleGroup, []string, error) {
	var (
		groups   []*rulespb.RuleGroup
		warnings []string
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return groups, warnings, nil
		}
		if err != nil {
			return groups, warnings, err
		}
		switch {
		case resp.GetGroup() != nil:
			groups = append(groups, resp.GetGroup())
		case resp.GetWarning() != "":
			warnings = append(warnings, resp.GetWarning())
		default:
			return groups, warnings, errNoGroup
		}
	}
}

// Target is one endpoint to ask for rules.
type Target struct {
	Name   string // for warnings and errors, e.g. the address
	Client rulespb.RulesClient
}

// Fanout asks every target concurrently and returns their groups in target order, and
// their warnings. A target that fails is a warning naming it with the WARN strategy
// (partial response), and fails the whole call with ABORT. Warnings a target sends are
// passed on either way, as Thanos does.
func Fanout(reqCtx context.Context, targets []Target, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
	abort := req.GetPartialResponseStrategy() == storepb.PartialResponseStrategy_ABORT
	ctx, cancel := context.WithCancel(reqCtx)
	defer cancel()
	type answer struct {
		groups   []*rulespb.RuleGroup
		warnings []string
		err      error
	}
	answers := make([]answer, len(targets))
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &answers[i]
			stream, err := t.Client.Rules(ctx, req)
			if err == nil {
				a.groups, a.warnings, err = Collect(stream)
			}
			if err != nil {
				a.err = fmt.Errorf("fetch rules from %s: %w", t.Name, err)
				if abort {
					once.Do(func() { firstErr = a.err; cancel() })
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, nil, firstErr
	}
	if err := reqCtx.Err(); err != nil {
		// Endpoints cut short by the request's own deadline: not a partial answer.
		return nil, nil, fmt.Errorf("fetch rules: %w", err)
	}
	var (
		groups   []*rulespb.RuleGroup
		warnings []string
	)
	for _, a := range answers {
		warnings = append(warnings, a.warnings...)
		if a.err != nil {
			warnings = append(warnings, a.err.Error())
			continue
		}
		groups = append(groups, a.groups...)
	}
	return groups, warnings, nil
}

// Local calls a Rules server in process, without a network, and collects its answer:
// how a component reads its own thanos.Rules service for its HTTP API.
func Local(srv rulespb.RulesServer) Source {
	return SourceFunc(func(ctx context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
		s := &localStream{ctx: ctx}
		if err := srv.Rules(req, s); err != nil {
			return nil, nil, err
		}
		return s.groups, s.warnings, nil
	})
}

// localStream is the server side of an in-process Rules call.
type localStream struct {
	grpc.ServerStream
	ctx      context.Context
	groups   []*rulespb.RuleGroup
	warnings []string
}

func (s *localStream) Context() context.Context { return s.ctx }

func (s *localStream) Send(resp *rulespb.RulesResponse) error {
	switch {
	case resp.GetGroup() != nil:
		s.groups = append(s.groups, resp.GetGroup())
	case resp.GetWarning() != "":
		s.warnings = append(s.warnings, resp.GetWarning())
	default:
		return errNoGroup
	}
	return nil
}

func (s *localStream) SetHeader(metadata.MD) error  { return nil }
func (s *localStream) SendHeader(metadata.MD) error { return nil }
func (s *localStream) SetTrailer(metadata.MD)       {}
func (s *localStream) SendMsg(m any) error {
	if r, ok := m.(*rulespb.RulesResponse); ok {
		return s.Send(r)
	}
	return fmt.Errorf("unexpected message %T", m)
}
func (s *localStream) RecvMsg(any) error { return io.EOF }

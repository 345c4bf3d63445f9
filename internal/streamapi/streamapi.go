// Package streamapi holds what Vigil's server-streaming Thanos APIs share: thanos.Rules,
// thanos.Metadata, thanos.Targets and thanos.Exemplars each answer a request with a
// stream of frames that carry either one item (a rule group, a metadata map, a target
// list, the exemplars of a series) or a warning.
//
//   - Frames describes such a response type; its methods read a stream to its end
//     (Collect), write items and warnings (Send), and call a server in process (Local);
//   - Serve answers a call of a server method, StatusError turning a source's error
//     into what a server returns;
//   - Fanout asks several endpoints concurrently with Thanos's partial-response rules.
package streamapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Frames describes a response message Resp that is oneof{Item; string warning}.
type Frames[Resp, Item any] struct {
	// What names the API in errors, e.g. "rules".
	What string
	// Item returns the frame's item, if it carries one.
	Item func(*Resp) (Item, bool)
	// Warning returns the frame's warning, "" if none.
	Warning func(*Resp) string
	// NewItem and NewWarning build frames.
	NewItem    func(Item) *Resp
	NewWarning func(string) *Resp
}

// Receiver is the client side of a server-streaming call.
type Receiver[Resp any] interface {
	Recv() (*Resp, error)
}

// Collect reads a stream to its end and returns its items and warnings. A frame with
// neither is an error.
func (f Frames[Resp, Item]) Collect(stream Receiver[Resp]) ([]Item, []string, error) {
	var (
		items    []Item
		warnings []string
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return items, warnings, nil
		}
		if err != nil {
			return items, warnings, err
		}
		if err := f.add(resp, &items, &warnings); err != nil {
			return items, warnings, err
		}
	}
}

func (f Frames[Resp, Item]) add(resp *Resp, items *[]Item, warnings *[]string) error {
	if it, ok := f.Item(resp); ok {
		*items = append(*items, it)
		return nil
	}
	if w := f.Warning(resp); w != "" {
		*warnings = append(*warnings, w)
		return nil
	}
	return fmt.Errorf("%s response frame without data or warning", f.What)
}

// Send writes the warnings, then one frame per item.
func (f Frames[Resp, Item]) Send(srv grpc.ServerStreamingServer[Resp], items []Item, warnings []string) error {
	for _, w := range warnings {
		if err := srv.Send(f.NewWarning(w)); err != nil {
			return err
		}
	}
	for _, it := range items {
		if err := srv.Send(f.NewItem(it)); err != nil {
			return err
		}
	}
	return nil
}

// Local calls a server in process, without a network, and collects its answer: call
// is the server's method bound to the request, e.g.
//
//	func(s grpc.ServerStreamingServer[rulespb.RulesResponse]) error { return srv.Rules(req, s) }
func (f Frames[Resp, Item]) Local(ctx context.Context, call func(grpc.ServerStreamingServer[Resp]) error) ([]Item, []string, error) {
	s := &localStream[Resp, Item]{ctx: ctx, f: f}
	if err := call(s); err != nil {
		return nil, nil, err
	}
	return s.items, s.warnings, nil
}

// localStream is the server side of an in-process call.
type localStream[Resp, Item any] struct {
	grpc.ServerStream
	ctx      context.Context
	f        Frames[Resp, Item]
	items    []Item
	warnings []string
}

func (s *localStream[Resp, Item]) Context() context.Context { return s.ctx }
func (s *localStream[Resp, Item]) Send(resp *Resp) error {
	return s.f.add(resp, &s.items, &s.warnings)
}
func (s *localStream[Resp, Item]) SetHeader(metadata.MD) error  { return nil }
func (s *localStream[Resp, Item]) SendHeader(metadata.MD) error { return nil }
func (s *localStream[Resp, Item]) SetTrailer(metadata.MD)       {}
func (s *localStream[Resp, Item]) SendMsg(m any) error {
	if r, ok := m.(*Resp); ok {
		return s.Send(r)
	}
	return fmt.Errorf("unexpected message %T", m)
}
func (s *localStream[Resp, Item]) RecvMsg(any) error { return io.EOF }

// Serve answers one call of a server method from fetch: its error as
// storeapi.StatusError (Unavailable unless it says otherwise),
// else its warnings and items.
func Serve[Resp, Item any](f Frames[Resp, Item], srv grpc.ServerStreamingServer[Resp],
	fetch func(context.Context) ([]Item, []string, error)) error {
	items, warnings, err := fetch(srv.Context())
	if err != nil {
		return storeapi.StatusError(err, codes.Unavailable)
	}
	return f.Send(srv, items, warnings)
}

// Target is one endpoint to ask.
type Target[C any] struct {
	Name   string // for warnings and errors, e.g. the address
	Client C
}

// Fanout calls fetch for every target concurrently and returns the items in target
// order, and the warnings. A target that fails is a warning naming it with the WARN
// strategy (partial response), and fails the whole call with ABORT. Warnings a target
// sends are passed on either way, as Thanos does. what names the API in messages.
func Fanout[C, Item any](reqCtx context.Context, what string, targets []Target[C], strategy storepb.PartialResponseStrategy,
	fetch func(context.Context, C) ([]Item, []string, error)) ([]Item, []string, error) {
	abort := strategy == storepb.PartialResponseStrategy_ABORT
	ctx, cancel := context.WithCancel(reqCtx)
	defer cancel()
	type answer struct {
		items    []Item
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
			a.items, a.warnings, a.err = fetch(ctx, t.Client)
			if a.err != nil {
				a.err = fmt.Errorf("fetch %s from %s: %w", what, t.Name, a.err)
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
		return nil, nil, fmt.Errorf("fetch %s: %w", what, err)
	}
	var (
		items    []Item
		warnings []string
	)
	for _, a := range answers {
		warnings = append(warnings, a.warnings...)
		if a.err != nil {
			warnings = append(warnings, a.err.Error())
			continue
		}
		items = append(items, a.items...)
	}
	return items, warnings, nil
}

package streamapi

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// frames are the Rules frames, a real oneof{item; warning} message.
var frames = Frames[rulespb.RulesResponse, *rulespb.RuleGroup]{
	What:    "rules",
	Item:    func(r *rulespb.RulesResponse) (*rulespb.RuleGroup, bool) { return r.GetGroup(), r.GetGroup() != nil },
	Warning: (*rulespb.RulesResponse).GetWarning,
	NewItem: func(g *rulespb.RuleGroup) *rulespb.RulesResponse {
		return &rulespb.RulesResponse{Result: &rulespb.RulesResponse_Group{Group: g}}
	},
	NewWarning: func(w string) *rulespb.RulesResponse {
		return &rulespb.RulesResponse{Result: &rulespb.RulesResponse_Warning{Warning: w}}
	},
}

// recv replays frames, then err (io.EOF for a clean end).
type recv struct {
	frames []*rulespb.RulesResponse
	err    error
}

func (r *recv) Recv() (*rulespb.RulesResponse, error) {
	if len(r.frames) == 0 {
		return nil, r.err
	}
	f := r.frames[0]
	r.frames = r.frames[1:]
	return f, nil
}

func TestCollect(t *testing.T) {
	g := &rulespb.RuleGroup{Name: "g"}
	items, warns, err := frames.Collect(&recv{frames: []*rulespb.RulesResponse{frames.NewWarning("w"), frames.NewItem(g)}, err: io.EOF})
	if err != nil || len(items) != 1 || items[0] != g || len(warns) != 1 || warns[0] != "w" {
		t.Fatalf("got %v %v %v", items, warns, err)
	}
	boom := errors.New("boom")
	if items, _, err := frames.Collect(&recv{frames: []*rulespb.RulesResponse{frames.NewItem(g)}, err: boom}); !errors.Is(err, boom) || len(items) != 1 {
		t.Fatalf("stream error: got %v, %v", items, err)
	}
	if _, _, err := frames.Collect(&recv{frames: []*rulespb.RulesResponse{{}}, err: io.EOF}); err == nil || !strings.Contains(err.Error(), "rules response frame without data or warning") {
		t.Fatalf("empty frame: got %v", err)
	}
}

func TestServeAndLocal(t *testing.T) {
	g := &rulespb.RuleGroup{Name: "g"}
	call := func(fetch func(context.Context) ([]*rulespb.RuleGroup, []string, error)) ([]*rulespb.RuleGroup, []string, error) {
		return frames.Local(context.Background(), func(s grpc.ServerStreamingServer[rulespb.RulesResponse]) error {
			return Serve(frames, s, fetch)
		})
	}
	items, warns, err := call(func(ctx context.Context) ([]*rulespb.RuleGroup, []string, error) {
		if ctx == nil {
			t.Error("no context")
		}
		return []*rulespb.RuleGroup{g, g}, []string{"w1", "w2"}, nil
	})
	if err != nil || len(items) != 2 || len(warns) != 2 || warns[1] != "w2" {
		t.Fatalf("got %v %v %v", items, warns, err)
	}
	_, _, err = call(func(context.Context) ([]*rulespb.RuleGroup, []string, error) { return nil, nil, errors.New("down") })
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "down") {
		t.Fatalf("plain error: want Unavailable, got %v", err)
	}
	_, _, err = call(func(context.Context) ([]*rulespb.RuleGroup, []string, error) {
		return nil, nil, status.Error(codes.InvalidArgument, "bad")
	})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("status error: want it unchanged, got %v", err)
	}
}

func TestFanoutPartialResponse(t *testing.T) {
	fetch := func(_ context.Context, c string) ([]string, []string, error) {
		switch c {
		case "bad":
			return []string{"partial"}, []string{"wbad"}, errors.New("boom")
		case "warn":
			return []string{"c1"}, []string{"w2"}, nil
		}
		return []string{c}, nil, nil
	}
	targets := []Target[string]{{"a", "a1"}, {"b", "bad"}, {"c", "warn"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	items, warns, err := Fanout(ctx, "rules", targets, storepb.PartialResponseStrategy_WARN, fetch)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(items, ",") != "a1,c1" {
		t.Fatalf("want a's then c's items, the failed target's left out, got %v", items)
	}
	if strings.Join(warns, "|") != "wbad|fetch rules from b: boom|w2" {
		t.Fatalf("warnings %q", warns)
	}

	_, _, err = Fanout(ctx, "rules", targets, storepb.PartialResponseStrategy_ABORT, fetch)
	if err == nil || !strings.Contains(err.Error(), "fetch rules from b: boom") {
		t.Fatalf("ABORT: want b's error, got %v", err)
	}

	// The request's own deadline is not a partial answer.
	expired, cancel2 := context.WithCancel(context.Background())
	cancel2()
	_, _, err = Fanout(expired, "rules", targets, storepb.PartialResponseStrategy_WARN, fetch)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: got %v", err)
	}
}

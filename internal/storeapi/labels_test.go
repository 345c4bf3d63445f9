package storeapi

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func TestMatchersFromProto(t *testing.T) {
	ms, err := MatchersFromProto([]*storepb.LabelMatcher{
		{Type: storepb.LabelMatcher_EQ, Name: "job", Value: "a"},
		{Type: storepb.LabelMatcher_NEQ, Name: "x", Value: ""},
		{Type: storepb.LabelMatcher_RE, Name: "i", Value: "ab|c"},
		{Type: storepb.LabelMatcher_NRE, Name: "n", Value: "z.*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := Selector(ms); got != `{job="a",x!="",i=~"ab|c",n!~"z.*"}` {
		t.Errorf("Selector = %s", got)
	}
	// Regexps are fully anchored.
	if ms[2].Matches("xab") || !ms[2].Matches("ab") || !ms[2].Matches("c") {
		t.Error("regexp matcher is not anchored")
	}
	back := MatchersToProto(ms)
	if len(back) != 4 || back[3].GetType() != storepb.LabelMatcher_NRE || back[2].GetValue() != "ab|c" {
		t.Errorf("MatchersToProto round trip: %v", back)
	}
	if _, err := MatchersFromProto([]*storepb.LabelMatcher{{Type: storepb.LabelMatcher_RE, Name: "a", Value: "("}}); err == nil {
		t.Error("invalid regexp accepted")
	}
	if _, err := MatchersFromProto([]*storepb.LabelMatcher{{Type: 9, Name: "a"}}); err == nil {
		t.Error("unknown matcher type accepted")
	}
}

func TestMatchExternalLabels(t *testing.T) {
	ext := labels.FromStrings("cluster", "eu", "replica", "0")
	m := func(t labels.MatchType, n, v string) *labels.Matcher { return labels.MustNewMatcher(t, n, v) }
	job := m(labels.MatchEqual, "job", "a")

	ok, rest := MatchExternalLabels(ext, []*labels.Matcher{m(labels.MatchEqual, "cluster", "eu"), job})
	if !ok || len(rest) != 1 || rest[0] != job {
		t.Errorf("matching ext matcher: ok=%v rest=%v; want the ext matcher removed", ok, rest)
	}
	if ok, _ := MatchExternalLabels(ext, []*labels.Matcher{m(labels.MatchEqual, "cluster", "us"), job}); ok {
		t.Error("non-matching ext matcher must prune the store")
	}
	if ok, _ := MatchExternalLabels(ext, []*labels.Matcher{m(labels.MatchRegexp, "replica", "1|2"), job}); ok {
		t.Error("non-matching ext regexp must prune the store")
	}
	ok, rest = MatchExternalLabels(ext, []*labels.Matcher{m(labels.MatchNotEqual, "replica", "1")})
	if !ok || len(rest) != 0 {
		t.Errorf("only ext matchers: ok=%v rest=%v; want ok and nothing left", ok, rest)
	}
	ok, rest = MatchExternalLabels(labels.EmptyLabels(), []*labels.Matcher{job})
	if !ok || len(rest) != 1 {
		t.Error("no external labels: everything passes through")
	}
}

func TestStripSet(t *testing.T) {
	ext := labels.FromStrings("cluster", "eu", "replica", "0", "rule_replica", "1")
	kept, stripped := StripSet(ext, []string{"replica", "rule_replica", "not_external"})
	if !labels.Equal(kept, labels.FromStrings("cluster", "eu")) {
		t.Errorf("kept %s", kept)
	}
	if len(stripped) != 2 {
		t.Errorf("stripped %v; only external label names may be stripped", stripped)
	}
	if _, ok := stripped["not_external"]; ok {
		t.Error("a non-external name was marked as stripped")
	}
	kept, stripped = StripSet(ext, []string{"other"})
	if !labels.Equal(kept, ext) || len(stripped) != 0 {
		t.Errorf("no external names: kept %s stripped %v", kept, stripped)
	}
}

func TestLabelsProtoRoundTrip(t *testing.T) {
	ls := labels.FromStrings("b", "2", "a", "1", "__name__", "up")
	p := LabelsToProto(ls)
	if len(p) != 3 || p[0].GetName() != "__name__" || p[2].GetName() != "b" {
		t.Fatalf("LabelsToProto %v", p)
	}
	// Unsorted wire labels come back sorted.
	slices.Reverse(p)
	if got := LabelsFromProto(p); !labels.Equal(got, ls) {
		t.Fatalf("LabelsFromProto %s, want %s", got, ls)
	}
}

func TestShardMatcher(t *testing.T) {
	if NewShardMatcher(nil) != nil || NewShardMatcher(&storepb.ShardInfo{TotalShards: 0}) != nil {
		t.Fatal("unsharded requests must yield a nil matcher")
	}
	var nilMatcher *ShardMatcher
	if !nilMatcher.Matches(wire("a", "1")) {
		t.Fatal("nil matcher must match everything")
	}
	hash := func(ls []*storepb.Label, sel func(string) bool) uint64 {
		var b []byte
		for _, l := range ls {
			if sel(l.Name) {
				b = append(b, l.Name...)
				b = append(b, 0xff)
				b = append(b, l.Value...)
				b = append(b, 0xff)
			}
		}
		return xxhash.Sum64(b)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, by := range []bool{true, false} {
		const total = 3
		ms := make([]*ShardMatcher, total)
		for i := range ms {
			ms[i] = NewShardMatcher(&storepb.ShardInfo{ShardIndex: int64(i), TotalShards: total, By: by, Labels: []string{"job"}})
		}
		for range 500 {
			ls := wire("job", []string{"a", "b", "c", "d"}[rng.IntN(4)], "pod", string(rune('a'+rng.IntN(26))), "zone", "z")
			in := 0
			for i, m := range ms {
				if m.Matches(ls) {
					in++
					want := hash(ls, func(n string) bool { return (n == "job") == by }) % total
					if uint64(i) != want {
						t.Fatalf("by=%v: series %v in shard %d, hash says %d", by, ls, i, want)
					}
				}
			}
			if in != 1 {
				t.Fatalf("by=%v: series %v in %d shards, want exactly 1", by, ls, in)
			}
		}
	}
}

type fakeSeriesServer struct {
	grpc.ServerStream
	frames []*storepb.SeriesResponse
}

func (f *fakeSeriesServer) Context() context.Context { return context.Background() }

// Send clones: the sender reuses its frame wrappers, as gRPC marshals synchronously.
func (f *fakeSeriesServer) Send(r *storepb.SeriesResponse) error {
	f.frames = append(f.frames, proto.Clone(r).(*storepb.SeriesResponse))
	return nil
}

func TestSeriesSenderFraming(t *testing.T) {
	for _, tc := range []struct {
		batch  int64
		frames []int // series per frame; 0 = single-series frame
	}{
		{0, []int{0, 0, 0, 0, 0}},
		{1, []int{0, 0, 0, 0, 0}},
		{2, []int{2, 2, 1}},
		{5, []int{5}},
		{100, []int{5}},
	} {
		srv := &fakeSeriesServer{}
		s := NewSeriesSender(srv, tc.batch)
		for i := range 5 {
			if err := s.Send(series("i", string(rune('0'+i)))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil { // nothing pending: no empty frame
			t.Fatal(err)
		}
		if s.Sent() != 5 {
			t.Errorf("batch %d: Sent() = %d", tc.batch, s.Sent())
		}
		var shape []int
		var order []string
		for _, f := range srv.frames {
			switch {
			case f.GetSeries() != nil:
				shape = append(shape, 0)
				order = append(order, LabelsFromProto(f.GetSeries().Labels).Get("i"))
			case f.GetBatch() != nil:
				shape = append(shape, len(f.GetBatch().GetSeries()))
				for _, x := range f.GetBatch().GetSeries() {
					order = append(order, LabelsFromProto(x.Labels).Get("i"))
				}
			default:
				t.Errorf("unexpected frame %v", f)
			}
		}
		if !slices.Equal(shape, tc.frames) || !slices.Equal(order, []string{"0", "1", "2", "3", "4"}) {
			t.Errorf("batch %d: frames %v carrying %v, want %v carrying 0..4", tc.batch, shape, order, tc.frames)
		}
	}
	srv := &fakeSeriesServer{}
	if err := NewSeriesSender(srv, 0).Warning("careful"); err != nil || srv.frames[0].GetWarning() != "careful" {
		t.Errorf("warning frame: %v", srv.frames)
	}
}

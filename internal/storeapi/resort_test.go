package storeapi

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

func wire(kv ...string) []*storepb.Label {
	return LabelsToProto(labels.FromStrings(kv...))
}

func series(kv ...string) *storepb.Series { return &storepb.Series{Labels: wire(kv...)} }

func names(out []*storepb.Series) []string {
	s := make([]string, len(out))
	for i, x := range out {
		s[i] = LabelsFromProto(x.Labels).String()
	}
	return s
}

// TestResorterReordersAfterExternalLabel: stored [a=1] < [a=1,b=x], but with the external
// label c=e added the final sets compare the other way round, {a=1,b=x,c=e} < {a=1,c=e}.
// The first series must be held back until the second has been sent.
func TestResorterReordersAfterExternalLabel(t *testing.T) {
	var out []*storepb.Series
	r := NewResorter(0, func(s *storepb.Series) error { out = append(out, s); return nil })

	// bound: prefix ending with the last label the series contributed itself (a, resp. b).
	if err := r.Push(series("a", "1", "c", "e"), 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(series("a", "1", "b", "x", "c", "e"), 2); err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 || r.Held() != 2 {
		t.Fatalf("before flush: sent %v, held %d; want nothing sent and both held", names(out), r.Held())
	}
	// A series that sorts after both releases them.
	if err := r.Push(series("a", "2", "c", "e"), 1); err != nil {
		t.Fatal(err)
	}
	want := []string{`{a="1", b="x", c="e"}`, `{a="1", c="e"}`}
	if !slices.Equal(names(out), want) {
		t.Fatalf("sent %v, want %v", names(out), want)
	}
	if r.Held() != 1 {
		t.Fatalf("held %d, want 1", r.Held())
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	want = append(want, `{a="2", c="e"}`)
	if !slices.Equal(names(out), want) || r.Held() != 0 {
		t.Fatalf("after flush sent %v (held %d), want %v", names(out), r.Held(), want)
	}
}

// TestResorterStreamsWhenOrderIsKept: with external labels sorting after every series
// label, each series is released as soon as the next arrives (held stays at one).
func TestResorterStreamsWhenOrderIsKept(t *testing.T) {
	var out []*storepb.Series
	r := NewResorter(1, func(s *storepb.Series) error { out = append(out, s); return nil })
	in := [][]string{
		{"__name__", "up", "job", "a", "zz", "e"},
		{"__name__", "up", "job", "b", "zz", "e"},
		{"__name__", "up", "job", "c", "x", "1", "zz", "e"},
		{"__name__", "vv", "zz", "e"},
	}
	for i, kv := range in {
		if err := r.Push(series(kv...), len(kv)/2-1); err != nil {
			t.Fatalf("push %d: %v (limit 1 must suffice when the order is kept)", i, err)
		}
		if len(out) != i {
			t.Fatalf("after push %d: %d sent, want %d", i, len(out), i)
		}
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("sent %d, want %d", len(out), len(in))
	}
}

func TestResorterLimit(t *testing.T) {
	var out []*storepb.Series
	r := NewResorter(2, func(s *storepb.Series) error { out = append(out, s); return nil })
	// External label c=e; each stored series sorts before the previous one once c=e is added.
	if err := r.Push(series("a", "1", "c", "e"), 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(series("a", "1", "b", "1", "c", "e"), 2); err != nil {
		t.Fatal(err)
	}
	err := r.Push(series("a", "1", "b", "1", "bb", "1", "c", "e"), 3)
	var rl ErrResortLimit
	if !errors.As(err, &rl) || rl.Limit != 2 {
		t.Fatalf("third push: %v, want ErrResortLimit{Limit: 2}", err)
	}
	if rl.Error() == "" {
		t.Error("empty error message")
	}
	if len(out) != 0 {
		t.Fatalf("sent %v before the limit error", names(out))
	}
}

func TestResorterEmitError(t *testing.T) {
	boom := errors.New("client went away")
	r := NewResorter(0, func(*storepb.Series) error { return boom })
	if err := r.Push(series("a", "1"), 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(series("a", "2"), 1); !errors.Is(err, boom) {
		t.Fatalf("Push: %v, want the emit error", err)
	}
	r = NewResorter(0, func(*storepb.Series) error { return boom })
	_ = r.Push(series("a", "1"), 1)
	if err := r.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush: %v, want the emit error", err)
	}
}

// TestResorterPropertyNoClash: series whose labels never share a name with an external
// label, random external labels (some stripped). Output must equal a full sort.
func TestResorterPropertyNoClash(t *testing.T) {
	alphabet := []string{"__name__", "a", "b", "c", "d", "e", "f"}
	values := []string{"0", "1", "x"}
	rng := rand.New(rand.NewPCG(42, 7))
	for iter := range 3000 {
		// Choose external label names from the alphabet; stored series use the rest.
		perm := rng.Perm(len(alphabet))
		nExt := 1 + rng.IntN(3)
		ext := map[string]string{}
		stripped := map[string]bool{}
		for _, i := range perm[:nExt] {
			ext[alphabet[i]] = values[rng.IntN(len(values))]
			if rng.IntN(3) == 0 {
				stripped[alphabet[i]] = true
			}
		}
		var own []string
		for _, n := range alphabet {
			if _, ok := ext[n]; !ok {
				own = append(own, n)
			}
		}
		seen := map[string]bool{}
		var stored []labels.Labels
		for range 1 + rng.IntN(12) {
			b := labels.NewScratchBuilder(len(own))
			for _, n := range own {
				if rng.IntN(2) == 0 {
					b.Add(n, values[rng.IntN(len(values))])
				}
			}
			if len(stored) > 0 && rng.IntN(4) == 0 { // strict prefix of an earlier series
				prev := stored[rng.IntN(len(stored))]
				b.Reset()
				k := rng.IntN(prev.Len())
				i := 0
				prev.Range(func(l labels.Label) {
					if i < k {
						b.Add(l.Name, l.Value)
					}
					i++
				})
			}
			b.Sort()
			ls := b.Labels()
			if ls.IsEmpty() || seen[ls.String()] {
				continue
			}
			seen[ls.String()] = true
			stored = append(stored, ls)
		}
		slices.SortFunc(stored, labels.Compare)

		var want []string
		var out []*storepb.Series
		r := NewResorter(0, func(s *storepb.Series) error { out = append(out, s); return nil })
		for _, s := range stored {
			b := labels.NewBuilder(s)
			for n, v := range ext {
				if !stripped[n] {
					b.Set(n, v)
				}
			}
			final := b.Labels()
			want = append(want, final.String())
			bound := 0
			i := 0
			final.Range(func(l labels.Label) {
				i++
				if _, isExt := ext[l.Name]; !isExt {
					bound = i
				}
			})
			if err := r.Push(&storepb.Series{Labels: LabelsToProto(final)}, bound); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(want) // sorted as strings only to compare multisets
		got := names(out)
		for i := 1; i < len(out); i++ {
			if CompareLabels(out[i-1].Labels, out[i].Labels) > 0 {
				t.Fatalf("case %d (ext %v stripped %v): output not sorted at %d: %v", iter, ext, stripped, i, got)
			}
		}
		gotSorted := slices.Clone(got)
		slices.Sort(gotSorted)
		if !slices.Equal(gotSorted, want) {
			t.Fatalf("case %d: output %v is not a permutation of %v", iter, got, want)
		}
	}
}

func TestCompareLabelsMatchesPrometheus(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rnd := func() labels.Labels {
		b := labels.NewScratchBuilder(4)
		for _, n := range []string{"a", "aa", "b", "c"} {
			if rng.IntN(2) == 0 {
				b.Add(n, []string{"", "0", "1", "10"}[rng.IntN(4)])
			}
		}
		return b.Labels()
	}
	sign := func(x int) int { return max(-1, min(1, x)) }
	for range 5000 {
		x, y := rnd(), rnd()
		if got, want := sign(CompareLabels(LabelsToProto(x), LabelsToProto(y))), sign(labels.Compare(x, y)); got != want {
			t.Fatalf("CompareLabels(%s, %s) = %d, labels.Compare = %d", x, y, got, want)
		}
	}
}

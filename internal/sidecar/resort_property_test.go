package sidecar

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Label names sort as: __name__ < a < b < cluster < d < replica < zone, so external labels
// drawn from them fall before, between and after the series' own labels.
var (
	propNames     = []string{"__name__", "a", "b", "cluster", "d", "replica", "zone"}
	propValues    = []string{"0", "1", "2", "x"}
	propExtValues = []string{"0", "e", "x"}
)

// resortCase is one generated sidecar situation.
type resortCase struct {
	ext            labels.Labels
	withoutReplica []string
	stored         []labels.Labels // as in the TSDB, sorted by labels.Compare
}

func (c resortCase) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "ext %s, without_replica_labels %v, stored series in order:", c.ext, c.withoutReplica)
	for _, s := range c.stored {
		sb.WriteString("\n  " + s.String())
	}
	return sb.String()
}

// genResortCase draws external labels, without-replica names (external or not) and stored
// series. With clash=false no stored series has a label named like an external label.
func genResortCase(rng *rand.Rand, clash bool) resortCase {
	var c resortCase
	eb := labels.NewScratchBuilder(3)
	for _, i := range rng.Perm(len(propNames))[:1+rng.IntN(3)] {
		eb.Add(propNames[i], propExtValues[rng.IntN(len(propExtValues))])
	}
	eb.Sort()
	c.ext = eb.Labels()
	for _, i := range rng.Perm(len(propNames))[:rng.IntN(4)] {
		c.withoutReplica = append(c.withoutReplica, propNames[i])
	}
	var own []string
	for _, n := range propNames {
		if clash || !c.ext.Has(n) {
			own = append(own, n)
		}
	}
	if len(own) == 0 {
		return c
	}
	seen := map[string]bool{}
	for range 1 + rng.IntN(15) {
		b := labels.NewScratchBuilder(len(own))
		switch p := rng.IntN(8); {
		case p < 2 && len(c.stored) > 0: // strict prefix of an earlier series
			prev := c.stored[rng.IntN(len(c.stored))]
			k := rng.IntN(prev.Len())
			prev.Range(func(l labels.Label) {
				if k > 0 {
					b.Add(l.Name, l.Value)
				}
				k--
			})
		case p == 2 && len(c.stored) > 0: // an earlier series extended (it is a prefix of this one)
			prev := c.stored[rng.IntN(len(c.stored))]
			last := ""
			prev.Range(func(l labels.Label) { b.Add(l.Name, l.Value); last = l.Name })
			for _, n := range own {
				if n > last && rng.IntN(2) == 0 {
					b.Add(n, propValues[rng.IntN(len(propValues))])
				}
			}
		default:
			for _, n := range own {
				if rng.IntN(2) == 0 {
					b.Add(n, propValues[rng.IntN(len(propValues))])
				}
			}
		}
		b.Sort()
		ls := b.Labels()
		if ls.IsEmpty() || seen[ls.String()] {
			continue
		}
		seen[ls.String()] = true
		c.stored = append(c.stored, ls)
	}
	slices.SortFunc(c.stored, labels.Compare)
	return c
}

// finalLabels is what the StoreAPI contract asks for, computed from the stored labels:
// labels named like external labels replaced by the external ones, stripped ones dropped.
func finalLabels(c resortCase, stored labels.Labels) (labels.Labels, int) {
	_, stripped := storeapi.StripSet(c.ext, c.withoutReplica)
	b := labels.NewBuilder(stored)
	c.ext.Range(func(l labels.Label) {
		if _, drop := stripped[l.Name]; drop {
			b.Del(l.Name)
		} else {
			b.Set(l.Name, l.Value)
		}
	})
	final := b.Labels()
	bound, i := 0, 0
	final.Range(func(l labels.Label) {
		i++
		if !c.ext.Has(l.Name) {
			bound = i
		}
	})
	return final, bound
}

// checkResortCase drives the real converter and Resorter over the case and returns a
// description of the first violated property, or "".
func checkResortCase(c resortCase) string {
	_, stripped := storeapi.StripSet(c.ext, c.withoutReplica)
	conv := newConverter(c.ext, stripped, false)
	extPB := toPromLabels(c.ext)

	var out []*storepb.Series
	r := storeapi.NewResorter(0, func(s *storepb.Series) error { out = append(out, s); return nil })
	var want []string
	for _, st := range c.stored {
		// What Prometheus' remote read sends: external labels merged in, the series' own
		// label winning on a name clash.
		observed := promMergeLabels(toPromLabels(st), extPB)
		s, bound := conv.convert(&promclient.RawSeries{Labels: observed})
		final, wantBound := finalLabels(c, st)
		if got := storeapi.LabelsFromProto(s.Labels); !labels.Equal(got, final) {
			return fmt.Sprintf("converter turned stored %s (observed %v) into %s, want %s", st, observed, got, final)
		}
		for i := 1; i < len(s.Labels); i++ {
			if s.Labels[i-1].Name >= s.Labels[i].Name {
				return fmt.Sprintf("converter output %v is not sorted by name", s.Labels)
			}
		}
		if bound != wantBound {
			return fmt.Sprintf("bound of %s is %d, want %d", final, bound, wantBound)
		}
		want = append(want, final.String())
		if err := r.Push(s, bound); err != nil {
			return fmt.Sprintf("Push: %v", err)
		}
	}
	if err := r.Flush(); err != nil {
		return fmt.Sprintf("Flush: %v", err)
	}
	got := make([]string, len(out))
	for i, s := range out {
		got[i] = storeapi.LabelsFromProto(s.Labels).String()
	}
	for i := 1; i < len(out); i++ {
		if storeapi.CompareLabels(out[i-1].Labels, out[i].Labels) > 0 {
			return fmt.Sprintf("output not sorted at position %d:\n  %s", i, strings.Join(got, "\n  "))
		}
	}
	slices.Sort(want) // string order only to compare the multisets
	gotSorted := slices.Clone(got)
	slices.Sort(gotSorted)
	if !slices.Equal(gotSorted, want) {
		return fmt.Sprintf("output is not a permutation of the input:\n got  %v\n want %v", gotSorted, want)
	}
	return ""
}

func runResortProperty(t *testing.T, clash bool, seeds []uint64, perSeed int) {
	t.Helper()
	for _, seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		for i := range perSeed {
			c := genResortCase(rng, clash)
			if msg := checkResortCase(c); msg != "" {
				t.Fatalf("seed %d case %d: %s\ncase: %s", seed, i, msg, c)
			}
		}
	}
}

// TestResortPropertyNoClash: random external labels (before, between and after the
// series' labels), random without_replica_labels (external or not), series that are
// strict prefixes of others; no series label shares a name with an external label.
func TestResortPropertyNoClash(t *testing.T) {
	runResortProperty(t, false, []uint64{1, 2, 3, 4}, 2500)
}

// runStoreResortProperty runs generated cases through the whole Series path: gRPC client,
// Store, fake Prometheus (remote read sorted by stored labels, series labels winning over
// external ones). Every stored series gets k="x" so that one non-external matcher selects
// all of them, and a sample whose value identifies it, so each output series can be
// checked against its own expected final labels.
func runStoreResortProperty(t *testing.T, clash bool, seed uint64, n int) {
	t.Helper()
	fp := newFakeProm(t, labels.FromStrings("placeholder", "1"))
	env := startStore(t, fp, Limits{}, true)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range n {
		c := genResortCase(rng, clash)
		if len(c.stored) == 0 {
			continue
		}
		series := make([]fakeSeries, len(c.stored))
		for j, st := range c.stored {
			b := labels.NewBuilder(st)
			b.Set("k", "x")
			c.stored[j] = b.Labels()
			series[j] = fakeSeries{lset: c.stored[j], samples: []sample{{T: 1000, V: float64(j)}}}
		}
		fp.mu.Lock()
		fp.ext = c.ext
		fp.mu.Unlock()
		fp.setSeries(series)
		if err := env.prom.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		req := allTime(eq("k", "x"))
		req.WithoutReplicaLabels = c.withoutReplica
		got, err := env.series(t, req)
		if err != nil {
			t.Fatalf("seed %d case %d: Series: %v\ncase: %s", seed, i, err, c)
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d case %d: %s\noutput:\n  %s\ncase: %s", seed, i, fmt.Sprintf(format, args...), strings.Join(labelStrings(got), "\n  "), c)
		}
		// Stored series whose remote-read labels are identical arrive as consecutive frames
		// with equal labels, which the client joins like a split series; their final labels
		// are equal too. So check sample by sample: each stored series' sample comes back
		// exactly once, under that series' final labels.
		seen := make([]bool, len(c.stored))
		for k, s := range got {
			if k > 0 && storeapi.CompareLabels(got[k-1].Labels, s.Labels) > 0 {
				fail("output not sorted at position %d", k)
			}
			smps, err := storeapi.FloatSamples(s, math.MinInt64, math.MaxInt64)
			if err != nil || len(smps) == 0 {
				fail("series %d: samples %v, %v", k, smps, err)
			}
			for _, smp := range smps {
				j := int(smp.V)
				if seen[j] {
					fail("stored series %d returned twice", j)
				}
				seen[j] = true
				if want, _ := finalLabels(c, c.stored[j]); !labels.Equal(storeapi.LabelsFromProto(s.Labels), want) {
					fail("stored %s came back as %s, want %s", c.stored[j], storeapi.LabelsFromProto(s.Labels), want)
				}
			}
		}
		for j, ok := range seen {
			if !ok {
				fail("stored series %s missing", c.stored[j])
			}
		}
	}
}

// TestSeriesResortPropertyNoClash: the property through the Store, no label clashes.
func TestSeriesResortPropertyNoClash(t *testing.T) {
	runStoreResortProperty(t, false, 11, 1000)
}

// TestSeriesResortPropertyClash: stored series may carry labels named like external labels
// (e.g. a scraped "cluster" label), which the contract says the external label overrides.
func TestSeriesResortPropertyClash(t *testing.T) {
	runStoreResortProperty(t, true, 12, 1500)
}

// TestResortHeldBackThroughConverter: stored {a=1} < {a=1,b=x}; with the external label
// c=e the final order flips, and the real converter's bounds make the Resorter hold the
// first series back.
func TestResortHeldBackThroughConverter(t *testing.T) {
	ext := labels.FromStrings("c", "e")
	conv := newConverter(ext, nil, false)
	var out []string
	r := storeapi.NewResorter(0, func(s *storepb.Series) error {
		out = append(out, storeapi.LabelsFromProto(s.Labels).String())
		return nil
	})
	for _, st := range []labels.Labels{labels.FromStrings("a", "1"), labels.FromStrings("a", "1", "b", "x")} {
		s, bound := conv.convert(&promclient.RawSeries{Labels: promMergeLabels(toPromLabels(st), toPromLabels(ext))})
		if err := r.Push(s, bound); err != nil {
			t.Fatal(err)
		}
	}
	if len(out) != 0 || r.Held() != 2 {
		t.Fatalf("sent %v with %d held; want both held", out, r.Held())
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []string{`{a="1", b="x", c="e"}`, `{a="1", c="e"}`}
	if !slices.Equal(out, want) {
		t.Fatalf("order %v, want %v", out, want)
	}
}

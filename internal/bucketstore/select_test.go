package bucketstore

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vigilhq/vigil/internal/block"
)

const (
	res5m = block.Resolution5m
	res1h = block.Resolution1h
)

// fakeBlock is a loaded block with only the meta fields block selection reads.
func fakeBlock(n int, res, mint, maxt int64) *loadedBlock {
	id := ulid.MustNew(uint64(n+1), nil)
	m := &meta{Meta: &block.Meta{
		BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: mint, MaxTime: maxt},
		Thanos:    block.ThanosMeta{Downsample: block.ThanosDownsample{Resolution: res}},
	}}
	return &loadedBlock{meta: m, id: id}
}

// describe names the selected blocks as res@[min,max), by min time and, for equal min
// times (their order is not defined), coarsest first.
func describe(bs []*loadedBlock) string {
	bs = slices.Clone(bs)
	slices.SortStableFunc(bs, func(a, b *loadedBlock) int {
		if c := compareInt64(a.meta.MinTime, b.meta.MinTime); c != 0 {
			return c
		}
		return compareInt64(b.meta.Thanos.Downsample.Resolution, a.meta.Thanos.Downsample.Resolution)
	})
	var s []string
	for _, b := range bs {
		r := map[int64]string{0: "raw", res5m: "5m", res1h: "1h"}[b.meta.Thanos.Downsample.Resolution]
		s = append(s, fmt.Sprintf("%s@[%d,%d)", r, b.meta.MinTime, b.meta.MaxTime))
	}
	return strings.Join(s, " ")
}

// sortedByMin mimics blockSet: blocks sorted by min time.
func sortedByMin(bs ...*loadedBlock) []*loadedBlock {
	slices.SortStableFunc(bs, func(a, b *loadedBlock) int { return compareInt64(a.meta.MinTime, b.meta.MinTime) })
	return bs
}

func TestSelectBlocksByResolution(t *testing.T) {
	var (
		raw1 = fakeBlock(1, 0, 0, 100)
		raw2 = fakeBlock(2, 0, 100, 200)
		raw3 = fakeBlock(3, 0, 200, 300)
		m5a  = fakeBlock(4, res5m, 0, 200)
		h1a  = fakeBlock(5, res1h, 0, 100)
		all  = sortedByMin(raw1, raw2, raw3, m5a, h1a)
	)
	for _, tc := range []struct {
		name       string
		blocks     []*loadedBlock
		mint, maxt int64
		maxRes     int64
		want       string
	}{
		{"max resolution 0: raw only", all, 0, 299, 0,
			"raw@[0,100) raw@[100,200) raw@[200,300)"},
		{"5m covers [0,200), raw fills the rest", all, 0, 299, res5m,
			"5m@[0,200) raw@[200,300)"},
		{"1h, then 5m, then raw fill the gaps", all, 0, 299, res1h,
			"1h@[0,100) 5m@[0,200) raw@[200,300)"},
		{"coarser than any block: still the coarsest available", all, 0, 299, 24 * res1h,
			"1h@[0,100) 5m@[0,200) raw@[200,300)"},
		{"between resolutions: the coarsest not above it", all, 0, 299, res1h - 1,
			"5m@[0,200) raw@[200,300)"},
		{"range inside one coarse block", all, 10, 20, res1h, "1h@[0,100)"},
		{"no finer blocks: only what exists", sortedByMin(h1a), 0, 299, res1h, "1h@[0,100)"},
		{"no raw blocks and max resolution 0: nothing", sortedByMin(m5a, h1a), 0, 299, 0, ""},
		{"mint after maxt: nothing", all, 200, 100, res1h, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(selectBlocks(tc.blocks, tc.mint, tc.maxt, tc.maxRes)); got != tc.want {
				t.Fatalf("selected %q\nwant     %q", got, tc.want)
			}
		})
	}
}

func TestSelectBlocksHalfOpenRanges(t *testing.T) {
	a := fakeBlock(1, 0, 0, 100)   // holds [0, 99]
	b := fakeBlock(2, 0, 100, 200) // holds [100, 199]
	bs := sortedByMin(a, b)
	for _, tc := range []struct {
		mint, maxt int64
		want       string
	}{
		{0, 99, "raw@[0,100)"},
		{99, 99, "raw@[0,100)"},
		{100, 100, "raw@[100,200)"}, // block a's max time is exclusive
		{99, 100, "raw@[0,100) raw@[100,200)"},
		{199, 1000, "raw@[100,200)"},
		{200, 1000, ""},
		{-50, -1, ""},
	} {
		if got := describe(selectBlocks(bs, tc.mint, tc.maxt, 0)); got != tc.want {
			t.Errorf("[%d, %d]: selected %q, want %q", tc.mint, tc.maxt, got, tc.want)
		}
	}
}

func TestSelectBlocksFillsGapsInsideAndAtBothEnds(t *testing.T) {
	// 1h blocks with holes; 5m blocks fill some, raw the rest.
	bs := sortedByMin(
		fakeBlock(1, res1h, 100, 200),
		fakeBlock(2, res1h, 300, 400),
		fakeBlock(3, res5m, 0, 100),
		fakeBlock(4, res5m, 200, 250),
		fakeBlock(5, 0, 250, 300),
		fakeBlock(6, 0, 400, 500),
		fakeBlock(7, 0, 100, 200), // covered by 1h: not selected
	)
	got := describe(selectBlocks(bs, 0, 499, res1h))
	want := "5m@[0,100) 1h@[100,200) 5m@[200,250) raw@[250,300) 1h@[300,400) raw@[400,500)"
	if got != want {
		t.Fatalf("selected %q\nwant     %q", got, want)
	}
}

func TestBlocksForWithoutResolutions(t *testing.T) {
	if got := blocksFor([]*loadedBlock{fakeBlock(1, 0, 0, 100)}, 0, 100, nil); got != nil {
		t.Fatalf("no resolutions: selected %s", describe(got))
	}
}

// A finer block that spans several gaps of a coarser resolution must still be read once:
// reading it twice sends its chunks twice in the merged series.
func TestSelectBlocksSelectsEachBlockOnce(t *testing.T) {
	raw := fakeBlock(1, 0, 0, 300)
	bs := sortedByMin(raw, fakeBlock(2, res1h, 100, 150), fakeBlock(3, res1h, 200, 250))
	got := selectBlocks(bs, 0, 299, res1h)
	n := 0
	for _, b := range got {
		if b == raw {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("raw block selected %d times: %s", n, describe(got))
	}
}

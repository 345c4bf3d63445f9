package downsample

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

func sliceIt(tb testing.TB, pts ...Sample) chunkenc.Iterator {
	return xorChunk(tb, pts...).Iterator(nil)
}

func equalSamples(a, b []Sample) bool {
	return slices.EqualFunc(a, b, func(x, y Sample) bool { return x.T == y.T && approx(x.F, y.F) })
}

func TestApplyCounterResetsIterator(t *testing.T) {
	nan := math.NaN()
	chunk1 := []Sample{{0, 10}, {299_999, 30}, {450_000, nan}, {599_999, 50}, {599_999, 5}}        // Reset inside: raw ends at 5.
	chunk2 := []Sample{{600_000, 8}, {899_999, 20}, {899_999, 20}}                                 // 5 → 8: +3, not a reset.
	chunk3 := []Sample{{800_000, 99}, {899_998, 99}, {900_000, 2}, {1_199_999, 4}, {1_199_999, 4}} // Overlap, then 20 → 2: reset.
	want := []Sample{{0, 10}, {299_999, 30}, {599_999, 50}, {600_000, 53}, {899_999, 65}, {900_000, 67}, {1_199_999, 69}}

	it := NewApplyCounterResetsIterator(sliceIt(t, chunk1...), sliceIt(t, chunk2...), sliceIt(t, chunk3...))
	if got := readAll(t, it); !equalSamples(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if it.Next() != chunkenc.ValNone {
		t.Fatal("Next after the end")
	}

	it = NewApplyCounterResetsIterator(sliceIt(t, chunk1...), sliceIt(t, chunk2...), sliceIt(t, chunk3...))
	if it.Seek(600_000) != chunkenc.ValFloat {
		t.Fatal("Seek(600000) found nothing")
	}
	if ts, v := it.At(); ts != 600_000 || v != 53 {
		t.Fatalf("after Seek(600000): %d %v", ts, v)
	}
	if it.Seek(0) != chunkenc.ValFloat || it.AtT() != 600_000 {
		t.Fatal("Seek backwards moved the iterator")
	}
	if it.Seek(1_000_000) != chunkenc.ValFloat || it.AtT() != 1_199_999 {
		t.Fatalf("Seek(1000000) at %d", it.AtT())
	}
	if it.Seek(2_000_000) != chunkenc.ValNone {
		t.Fatal("Seek past the end found a sample")
	}

	boom := errors.New("boom")
	it = NewApplyCounterResetsIterator(sliceIt(t, chunk1...), errIterator{boom})
	readAllErr := func() error {
		for it.Next() == chunkenc.ValFloat {
		}
		return it.Err()
	}
	if err := readAllErr(); !errors.Is(err, boom) {
		t.Fatalf("Err = %v, want boom", err)
	}
}

func TestAverageIterator(t *testing.T) {
	count := sliceIt(t, Sample{1, 2}, Sample{2, 4}, Sample{3, 5}, Sample{5, 1})
	sum := sliceIt(t, Sample{1, 3}, Sample{3, 10}, Sample{4, 7}, Sample{5, 2})
	want := []Sample{{1, 1.5}, {3, 2}, {5, 2}} // Timestamps in both only.
	if got := readAll(t, NewAverageIterator(count, sum)); !equalSamples(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	it := NewAverageIterator(sliceIt(t, Sample{1, 2}, Sample{3, 5}, Sample{5, 1}), sliceIt(t, Sample{1, 3}, Sample{3, 10}, Sample{5, 2}))
	if it.Seek(2) != chunkenc.ValFloat {
		t.Fatal("Seek(2) found nothing")
	}
	if ts, v := it.At(); ts != 3 || v != 2 {
		t.Fatalf("Seek(2) → %d %v", ts, v)
	}
	if it.Seek(3) != chunkenc.ValFloat || it.AtT() != 3 {
		t.Fatal("Seek to the current sample moved the iterator")
	}
	if it.Next() != chunkenc.ValFloat || it.AtT() != 5 || it.Next() != chunkenc.ValNone || it.Err() != nil {
		t.Fatal("Next after Seek")
	}
	boom := errors.New("boom")
	it = NewAverageIterator(errIterator{boom}, sliceIt(t, Sample{1, 1}))
	if it.Next() != chunkenc.ValNone || !errors.Is(it.Err(), boom) {
		t.Fatalf("Err = %v", it.Err())
	}
}

func TestAggrsForFunc(t *testing.T) {
	for fn, want := range map[string][]AggrType{
		"min": {AggrMin}, "min_over_time": {AggrMin},
		"max": {AggrMax}, "max_over_time": {AggrMax},
		"count": {AggrCount}, "count_over_time": {AggrCount},
		"sum_over_time": {AggrSum},
		"rate":          {AggrCounter}, "increase": {AggrCounter}, "irate": {AggrCounter},
		"resets": {AggrCounter}, "xrate": {AggrCounter}, "xincrease": {AggrCounter},
		"sum": {AggrCount, AggrSum}, "avg_over_time": {AggrCount, AggrSum}, "": {AggrCount, AggrSum},
		"delta": {AggrCount, AggrSum}, "minute": {AggrCount, AggrSum}, "quantile_over_time": {AggrCount, AggrSum},
	} {
		if got := AggrsForFunc(fn); !slices.Equal(got, want) {
			t.Errorf("AggrsForFunc(%q) = %v, want %v", fn, got, want)
		}
	}
}

func TestNewSeriesIteratorForFunc(t *testing.T) {
	raw := genCounter(testMint, 24*hour)
	metas := DownsampleRaw(raw, 300_000)
	var chks []AggrChunk
	for _, m := range metas {
		chks = append(chks, m.Chunk.(AggrChunk))
	}
	concat := func(typ AggrType) []Sample {
		var out []Sample
		for _, m := range metas {
			out = append(out, get(t, m, typ)...)
		}
		return out
	}
	for fn, want := range map[string][]Sample{"max_over_time": concat(AggrMax), "min": concat(AggrMin), "count_over_time": concat(AggrCount), "sum_over_time": concat(AggrSum)} {
		it, err := NewSeriesIteratorForFunc(chks, fn)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, it); !equalSamples(got, want) {
			t.Fatalf("%s: %d samples, want %d", fn, len(got), len(want))
		}
	}
	it, err := NewSeriesIteratorForFunc(chks, "avg_over_time")
	if err != nil {
		t.Fatal(err)
	}
	avg := readAll(t, it)
	cnt, sum := concat(AggrCount), concat(AggrSum)
	if len(avg) != len(cnt) || avg[7].F != sum[7].F/cnt[7].F {
		t.Fatalf("average: %d samples; avg[7] %v, want %v", len(avg), avg[7], sum[7].F/cnt[7].F)
	}
	it, err = NewIteratorForFunc(chks[0], "rate")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, it); len(got) != len(get(t, metas[0], AggrCount))+1 {
		t.Fatalf("rate on one chunk: %d samples", len(got))
	}
	noSum := EncodeAggrChunk([5]chunkenc.Chunk{xorChunk(t, Sample{1, 1})})
	if _, err := NewIteratorForFunc(noSum, "sum_over_time"); !errors.Is(err, ErrAggrNotExist) {
		t.Fatalf("missing SUM: err = %v", err)
	}
}

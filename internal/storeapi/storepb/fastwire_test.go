package storepb

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func randString(rng *rand.Rand) string {
	alphabet := []string{"", "a", "__name__", "job", "é", "x\x00y", "cluster", "replica"}
	return alphabet[rng.IntN(len(alphabet))] + alphabet[rng.IntN(len(alphabet))]
}

func randChunk(rng *rand.Rand) *Chunk {
	if rng.IntN(3) == 0 {
		return nil
	}
	c := &Chunk{Type: Chunk_Encoding(rng.IntN(4) - 1), Hash: []uint64{0, 1, math.MaxUint64, rng.Uint64()}[rng.IntN(4)]}
	if n := rng.IntN(300); n > 0 {
		c.Data = make([]byte, n)
		for i := range c.Data {
			c.Data[i] = byte(rng.IntN(256))
		}
	}
	return c
}

func randSeries(rng *rand.Rand) *Series {
	s := &Series{}
	for range rng.IntN(6) {
		s.Labels = append(s.Labels, &Label{Name: randString(rng), Value: randString(rng)})
	}
	times := []int64{0, 1, -1, math.MinInt64, math.MaxInt64, 1_700_000_000_000}
	for range rng.IntN(6) {
		s.Chunks = append(s.Chunks, &AggrChunk{
			MinTime: times[rng.IntN(len(times))], MaxTime: times[rng.IntN(len(times))],
			Raw: randChunk(rng), Count: randChunk(rng), Sum: randChunk(rng), Min: randChunk(rng), Max: randChunk(rng), Counter: randChunk(rng),
		})
	}
	return s
}

func randResponse(rng *rand.Rand) *SeriesResponse {
	switch rng.IntN(4) {
	case 0:
		return &SeriesResponse{Result: &SeriesResponse_Series{Series: randSeries(rng)}}
	case 1:
		return &SeriesResponse{Result: &SeriesResponse_Warning{Warning: randString(rng)}}
	case 2:
		b := &SeriesBatch{}
		for range rng.IntN(5) {
			b.Series = append(b.Series, randSeries(rng))
		}
		return &SeriesResponse{Result: &SeriesResponse_Batch{Batch: b}}
	}
	return &SeriesResponse{}
}

// TestFastWireMatchesProtobuf: for random responses the fast encoder writes exactly
// proto.Marshal's bytes, and the fast decoder reads them into a message proto.Equal to
// what proto.Unmarshal reads.
func TestFastWireMatchesProtobuf(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 20000 {
		m := randResponse(rng)
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		size, ok := m.FastSize()
		if !ok {
			t.Fatalf("case %d: fast path declined %v", i, m)
		}
		got := m.AppendFast(nil)
		if size != len(got) || !bytes.Equal(got, want) {
			t.Fatalf("case %d: fast encoding (size %d) differs from protobuf's\n got %x\nwant %x\n%v", i, size, got, want, m)
		}
		var fast, slow SeriesResponse
		if !fast.UnmarshalFast(bytes.Clone(want)) {
			t.Fatalf("case %d: fast decoder declined protobuf's own encoding of %v", i, m)
		}
		if err := proto.Unmarshal(want, &slow); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&fast, &slow) {
			t.Fatalf("case %d: fast decode %v, protobuf %v", i, &fast, &slow)
		}
	}
}

// TestFastWireDeclines: what the fast path does not handle is left to protobuf-go, which
// then gives its own answer (an error for invalid UTF-8, a merge for repeated fields).
func TestFastWireDeclines(t *testing.T) {
	hints, err := anypb.New(&Series{})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*SeriesResponse{
		"hints":          {Result: &SeriesResponse_Hints{Hints: hints}},
		"invalid utf8":   {Result: &SeriesResponse_Series{Series: &Series{Labels: []*Label{{Name: "a", Value: "\xff"}}}}},
		"nil series":     {Result: &SeriesResponse_Series{}},
		"nil label":      {Result: &SeriesResponse_Series{Series: &Series{Labels: []*Label{nil}}}},
		"nil aggr chunk": {Result: &SeriesResponse_Batch{Batch: &SeriesBatch{Series: []*Series{{Chunks: []*AggrChunk{nil}}}}}},
	} {
		if _, ok := m.FastSize(); ok {
			t.Errorf("%s: fast encoder accepted it", name)
		}
	}
	// Decoding: a series field twice (protobuf merges them), an unknown field, a field of
	// the wrong wire type, invalid UTF-8, truncated input.
	one, _ := proto.Marshal(&SeriesResponse{Result: &SeriesResponse_Series{Series: &Series{Labels: []*Label{{Name: "a", Value: "1"}}}}})
	for name, b := range map[string][]byte{
		"series twice":  append(bytes.Clone(one), one...),
		"unknown field": append(bytes.Clone(one), 0x7a, 0x01, 0x00), // field 15, length 1
		"wire type":     {0x08, 0x01},
		"invalid utf8":  {0x12, 0x01, 0xff},
		"truncated":     one[:len(one)-1],
	} {
		var m SeriesResponse
		if m.UnmarshalFast(b) {
			t.Errorf("%s: fast decoder accepted %x as %v", name, b, &m)
		}
	}
}

// fuzzMaxInput bounds the inputs FuzzUnmarshalFast compares; longer ones return at once.
//
// Without it (and with seeds of up to 7 KB) the fuzzing engine stalled after a few
// thousand inputs (bench/README.md, "Fuzzing"). The engine minimizes every input that
// finds new coverage before fuzzing on, for up to -fuzzminimizetime (60 s). In a protobuf
// frame hardly a byte can be dropped without breaking an enclosing length prefix, so
// minimization runs to its last phase, which tries dropping every subrange: n²/2 runs,
// never done in 60 s for the 10-18 KB inputs that mutating the multi-KB seeds produced.
// Both workers spent whole minutes minimizing one input each, counting no execs. Up to
// 1 KiB, every field kind, 1- and 2-byte length prefixes and every way of declining are
// reachable, and minimizing took at most a second; long frames are left to
// TestFastWireMatchesProtobuf (random frames of up to tens of KB).
const fuzzMaxInput = 1 << 10

// fuzzSeeds are small frames of every kind for FuzzUnmarshalFast: random responses with
// their chunk data cut to a few bytes, a series with every chunk field set, and frames
// the fast path declines.
func fuzzSeeds(tb testing.TB) [][]byte {
	marshal := func(m proto.Message) []byte {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	chunk := func(t Chunk_Encoding) *Chunk { return &Chunk{Type: t, Data: []byte{1, 0x80}, Hash: 300} }
	full := &Series{
		Labels: []*Label{{Name: "__name__", Value: "up"}, {Name: "é", Value: "x\x00y"}},
		Chunks: []*AggrChunk{{
			MinTime: -1, MaxTime: 1_700_000_000_000,
			Raw: chunk(Chunk_XOR), Count: chunk(Chunk_HISTOGRAM), Sum: chunk(Chunk_FLOAT_HISTOGRAM),
			Min: chunk(Chunk_XOR), Max: chunk(Chunk_XOR), Counter: &Chunk{},
		}},
	}
	one := marshal(&SeriesResponse{Result: &SeriesResponse_Series{Series: full}})
	seeds := [][]byte{
		one,
		marshal(&SeriesResponse{Result: &SeriesResponse_Batch{Batch: &SeriesBatch{Series: []*Series{full, {}}}}}),
		marshal(&SeriesResponse{Result: &SeriesResponse_Warning{Warning: "w"}}),
		append(bytes.Clone(one), one...),        // a repeated series: protobuf merges
		append(bytes.Clone(one), 0x7a, 0x01, 0), // an unknown field
		{0x12, 0x01, 0xff},                      // invalid UTF-8
	}
	seen := map[string]bool{"": true}
	seeds = append(seeds, nil)
	rng := rand.New(rand.NewPCG(1, 1))
	for len(seeds) < 24 {
		m := randResponse(rng)
		var series []*Series
		switch r := m.Result.(type) {
		case *SeriesResponse_Series:
			series = []*Series{r.Series}
		case *SeriesResponse_Batch:
			series = r.Batch.Series
		}
		for _, s := range series {
			for _, a := range s.Chunks {
				for _, c := range []*Chunk{a.Raw, a.Count, a.Sum, a.Min, a.Max, a.Counter} {
					if c != nil && len(c.Data) > 3 {
						c.Data = c.Data[:3]
					}
				}
			}
		}
		if b := marshal(m); len(b) <= 256 && !seen[string(b)] {
			seen[string(b)] = true
			seeds = append(seeds, b)
		}
	}
	return seeds
}

// FuzzUnmarshalFast: on any input the fast decoder either declines or agrees with
// protobuf-go, and never panics.
func FuzzUnmarshalFast(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxInput {
			return
		}
		var fast SeriesResponse
		if !fast.UnmarshalFast(bytes.Clone(b)) {
			return
		}
		var slow SeriesResponse
		if err := proto.Unmarshal(b, &slow); err != nil {
			t.Fatalf("fast decoder accepted %x, protobuf: %v", b, err)
		}
		if !proto.Equal(&fast, &slow) {
			t.Fatalf("%x: fast %v, protobuf %v", b, &fast, &slow)
		}
	})
}

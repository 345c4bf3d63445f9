package xorchunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// reference decodes b with Prometheus's iterator, which panics on some corrupt chunks
// (fewer than 2 bytes).
func reference(b []byte) (ts []int64, vs []float64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("chunkenc panicked: %v", p)
		}
	}()
	c, err := chunkenc.FromData(chunkenc.EncXOR, b)
	if err != nil {
		return nil, nil, err
	}
	it := c.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		ts, vs = append(ts, t), append(vs, v)
	}
	return ts, vs, it.Err()
}

func encode(t testing.TB, ts []int64, vs []float64) []byte {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ts {
		app.Append(0, ts[i], vs[i])
	}
	return c.Bytes()
}

func sameSamples(t *testing.T, what string, gotT []int64, gotV []float64, wantT []int64, wantV []float64) {
	t.Helper()
	if len(gotT) != len(wantT) || len(gotV) != len(wantV) {
		t.Fatalf("%s: %d/%d samples, want %d", what, len(gotT), len(gotV), len(wantT))
	}
	for i := range wantT {
		if gotT[i] != wantT[i] || math.Float64bits(gotV[i]) != math.Float64bits(wantV[i]) {
			t.Fatalf("%s: sample %d = (%d, %v), want (%d, %v)", what, i, gotT[i], gotV[i], wantT[i], wantV[i])
		}
	}
}

// series returns n samples shaped by kind, with timestamps from start.
func series(rng *rand.Rand, kind string, n int, start int64) ([]int64, []float64) {
	ts, vs := make([]int64, n), make([]float64, n)
	t, v := start, rng.Float64()*1000
	for i := range n {
		switch kind {
		case "regular counter":
			t += 15000
			v += float64(rng.IntN(100))
		case "jittered gauge":
			t += 15000 + rng.Int64N(200) - 100
			v = rng.NormFloat64() * 1e6
		case "constant":
			t += 30000
		case "gaps and resets":
			t += []int64{1, 1000, 15000, 70000, 1 << 20, 1 << 40}[rng.IntN(6)]
			if rng.IntN(10) == 0 {
				v = 0
			} else {
				v += rng.Float64()
			}
		case "special values":
			t += 1 + rng.Int64N(100000)
			v = []float64{math.NaN(), math.Float64frombits(value.StaleNaN), math.Inf(1), math.Inf(-1), 0, -0.0, math.MaxFloat64,
				math.SmallestNonzeroFloat64, rng.Float64()}[rng.IntN(9)]
		case "negative times":
			t += 1 + rng.Int64N(5000)
			v = float64(rng.IntN(3))
		}
		ts[i], vs[i] = t, v
	}
	return ts, vs
}

func TestAppendMatchesChunkenc(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := []string{"regular counter", "jittered gauge", "constant", "gaps and resets", "special values", "negative times"}
	for _, kind := range kinds {
		for _, n := range []int{0, 1, 2, 3, 120, 1000} {
			start := int64(1_700_000_000_000)
			if kind == "negative times" {
				start = -1_000_000
			}
			ts, vs := series(rng, kind, n, start)
			b := encode(t, ts, vs)
			wantT, wantV, err := reference(b)
			if err != nil {
				t.Fatalf("%s, %d samples: reference: %v", kind, n, err)
			}
			// Appending to non-empty slices keeps what was there.
			gotT, gotV, err := Append([]int64{42}, []float64{4.2}, b)
			if err != nil {
				t.Fatalf("%s, %d samples: %v", kind, n, err)
			}
			sameSamples(t, kind, gotT[1:], gotV[1:], wantT, wantV)
			if gotT[0] != 42 || gotV[0] != 4.2 {
				t.Fatalf("%s: the slices' first elements were overwritten", kind)
			}
		}
	}
}

func TestAppendTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ts, vs := series(rng, "jittered gauge", 200, 0)
	b := encode(t, ts, vs)
	if _, _, err := Append(nil, nil, b[:1]); !errors.Is(err, ErrTruncated) {
		t.Errorf("1 byte: err = %v, want ErrTruncated", err)
	}
	for cut := 2; cut < len(b)-8; cut += 7 {
		gotT, gotV, err := Append(nil, nil, b[:cut])
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d bytes: err = %v, want ErrTruncated", cut, len(b), err)
		}
		// What was decoded before the end is right.
		sameSamples(t, "prefix", gotT, gotV, ts[:len(gotT)], vs[:len(gotV)])
	}
}

// FuzzAppend decodes arbitrary bytes (nothing may panic; where both decoders read every
// sample they must agree; chunkenc reads some truncated chunks as if zero bits followed,
// where Append reports ErrTruncated), and a valid chunk built from the same bytes taken
// as timestamp steps and values, which both must decode alike.
func FuzzAppend(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, kind := range []string{"regular counter", "jittered gauge", "gaps and resets", "special values"} {
		ts, vs := series(rng, kind, 30, 1_000_000)
		f.Add(encode(f, ts, vs))
	}
	f.Add([]byte{0, 3, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		gotT, gotV, err := Append(nil, nil, b)
		if len(gotT) != len(gotV) {
			t.Fatalf("%d timestamps, %d values", len(gotT), len(gotV))
		}
		wantT, wantV, rerr := reference(b)
		if err == nil && rerr == nil {
			sameSamples(t, "raw bytes", gotT, gotV, wantT, wantV)
		}

		// The same bytes as samples: 2 bytes of timestamp step (signed), 8 of value.
		var ts []int64
		var vs []float64
		tt := int64(1_700_000_000_000)
		for len(b) >= 10 && len(ts) < 1000 {
			tt += int64(int16(binary.BigEndian.Uint16(b))) + 1<<15 // steps in [0, 65535]
			if len(ts) > 0 && tt == ts[len(ts)-1] {
				tt++
			}
			ts, vs = append(ts, tt), append(vs, math.Float64frombits(binary.BigEndian.Uint64(b[2:])))
			b = b[10:]
		}
		chk := encode(t, ts, vs)
		if gotT, gotV, err = Append(nil, nil, chk); err != nil {
			t.Fatalf("valid chunk of %d samples: %v", len(ts), err)
		}
		sameSamples(t, "valid chunk", gotT, gotV, ts, vs)
	})
}

// BenchmarkDecode compares Append with chunkenc's iterator on 120-sample chunks: a
// counter scraped every 15 s with jitter and random increments, and a perfectly regular
// one (timestamps snapped to the interval, constant increments).
func BenchmarkDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	jts, jvs := series(rng, "regular counter", 120, 1_700_000_000_000)
	for i := range jts {
		jts[i] += rng.Int64N(20)
	}
	rts, rvs := make([]int64, 120), make([]float64, 120)
	for i := range rts {
		rts[i], rvs[i] = 1_700_000_000_000+int64(i)*15000, float64(i)*1500
	}
	for _, c := range []struct {
		name string
		chk  []byte
	}{{"jittered", encode(b, jts, jvs)}, {"regular", encode(b, rts, rvs)}} {
		b.Run(c.name+"/xorchunk.Append", func(b *testing.B) {
			b.ReportAllocs()
			var bt []int64
			var bv []float64
			for b.Loop() {
				var err error
				if bt, bv, err = Append(bt[:0], bv[:0], c.chk); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*120), "ns/sample")
		})
		b.Run(c.name+"/chunkenc.Iterator", func(b *testing.B) {
			b.ReportAllocs()
			chk, err := chunkenc.FromData(chunkenc.EncXOR, c.chk)
			if err != nil {
				b.Fatal(err)
			}
			var it chunkenc.Iterator
			bt, bv := make([]int64, 0, 120), make([]float64, 0, 120)
			for b.Loop() {
				bt, bv = bt[:0], bv[:0]
				it = chk.Iterator(it)
				for it.Next() == chunkenc.ValFloat {
					t, v := it.At()
					bt, bv = append(bt, t), append(bv, v)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*120), "ns/sample")
		})
	}
}

package storeapi

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// benchBatch is one batch frame as a sidecar sends it to a querier over 24h: 64 series of
// 10 labels, each with 48 raw XOR chunks of 200 bytes.
func benchBatch() *storepb.SeriesResponse {
	b := &storepb.SeriesBatch{}
	for i := range 64 {
		s := &storepb.Series{}
		for j := range 10 {
			s.Labels = append(s.Labels, &storepb.Label{Name: fmt.Sprintf("label_%02d", j), Value: fmt.Sprintf("value-%d-%d", i, j)})
		}
		for k := range 48 {
			data := make([]byte, 200)
			data[0], data[1] = 0, 120
			s.Chunks = append(s.Chunks, &storepb.AggrChunk{MinTime: int64(k) * 1_800_000, MaxTime: int64(k)*1_800_000 + 1_785_000,
				Raw: &storepb.Chunk{Type: storepb.Chunk_XOR, Data: data, Hash: uint64(k) * 0x9e3779b97f4a7c15}})
		}
		b.Series = append(b.Series, s)
	}
	return &storepb.SeriesResponse{Result: &storepb.SeriesResponse_Batch{Batch: b}}
}

// TestCodecRoundTrip: the codec's frames are protobuf's, and it reads protobuf's frames.
func TestCodecRoundTrip(t *testing.T) {
	m := benchBatch()
	fast, err := Codec().Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(fast.Materialize()) != string(want) {
		t.Fatal("codec bytes differ from protobuf's")
	}
	var got storepb.SeriesResponse
	if err := Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, m) {
		t.Fatal("codec decoded a different message")
	}
	// Other messages go through protobuf.
	var lv storepb.LabelValuesResponse
	b, _ := proto.Marshal(&storepb.LabelValuesResponse{Values: []string{"a"}})
	if err := Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &lv); err != nil || len(lv.Values) != 1 {
		t.Fatalf("LabelValuesResponse: %v, %v", &lv, err)
	}
}

// BenchmarkSeriesResponseCodec: one 64-series batch frame, marshalled and unmarshalled
// by the StoreAPI codec and by gRPC's protobuf codec.
func BenchmarkSeriesResponseCodec(b *testing.B) {
	m := benchBatch()
	frame, _ := proto.Marshal(m)
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
	}{{"vigil", Codec()}, {"protobuf", encoding.GetCodecV2("proto")}} {
		b.Run("marshal/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				out, err := c.codec.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				out.Free()
			}
		})
		b.Run("unmarshal/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				var r storepb.SeriesResponse
				if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(frame)}, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFramePool: a returned buffer is reused for a frame that fits, a larger frame gets a
// new one, and the pool keeps at most framePoolBytes.
func TestFramePool(t *testing.T) {
	var p framePool
	b := p.Get(1000)
	if len(*b) != 1000 {
		t.Fatalf("len %d", len(*b))
	}
	p.Put(b)
	if c := p.Get(900); c != b || len(*c) != 900 {
		t.Fatal("a fitting buffer was not reused")
	}
	if c := p.Get(2000); c == b || len(*c) != 2000 {
		t.Fatal("a buffer too small was handed out")
	}
	for range 100 {
		b := make([]byte, 1<<20)
		p.Put(&b)
	}
	if p.bytes > framePoolBytes || len(p.free) == 0 {
		t.Fatalf("pool holds %d bytes in %d buffers, bound %d", p.bytes, len(p.free), framePoolBytes)
	}
}

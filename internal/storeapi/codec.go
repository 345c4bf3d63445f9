package storeapi

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// codec is gRPC's protobuf codec with a fast path for storepb.SeriesResponse (see
// storepb/fastwire.go): the same bytes on the wire, so any StoreAPI peer is served as
// before, written without protobuf's reflection and read without copying chunk data.
// Every other message, and any SeriesResponse the fast path declines, goes through
// gRPC's own protobuf codec.
type codec struct {
	proto encoding.CodecV2
}

// Codec returns the StoreAPI codec, for grpc.ForceServerCodecV2 and grpc.ForceCodecV2.
func Codec() encoding.CodecV2 {
	return codec{proto: encoding.GetCodecV2("proto")}
}

func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*storepb.SeriesResponse)
	if !ok {
		return c.proto.Marshal(v)
	}
	size, ok := m.FastSize()
	if !ok {
		return c.proto.Marshal(v)
	}
	if mem.IsBelowBufferPoolingThreshold(size) {
		return mem.BufferSlice{mem.SliceBuffer(m.AppendFast(make([]byte, 0, size)))}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	*buf = m.AppendFast((*buf)[:0])
	if len(*buf) != size {
		pool.Put(buf)
		return nil, fmt.Errorf("storeapi codec: encoded %d bytes of a %d-byte SeriesResponse", len(*buf), size)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal decodes a SeriesResponse into a buffer of its own, which the message's
// label strings and chunk data then alias: one copy of the frame instead of one per
// chunk, and it lives exactly as long as something refers to it.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*storepb.SeriesResponse)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	b := data.Materialize()
	if m.UnmarshalFast(b) {
		return nil
	}
	return proto.Unmarshal(b, m)
}

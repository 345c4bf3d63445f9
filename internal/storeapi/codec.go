package storeapi

import (
	"fmt"
	"sync"

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
	proto  encoding.CodecV2
	frames *framePool
}

// Codec returns the StoreAPI codec, for grpc.ForceServerCodecV2 and grpc.ForceCodecV2.
func Codec() encoding.CodecV2 {
	return codec{proto: encoding.GetCodecV2("proto"), frames: &framePool{}}
}

func (codec) Name() string { return "proto" }

// gogoMessage is a message that encodes itself: the remote-write messages of
// writepb, built on Prometheus' gogo-generated types, which protobuf-go cannot encode.
type gogoMessage interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if g, ok := v.(gogoMessage); ok {
		b, err := g.Marshal()
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
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
	buf := c.frames.Get(size)
	*buf = m.AppendFast((*buf)[:0])
	if len(*buf) != size {
		c.frames.Put(buf)
		return nil, fmt.Errorf("storeapi codec: encoded %d bytes of a %d-byte SeriesResponse", len(*buf), size)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, c.frames)}, nil
}

// framePool keeps the buffers of sent Series frames for the next frames. gRPC's default
// pool is a sync.Pool, which every garbage collection empties; a store gateway streaming
// chunks collects often, and then had to allocate, and zero, a fresh buffer of up to a
// megabyte for most frames (a sixth of its CPU). These buffers survive collections and
// are never zeroed, since every frame overwrites its whole buffer. At most
// framePoolBytes are kept.
type framePool struct {
	mu    sync.Mutex
	free  []*[]byte
	bytes int
}

const framePoolBytes = 64 << 20

// Get returns a buffer of length n; its contents are garbage.
func (p *framePool) Get(n int) *[]byte {
	p.mu.Lock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if b := p.free[i]; cap(*b) >= n {
			p.free = append(p.free[:i], p.free[i+1:]...)
			p.bytes -= cap(*b)
			p.mu.Unlock()
			*b = (*b)[:n]
			return b
		}
	}
	p.mu.Unlock()
	// Round up so that frames of similar sizes can share buffers.
	b := make([]byte, n, n+n/8)
	return &b
}

// Put keeps b for reuse unless the pool is full.
func (p *framePool) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bytes+cap(*b) > framePoolBytes {
		return
	}
	p.free = append(p.free, b)
	p.bytes += cap(*b)
}

// Unmarshal decodes a SeriesResponse into a buffer of its own, which the message's
// label strings and chunk data then alias: one copy of the frame instead of one per
// chunk, and it lives exactly as long as something refers to it.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if g, ok := v.(gogoMessage); ok {
		return g.Unmarshal(data.Materialize())
	}
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

// Package writepb holds thanos.WriteableStore, the gRPC service receivers use to forward
// remote-write data to each other, and its two messages. They are written by hand (see
// proto/writepb/rpc.proto for the wire format) around Prometheus' generated remote-write
// types, so that a request decoded from a client's remote-write body is forwarded without
// converting its series, and encoding costs what Prometheus' own code costs.
package writepb

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

// WriteRequest is thanos.WriteRequest.
type WriteRequest struct {
	Timeseries []prompb.TimeSeries
	Tenant     string
	// Replica is 1-based on a forwarded request; 0 means the request was not replicated yet.
	Replica int64
}

// Size returns the encoded size of m.
func (m *WriteRequest) Size() int {
	n := 0
	for i := range m.Timeseries {
		n += protowire.SizeTag(1) + protowire.SizeBytes(m.Timeseries[i].Size())
	}
	if m.Tenant != "" {
		n += protowire.SizeTag(2) + protowire.SizeBytes(len(m.Tenant))
	}
	if m.Replica != 0 {
		n += protowire.SizeTag(3) + protowire.SizeVarint(uint64(m.Replica))
	}
	return n
}

// Marshal encodes m.
func (m *WriteRequest) Marshal() ([]byte, error) {
	b := make([]byte, 0, m.Size())
	for i := range m.Timeseries {
		ts := &m.Timeseries[i]
		size := ts.Size()
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		start := len(b)
		b = b[:start+size]
		if _, err := ts.MarshalToSizedBuffer(b[start:]); err != nil {
			return nil, fmt.Errorf("encode time series %d: %w", i, err)
		}
	}
	if m.Tenant != "" {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, m.Tenant)
	}
	if m.Replica != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.Replica))
	}
	return b, nil
}

// Unmarshal decodes b into m, replacing its contents. Unknown fields are skipped. Label
// names and values alias b (see DecodeSeries): gRPC hands each message its own buffer,
// which then lives exactly as long as the labels do.
func (m *WriteRequest) Unmarshal(b []byte) error {
	*m = WriteRequest{Timeseries: m.Timeseries[:0]}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decode WriteRequest: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("decode WriteRequest time series: %w", protowire.ParseError(n))
			}
			m.Timeseries = growSeries(m.Timeseries)
			if err := decodeTimeSeries(v, &m.Timeseries[len(m.Timeseries)-1]); err != nil {
				return fmt.Errorf("decode WriteRequest time series %d: %w", len(m.Timeseries)-1, err)
			}
			b = b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return fmt.Errorf("decode WriteRequest tenant: %w", protowire.ParseError(n))
			}
			m.Tenant, b = v, b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("decode WriteRequest replica: %w", protowire.ParseError(n))
			}
			m.Replica, b = int64(v), b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("decode WriteRequest field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return nil
}

// WriteResponse is thanos.WriteResponse, an empty message.
type WriteResponse struct{}

// Size returns 0: the message has no fields.
func (*WriteResponse) Size() int { return 0 }

// Marshal encodes the empty message.
func (*WriteResponse) Marshal() ([]byte, error) { return nil, nil }

// Unmarshal accepts any well-formed message, skipping its fields.
func (*WriteResponse) Unmarshal(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decode WriteResponse: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return fmt.Errorf("decode WriteResponse: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// RemoteWriteMethod is the full gRPC method name of WriteableStore.RemoteWrite.
const RemoteWriteMethod = "/thanos.WriteableStore/RemoteWrite"

// WriteableStoreServer is the server side of thanos.WriteableStore.
type WriteableStoreServer interface {
	RemoteWrite(context.Context, *WriteRequest) (*WriteResponse, error)
}

// RegisterWriteableStoreServer serves srv on s. The server must use a codec that
// understands these messages (storeapi.Codec does).
func RegisterWriteableStoreServer(s grpc.ServiceRegistrar, srv WriteableStoreServer) {
	s.RegisterService(&serviceDesc, srv)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: "thanos.WriteableStore",
	HandlerType: (*WriteableStoreServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "RemoteWrite",
		Handler:    remoteWriteHandler,
	}},
	Streams:  []grpc.StreamDesc{},
	Metadata: "writepb/rpc.proto",
}

func remoteWriteHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(WriteRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	call := func(ctx context.Context, req any) (any, error) {
		r, ok := req.(*WriteRequest)
		if !ok {
			return nil, errors.New("RemoteWrite: unexpected request type")
		}
		return srv.(WriteableStoreServer).RemoteWrite(ctx, r)
	}
	if interceptor == nil {
		return call(ctx, in)
	}
	return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: RemoteWriteMethod}, call)
}

// Client calls thanos.WriteableStore on a connection whose codec understands these
// messages (dial with storeapi.DialOptions).
type Client struct{ cc grpc.ClientConnInterface }

// NewClient returns a client over cc.
func NewClient(cc grpc.ClientConnInterface) Client { return Client{cc: cc} }

// RemoteWrite forwards req.
func (c Client) RemoteWrite(ctx context.Context, req *WriteRequest, opts ...grpc.CallOption) (*WriteResponse, error) {
	out := new(WriteResponse)
	if err := c.cc.Invoke(ctx, RemoteWriteMethod, req, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

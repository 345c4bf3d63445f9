package writepb

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigilhq/vigil/internal/grpcsnappy"
	"github.com/vigilhq/vigil/internal/storeapi"
)

func TestRoundTrip(t *testing.T) {
	for name, req := range map[string]*WriteRequest{
		"full":             sampleRequest(),
		"empty":            {},
		"tenant only":      {Tenant: "t"},
		"negative replica": {Replica: -3, Tenant: "x"},
		"big replica":      {Replica: 1 << 62},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := req.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != req.Size() {
				t.Errorf("Marshal wrote %d bytes, Size says %d", len(b), req.Size())
			}
			if ref := refEncode(t, req); !bytes.Equal(b, ref) {
				t.Errorf("encoding differs from protobuf-go's:\n got %x\nwant %x", b, ref)
			}
			var got WriteRequest
			got.Timeseries = []prompb.TimeSeries{{}} // Unmarshal replaces, not appends
			got.Tenant = "stale"
			if err := got.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			if got.Tenant != req.Tenant || got.Replica != req.Replica {
				t.Errorf("tenant/replica %q/%d, want %q/%d", got.Tenant, got.Replica, req.Tenant, req.Replica)
			}
			sameSeries(t, got.Timeseries, req.Timeseries)
		})
	}
	// The decoded series are the same values, histograms and exemplars included.
	req := sampleRequest()
	b, _ := req.Marshal()
	var got WriteRequest
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	h := got.Timeseries[1].Histograms
	if len(h) != 2 || h[0].IsFloatHistogram() || !h[1].IsFloatHistogram() ||
		h[0].ToIntHistogram().String() != req.Timeseries[1].Histograms[0].ToIntHistogram().String() ||
		h[1].ToFloatHistogram().String() != req.Timeseries[1].Histograms[1].ToFloatHistogram().String() {
		t.Errorf("histograms changed: %v", h)
	}
	if ex := got.Timeseries[0].Exemplars; len(ex) != 1 || ex[0].Labels[0].Value != "abc" || ex[0].Value != 2.5 || ex[0].Timestamp != 2000 {
		t.Errorf("exemplars changed: %v", ex)
	}
}

// TestDecodesPrometheusWriteRequest: a Prometheus remote-write body (prometheus.WriteRequest,
// with its metadata in field 3) decodes as a thanos.WriteRequest with the same series.
func TestDecodesPrometheusWriteRequest(t *testing.T) {
	prom := prompb.WriteRequest{
		Timeseries: sampleRequest().Timeseries,
		Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "h", Unit: "u"}},
	}
	b, err := prom.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got WriteRequest
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if got.Tenant != "" || got.Replica != 0 {
		t.Errorf("tenant/replica %q/%d from a Prometheus body", got.Tenant, got.Replica)
	}
	sameSeries(t, got.Timeseries, prom.Timeseries)
	// And the series part of a thanos.WriteRequest is a valid prometheus.WriteRequest.
	b, _ = (&WriteRequest{Timeseries: prom.Timeseries, Tenant: "x"}).Marshal()
	var back prompb.WriteRequest
	if err := back.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	sameSeries(t, back.Timeseries, prom.Timeseries)
}

func TestUnknownFieldsSkipped(t *testing.T) {
	req := sampleRequest()
	series := marshalSeries(t, req.Timeseries)
	unknown := func(b []byte, num protowire.Number) []byte {
		b = protowire.AppendTag(b, num, protowire.VarintType)
		b = protowire.AppendVarint(b, 300)
		b = protowire.AppendTag(b, num+1, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, 7)
		b = protowire.AppendTag(b, num+2, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, 7)
		b = protowire.AppendTag(b, num+3, protowire.BytesType)
		b = protowire.AppendBytes(b, []byte("ignored"))
		b = protowire.AppendTag(b, num+4, protowire.StartGroupType)
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
		return protowire.AppendTag(b, num+4, protowire.EndGroupType)
	}
	var b []byte
	b = unknown(b, 10)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, "first tenant")
	for i, s := range series {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, s)
		b = unknown(b, protowire.Number(100+i*10))
	}
	// Known numbers with another wire type are unknown fields too, as in protobuf-go.
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 5)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("not a varint"))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(req.Replica))
	b = protowire.AppendTag(b, 2, protowire.BytesType) // the last tenant wins
	b = protowire.AppendString(b, req.Tenant)
	b = unknown(b, protowire.MaxValidNumber-5)

	var got WriteRequest
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if got.Tenant != req.Tenant || got.Replica != req.Replica {
		t.Errorf("tenant/replica %q/%d, want %q/%d", got.Tenant, got.Replica, req.Tenant, req.Replica)
	}
	sameSeries(t, got.Timeseries, req.Timeseries)
	ref, err := refDecode(b)
	if err != nil || ref.tenant != got.Tenant || ref.replica != got.Replica || len(ref.series) != len(got.Timeseries) {
		t.Errorf("protobuf-go decodes %+v, %v", ref, err)
	}
	if err := new(WriteResponse).Unmarshal(unknown(nil, 1)); err != nil {
		t.Errorf("WriteResponse with unknown fields: %v", err)
	}
}

func TestTruncatedInput(t *testing.T) {
	b, err := sampleRequest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Field boundaries: a cut there is a shorter valid message.
	boundary := map[int]bool{0: true}
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		rest = rest[n+m:]
		boundary[len(b)-len(rest)] = true
	}
	for cut := range len(b) {
		var m WriteRequest
		err := m.Unmarshal(b[:cut])
		if boundary[cut] && err != nil {
			t.Errorf("cut at field boundary %d: %v", cut, err)
		}
		if !boundary[cut] && err == nil {
			t.Errorf("truncated at %d of %d bytes: no error", cut, len(b))
		}
		if err := new(WriteResponse).Unmarshal(b[:cut]); (err == nil) != boundary[cut] {
			t.Errorf("WriteResponse truncated at %d: err %v", cut, err)
		}
	}
	for name, in := range map[string][]byte{
		"bad varint tag":          {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"field number 0":          {0x00, 0x01},
		"length over the end":     {0x0a, 0x10, 0x01},
		"bad series":              {0x0a, 0x02, 0x0a, 0x05},
		"replica varint cut":      {0x18, 0x80},
		"end group without start": {0x0c},
	} {
		if err := new(WriteRequest).Unmarshal(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// recordingServer keeps the requests it is sent and answers with err.
type recordingServer struct {
	mu  sync.Mutex
	got []*WriteRequest
	err error
}

func (s *recordingServer) RemoteWrite(_ context.Context, r *WriteRequest) (*WriteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
	return &WriteResponse{}, s.err
}

func (s *recordingServer) reset(err error) []*WriteRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got, s.err = nil, err
	return got
}

func TestGRPCRemoteWrite(t *testing.T) {
	grpcsnappy.Register()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var methods []string
	srv := grpc.NewServer(grpc.ForceServerCodecV2(storeapi.Codec()),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if _, ok := req.(*WriteRequest); !ok {
				t.Errorf("interceptor got %T", req)
			}
			mu.Lock()
			methods = append(methods, info.FullMethod)
			mu.Unlock()
			return h(ctx, req)
		}))
	rec := &recordingServer{}
	RegisterWriteableStoreServer(srv, rec)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	for _, compression := range []string{"", grpcsnappy.Name} {
		cc, err := grpc.NewClient(ln.Addr().String(), storeapi.DialOptions(nil, compression)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		rec.reset(nil)
		req := sampleRequest()
		resp, err := NewClient(cc).RemoteWrite(context.Background(), req)
		if err != nil || resp == nil {
			t.Fatalf("compression %q: RemoteWrite = %v, %v", compression, resp, err)
		}
		got := rec.reset(status.Error(codes.AlreadyExists, "conflict"))
		if len(got) != 1 || got[0].Tenant != req.Tenant || got[0].Replica != req.Replica {
			t.Fatalf("compression %q: server got %+v", compression, got)
		}
		sameSeries(t, got[0].Timeseries, req.Timeseries)

		if _, err := NewClient(cc).RemoteWrite(context.Background(), req); status.Code(err) != codes.AlreadyExists {
			t.Errorf("compression %q: error %v, want AlreadyExists", compression, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(methods) != 4 || methods[0] != RemoteWriteMethod || RemoteWriteMethod != "/thanos.WriteableStore/RemoteWrite" {
		t.Errorf("methods seen by the interceptor: %v", methods)
	}
}

// TestGRPCRequestsOutliveTheCall: decoded labels alias the message bytes; a request kept
// after its call (replicas still writing in the background) must keep its content
// while other calls are served.
func TestGRPCRequestsOutliveTheCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(storeapi.Codec()))
	rec := &recordingServer{}
	RegisterWriteableStoreServer(srv, rec)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), storeapi.DialOptions(nil, grpcsnappy.Name)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sent := map[string]*WriteRequest{}
	var wg sync.WaitGroup
	for i := range 30 {
		req := sampleRequest()
		req.Tenant = fmt.Sprintf("tenant-%02d", i)
		req.Timeseries[0].Labels[1].Value = strings.Repeat(fmt.Sprintf("job-%02d-", i), 20)
		sent[req.Tenant] = req
		wg.Go(func() {
			if _, err := NewClient(cc).RemoteWrite(context.Background(), req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := rec.reset(nil)
	if len(got) != len(sent) {
		t.Fatalf("server got %d requests, want %d", len(got), len(sent))
	}
	for _, g := range got {
		want, ok := sent[g.Tenant]
		if !ok {
			t.Fatalf("unexpected tenant %q", g.Tenant)
		}
		sameSeries(t, g.Timeseries, want.Timeseries)
	}
}

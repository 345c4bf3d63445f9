package writepb

import (
	"bytes"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// sampleRequest has float samples, an integer and a float native histogram and exemplars.
func sampleRequest() *WriteRequest {
	h := &histogram.Histogram{
		Count: 6, ZeroCount: 1, ZeroThreshold: 0.001, Sum: 18.4, Schema: 1,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}},
		PositiveBuckets: []int64{1, 1, 0},
		NegativeSpans:   []histogram.Span{{Offset: -2, Length: 1}},
		NegativeBuckets: []int64{2},
	}
	return &WriteRequest{
		Tenant:  "team-a",
		Replica: 2,
		Timeseries: []prompb.TimeSeries{
			{
				Labels:    []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: "api"}},
				Samples:   []prompb.Sample{{Value: 1, Timestamp: 1000}, {Value: 2.5, Timestamp: 2000}},
				Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 2.5, Timestamp: 2000}},
			},
			{
				Labels: []prompb.Label{{Name: "__name__", Value: "latency"}},
				Histograms: []prompb.Histogram{
					prompb.FromIntHistogram(1000, h),
					prompb.FromFloatHistogram(2000, h.ToFloat(nil)),
				},
			},
			{Labels: []prompb.Label{{Name: "__name__", Value: "ünïcödé"}, {Name: "empty_samples", Value: "yes"}}},
		},
	}
}

// marshalSeries is the canonical encoding of each series, for comparisons that ignore
// nil versus empty slices.
func marshalSeries(t testing.TB, ts []prompb.TimeSeries) [][]byte {
	t.Helper()
	out := make([][]byte, len(ts))
	for i := range ts {
		b, err := ts[i].Marshal()
		if err != nil {
			t.Fatalf("marshal series %d: %v", i, err)
		}
		out[i] = b
	}
	return out
}

func sameSeries(t testing.TB, got, want []prompb.TimeSeries) {
	t.Helper()
	g, w := marshalSeries(t, got), marshalSeries(t, want)
	if len(g) != len(w) {
		t.Fatalf("%d series, want %d", len(g), len(w))
	}
	for i := range g {
		if !bytes.Equal(g[i], w[i]) {
			t.Errorf("series %d differs:\n got %v\nwant %v", i, got[i], want[i])
		}
	}
}

// refDescriptor is thanos.WriteRequest for protobuf-go, with the series left as bytes
// and the tenant as bytes (gogo does not check UTF-8, so neither does the reference).
var refDescriptor = func() protoreflect.MessageDescriptor {
	rep, opt := descriptorpb.FieldDescriptorProto_LABEL_REPEATED, descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	tBytes, tInt := descriptorpb.FieldDescriptorProto_TYPE_BYTES, descriptorpb.FieldDescriptorProto_TYPE_INT64
	fd := &descriptorpb.FileDescriptorProto{
		Name: proto.String("writepb_ref.proto"), Package: proto.String("thanos"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("WriteRequest"),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("timeseries"), Number: proto.Int32(1), Label: &rep, Type: &tBytes, JsonName: proto.String("timeseries")},
				{Name: proto.String("tenant"), Number: proto.Int32(2), Label: &opt, Type: &tBytes, JsonName: proto.String("tenant")},
				{Name: proto.String("replica"), Number: proto.Int32(3), Label: &opt, Type: &tInt, JsonName: proto.String("replica")},
			},
		}},
	}
	f, err := protodesc.NewFile(fd, nil)
	if err != nil {
		panic(err)
	}
	return f.Messages().Get(0)
}()

// refMessage is the reference decoding of b: the raw series, tenant and replica.
type refMessage struct {
	series  [][]byte
	tenant  string
	replica int64
}

func refDecode(b []byte) (refMessage, error) {
	m := dynamicpb.NewMessage(refDescriptor)
	if err := proto.Unmarshal(b, m); err != nil {
		return refMessage{}, err
	}
	fs := refDescriptor.Fields()
	var r refMessage
	list := m.Get(fs.ByNumber(1)).List()
	for i := range list.Len() {
		r.series = append(r.series, list.Get(i).Bytes())
	}
	r.tenant = string(m.Get(fs.ByNumber(2)).Bytes())
	r.replica = m.Get(fs.ByNumber(3)).Int()
	return r, nil
}

// refEncode is protobuf-go's deterministic encoding of the same message.
func refEncode(t testing.TB, req *WriteRequest) []byte {
	t.Helper()
	return refEncodeRaw(t, marshalSeries(t, req.Timeseries), refMessage{tenant: req.Tenant, replica: req.Replica})
}

// refEncodeRaw is protobuf-go's encoding of encoded series with r's tenant and replica.
func refEncodeRaw(t testing.TB, series [][]byte, r refMessage) []byte {
	t.Helper()
	m := dynamicpb.NewMessage(refDescriptor)
	fs := refDescriptor.Fields()
	list := m.Mutable(fs.ByNumber(1)).List()
	for _, s := range series {
		list.Append(protoreflect.ValueOfBytes(s))
	}
	if r.tenant != "" {
		m.Set(fs.ByNumber(2), protoreflect.ValueOfBytes([]byte(r.tenant)))
	}
	if r.replica != 0 {
		m.Set(fs.ByNumber(3), protoreflect.ValueOfInt64(r.replica))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

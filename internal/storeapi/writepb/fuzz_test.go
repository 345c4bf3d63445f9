package writepb

import (
	"bytes"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// oversizedFieldNumber reports a top-level field number above protowire.MaxValidNumber:
// protobuf-go refuses it, while writepb, like the gogo code Thanos runs, skips it as an
// unknown field. That leniency is harmless and not a difference worth failing on.
func oversizedFieldNumber(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		if num > protowire.MaxValidNumber {
			return true
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
	}
	return false
}

// canonicalSeries is gogo's decoding of one series, encoded again without the unknown
// fields of the series, its labels and samples.
func canonicalSeries(b []byte) ([]byte, bool) {
	var ts prompb.TimeSeries
	if ts.Unmarshal(b) != nil {
		return nil, false
	}
	ts.XXX_unrecognized = nil
	for j := range ts.Labels {
		ts.Labels[j].XXX_unrecognized = nil
	}
	for j := range ts.Samples {
		ts.Samples[j].XXX_unrecognized = nil
	}
	enc, err := ts.Marshal()
	return enc, err == nil
}

// FuzzWritepbUnmarshal decodes arbitrary bytes and checks the result against protobuf-go's
// decoding of thanos.WriteRequest (series left as bytes): both accept the same framing,
// agree on tenant, replica and the series, and whatever decodes re-encodes to itself.
func FuzzWritepbUnmarshal(f *testing.F) {
	full, _ := sampleRequest().Marshal()
	prom, _ := (&prompb.WriteRequest{Timeseries: sampleRequest().Timeseries,
		Metadata: []prompb.MetricMetadata{{MetricFamilyName: "m", Help: "h"}}}).Marshal()
	for _, seed := range [][]byte{nil, full, prom, full[:len(full)/2], {0x10, 0x05, 0x18, 0x01}, {0x0c}, {0x0b, 0x0c}, {0x00}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got WriteRequest
		err := got.Unmarshal(b)
		ref, refErr := refDecode(b)
		if refErr != nil {
			if err == nil && !oversizedFieldNumber(b) {
				t.Fatalf("writepb accepts what protobuf-go refuses (%v): %+v", refErr, got)
			}
			return
		}
		// The framing is valid. Each series decodes as Prometheus' own (gogo) code
		// decodes it, less the unknown fields of series, labels and samples, which
		// writepb skips. writepb may refuse malformed unknown fields gogo skips loosely
		// (groups), and accept known fields of another wire type gogo refuses.
		canon := make([][]byte, len(ref.series))
		gogoOK := true
		for i, s := range ref.series {
			if canon[i], gogoOK = canonicalSeries(s); !gogoOK {
				break
			}
		}
		if err != nil {
			if !gogoOK {
				return
			}
			var again WriteRequest
			if e := again.Unmarshal(refEncodeRaw(t, canon, ref)); e != nil {
				t.Fatalf("gogo decodes every series, writepb refuses them (%v) even without unknown fields (%v)", err, e)
			}
			return
		}
		if got.Tenant != ref.tenant || got.Replica != ref.replica || len(got.Timeseries) != len(ref.series) {
			t.Fatalf("writepb %q/%d/%d series, protobuf-go %q/%d/%d series",
				got.Tenant, got.Replica, len(got.Timeseries), ref.tenant, ref.replica, len(ref.series))
		}
		if gogoOK {
			for i, g := range marshalSeries(t, got.Timeseries) {
				if !bytes.Equal(canon[i], g) {
					t.Fatalf("series %d decoded differently", i)
				}
			}
		}
		enc, err := got.Marshal()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if len(enc) != got.Size() {
			t.Fatalf("Size %d, encoded %d bytes", got.Size(), len(enc))
		}
		var again WriteRequest
		if err := again.Unmarshal(enc); err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		enc2, _ := again.Marshal()
		if !bytes.Equal(enc, enc2) {
			t.Fatal("re-encoding is not stable")
		}
	})
}

package writepb

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// The remote-write hot path decodes without allocating per label: label names and
// values are strings that alias the message bytes, and the slices of a former request
// are reused. Exemplars and histograms, rare and intricate, go through Prometheus' own
// decoder.

// DecodeSeries decodes the series of a prometheus.WriteRequest (field 1; the
// remote-write 1.0 body) into dst's storage. Label names and values alias b, which must
// not change while the series are in use; the series, label and sample slices of dst
// are reused. Metadata
// (field 3) and unknown fields are skipped; their content is not checked beyond the
// wire format.
func DecodeSeries(b []byte, dst []prompb.TimeSeries) ([]prompb.TimeSeries, error) {
	dst = dst[:0]
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return dst, fmt.Errorf("WriteRequest: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := consumeBytes(b)
			if n < 0 {
				return dst, fmt.Errorf("WriteRequest time series: %w", protowire.ParseError(n))
			}
			b = b[n:]
			dst = growSeries(dst)
			if err := decodeTimeSeries(v, &dst[len(dst)-1]); err != nil {
				return dst, fmt.Errorf("WriteRequest time series %d: %w", len(dst)-1, err)
			}
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return dst, fmt.Errorf("WriteRequest field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return dst, nil
}

// growSeries extends dst by one series, reusing the slices of a former one.
func growSeries(dst []prompb.TimeSeries) []prompb.TimeSeries {
	if len(dst) < cap(dst) {
		dst = dst[:len(dst)+1]
		ts := &dst[len(dst)-1]
		*ts = prompb.TimeSeries{Labels: ts.Labels[:0], Samples: ts.Samples[:0]}
		return dst
	}
	return append(dst, prompb.TimeSeries{})
}

func decodeTimeSeries(b []byte, ts *prompb.TimeSeries) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType || num < 1 || num > 4 {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := consumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var err error
		switch num {
		case 1:
			var l prompb.Label
			l.Name, l.Value, err = decodeLabel(v)
			ts.Labels = append(ts.Labels, l)
		case 2:
			var s prompb.Sample
			s.Value, s.Timestamp, err = decodeSample(v)
			ts.Samples = append(ts.Samples, s)
		case 3:
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{})
			err = ts.Exemplars[len(ts.Exemplars)-1].Unmarshal(v)
		case 4:
			ts.Histograms = append(ts.Histograms, prompb.Histogram{})
			err = ts.Histograms[len(ts.Histograms)-1].Unmarshal(v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeLabel returns the label's name and value as strings aliasing b.
func decodeLabel(b []byte) (name, value string, _ error) {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return "", "", protowire.ParseError(n)
		}
		b = b[n:]
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			v, n := consumeBytes(b)
			if n < 0 {
				return "", "", protowire.ParseError(n)
			}
			b = b[n:]
			if num == 1 {
				name = aliasString(v)
			} else {
				value = aliasString(v)
			}
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return "", "", protowire.ParseError(n)
		}
		b = b[n:]
	}
	return name, value, nil
}

func decodeSample(b []byte) (v float64, t int64, _ error) {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return 0, 0, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			x, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return 0, 0, protowire.ParseError(n)
			}
			v, b = math.Float64frombits(x), b[n:]
		case num == 2 && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, 0, protowire.ParseError(n)
			}
			t, b = int64(x), b[n:]
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return 0, 0, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return v, t, nil
}

// aliasString views b as a string without copying. The caller guarantees that b is not
// modified while the string is in use.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// consumeTag is protowire.ConsumeTag with an inlined path for one-byte tags, which
// every field of these messages has.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 && b[0]>>3 != 0 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

// consumeBytes is protowire.ConsumeBytes with an inlined path for lengths under 128:
// every label, name, value and sample.
func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) {
		n := int(b[0])
		return b[1 : 1+n : 1+n], 1 + n
	}
	return protowire.ConsumeBytes(b)
}

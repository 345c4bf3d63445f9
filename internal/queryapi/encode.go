package queryapi

import (
	"encoding/json"
	"io"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// The encoder below writes the Prometheus HTTP API JSON by hand: append-style into a
// byte buffer, without reflection, flushing to the destination whenever the buffer
// grows past flushThreshold so that large matrices stream instead of being built in
// memory. The formatting rules reproduce Prometheus's own encoder byte for byte:
//
//   - sample timestamps (vector, matrix, histograms) are "<sec>[.mmm]": the integer
//     seconds and, only when the millisecond part is non-zero, a dot and exactly three
//     digits (1435781451.780, 1435781451, -0.500);
//   - sample values are quoted strconv output: 'f' format, or 'e' below 1e-6 and from
//     1e21 on, with NaN, +Inf and -Inf spelled that way;
//   - scalar and string results are encoded the way encoding/json encodes a
//     [float64(T)/1000, value] array, and scalar values always use the 'f' format;
//   - label names and values are escaped minimally (quote, backslash, control bytes;
//     no HTML escaping, bytes above 0x7f copied as they are), every other string is
//     escaped like encoding/json with HTML escaping on.

// flushThreshold is the buffer size at which a jsonWriter hands its bytes on.
const flushThreshold = 64 << 10

// jsonBufs holds response buffers: growing a new one from 4 KB towards flushThreshold for
// every answer made up to 250 KB of garbage per answer.
var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, flushThreshold+flushThreshold/4); return &b }}

// getJSONBuf returns an empty buffer for a response.
func getJSONBuf() []byte { return (*jsonBufs.Get().(*[]byte))[:0] }

// putJSONBuf returns a buffer that nothing refers to any more; huge ones are dropped.
func putJSONBuf(b []byte) {
	if cap(b) <= 4*flushThreshold {
		b = b[:0]
		jsonBufs.Put(&b)
	}
}

// jsonWriter accumulates JSON in buf and writes it to w in chunks. A nil w keeps
// everything in buf.
type jsonWriter struct {
	buf []byte
	w   io.Writer
	err error
}

// maybeFlush writes the buffer out when it is large enough.
func (j *jsonWriter) maybeFlush() {
	if j.w != nil && len(j.buf) >= flushThreshold {
		j.flush()
	}
}

// flush writes whatever is buffered. After a write error later output is discarded
// and the error kept.
func (j *jsonWriter) flush() {
	if j.w == nil || len(j.buf) == 0 {
		return
	}
	if j.err == nil {
		_, j.err = j.w.Write(j.buf)
	}
	j.buf = j.buf[:0]
}

// writeVector writes a vector as an array of samples; an empty vector is [].
func (j *jsonWriter) writeVector(v promql.Vector) {
	j.buf = append(j.buf, '[')
	for i := range v {
		if i > 0 {
			j.buf = append(j.buf, ',')
		}
		j.buf = appendSample(j.buf, &v[i])
		j.maybeFlush()
	}
	j.buf = append(j.buf, ']')
}

// writeMatrix writes a matrix as an array of series; an empty matrix is [].
func (j *jsonWriter) writeMatrix(m promql.Matrix) {
	j.buf = append(j.buf, '[')
	for i := range m {
		if i > 0 {
			j.buf = append(j.buf, ',')
		}
		j.writeSeries(&m[i])
	}
	j.buf = append(j.buf, ']')
}

// writeSeries writes {"metric":{...},"values":[...],"histograms":[...]}, leaving out
// an empty values or histograms list.
func (j *jsonWriter) writeSeries(s *promql.Series) {
	j.buf = append(j.buf, `{"metric":`...)
	j.buf = appendLabels(j.buf, s.Metric)
	if len(s.Floats) > 0 {
		j.buf = append(j.buf, `,"values":[`...)
		for i, p := range s.Floats {
			if i > 0 {
				j.buf = append(j.buf, ',')
			}
			j.buf = append(j.buf, '[')
			j.buf = appendTimestamp(j.buf, p.T)
			j.buf = append(j.buf, ',')
			j.buf = appendSampleValue(j.buf, p.F)
			j.buf = append(j.buf, ']')
			if len(j.buf) >= flushThreshold {
				j.maybeFlush()
			}
		}
		j.buf = append(j.buf, ']')
	}
	if len(s.Histograms) > 0 {
		j.buf = append(j.buf, `,"histograms":[`...)
		for i, p := range s.Histograms {
			if i > 0 {
				j.buf = append(j.buf, ',')
			}
			j.buf = append(j.buf, '[')
			j.buf = appendTimestamp(j.buf, p.T)
			j.buf = append(j.buf, ',')
			j.buf = appendHistogram(j.buf, p.H)
			j.buf = append(j.buf, ']')
			j.maybeFlush()
		}
		j.buf = append(j.buf, ']')
	}
	j.buf = append(j.buf, '}')
	j.maybeFlush()
}

// appendSample appends {"metric":{...},"value":[ts,"v"]} or, for a histogram sample,
// {"metric":{...},"histogram":[ts,{...}]}.
func appendSample(b []byte, s *promql.Sample) []byte {
	b = append(b, `{"metric":`...)
	b = appendLabels(b, s.Metric)
	if s.H == nil {
		b = append(b, `,"value":[`...)
	} else {
		b = append(b, `,"histogram":[`...)
	}
	b = appendTimestamp(b, s.T)
	b = append(b, ',')
	if s.H == nil {
		b = appendSampleValue(b, s.F)
	} else {
		b = appendHistogram(b, s.H)
	}
	return append(b, ']', '}')
}

// appendScalar appends a scalar result as [ts,"v"].
func appendScalar(b []byte, s promql.Scalar) []byte {
	b = append(b, '[')
	b = appendStdFloat(b, float64(s.T)/1000)
	b = append(b, ',', '"')
	b = strconv.AppendFloat(b, s.V, 'f', -1, 64)
	return append(b, '"', ']')
}

// appendStringResult appends a string result as [ts,"s"].
func appendStringResult(b []byte, s promql.String) []byte {
	b = append(b, '[')
	b = appendStdFloat(b, float64(s.T)/1000)
	b = append(b, ',')
	b = appendStdString(b, s.V)
	return append(b, ']')
}

// appendLabels appends a label set as a JSON object in label order.
func appendLabels(b []byte, ls labels.Labels) []byte {
	b = append(b, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendLabelString(b, l.Name)
		b = append(b, ':')
		b = appendLabelString(b, l.Value)
	})
	return append(b, '}')
}

// appendTimestamp appends a millisecond timestamp as seconds: the integer part and,
// when the millisecond part is not zero, a dot and three digits.
func appendTimestamp(b []byte, t int64) []byte {
	u := uint64(t)
	if t < 0 {
		b = append(b, '-')
		u = uint64(-t) // also right for MinInt64, whose negation wraps to 2^63
	}
	b = strconv.AppendUint(b, u/1000, 10)
	if ms := u % 1000; ms != 0 {
		b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	}
	return b
}

// appendSampleValue appends a quoted sample value.
func appendSampleValue(b []byte, f float64) []byte {
	b = append(b, '"')
	b = appendFloatLiteral(b, f)
	return append(b, '"')
}

// appendFloatLiteral appends f in the shortest form that round-trips, 'e' notation for
// magnitudes below 1e-6 or from 1e21 on, and NaN, +Inf, -Inf for the special values.
func appendFloatLiteral(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

// appendStdFloat appends a finite float the way encoding/json writes a float64
// (exponents without a leading zero: 1e-7, not 1e-07).
func appendStdFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// encoding/json cannot encode these; they cannot occur for timestamps.
		return append(b, '0')
	}
	abs := math.Abs(f)
	if abs == 0 || (abs >= 1e-6 && abs < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	// Turn e-07 into e-7 as encoding/json does.
	if n := len(b) - start; n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
		b[len(b)-2] = b[len(b)-1]
		b = b[:len(b)-1]
	}
	return b
}

// appendHistogram appends a float histogram as
// {"count":"..","sum":"..","buckets":[[boundaryRule,"lower","upper","count"],...]}.
// Empty buckets are left out, and so is "buckets" when none remain. The boundary rule
// is 0 for (lower,upper], 1 for [lower,upper), 2 for (lower,upper) and 3 for
// [lower,upper].
func appendHistogram(b []byte, h *histogram.FloatHistogram) []byte {
	b = append(b, `{"count":`...)
	b = appendSampleValue(b, h.Count)
	b = append(b, `,"sum":`...)
	b = appendSampleValue(b, h.Sum)
	found := false
	it := h.AllBucketIterator()
	for it.Next() {
		bucket := it.At()
		if bucket.Count == 0 {
			continue
		}
		if found {
			b = append(b, ',')
		} else {
			b = append(b, `,"buckets":[`...)
			found = true
		}
		rule := byte('2')
		switch {
		case bucket.LowerInclusive && bucket.UpperInclusive:
			rule = '3'
		case bucket.LowerInclusive:
			rule = '1'
		case bucket.UpperInclusive:
			rule = '0'
		}
		b = append(b, '[', rule, ',')
		b = appendSampleValue(b, bucket.Lower)
		b = append(b, ',')
		b = appendSampleValue(b, bucket.Upper)
		b = append(b, ',')
		b = appendSampleValue(b, bucket.Count)
		b = append(b, ']')
	}
	if found {
		b = append(b, ']')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendLabelString appends s as a JSON string escaping only '"', '\\' and control
// bytes; everything else, including bytes above 0x7f, is copied unchanged. This is how
// Prometheus writes label names and values.
func appendLabelString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		b = appendEscapedByte(b, c)
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscapedByte appends the escape sequence of an ASCII byte that may not appear
// raw: \" \\ \n \r \t, and \u00XX for the rest.
func appendEscapedByte(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// appendString appends s as a JSON string escaped for HTML like encoding/json: <, > and
// & become \u003c, \u003e, \u0026, U+2028 and U+2029 are escaped, and invalid UTF-8
// becomes \ufffd. Control bytes other than \n, \r, \t use the \u00XX form.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = appendEscapedByte(b, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendStdString appends s exactly as encoding/json encodes a string. It is used
// where Prometheus relies on encoding/json (string results).
func appendStdString(b []byte, s string) []byte {
	out, err := json.Marshal(s)
	if err != nil {
		return appendString(b, s)
	}
	return append(b, out...)
}

// appendStrings appends a JSON array of HTML-escaped strings; nil is [].
func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

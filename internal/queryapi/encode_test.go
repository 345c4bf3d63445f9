package queryapi

import (
	"encoding/json"
	"math"
	"math/rand"
	"strings"
	"testing"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/jsonutil"
)

func TestAppendTimestamp(t *testing.T) {
	cases := map[int64]string{
		0:              "0",
		1:              "0.001",
		10:             "0.010",
		999:            "0.999",
		1000:           "1",
		1435781451781:  "1435781451.781",
		1435781451780:  "1435781451.780",
		1435781451000:  "1435781451",
		-1:             "-0.001",
		-500:           "-0.500",
		-1500:          "-1.500",
		-2000:          "-2",
		math.MaxInt64:  "9223372036854775.807",
		math.MinInt64:  "-9223372036854775.808",
		-1435781451781: "-1435781451.781",
	}
	for ts, want := range cases {
		if got := string(appendTimestamp(nil, ts)); got != want {
			t.Errorf("appendTimestamp(%d) = %s, want %s", ts, got, want)
		}
	}
}

func TestAppendSampleValue(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{1, `"1"`}, {-1.5, `"-1.5"`}, {0, `"0"`}, {math.Copysign(0, -1), `"-0"`},
		{1e-7, `"1e-07"`}, {1e-6, `"0.000001"`}, {1e21, `"1e+21"`}, {1e20, `"100000000000000000000"`},
		{0.30000000000000004, `"0.30000000000000004"`}, {math.NaN(), `"NaN"`}, {math.Inf(1), `"+Inf"`}, {math.Inf(-1), `"-Inf"`},
	}
	for _, c := range cases {
		if got := string(appendSampleValue(nil, c.v)); got != c.want {
			t.Errorf("appendSampleValue(%v) = %s, want %s", c.v, got, c.want)
		}
	}
}

// The reference encoder below drives Prometheus's own JSON helpers (util/jsonutil on
// a json-iterator stream, and promql.Scalar/String MarshalJSON) to produce what the
// Prometheus API writes, so that the hand-written encoder can be compared with it on
// random data.

func refStream() *jsoniter.Stream {
	return jsoniter.NewStream(jsoniter.ConfigCompatibleWithStandardLibrary, nil, 1024)
}

func refLabels(s *jsoniter.Stream, ls labels.Labels) {
	s.WriteObjectStart()
	i := 0
	ls.Range(func(l labels.Label) {
		if i > 0 {
			s.WriteMore()
		}
		i++
		s.WriteString(l.Name)
		s.WriteRaw(":")
		s.WriteString(l.Value)
	})
	s.WriteObjectEnd()
}

func refVector(v promql.Vector) string {
	s := refStream()
	s.WriteArrayStart()
	for i, smp := range v {
		if i > 0 {
			s.WriteMore()
		}
		s.WriteObjectStart()
		s.WriteObjectField("metric")
		refLabels(s, smp.Metric)
		s.WriteMore()
		if smp.H == nil {
			s.WriteObjectField("value")
		} else {
			s.WriteObjectField("histogram")
		}
		s.WriteArrayStart()
		jsonutil.MarshalTimestamp(smp.T, s)
		s.WriteMore()
		if smp.H == nil {
			jsonutil.MarshalFloat(smp.F, s)
		} else {
			jsonutil.MarshalHistogram(smp.H, s)
		}
		s.WriteArrayEnd()
		s.WriteObjectEnd()
	}
	s.WriteArrayEnd()
	return string(s.Buffer())
}

func refMatrix(m promql.Matrix) string {
	s := refStream()
	s.WriteArrayStart()
	for i, ser := range m {
		if i > 0 {
			s.WriteMore()
		}
		s.WriteObjectStart()
		s.WriteObjectField("metric")
		refLabels(s, ser.Metric)
		if len(ser.Floats) > 0 {
			s.WriteMore()
			s.WriteObjectField("values")
			s.WriteArrayStart()
			for k, p := range ser.Floats {
				if k > 0 {
					s.WriteMore()
				}
				s.WriteArrayStart()
				jsonutil.MarshalTimestamp(p.T, s)
				s.WriteMore()
				jsonutil.MarshalFloat(p.F, s)
				s.WriteArrayEnd()
			}
			s.WriteArrayEnd()
		}
		if len(ser.Histograms) > 0 {
			s.WriteMore()
			s.WriteObjectField("histograms")
			s.WriteArrayStart()
			for k, p := range ser.Histograms {
				if k > 0 {
					s.WriteMore()
				}
				s.WriteArrayStart()
				jsonutil.MarshalTimestamp(p.T, s)
				s.WriteMore()
				jsonutil.MarshalHistogram(p.H, s)
				s.WriteArrayEnd()
			}
			s.WriteArrayEnd()
		}
		s.WriteObjectEnd()
	}
	s.WriteArrayEnd()
	return string(s.Buffer())
}

// gen produces random values that stress the formatting rules.
type gen struct{ r *rand.Rand }

func (g gen) float() float64 {
	switch g.r.Intn(10) {
	case 0:
		return []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), 1e21, 1e-6, 9.99e-7}[g.r.Intn(8)]
	case 1:
		return g.r.NormFloat64() * 1e-9
	case 2:
		return g.r.NormFloat64() * 1e25
	case 3:
		return float64(g.r.Int63n(1e6))
	default:
		return g.r.NormFloat64() * math.Pow(10, float64(g.r.Intn(20)-5))
	}
}

func (g gen) ts() int64 {
	switch g.r.Intn(4) {
	case 0:
		return g.r.Int63n(2_000_000) - 1_000_000
	case 1:
		return -g.r.Int63n(2_000_000_000_000)
	default:
		return g.r.Int63n(2_000_000_000_000)
	}
}

func (g gen) str() string {
	const alphabet = "aZ09_ :/.<>&\"\\\n\t\r\x00\x01\x1f\x7f\u00e9\u2028\u2029\U0001F600"
	runes := []rune(alphabet)
	var sb strings.Builder
	for n := g.r.Intn(12); n > 0; n-- {
		switch g.r.Intn(12) {
		case 0:
			sb.WriteByte(byte(0x80 + g.r.Intn(0x80))) // invalid UTF-8
		default:
			sb.WriteRune(runes[g.r.Intn(len(runes))])
		}
	}
	return sb.String()
}

func (g gen) labels() labels.Labels {
	b := labels.NewScratchBuilder(4)
	for n := g.r.Intn(4); n >= 0; n-- {
		b.Add(g.str()+"n", g.str())
	}
	b.Sort()
	return b.Labels()
}

func (g gen) histogram() *histogram.FloatHistogram {
	h := &histogram.FloatHistogram{
		Schema:        int32(g.r.Intn(8) - 4),
		ZeroThreshold: []float64{0, 1e-128, 0.001}[g.r.Intn(3)],
		ZeroCount:     float64(g.r.Intn(3)),
		Sum:           g.float(),
	}
	count := h.ZeroCount
	addBuckets := func() ([]histogram.Span, []float64) {
		var spans []histogram.Span
		var buckets []float64
		for n := g.r.Intn(3); n > 0; n-- {
			l := uint32(g.r.Intn(4) + 1)
			spans = append(spans, histogram.Span{Offset: int32(g.r.Intn(4)), Length: l})
			for range l {
				c := float64(g.r.Intn(4)) // zero counts are left out of the output
				count += c
				buckets = append(buckets, c)
			}
		}
		return spans, buckets
	}
	h.PositiveSpans, h.PositiveBuckets = addBuckets()
	h.NegativeSpans, h.NegativeBuckets = addBuckets()
	h.Count = count
	if g.r.Intn(5) == 0 {
		// Native histogram with custom buckets.
		h = &histogram.FloatHistogram{
			Schema:          histogram.CustomBucketsSchema,
			Count:           6,
			Sum:             g.float(),
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
			PositiveBuckets: []float64{1, 0, 5},
			CustomValues:    []float64{0.1, 1, 10},
		}
	}
	return h
}

func TestEncoderMatchesPrometheus(t *testing.T) {
	g := gen{rand.New(rand.NewSource(1))}
	for iter := 0; iter < 300; iter++ {
		var v promql.Vector
		for n := g.r.Intn(4); n > 0; n-- {
			s := promql.Sample{Metric: g.labels(), T: g.ts()}
			if g.r.Intn(3) == 0 {
				s.H = g.histogram()
			} else {
				s.F = g.float()
			}
			v = append(v, s)
		}
		j := &jsonWriter{}
		j.writeVector(v)
		if got, want := string(j.buf), refVector(v); got != want {
			t.Fatalf("vector mismatch\n got: %s\nwant: %s", got, want)
		}

		var m promql.Matrix
		for n := g.r.Intn(4); n > 0; n-- {
			s := promql.Series{Metric: g.labels()}
			for k := g.r.Intn(5); k > 0; k-- {
				s.Floats = append(s.Floats, promql.FPoint{T: g.ts(), F: g.float()})
			}
			for k := g.r.Intn(3); k > 0; k-- {
				s.Histograms = append(s.Histograms, promql.HPoint{T: g.ts(), H: g.histogram()})
			}
			m = append(m, s)
		}
		j = &jsonWriter{}
		j.writeMatrix(m)
		if got, want := string(j.buf), refMatrix(m); got != want {
			t.Fatalf("matrix mismatch\n got: %s\nwant: %s", got, want)
		}

		sc := promql.Scalar{T: g.ts(), V: g.float()}
		ref, err := json.Marshal(sc)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(appendScalar(nil, sc)); got != string(ref) {
			t.Fatalf("scalar %v mismatch\n got: %s\nwant: %s", sc, got, ref)
		}

		st := promql.String{T: g.ts(), V: g.str()}
		if ref, err = json.Marshal(st); err != nil {
			t.Fatal(err)
		}
		if got := string(appendStringResult(nil, st)); got != string(ref) {
			t.Fatalf("string %q mismatch\n got: %s\nwant: %s", st.V, got, ref)
		}

		str := g.str()
		if ref, err = jsoniter.ConfigCompatibleWithStandardLibrary.Marshal(str); err != nil {
			t.Fatal(err)
		}
		if got := string(appendString(nil, str)); got != string(ref) {
			t.Fatalf("string %q mismatch\n got: %s\nwant: %s", str, got, ref)
		}
	}
}

func TestEncoderOutputIsValidJSON(t *testing.T) {
	g := gen{rand.New(rand.NewSource(2))}
	m := make(promql.Matrix, 0, 20)
	for i := 0; i < 20; i++ {
		s := promql.Series{Metric: g.labels()}
		for k := 0; k < 50; k++ {
			s.Floats = append(s.Floats, promql.FPoint{T: g.ts(), F: g.float()})
		}
		s.Histograms = append(s.Histograms, promql.HPoint{T: g.ts(), H: g.histogram()})
		m = append(m, s)
	}
	j := &jsonWriter{}
	j.writeMatrix(m)
	// Labels may hold invalid UTF-8, which Prometheus copies through; encoding/json
	// accepts that (replacing it when decoding).
	var out []map[string]any
	if err := json.Unmarshal(j.buf, &out); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	if len(out) != 20 {
		t.Fatalf("decoded %d series", len(out))
	}
}

func TestJSONWriterStreams(t *testing.T) {
	m := benchMatrix(50, 1000)
	var sink countingWriter
	j := &jsonWriter{w: &sink}
	j.writeMatrix(m)
	j.flush()
	if sink.writes < 2 {
		t.Errorf("expected the matrix to be written in several chunks, got %d", sink.writes)
	}
	if cap(j.buf) > 4*flushThreshold {
		t.Errorf("buffer grew to %d bytes", cap(j.buf))
	}
	ref := &jsonWriter{}
	ref.writeMatrix(m)
	if sink.n != len(ref.buf) {
		t.Errorf("streamed %d bytes, buffered %d", sink.n, len(ref.buf))
	}
}

type countingWriter struct{ n, writes int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	w.writes++
	return len(p), nil
}

// benchMatrix is a matrix of n series with p points each, shaped like a typical
// range query result.
func benchMatrix(n, p int) promql.Matrix {
	m := make(promql.Matrix, n)
	for i := range m {
		m[i].Metric = labels.FromStrings("__name__", "http_requests_total", "job", "api-server",
			"instance", "10.0.0."+string(rune('0'+i%10))+":9090", "code", "200", "handler", "/api/v1/query")
		m[i].Floats = make([]promql.FPoint, p)
		for k := range m[i].Floats {
			m[i].Floats[k] = promql.FPoint{T: 1_700_000_000_000 + int64(k)*15_000, F: float64(i*k) * 1.25}
		}
	}
	return m
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkEncodeMatrix(b *testing.B) {
	m := benchMatrix(500, 1000)
	size := &jsonWriter{}
	size.writeMatrix(m)
	b.SetBytes(int64(len(size.buf)))
	j := &jsonWriter{buf: make([]byte, 0, flushThreshold*2), w: discard{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j.writeMatrix(m)
		j.flush()
	}
}

// BenchmarkEncodeMatrixPrometheus runs the reference (Prometheus's json-iterator based
// helpers) on the same data for comparison.
func BenchmarkEncodeMatrixPrometheus(b *testing.B) {
	m := benchMatrix(500, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = refMatrix(m)
	}
}

func BenchmarkEncodeVector(b *testing.B) {
	m := benchMatrix(10000, 1)
	v := make(promql.Vector, len(m))
	for i := range m {
		v[i] = promql.Sample{Metric: m[i].Metric, T: m[i].Floats[0].T, F: m[i].Floats[0].F}
	}
	j := &jsonWriter{buf: make([]byte, 0, flushThreshold*2), w: discard{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j.writeVector(v)
		j.flush()
	}
}

package promclient

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/protobuf/encoding/protowire"
)

// interner deduplicates label strings across the series of one response: names and most
// values repeat, so this saves an allocation per label.
type interner struct{ m map[string]string }

func newInterner() interner { return interner{m: make(map[string]string, 256)} }

func (in *interner) intern(b []byte) string {
	if s, ok := in.m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	if len(in.m) >= 1<<16 { // bound the table for high-cardinality values
		return string(b)
	}
	s := string(b)
	in.m[s] = s
	return s
}

// decodeChunkedReadResponse decodes a prometheus.ChunkedReadResponse directly, with chunk
// data aliasing buf.
func decodeChunkedReadResponse(buf []byte, in *interner) ([]*RawSeries, error) {
	var out []*RawSeries
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return nil, fmt.Errorf("decode ChunkedReadResponse: %w", protowire.ParseError(n))
		}
		buf = buf[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(buf)
			if n < 0 {
				return nil, fmt.Errorf("decode ChunkedReadResponse series: %w", protowire.ParseError(n))
			}
			s, err := decodeChunkedSeries(v, in)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
			buf = buf[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, buf)
		if n < 0 {
			return nil, fmt.Errorf("decode ChunkedReadResponse field %d: %w", num, protowire.ParseError(n))
		}
		buf = buf[n:]
	}
	return out, nil
}

func decodeChunkedSeries(buf []byte, in *interner) (*RawSeries, error) {
	nl, nc := countSeriesFields(buf)
	s := &RawSeries{Labels: make([]prompb.Label, 0, nl), Chunks: make([]RawChunk, 0, nc)}
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return nil, fmt.Errorf("decode ChunkedSeries: %w", protowire.ParseError(n))
		}
		buf = buf[n:]
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			if n = protowire.ConsumeFieldValue(num, typ, buf); n < 0 {
				return nil, fmt.Errorf("decode ChunkedSeries field %d: %w", num, protowire.ParseError(n))
			}
			buf = buf[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(buf)
		if n < 0 {
			return nil, fmt.Errorf("decode ChunkedSeries field %d: %w", num, protowire.ParseError(n))
		}
		buf = buf[n:]
		var err error
		if num == 1 {
			var l prompb.Label
			l, err = decodeLabel(v, in)
			s.Labels = append(s.Labels, l)
		} else {
			var c RawChunk
			c, err = decodeChunk(v)
			s.Chunks = append(s.Chunks, c)
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// countSeriesFields counts the labels and chunks of a ChunkedSeries so its slices are
// allocated once; malformed input is left for the decoder to report.
func countSeriesFields(buf []byte) (labels, chunks int) {
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return
		}
		buf = buf[n:]
		if n = protowire.ConsumeFieldValue(num, typ, buf); n < 0 {
			return
		}
		buf = buf[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			labels++
		case num == 2 && typ == protowire.BytesType:
			chunks++
		}
	}
	return
}

func decodeLabel(buf []byte, in *interner) (prompb.Label, error) {
	var l prompb.Label
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return l, fmt.Errorf("decode Label: %w", protowire.ParseError(n))
		}
		buf = buf[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, n := protowire.ConsumeBytes(buf)
			if n < 0 {
				return l, fmt.Errorf("decode Label: %w", protowire.ParseError(n))
			}
			if num == 1 {
				l.Name = in.intern(v)
			} else {
				l.Value = in.intern(v)
			}
			buf = buf[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, buf); n < 0 {
			return l, fmt.Errorf("decode Label field %d: %w", num, protowire.ParseError(n))
		}
		buf = buf[n:]
	}
	return l, nil
}

func decodeChunk(buf []byte) (RawChunk, error) {
	var c RawChunk
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return c, fmt.Errorf("decode Chunk: %w", protowire.ParseError(n))
		}
		buf = buf[n:]
		switch {
		case typ == protowire.VarintType && num <= 3:
			v, n := protowire.ConsumeVarint(buf)
			if n < 0 {
				return c, fmt.Errorf("decode Chunk field %d: %w", num, protowire.ParseError(n))
			}
			switch num {
			case 1:
				c.MinTime = int64(v)
			case 2:
				c.MaxTime = int64(v)
			case 3:
				c.Encoding = int32(v)
			}
			buf = buf[n:]
		case typ == protowire.BytesType && num == 4:
			v, n := protowire.ConsumeBytes(buf)
			if n < 0 {
				return c, fmt.Errorf("decode Chunk data: %w", protowire.ParseError(n))
			}
			c.Data = v
			buf = buf[n:]
		default:
			if n = protowire.ConsumeFieldValue(num, typ, buf); n < 0 {
				return c, fmt.Errorf("decode Chunk field %d: %w", num, protowire.ParseError(n))
			}
			buf = buf[n:]
		}
	}
	return c, nil
}

// maxSamplesPerChunk matches what Prometheus cuts and what Thanos re-encodes.
const maxSamplesPerChunk = 120

// sampledStream serves a SAMPLES response (old Prometheus) re-encoded as XOR chunks. The
// response is one snappy block, so it is necessarily held whole.
type sampledStream struct {
	series []*prompb.TimeSeries
	cur    *RawSeries
	err    error
}

func newSampledStream(body io.Reader) (*sampledStream, error) {
	compressed, err := io.ReadAll(io.LimitReader(body, MaxFrameSize+1))
	if err != nil {
		return nil, fmt.Errorf("read sampled remote-read response: %w", err)
	}
	if len(compressed) > MaxFrameSize {
		return nil, fmt.Errorf("sampled remote-read response exceeds %d bytes", MaxFrameSize)
	}
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		return nil, fmt.Errorf("snappy-decode sampled remote-read response: %w", err)
	}
	var rr prompb.ReadResponse
	if err := rr.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("unmarshal sampled remote-read response: %w", err)
	}
	s := &sampledStream{}
	for _, res := range rr.Results {
		s.series = append(s.series, res.Timeseries...)
	}
	return s, nil
}

func (s *sampledStream) Next() bool {
	if s.err != nil || len(s.series) == 0 {
		return false
	}
	ts := s.series[0]
	s.series[0] = nil
	s.series = s.series[1:]
	chks, err := encodeXOR(ts.Samples)
	if err != nil {
		s.err = err
		return false
	}
	s.cur = &RawSeries{Labels: ts.Labels, Chunks: chks}
	return true
}

// encodeXOR packs samples into XOR chunks of at most maxSamplesPerChunk samples.
func encodeXOR(samples []prompb.Sample) ([]RawChunk, error) {
	var out []RawChunk
	for len(samples) > 0 {
		n := min(len(samples), maxSamplesPerChunk)
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil {
			return nil, fmt.Errorf("open XOR appender: %w", err)
		}
		for _, smp := range samples[:n] {
			app.Append(0, smp.Timestamp, smp.Value)
		}
		out = append(out, RawChunk{MinTime: samples[0].Timestamp, MaxTime: samples[n-1].Timestamp, Encoding: int32(chunkenc.EncXOR), Data: c.Bytes()})
		samples = samples[n:]
	}
	return out, nil
}

func (s *sampledStream) At() *RawSeries { return s.cur }
func (s *sampledStream) Err() error     { return s.err }
func (s *sampledStream) Close() error   { return nil }

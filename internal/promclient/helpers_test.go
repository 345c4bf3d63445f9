package promclient

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

const streamedContentType = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"

// testSample is one float sample.
type testSample struct {
	T int64
	V float64
}

// encodeFrame builds one remote-read frame the way Prometheus' ChunkedWriter does:
// uvarint payload length, big-endian CRC32-Castagnoli of the payload, then the payload.
func encodeFrame(tb testing.TB, resp *prompb.ChunkedReadResponse) []byte {
	tb.Helper()
	payload, err := resp.Marshal()
	if err != nil {
		tb.Fatalf("marshal ChunkedReadResponse: %v", err)
	}
	return rawFrame(payload, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
}

// rawFrame frames payload with the given checksum (which may be deliberately wrong).
func rawFrame(payload []byte, crc uint32) []byte {
	out := binary.AppendUvarint(nil, uint64(len(payload)))
	out = binary.BigEndian.AppendUint32(out, crc)
	return append(out, payload...)
}

// seriesFrame is a frame holding one series.
func seriesFrame(tb testing.TB, lbls []prompb.Label, chks ...prompb.Chunk) []byte {
	return encodeFrame(tb, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{{Labels: lbls, Chunks: chks}}})
}

// xorChunk encodes samples into one Prometheus XOR chunk in remote-read form.
func xorChunk(tb testing.TB, samples []testSample) prompb.Chunk {
	tb.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		tb.Fatalf("XOR appender: %v", err)
	}
	for _, s := range samples {
		app.Append(0, s.T, s.V)
	}
	return prompb.Chunk{MinTimeMs: samples[0].T, MaxTimeMs: samples[len(samples)-1].T, Type: prompb.Chunk_XOR, Data: c.Bytes()}
}

// genSamples returns n samples every 15s starting at start, with values derived from seed.
func genSamples(start int64, n int, seed float64) []testSample {
	out := make([]testSample, n)
	for i := range out {
		out[i] = testSample{T: start + int64(i)*15000, V: seed + float64(i)*0.25}
	}
	return out
}

// chunkSamples decodes the float samples of a raw chunk in Prometheus encoding.
func chunkSamples(tb testing.TB, c RawChunk) []testSample {
	tb.Helper()
	chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
	if err != nil {
		tb.Fatalf("decode chunk: %v", err)
	}
	var out []testSample
	it := chk.Iterator(nil)
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat {
			tb.Fatalf("unexpected value type %v", vt)
		}
		t, v := it.At()
		out = append(out, testSample{T: t, V: v})
	}
	if err := it.Err(); err != nil {
		tb.Fatalf("iterate chunk: %v", err)
	}
	return out
}

func lbls(kv ...string) []prompb.Label {
	out := make([]prompb.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// newTestClient starts an httptest server with h and returns a client for it.
func newTestClient(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return New(u, srv.Client())
}

// serveBody answers every request with body and the given content type.
func serveBody(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	}
}

// collect drains a stream, returning its series and the final error.
func collect(t *testing.T, s ReadStream) ([]*RawSeries, error) {
	t.Helper()
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	var out []*RawSeries
	for s.Next() {
		out = append(out, s.At())
	}
	return out, s.Err()
}

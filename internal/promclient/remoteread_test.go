package promclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

func testQuery() *prompb.Query {
	return &prompb.Query{
		StartTimestampMs: 1000, EndTimestampMs: 2000,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}},
	}
}

func remoteRead(t *testing.T, c *Client) ([]*RawSeries, error) {
	t.Helper()
	s, err := c.RemoteRead(context.Background(), testQuery())
	if err != nil {
		t.Fatalf("RemoteRead: %v", err)
	}
	return collect(t, s)
}

func labelString(ls []prompb.Label) string {
	var sb strings.Builder
	for i, l := range ls {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(l.Name + "=" + l.Value)
	}
	return sb.String()
}

func checkChunk(t *testing.T, what string, got RawChunk, want prompb.Chunk) {
	t.Helper()
	if got.MinTime != want.MinTimeMs || got.MaxTime != want.MaxTimeMs || got.Encoding != int32(want.Type) || !bytes.Equal(got.Data, want.Data) {
		t.Errorf("%s: got chunk {min %d max %d enc %d len %d}, want {min %d max %d enc %d len %d} (data equal: %v)",
			what, got.MinTime, got.MaxTime, got.Encoding, len(got.Data),
			want.MinTimeMs, want.MaxTimeMs, want.Type, len(want.Data), bytes.Equal(got.Data, want.Data))
	}
}

func TestRemoteReadStreamedMultipleSeries(t *testing.T) {
	type series struct {
		labels []prompb.Label
		chunks []prompb.Chunk
	}
	in := []series{
		{lbls("__name__", "up", "instance", "a:9090", "job", "prom"), []prompb.Chunk{xorChunk(t, genSamples(0, 120, 1)), xorChunk(t, genSamples(120*15000, 30, 2))}},
		{lbls("__name__", "up", "instance", "b:9090", "job", "prom"), []prompb.Chunk{xorChunk(t, genSamples(5000, 7, 3))}},
		{lbls("__name__", "up", "instance", "c:9090", "job", "node"), []prompb.Chunk{xorChunk(t, genSamples(-30000, 3, -4))}}, // negative times
		{lbls("__name__", "up", "instance", "d:9090", "job", "node"), nil},                                                    // no chunks
	}
	var body []byte
	for _, s := range in {
		body = append(body, seriesFrame(t, s.labels, s.chunks...)...)
	}
	got, err := remoteRead(t, newTestClient(t, serveBody(streamedContentType, body)))
	if err != nil {
		t.Fatalf("stream error: %v", err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d series, want %d", len(got), len(in))
	}
	// All series are compared only after the stream is drained: chunk data of earlier
	// series must stay valid while later frames are read.
	for i, s := range in {
		if labelString(got[i].Labels) != labelString(s.labels) {
			t.Errorf("series %d: labels %s, want %s", i, labelString(got[i].Labels), labelString(s.labels))
		}
		if len(got[i].Chunks) != len(s.chunks) {
			t.Errorf("series %d: %d chunks, want %d", i, len(got[i].Chunks), len(s.chunks))
			continue
		}
		for j := range s.chunks {
			checkChunk(t, "series "+labelString(s.labels), got[i].Chunks[j], s.chunks[j])
		}
	}
	if want := genSamples(-30000, 3, -4); !slices.Equal(chunkSamples(t, got[2].Chunks[0]), want) {
		t.Errorf("decoded samples %v, want %v", chunkSamples(t, got[2].Chunks[0]), want)
	}
}

func TestRemoteReadJoinsSeriesSplitOverFrames(t *testing.T) {
	a := lbls("__name__", "up", "job", "a")
	b := lbls("__name__", "up", "job", "b")
	c1, c2, c3 := xorChunk(t, genSamples(0, 120, 0)), xorChunk(t, genSamples(120*15000, 120, 1)), xorChunk(t, genSamples(240*15000, 5, 2))
	d1, d2 := xorChunk(t, genSamples(0, 10, 9)), xorChunk(t, genSamples(10*15000, 10, 8))
	var body []byte
	body = append(body, seriesFrame(t, a, c1)...)
	body = append(body, seriesFrame(t, a, c2, c3)...) // same labels: continuation of a
	body = append(body, seriesFrame(t, b, d1)...)
	body = append(body, seriesFrame(t, b, d2)...) // split series at the very end of the stream

	got, err := remoteRead(t, newTestClient(t, serveBody(streamedContentType, body)))
	if err != nil {
		t.Fatalf("stream error: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d series, want 2 (split series must be joined)", len(got))
	}
	if labelString(got[0].Labels) != labelString(a) || labelString(got[1].Labels) != labelString(b) {
		t.Fatalf("labels %s / %s, want %s / %s", labelString(got[0].Labels), labelString(got[1].Labels), labelString(a), labelString(b))
	}
	if len(got[0].Chunks) != 3 || len(got[1].Chunks) != 2 {
		t.Fatalf("chunk counts %d and %d, want 3 and 2", len(got[0].Chunks), len(got[1].Chunks))
	}
	for i, want := range []prompb.Chunk{c1, c2, c3} {
		checkChunk(t, "a", got[0].Chunks[i], want)
	}
	for i, want := range []prompb.Chunk{d1, d2} {
		checkChunk(t, "b", got[1].Chunks[i], want)
	}
}

func TestRemoteReadSkipsEmptyFrames(t *testing.T) {
	a, b := lbls("job", "a"), lbls("job", "b")
	var body []byte
	body = append(body, encodeFrame(t, &prompb.ChunkedReadResponse{})...)
	body = append(body, seriesFrame(t, a, xorChunk(t, genSamples(0, 2, 0)))...)
	body = append(body, encodeFrame(t, &prompb.ChunkedReadResponse{QueryIndex: 0})...)
	body = append(body, seriesFrame(t, b, xorChunk(t, genSamples(0, 2, 0)))...)
	got, err := remoteRead(t, newTestClient(t, serveBody(streamedContentType, body)))
	if err != nil {
		t.Fatalf("stream error: %v", err)
	}
	if len(got) != 2 || labelString(got[0].Labels) != "job=a" || labelString(got[1].Labels) != "job=b" {
		t.Fatalf("got %d series, want job=a and job=b", len(got))
	}
}

func TestRemoteReadStreamErrors(t *testing.T) {
	good := seriesFrame(t, lbls("job", "a"), xorChunk(t, genSamples(0, 10, 0)))
	second := seriesFrame(t, lbls("job", "b"), xorChunk(t, genSamples(0, 10, 0)))

	// Payload of second with a wrong checksum.
	payload, err := (&prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{{Labels: lbls("job", "b")}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	badCRC := rawFrame(payload, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli))^1)

	// A frame header announcing more than MaxFrameSize: must fail before reading the payload.
	huge := binary.AppendUvarint(nil, MaxFrameSize+1)
	huge = append(huge, 0, 0, 0, 0, 1, 2, 3)

	twoSeries := encodeFrame(t, &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{{Labels: lbls("job", "x")}, {Labels: lbls("job", "y")}}})

	cases := []struct {
		name    string
		body    []byte
		wantErr string
	}{
		{"corrupt CRC of first frame", badCRC, "checksum"},
		{"corrupt CRC after a good frame", append(slices.Clone(good), badCRC...), "checksum"},
		{"payload truncated", append(slices.Clone(good), second[:len(second)-3]...), "read remote-read frame:"},
		{"checksum truncated", append(slices.Clone(good), second[:3]...), "checksum"},
		{"size varint truncated", append(slices.Clone(good), 0x80), "frame size"},
		{"frame larger than MaxFrameSize", append(slices.Clone(good), huge...), "exceeds"},
		{"garbage payload", rawFrame([]byte{0xff, 0xff, 0xff}, crc32.Checksum([]byte{0xff, 0xff, 0xff}, crc32.MakeTable(crc32.Castagnoli))), "decode"},
		{"two series in one frame", twoSeries, "holds 2 series"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := remoteRead(t, newTestClient(t, serveBody(streamedContentType, tc.body)))
			if err == nil {
				t.Fatalf("Err() = nil, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Err() = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestRemoteReadSampledFallback(t *testing.T) {
	s1 := make([]prompb.Sample, 250)
	for i := range s1 {
		s1[i] = prompb.Sample{Timestamp: int64(i) * 15000, Value: float64(i) * 1.5}
	}
	s2 := []prompb.Sample{{Timestamp: 7, Value: 42}}
	resp := &prompb.ReadResponse{Results: []*prompb.QueryResult{{Timeseries: []*prompb.TimeSeries{
		{Labels: lbls("__name__", "up", "job", "a"), Samples: s1},
		{Labels: lbls("__name__", "up", "job", "b"), Samples: s2},
	}}}}
	raw, err := resp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, serveBody("application/x-protobuf", snappy.Encode(nil, raw)))
	got, err := remoteRead(t, c)
	if err != nil {
		t.Fatalf("stream error: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d series, want 2", len(got))
	}
	for i, want := range [][]prompb.Sample{s1, s2} {
		var decoded []testSample
		for j, chk := range got[i].Chunks {
			if chk.Encoding != int32(chunkenc.EncXOR) {
				t.Errorf("series %d chunk %d: encoding %d, want XOR (%d)", i, j, chk.Encoding, chunkenc.EncXOR)
			}
			smps := chunkSamples(t, chk)
			if len(smps) > 120 {
				t.Errorf("series %d chunk %d holds %d samples, want at most 120", i, j, len(smps))
			}
			if len(smps) > 0 && (chk.MinTime != smps[0].T || chk.MaxTime != smps[len(smps)-1].T) {
				t.Errorf("series %d chunk %d: range [%d,%d], samples span [%d,%d]", i, j, chk.MinTime, chk.MaxTime, smps[0].T, smps[len(smps)-1].T)
			}
			decoded = append(decoded, smps...)
		}
		if len(decoded) != len(want) {
			t.Fatalf("series %d: %d samples, want %d", i, len(decoded), len(want))
		}
		for j := range want {
			if decoded[j].T != want[j].Timestamp || decoded[j].V != want[j].Value {
				t.Fatalf("series %d sample %d: got %v, want {%d %v}", i, j, decoded[j], want[j].Timestamp, want[j].Value)
			}
		}
	}
	if n := len(got[0].Chunks); n != 3 {
		t.Errorf("250 samples became %d chunks, want 3 (120+120+10)", n)
	}
	if labelString(got[1].Labels) != "__name__=up,job=b" {
		t.Errorf("labels %s", labelString(got[1].Labels))
	}
}

func TestRemoteReadSampledCorrupt(t *testing.T) {
	c := newTestClient(t, serveBody("application/x-protobuf", []byte("definitely not snappy")))
	if _, err := c.RemoteRead(context.Background(), testQuery()); err == nil {
		t.Fatal("RemoteRead of a corrupt sampled response succeeded")
	}
}

func TestRemoteReadHTTPError(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "remote read sample limit exceeded: 5000000", http.StatusInternalServerError)
	})
	_, err := c.RemoteRead(context.Background(), testQuery())
	if err == nil {
		t.Fatal("RemoteRead succeeded on HTTP 500")
	}
	if !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "sample limit exceeded: 5000000") {
		t.Fatalf("error %q should carry the status code and body text", err)
	}
}

func TestRemoteReadUnexpectedContentType(t *testing.T) {
	c := newTestClient(t, serveBody("text/html", []byte("<html>login</html>")))
	_, err := c.RemoteRead(context.Background(), testQuery())
	if err == nil || !strings.Contains(err.Error(), "text/html") {
		t.Fatalf("error %v, want one naming the unexpected Content-Type", err)
	}
}

func TestRemoteReadRequest(t *testing.T) {
	var (
		gotReq    prompb.ReadRequest
		gotHeader http.Header
		gotMethod string
		gotPath   string
		decodeErr error
	)
	h := func(w http.ResponseWriter, r *http.Request) {
		gotHeader, gotMethod, gotPath = r.Header.Clone(), r.Method, r.URL.Path
		compressed, err := io.ReadAll(r.Body)
		if err == nil {
			var raw []byte
			if raw, err = snappy.Decode(nil, compressed); err == nil {
				err = gotReq.Unmarshal(raw)
			}
		}
		decodeErr = err
		w.Header().Set("Content-Type", streamedContentType)
	}
	q := testQuery()
	q.Hints = &prompb.ReadHints{StepMs: 30000, Func: "rate", StartMs: 1000, EndMs: 2000}
	s, err := newTestClient(t, h).RemoteRead(context.Background(), q)
	if err != nil {
		t.Fatalf("RemoteRead: %v", err)
	}
	if got, err := collect(t, s); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %d series, err %v", len(got), err)
	}
	if gotMethod != http.MethodPost || gotPath != "/api/v1/read" {
		t.Errorf("request %s %s, want POST /api/v1/read", gotMethod, gotPath)
	}
	if v := gotHeader.Get("Content-Encoding"); v != "snappy" {
		t.Errorf("Content-Encoding %q, want snappy", v)
	}
	if v := gotHeader.Get("X-Prometheus-Remote-Read-Version"); v == "" || !strings.HasPrefix(v, "0.1") {
		t.Errorf("X-Prometheus-Remote-Read-Version %q, want 0.1.x", v)
	}
	if decodeErr != nil {
		t.Fatalf("request body is not a snappy-compressed ReadRequest: %v", decodeErr)
	}
	if len(gotReq.Queries) != 1 {
		t.Fatalf("%d queries, want 1", len(gotReq.Queries))
	}
	gq := gotReq.Queries[0]
	if gq.StartTimestampMs != 1000 || gq.EndTimestampMs != 2000 || len(gq.Matchers) != 1 || gq.Matchers[0].Value != "up" {
		t.Errorf("query %v does not match the one sent", gq)
	}
	if gq.Hints == nil || gq.Hints.Func != "rate" || gq.Hints.StepMs != 30000 {
		t.Errorf("hints %v not passed through", gq.Hints)
	}
	want := []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS, prompb.ReadRequest_SAMPLES}
	if !slices.Equal(gotReq.AcceptedResponseTypes, want) {
		t.Errorf("accepted response types %v, want %v (streamed preferred)", gotReq.AcceptedResponseTypes, want)
	}
}

// A reader that hands out one byte at a time exercises the frame reader's buffering.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestChunkedStreamOneByteReads(t *testing.T) {
	var body []byte
	var want []string
	for i := range 5 {
		l := lbls("i", string(rune('a'+i)))
		want = append(want, labelString(l))
		body = append(body, seriesFrame(t, l, xorChunk(t, genSamples(int64(i), 3, float64(i))))...)
	}
	s := newChunkedStream(io.NopCloser(oneByteReader{bytes.NewReader(body)}))
	var got []string
	for s.Next() {
		got = append(got, labelString(s.At().Labels))
		if n := len(chunkSamples(t, s.At().Chunks[0])); n != 3 {
			t.Errorf("%d samples, want 3", n)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream error: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestDecodeChunkedReadResponseSkipsUnknownFields(t *testing.T) {
	chk := xorChunk(t, genSamples(-5000, 4, 1))
	payload, err := (&prompb.ChunkedReadResponse{
		ChunkedSeries: []*prompb.ChunkedSeries{{Labels: lbls("a", "1", "b", "2"), Chunks: []prompb.Chunk{chk}}},
		QueryIndex:    3,
	}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Append an unknown varint field 9 and an unknown bytes field 10 at top level.
	payload = append(payload, 9<<3|0, 5, 10<<3|2, 2, 'h', 'i')
	in := newInterner()
	got, err := decodeChunkedReadResponse(payload, &in)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(got) != 1 || labelString(got[0].Labels) != "a=1,b=2" || len(got[0].Chunks) != 1 {
		t.Fatalf("decoded %+v", got)
	}
	checkChunk(t, "chunk", got[0].Chunks[0], chk)
}

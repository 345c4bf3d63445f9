package promclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// MaxFrameSize bounds one remote-read frame; Prometheus cuts frames at about 1 MiB.
const MaxFrameSize = 50 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ReadStream iterates the series of a remote-read answer in the order Prometheus sends
// them (sorted by their stored labels). Implementations hold at most one frame.
type ReadStream interface {
	// Next advances to the next series; a series split over several frames is joined.
	Next() bool
	// At is the current series. Its Data slices stay valid until the stream is closed;
	// its label strings are immutable.
	At() *RawSeries
	Err() error
	Close() error
}

// RawSeries is one remote-read series: labels as Prometheus sent them (external labels
// already merged in by Prometheus) and chunks in Prometheus chunkenc encoding.
type RawSeries struct {
	Labels []prompb.Label
	Chunks []RawChunk
}

// RawChunk is one chunk of a remote-read series.
type RawChunk struct {
	MinTime, MaxTime int64
	Encoding         int32 // Prometheus chunkenc encoding (XOR=1, histogram=2, float histogram=3)
	Data             []byte
}

// RemoteRead runs one remote-read query, asking for streamed XOR chunks and accepting
// sampled responses from servers that cannot stream.
func (c *Client) RemoteRead(ctx context.Context, q *prompb.Query) (ReadStream, error) {
	rr := &prompb.ReadRequest{
		Queries:               []*prompb.Query{q},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS, prompb.ReadRequest_SAMPLES},
	}
	body, err := rr.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal remote-read request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint("/api/v1/read", nil), bytes.NewReader(snappy.Encode(nil, body)))
	if err != nil {
		return nil, fmt.Errorf("build remote-read request: %w", err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("remote read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		drainClose(resp.Body)
		return nil, fmt.Errorf("remote read: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/x-streamed-protobuf"):
		return newChunkedStream(resp.Body), nil
	case strings.HasPrefix(ct, "application/x-protobuf"):
		defer drainClose(resp.Body)
		return newSampledStream(resp.Body)
	default:
		drainClose(resp.Body)
		return nil, fmt.Errorf("remote read: unexpected Content-Type %q", ct)
	}
}

// chunkedStream decodes STREAMED_XOR_CHUNKS frames: uvarint length, big-endian CRC32
// (Castagnoli) of the payload, then a ChunkedReadResponse.
type chunkedStream struct {
	body    io.ReadCloser
	r       *bytesReader
	cur     *RawSeries
	pending *RawSeries // first series of the next frame, read ahead to join split series
	err     error
	interner
}

func newChunkedStream(body io.ReadCloser) *chunkedStream {
	return &chunkedStream{body: body, r: newBytesReader(body), interner: newInterner()}
}

func (s *chunkedStream) Next() bool {
	if s.err != nil {
		return false
	}
	cur := s.pending
	s.pending = nil
	if cur == nil {
		if cur = s.readFrame(); cur == nil {
			return false
		}
	}
	// Prometheus sends one series per frame and splits large series over consecutive
	// frames carrying the same labels: join them.
	for {
		next := s.readFrame()
		if next == nil {
			break
		}
		if !sameLabels(cur.Labels, next.Labels) {
			s.pending = next
			break
		}
		cur.Chunks = append(cur.Chunks, next.Chunks...)
	}
	if s.err != nil {
		return false
	}
	s.cur = cur
	return true
}

// readFrame reads one frame; nil at the end of the stream or on error (see s.err).
func (s *chunkedStream) readFrame() *RawSeries {
	size, err := binary.ReadUvarint(s.r)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.err = fmt.Errorf("read remote-read frame size: %w", err)
		}
		return nil
	}
	if size > MaxFrameSize {
		s.err = fmt.Errorf("remote-read frame of %d bytes exceeds the %d byte limit", size, MaxFrameSize)
		return nil
	}
	var crc [4]byte
	if _, err := io.ReadFull(s.r, crc[:]); err != nil {
		s.err = fmt.Errorf("read remote-read frame checksum: %w", err)
		return nil
	}
	// Each frame gets its own buffer: chunk data aliases it and must outlive the frame.
	buf := make([]byte, size)
	if _, err := io.ReadFull(s.r, buf); err != nil {
		s.err = fmt.Errorf("read remote-read frame: %w", err)
		return nil
	}
	if got := crc32.Checksum(buf, castagnoli); got != binary.BigEndian.Uint32(crc[:]) {
		s.err = fmt.Errorf("remote-read frame checksum mismatch: got %08x, want %08x", got, binary.BigEndian.Uint32(crc[:]))
		return nil
	}
	series, err := decodeChunkedReadResponse(buf, &s.interner)
	if err != nil {
		s.err = err
		return nil
	}
	switch len(series) {
	case 0:
		return s.readFrame()
	case 1:
		return series[0]
	default:
		// Not produced by Prometheus, but legal: keep all but the first for later.
		s.err = fmt.Errorf("remote-read frame holds %d series; expected one", len(series))
		return nil
	}
}

func (s *chunkedStream) At() *RawSeries { return s.cur }
func (s *chunkedStream) Err() error     { return s.err }
func (s *chunkedStream) Close() error {
	drainClose(s.body)
	return nil
}

func sameLabels(a, b []prompb.Label) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Value != b[i].Value {
			return false
		}
	}
	return true
}

// bytesReader adds io.ByteReader to a buffered reader for binary.ReadUvarint.
type bytesReader struct {
	r   io.Reader
	buf []byte
	pos int
}

func newBytesReader(r io.Reader) *bytesReader {
	return &bytesReader{r: r, buf: make([]byte, 0, 64<<10)}
}

func (b *bytesReader) fill() error {
	if b.pos < len(b.buf) {
		return nil
	}
	n, err := b.r.Read(b.buf[:cap(b.buf)])
	b.buf, b.pos = b.buf[:n], 0
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (b *bytesReader) ReadByte() (byte, error) {
	if err := b.fill(); err != nil {
		return 0, err
	}
	c := b.buf[b.pos]
	b.pos++
	return c, nil
}

func (b *bytesReader) Read(p []byte) (int, error) {
	if b.pos < len(b.buf) {
		n := copy(p, b.buf[b.pos:])
		b.pos += n
		return n, nil
	}
	if len(p) >= cap(b.buf) {
		return b.r.Read(p)
	}
	if err := b.fill(); err != nil {
		return 0, err
	}
	return b.Read(p)
}

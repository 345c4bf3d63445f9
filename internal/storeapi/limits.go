package storeapi

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// RequestLimits bound what one Series request may return; 0 means unlimited.
type RequestLimits struct {
	Series  int64 // --store.limits.request-series
	Samples int64 // --store.limits.request-samples, counted from the chunk headers
	Bytes   int64 // --query.max-fetched-bytes: label and chunk bytes (the querier's)
}

// Limiter counts one request's series, samples and bytes against its limits. It is safe
// for concurrent use: the querier's receivers, one per endpoint, share one.
type Limiter struct {
	limits                 RequestLimits
	series, samples, bytes atomic.Int64
}

// NewLimiter returns a limiter for one request.
func NewLimiter(l RequestLimits) *Limiter { return &Limiter{limits: l} }

// Add counts one series. Over a limit it returns a ResourceExhausted error naming the
// flag, which ends the request whatever its partial-response strategy: a limit protects
// the process, and a partial answer would hide that the query was cut.
func (l *Limiter) Add(s *storepb.Series) error {
	var samples, bytes int64
	if l.limits.Samples > 0 {
		samples = int64(CountSamples(s.Chunks))
	}
	if l.limits.Bytes > 0 {
		bytes = int64(SeriesBytes(s))
	}
	return l.Count(samples, bytes)
}

// Count counts one series of the given samples and bytes, as Add does.
func (l *Limiter) Count(samples, bytes int64) error {
	if l.limits.Series > 0 && l.series.Add(1) > l.limits.Series {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("exceeded series limit: more than %d series (--store.limits.request-series)", l.limits.Series))
	}
	if l.limits.Samples > 0 && l.samples.Add(samples) > l.limits.Samples {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("exceeded samples limit: more than %d samples (--store.limits.request-samples)", l.limits.Samples))
	}
	if l.limits.Bytes > 0 && l.bytes.Add(bytes) > l.limits.Bytes {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("exceeded fetched bytes limit: more than %d bytes of labels and chunks (--query.max-fetched-bytes)", l.limits.Bytes))
	}
	return nil
}

// CountSamples returns the samples in chunks, read from their headers: the raw chunk's,
// or for a downsampled chunk one aggregate's (a counter aggregate carries two extra raw
// samples, which are not counted).
func CountSamples(chks []*storepb.AggrChunk) int {
	n := 0
	for _, c := range chks {
		if raw := c.GetRaw(); raw != nil {
			n += chunkHeaderSamples(raw)
			continue
		}
		switch {
		case c.GetCount() != nil:
			n += chunkHeaderSamples(c.GetCount())
		case c.GetSum() != nil:
			n += chunkHeaderSamples(c.GetSum())
		case c.GetMin() != nil:
			n += chunkHeaderSamples(c.GetMin())
		case c.GetMax() != nil:
			n += chunkHeaderSamples(c.GetMax())
		case c.GetCounter() != nil:
			n += max(0, chunkHeaderSamples(c.GetCounter())-2)
		}
	}
	return n
}

// chunkHeaderSamples reads the sample count every Prometheus chunk encoding starts with.
func chunkHeaderSamples(c *storepb.Chunk) int { return ChunkDataSamples(c.GetData()) }

// ChunkDataSamples reads the sample count at the start of encoded chunk data; 0 if the
// data is too short to hold one.
func ChunkDataSamples(d []byte) int {
	if len(d) >= 2 {
		return int(binary.BigEndian.Uint16(d))
	}
	return 0
}

// SeriesBytes is what a series holds in memory beyond its fixed-size structs: its label
// names and values and its chunk data.
func SeriesBytes(s *storepb.Series) int {
	n := 0
	for _, l := range s.Labels {
		n += len(l.Name) + len(l.Value)
	}
	for _, c := range s.Chunks {
		n += AggrChunkBytes(c)
	}
	return n
}

// AggrChunkBytes is the data of a chunk: its raw chunk's and its aggregates'.
func AggrChunkBytes(c *storepb.AggrChunk) int {
	return len(c.GetRaw().GetData()) + len(c.GetCount().GetData()) + len(c.GetSum().GetData()) +
		len(c.GetMin().GetData()) + len(c.GetMax().GetData()) + len(c.GetCounter().GetData())
}

package storeapi

import (
	"fmt"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// ChunkFromProto decodes a raw wire chunk into a Prometheus chunk. Wire encodings are one
// lower than Prometheus chunkenc encodings.
func ChunkFromProto(c *storepb.Chunk) (chunkenc.Chunk, error) {
	if c == nil {
		return nil, fmt.Errorf("missing raw chunk")
	}
	chk, err := chunkenc.FromData(chunkenc.Encoding(c.GetType()+1), c.GetData())
	if err != nil {
		return nil, fmt.Errorf("decode %s chunk: %w", c.GetType(), err)
	}
	return chk, nil
}

// Sample is one float sample.
type Sample struct {
	T int64
	V float64
}

// FloatSamples decodes the float samples of a series' raw chunks within [mint, maxt].
// It is a convenience for tests and tools, not the query path.
func FloatSamples(s *storepb.Series, mint, maxt int64) ([]Sample, error) {
	var out []Sample
	var it chunkenc.Iterator
	for _, ac := range s.GetChunks() {
		chk, err := ChunkFromProto(ac.GetRaw())
		if err != nil {
			return nil, err
		}
		it = chk.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue
			}
			t, v := it.At()
			if t >= mint && t <= maxt {
				out = append(out, Sample{T: t, V: v})
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("iterate chunk: %w", err)
		}
	}
	return out, nil
}

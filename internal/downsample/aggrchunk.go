package downsample

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/vigilhq/vigil/internal/seek"
)

// AggrType is one of the aggregates stored in an AggrChunk, in on-disk order.
type AggrType int

// The aggregates of a downsampled chunk.
const (
	AggrCount AggrType = iota
	AggrSum
	AggrMin
	AggrMax
	AggrCounter

	numAggrs = 5
)

// String returns the aggregate's name as Thanos spells it.
func (t AggrType) String() string {
	switch t {
	case AggrCount:
		return "count"
	case AggrSum:
		return "sum"
	case AggrMin:
		return "min"
	case AggrMax:
		return "max"
	case AggrCounter:
		return "counter"
	}
	return fmt.Sprintf("<unknown aggr %d>", int(t))
}

// EncAggr is the chunk encoding byte of downsampled (aggregate) chunks on disk.
const EncAggr chunkenc.Encoding = 0xff

// ErrAggrNotExist is returned (wrapped) by AggrChunk.Get when the aggregate is absent.
var ErrAggrNotExist = errors.New("aggregate does not exist in chunk")

// errNotAppendable is returned by AggrChunk.Appender: aggregate chunks are built whole
// with EncodeAggrChunk.
var errNotAppendable = errors.New("downsample: AggrChunk is not appendable, build it with EncodeAggrChunk")

// errNotIterable is reported by AggrChunk.Iterator.
var errNotIterable = errors.New("downsample: an AggrChunk cannot be iterated directly; read one aggregate with Get or use NewIteratorForFunc")

// AggrChunk is the data of a downsampled chunk (encoding EncAggr): five length-prefixed
// sub-chunks COUNT, SUM, MIN, MAX and COUNTER. It implements chunkenc.Chunk so that it
// can pass through Prometheus' chunk readers and writers, but it is immutable: it has no
// appender, and Reset cannot re-point a value type, so it does nothing. Its Iterator
// reports an error instead of silently choosing an aggregate: the caller has to say which
// aggregate it wants (Get, NewIteratorForFunc).
type AggrChunk []byte

var _ chunkenc.Chunk = AggrChunk(nil)

// EncodeAggrChunk builds an AggrChunk from the chunks of the five aggregates, indexed by
// AggrType. A nil chunk (or one with no bytes) is stored as absent.
func EncodeAggrChunk(chks [5]chunkenc.Chunk) AggrChunk {
	size := 0
	for _, c := range chks {
		l := 0
		if c != nil {
			l = len(c.Bytes())
		}
		size += uvarintLen(uint64(l))
		if l > 0 {
			size += 1 + l
		}
	}
	b := make([]byte, 0, size)
	for _, c := range chks {
		if c == nil || len(c.Bytes()) == 0 {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		data := c.Bytes()
		b = binary.AppendUvarint(b, uint64(len(data)))
		b = append(b, byte(c.Encoding()))
		b = append(b, data...)
	}
	return b
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// Get returns the chunk of aggregate t. It shares memory with c. An absent aggregate
// yields an error wrapping ErrAggrNotExist.
func (c AggrChunk) Get(t AggrType) (chunkenc.Chunk, error) {
	if t < 0 || t >= numAggrs {
		return nil, fmt.Errorf("downsample: invalid aggregate type %d", int(t))
	}
	b := []byte(c)
	for i := AggrType(0); ; i++ {
		l, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("downsample: read length of %s aggregate: corrupt AggrChunk", i)
		}
		b = b[n:]
		if l == 0 {
			if i == t {
				return nil, fmt.Errorf("%s: %w", t, ErrAggrNotExist)
			}
			continue
		}
		if uint64(len(b)) < 1+l {
			return nil, fmt.Errorf("downsample: %s aggregate of %d bytes overruns AggrChunk of %d bytes", i, l, len(c))
		}
		if i == t {
			chk, err := chunkenc.FromData(chunkenc.Encoding(b[0]), b[1:1+l])
			if err != nil {
				return nil, fmt.Errorf("downsample: %s aggregate: %w", t, err)
			}
			return chk, nil
		}
		b = b[1+l:]
	}
}

// Bytes implements chunkenc.Chunk.
func (c AggrChunk) Bytes() []byte { return c }

// Encoding implements chunkenc.Chunk and returns EncAggr.
func (AggrChunk) Encoding() chunkenc.Encoding { return EncAggr }

// Appender implements chunkenc.Chunk; an AggrChunk is not appendable.
func (AggrChunk) Appender() (chunkenc.Appender, error) { return nil, errNotAppendable }

// Iterator implements chunkenc.Chunk. It returns an iterator that yields nothing and
// reports an error: use Get or NewIteratorForFunc to choose the aggregate to read.
func (AggrChunk) Iterator(chunkenc.Iterator) chunkenc.Iterator { return errIterator{errNotIterable} }

// NumSamples implements chunkenc.Chunk: the number of samples of the COUNT aggregate,
// or 0 when it is absent or unreadable.
func (c AggrChunk) NumSamples() int {
	chk, err := c.Get(AggrCount)
	if err != nil {
		return 0
	}
	return chk.NumSamples()
}

// Compact implements chunkenc.Chunk; it does nothing.
func (AggrChunk) Compact() {}

// Reset implements chunkenc.Chunk. An AggrChunk is an immutable value, so Reset does
// nothing; wrap new bytes with AggrChunk(b) instead.
func (AggrChunk) Reset([]byte) {}

// NewPool returns a chunkenc.Pool that knows EncAggr in addition to every Prometheus
// encoding. Pass it to tsdb.OpenBlock or chunks.NewDirReader to read downsampled blocks;
// chunks with encoding EncAggr come back as AggrChunk values that point into the
// reader's (mmapped) segment files, valid until the reader is closed.
func NewPool() chunkenc.Pool {
	return &pool{Pool: chunkenc.NewPool()}
}

type pool struct {
	chunkenc.Pool
}

// Get implements chunkenc.Pool.
func (p *pool) Get(e chunkenc.Encoding, b []byte) (chunkenc.Chunk, error) {
	if e == EncAggr {
		return AggrChunk(b), nil
	}
	return p.Pool.Get(e, b)
}

// Put implements chunkenc.Pool. AggrChunks are not pooled.
func (p *pool) Put(c chunkenc.Chunk) error {
	if c.Encoding() == EncAggr {
		return nil
	}
	return p.Pool.Put(c)
}

// errIterator is an empty iterator that reports err.
type errIterator struct{ err error }

func (errIterator) Next() chunkenc.ValueType            { return chunkenc.ValNone }
func (errIterator) Seek(seek.Millis) chunkenc.ValueType { return chunkenc.ValNone }
func (errIterator) At() (int64, float64)                { return math.MinInt64, 0 }
func (errIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return math.MinInt64, nil
}

func (errIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return math.MinInt64, nil
}
func (errIterator) AtT() int64    { return math.MinInt64 }
func (errIterator) AtST() int64   { return 0 }
func (it errIterator) Err() error { return it.err }

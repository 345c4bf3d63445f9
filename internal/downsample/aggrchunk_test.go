package downsample

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// xorChunk builds an XOR chunk from (t, v) pairs.
func xorChunk(tb testing.TB, pts ...Sample) *chunkenc.XORChunk {
	tb.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range pts {
		app.Append(0, p.T, p.F)
	}
	return c
}

func readAll(tb testing.TB, it chunkenc.Iterator) []Sample {
	tb.Helper()
	var out []Sample
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		out = append(out, Sample{t, v})
	}
	if err := it.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestAggrChunkRoundTrip(t *testing.T) {
	count := xorChunk(t, Sample{299_999, 20}, Sample{599_999, 19})
	sum := xorChunk(t, Sample{299_999, 40.5}, Sample{599_999, 38})
	counter := xorChunk(t, Sample{0, 1}, Sample{299_999, 21}, Sample{599_999, 41}, Sample{599_999, 3})
	// MIN and MAX absent: a nil chunk and an empty one are both stored as absent.
	ac := EncodeAggrChunk([5]chunkenc.Chunk{count, sum, nil, &chunkenc.XORChunk{}, counter})

	if ac.Encoding() != EncAggr || ac.Encoding() != 0xff {
		t.Fatalf("encoding = %v", ac.Encoding())
	}
	if n := ac.NumSamples(); n != 2 {
		t.Fatalf("NumSamples = %d, want 2 (from COUNT)", n)
	}
	for typ, want := range map[AggrType]*chunkenc.XORChunk{AggrCount: count, AggrSum: sum, AggrCounter: counter} {
		got, err := ac.Get(typ)
		if err != nil {
			t.Fatalf("Get(%s): %v", typ, err)
		}
		if got.Encoding() != chunkenc.EncXOR || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("Get(%s) = %v %x, want XOR %x", typ, got.Encoding(), got.Bytes(), want.Bytes())
		}
	}
	got, err := ac.Get(AggrCounter)
	if err != nil {
		t.Fatal(err)
	}
	// The duplicate timestamp survives the XOR encoding.
	if s := readAll(t, got.Iterator(nil)); len(s) != 4 || s[3] != (Sample{599_999, 3}) {
		t.Fatalf("counter samples = %v", s)
	}
	for _, typ := range []AggrType{AggrMin, AggrMax} {
		if _, err := ac.Get(typ); !errors.Is(err, ErrAggrNotExist) {
			t.Fatalf("Get(%s) error = %v, want ErrAggrNotExist", typ, err)
		}
	}
	if _, err := ac.Get(AggrType(5)); err == nil {
		t.Fatal("Get(5) succeeded")
	}
	if _, err := ac.Appender(); err == nil {
		t.Fatal("Appender succeeded")
	}
	it := ac.Iterator(nil)
	if it.Next() != chunkenc.ValNone || it.Err() == nil {
		t.Fatal("Iterator of an AggrChunk must yield nothing and report an error")
	}
	if n := AggrChunk(EncodeAggrChunk([5]chunkenc.Chunk{})).NumSamples(); n != 0 {
		t.Fatalf("NumSamples of an empty AggrChunk = %d", n)
	}
}

// TestAggrChunkLayout checks the bytes against the format written out by hand:
// uvarint(len) | encoding | data per present aggregate, a single 0 byte per absent one.
func TestAggrChunkLayout(t *testing.T) {
	count := xorChunk(t, Sample{299_999, 1})
	counter := xorChunk(t, Sample{10, 5}, Sample{299_999, 5}, Sample{299_999, 5})
	// A sub-chunk of 200+ bytes (< 16384) needs a two-byte uvarint length.
	big := xorChunk(t)
	bigApp, _ := big.Appender()
	for i := int64(0); len(big.Bytes()) < 200; i++ {
		bigApp.Append(0, i*1000+i*i, float64(i*i*7919))
	}
	l := len(big.Bytes())

	var want []byte
	want = append(want, byte(len(count.Bytes())), 0x01)
	want = append(want, count.Bytes()...)
	want = append(want, 0x00) // SUM absent.
	want = append(want, byte(l&0x7f)|0x80, byte(l>>7), 0x01)
	want = append(want, big.Bytes()...) // MIN.
	want = append(want, 0x00)           // MAX absent.
	want = append(want, byte(len(counter.Bytes())), 0x01)
	want = append(want, counter.Bytes()...)

	got := EncodeAggrChunk([5]chunkenc.Chunk{count, nil, big, nil, counter})
	if cap(got) != len(got) {
		t.Errorf("EncodeAggrChunk allocated %d bytes for %d", cap(got), len(got))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("layout mismatch\n got %x\nwant %x", []byte(got), want)
	}
	// The XOR data starts with its big-endian sample count.
	if binary.BigEndian.Uint16(got[2:4]) != 1 {
		t.Fatalf("COUNT data does not start with sample count 1: %x", got[2:4])
	}
	mn, err := got.Get(AggrMin)
	if err != nil || !bytes.Equal(mn.Bytes(), big.Bytes()) {
		t.Fatalf("Get(min) = %v, %v", mn, err)
	}
}

func TestAggrChunkCorrupt(t *testing.T) {
	count := xorChunk(t, Sample{1, 1})
	ac := EncodeAggrChunk([5]chunkenc.Chunk{count, count, count, count, count})
	for _, b := range []AggrChunk{nil, ac[:3], ac[:len(ac)-1], {0x05, 0x01}} {
		if _, err := b.Get(AggrCounter); err == nil || errors.Is(err, ErrAggrNotExist) {
			t.Fatalf("Get on corrupt chunk %x: err = %v", []byte(b), err)
		}
	}
	bad := AggrChunk{0x02, 0x77, 0x00, 0x00, 0, 0, 0, 0} // Unknown inner encoding 0x77.
	if _, err := bad.Get(AggrCount); err == nil {
		t.Fatal("Get with an unknown inner encoding succeeded")
	}
}

func TestPool(t *testing.T) {
	p := NewPool()
	ac := EncodeAggrChunk([5]chunkenc.Chunk{xorChunk(t, Sample{1, 1})})
	c, err := p.Get(EncAggr, ac)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c.(AggrChunk); !ok || !bytes.Equal(got, ac) {
		t.Fatalf("pool returned %T", c)
	}
	if err := p.Put(c); err != nil {
		t.Fatal(err)
	}
	x := xorChunk(t, Sample{1, 2})
	c, err = p.Get(chunkenc.EncXOR, x.Bytes())
	if err != nil || c.Encoding() != chunkenc.EncXOR || c.NumSamples() != 1 {
		t.Fatalf("pool XOR chunk = %v, %v", c, err)
	}
	if err := p.Put(c); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(0x42, nil); err == nil {
		t.Fatal("pool accepted encoding 0x42")
	}
	if _, err := chunkenc.NewPool().Get(EncAggr, ac); err == nil {
		t.Fatal("the stock Prometheus pool accepted 0xFF; NewPool would not be needed")
	}
}

package bucketstore

import (
	"bytes"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// seq returns n bytes counting up from first (mod 256), so any sub-range is recognisable.
func seq(first, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(first + i)
	}
	return b
}

var (
	blockA = ulid.MustParse("01HZZZZZZZZZZZZZZZZZZZZZZA")
	blockB = ulid.MustParse("01HZZZZZZZZZZZZZZZZZZZZZZB")
)

func TestSegmentCacheHitsWithinSegment(t *testing.T) {
	c := NewSegmentCache(1<<20, nil)
	c.Put(blockA, 1000, seq(1000, 500)) // covers [1000, 1500)

	for _, tc := range []struct {
		start, end int
		hit        bool
	}{
		{1000, 1500, true},  // the whole segment
		{1000, 1001, true},  // its first byte
		{1200, 1300, true},  // inside
		{1499, 1500, true},  // its last byte
		{1400, 1501, false}, // runs past the end
		{999, 1100, false},  // starts before it
		{1500, 1600, false}, // just after it
	} {
		got, ok := c.Get(blockA, tc.start, tc.end)
		if ok != tc.hit {
			t.Fatalf("Get(%d, %d): hit = %v, want %v", tc.start, tc.end, ok, tc.hit)
		}
		if ok && !bytes.Equal(got, seq(tc.start, tc.end-tc.start)) {
			t.Fatalf("Get(%d, %d) = %v, want the bytes at those offsets", tc.start, tc.end, got)
		}
	}
	if _, ok := c.Get(blockB, 1200, 1300); ok {
		t.Fatal("a segment of block A served a read of block B")
	}
	if h, m := testutil.ToFloat64(c.hits), testutil.ToFloat64(c.misses); h != 4 || m != 4 {
		t.Fatalf("hits, misses = %v, %v; want 4, 4", h, m)
	}
}

func TestSegmentCacheFindsTheRightSegmentAmongMany(t *testing.T) {
	c := NewSegmentCache(1<<20, nil)
	// Put out of order; the cache keeps each block's segments sorted by offset.
	for _, start := range []int{5000, 0, 3000, 1000, 4000, 2000} {
		c.Put(blockA, start, seq(start, 100))
	}
	for _, start := range []int{0, 1000, 2000, 3000, 4000, 5000} {
		got, ok := c.Get(blockA, start+10, start+90)
		if !ok || !bytes.Equal(got, seq(start+10, 80)) {
			t.Fatalf("Get in segment at %d: %v, %v", start, got, ok)
		}
		if _, ok := c.Get(blockA, start+150, start+160); ok {
			t.Fatalf("Get between segments after %d hit", start)
		}
	}
}

func TestSegmentCacheEvictionKeepsSizeWithinMax(t *testing.T) {
	const max = 1000
	c := NewSegmentCache(max, nil)
	for i := 0; i < 50; i++ {
		c.Put(blockA, i*300, seq(i, 150+i%7*20))
		if c.size > max {
			t.Fatalf("after Put %d the cache holds %d bytes, more than its max %d", i, c.size, max)
		}
		if got := int64(testutil.ToFloat64(c.bytes)); got != c.size {
			t.Fatalf("bytes gauge %d, size %d", got, c.size)
		}
	}
	var sum int64
	for e := c.lru.Front(); e != nil; e = e.Next() {
		sum += int64(len(e.Value.(*segment).data))
	}
	if sum != c.size {
		t.Fatalf("segments hold %d bytes but size says %d", sum, c.size)
	}
	if n := testutil.ToFloat64(c.evictions); n == 0 {
		t.Fatal("no evictions counted")
	}
	// The newest segment is still there, the oldest is gone.
	if _, ok := c.Get(blockA, 49*300, 49*300+10); !ok {
		t.Fatal("newest segment evicted")
	}
	if _, ok := c.Get(blockA, 0, 10); ok {
		t.Fatal("oldest segment still cached")
	}
}

func TestSegmentCacheLRUOrder(t *testing.T) {
	c := NewSegmentCache(300, nil)
	c.Put(blockA, 0, seq(0, 100))
	c.Put(blockA, 1000, seq(0, 100))
	c.Put(blockB, 0, seq(0, 100))
	// Touch the oldest: the second one becomes least recently used.
	if _, ok := c.Get(blockA, 0, 50); !ok {
		t.Fatal("miss on a fresh segment")
	}
	c.Put(blockB, 1000, seq(0, 100))
	if _, ok := c.Get(blockA, 1000, 1050); ok {
		t.Fatal("least recently used segment (A@1000) was kept")
	}
	for _, k := range []struct {
		b     ulid.ULID
		start int
	}{{blockA, 0}, {blockB, 0}, {blockB, 1000}} {
		if _, ok := c.Get(k.b, k.start, k.start+100); !ok {
			t.Fatalf("segment %s@%d was evicted instead of the least recently used one", k.b, k.start)
		}
	}
}

func TestSegmentCacheDropBlock(t *testing.T) {
	c := NewSegmentCache(1<<20, nil)
	for i := 0; i < 5; i++ {
		c.Put(blockA, i*100, seq(0, 100))
	}
	c.Put(blockB, 0, seq(0, 64))
	c.DropBlock(blockA)
	if c.size != 64 || int64(testutil.ToFloat64(c.bytes)) != 64 {
		t.Fatalf("after DropBlock size %d (gauge %v), want 64: only block B's segment", c.size, testutil.ToFloat64(c.bytes))
	}
	if _, ok := c.byBlock[blockA]; ok {
		t.Fatal("dropped block still has an entry")
	}
	if c.lru.Len() != 1 {
		t.Fatalf("LRU holds %d segments, want 1", c.lru.Len())
	}
	if _, ok := c.Get(blockA, 0, 10); ok {
		t.Fatal("dropped block still served")
	}
	if _, ok := c.Get(blockB, 0, 10); !ok {
		t.Fatal("the other block's segment was dropped too")
	}
	c.DropBlock(blockA) // unknown block: nothing happens
	if c.size != 64 {
		t.Fatalf("second DropBlock changed size to %d", c.size)
	}
}

func TestSegmentCacheDoesNotKeepTooLargeSegments(t *testing.T) {
	c := NewSegmentCache(100, nil)
	c.Put(blockA, 0, seq(0, 60))
	c.Put(blockA, 1000, seq(0, 101)) // larger than the whole cache
	if _, ok := c.Get(blockA, 1000, 1010); ok {
		t.Fatal("segment larger than the cache was kept")
	}
	if _, ok := c.Get(blockA, 0, 10); !ok {
		t.Fatal("a too large segment evicted what was cached")
	}
	c.Put(blockA, 2000, seq(0, 100)) // exactly the cache size: kept, evicting the rest
	if _, ok := c.Get(blockA, 2000, 2100); !ok || c.size != 100 {
		t.Fatalf("segment of exactly the cache size: hit %v, size %d", ok, c.size)
	}

	off := NewSegmentCache(0, nil) // --index-cache-size=0 disables caching
	off.Put(blockA, 0, seq(0, 1))
	if _, ok := off.Get(blockA, 0, 1); ok || off.size != 0 {
		t.Fatal("a cache of size 0 kept data")
	}
}

func TestSegmentCacheSliceStaysValidAfterEviction(t *testing.T) {
	c := NewSegmentCache(100, nil)
	c.Put(blockA, 0, seq(7, 100))
	got, ok := c.Get(blockA, 10, 20)
	if !ok {
		t.Fatal("miss")
	}
	c.Put(blockA, 500, seq(0, 100)) // evicts the first segment
	if !bytes.Equal(got, seq(17, 10)) {
		t.Fatalf("slice handed out changed after eviction: %v", got)
	}
}

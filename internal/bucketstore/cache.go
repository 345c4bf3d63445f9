package bucketstore

import (
	"container/list"
	"sort"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// SegmentCache is the store's index cache: byte ranges of block indexes (postings lists
// and series entries) fetched from the bucket, bounded in total size (--index-cache-size)
// with least-recently-used eviction. Cached data is never reused for anything else, so a
// slice handed out stays valid after its segment is evicted.
type SegmentCache struct {
	mu      sync.Mutex
	max     int64
	maxItem int64 // largest segment kept; max when 0 (SetMaxItem, before use)
	size    int64
	lru     *list.List // of *segment, front = most recent
	byBlock map[ulid.ULID]*blockSegments

	hits, misses, evictions prometheus.Counter
	bytes                   prometheus.Gauge
}

type segment struct {
	block ulid.ULID
	start int
	data  []byte
	elem  *list.Element
}

// blockSegments keeps one block's segments sorted by start offset.
type blockSegments struct {
	segs []*segment
}

// NewSegmentCache returns a cache holding at most maxBytes (0 disables caching).
func NewSegmentCache(maxBytes int64, reg prometheus.Registerer) *SegmentCache {
	c := &SegmentCache{max: maxBytes, lru: list.New(), byBlock: map[ulid.ULID]*blockSegments{},
		hits:      prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_store_index_cache_hits_total", Help: "Index byte ranges served from the index cache."}),
		misses:    prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_store_index_cache_misses_total", Help: "Index byte ranges not found in the index cache."}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_store_index_cache_evictions_total", Help: "Index cache entries evicted to stay within --index-cache-size."}),
		bytes:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_store_index_cache_bytes", Help: "Bytes held by the index cache."}),
	}
	if reg != nil {
		reg.MustRegister(c.hits, c.misses, c.evictions, c.bytes)
	}
	return c
}

// Get returns block's bytes [start, end) if a cached segment covers them.
func (c *SegmentCache) Get(block ulid.ULID, start, end int) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bs := c.byBlock[block]
	if bs != nil {
		// The last segments starting at or before start are the only candidates.
		i := sort.Search(len(bs.segs), func(i int) bool { return bs.segs[i].start > start })
		for j := i - 1; j >= 0 && j >= i-4; j-- {
			s := bs.segs[j]
			if s.start+len(s.data) >= end {
				c.lru.MoveToFront(s.elem)
				c.hits.Inc()
				return s.data[start-s.start : end-s.start], true
			}
		}
	}
	c.misses.Inc()
	return nil, false
}

// SetMaxItem bounds the size of one cached segment (max_item_size of
// --index-cache.config); 0 or more than the cache means the cache's size. Call it before
// the cache is used: the bound is read without the lock.
func (c *SegmentCache) SetMaxItem(n int64) {
	c.maxItem = c.max
	if n > 0 && n < c.max {
		c.maxItem = n
	}
}

// itemLimit is the size of the largest segment kept.
func (c *SegmentCache) itemLimit() int64 {
	if c.maxItem > 0 {
		return c.maxItem
	}
	return c.max
}

// Put caches block's bytes starting at start. Segments larger than the item limit are
// not kept.
func (c *SegmentCache) Put(block ulid.ULID, start int, data []byte) {
	if int64(len(data)) > c.itemLimit() || len(data) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	bs := c.byBlock[block]
	if bs == nil {
		bs = &blockSegments{}
		c.byBlock[block] = bs
	}
	s := &segment{block: block, start: start, data: data}
	i := sort.Search(len(bs.segs), func(i int) bool { return bs.segs[i].start > start })
	bs.segs = append(bs.segs, nil)
	copy(bs.segs[i+1:], bs.segs[i:])
	bs.segs[i] = s
	s.elem = c.lru.PushFront(s)
	c.size += int64(len(data))
	for c.size > c.max {
		c.evict(c.lru.Back().Value.(*segment))
	}
	c.bytes.Set(float64(c.size))
}

// evict removes s; c.mu must be held.
func (c *SegmentCache) evict(s *segment) {
	c.lru.Remove(s.elem)
	c.size -= int64(len(s.data))
	c.evictions.Inc()
	bs := c.byBlock[s.block]
	for i, o := range bs.segs {
		if o == s {
			bs.segs = append(bs.segs[:i], bs.segs[i+1:]...)
			break
		}
	}
	if len(bs.segs) == 0 {
		delete(c.byBlock, s.block)
	}
}

// DropBlock forgets every segment of a block that is no longer served.
func (c *SegmentCache) DropBlock(block ulid.ULID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bs := c.byBlock[block]
	if bs == nil {
		return
	}
	for _, s := range append([]*segment(nil), bs.segs...) {
		c.evict(s)
	}
	c.bytes.Set(float64(c.size))
}

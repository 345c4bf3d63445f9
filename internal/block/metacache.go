package block

import (
	"sync"

	"github.com/oklog/ulid/v2"
)

// MetaCache holds the meta.json files a Fetcher has read, by block. A block's meta.json
// never changes, so an entry is valid until the block is gone. Implementations must be
// safe for concurrent use.
type MetaCache interface {
	// Get returns block id's meta.json, if cached.
	Get(id ulid.ULID) (*Meta, bool)
	// Set caches block id's meta.json.
	Set(id ulid.ULID, m *Meta)
	// Delete drops block id's entry.
	Delete(id ulid.ULID)
	// Retain drops every entry whose block keep rejects.
	Retain(keep func(ulid.ULID) bool)
	// Len returns the number of entries.
	Len() int
}

// memMetaCache is the in-memory MetaCache a Fetcher uses by default.
type memMetaCache struct {
	mu    sync.Mutex
	metas map[ulid.ULID]*Meta
}

// NewMemMetaCache returns an empty in-memory MetaCache.
func NewMemMetaCache() MetaCache {
	return &memMetaCache{metas: map[ulid.ULID]*Meta{}}
}

func (c *memMetaCache) Get(id ulid.ULID) (*Meta, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.metas[id]
	return m, ok
}

func (c *memMetaCache) Set(id ulid.ULID, m *Meta) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.metas[id] = m
}

func (c *memMetaCache) Delete(id ulid.ULID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.metas, id)
}

func (c *memMetaCache) Retain(keep func(ulid.ULID) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.metas {
		if !keep(id) {
			delete(c.metas, id)
		}
	}
}

func (c *memMetaCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.metas)
}

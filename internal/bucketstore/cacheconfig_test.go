package bucketstore

import (
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
)

func TestParseIndexCacheConfig(t *testing.T) {
	c, err := ParseIndexCacheConfig([]byte("type: IN-MEMORY\nconfig:\n  max_size: 512MB\n  max_item_size: 1MB\n  enabled_items: [Postings, Series]\n"))
	if err != nil || c.MaxSize != 512<<20 || c.MaxItemSize != 1<<20 {
		t.Fatalf("%+v, %v", c, err)
	}
	if c, err := ParseIndexCacheConfig([]byte("type: in-memory\n")); err != nil || c.MaxSize != 250<<20 || c.MaxItemSize != 0 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	for yaml, want := range map[string]string{
		"type: MEMCACHED\nconfig: {}\n":                          "MEMCACHED",
		"type: IN-MEMORY\nconfig: {max_size: lots}\n":            "max_size",
		"type: IN-MEMORY\nconfig: {max_sise: 1MB}\n":             "max_sise",
		"type: IN-MEMORY\nconfig: {enabled_items: [Postings]}\n": "enabled_items",
		"type: IN-MEMORY\nconfig: {enabled_items: [Series]}\n":   "enabled_items",
	} {
		if _, err := ParseIndexCacheConfig([]byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error mentioning %q", yaml, err, want)
		}
	}
}

// max_item_size keeps larger segments out of the cache.
func TestSegmentCacheMaxItem(t *testing.T) {
	c := NewSegmentCache(1<<20, nil)
	c.SetMaxItem(100)
	id := ulid.MustNew(1, nil)
	c.Put(id, 0, make([]byte, 101))
	c.Put(id, 1000, make([]byte, 100))
	if _, ok := c.Get(id, 0, 10); ok {
		t.Error("a segment over max_item_size was cached")
	}
	if _, ok := c.Get(id, 1000, 1100); !ok {
		t.Error("a segment at max_item_size was not cached")
	}
}

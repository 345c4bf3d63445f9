package bucketstore

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/alecthomas/units"
	"go.yaml.in/yaml/v3"
)

// IndexCacheConfig is --index-cache.config[-file] in Thanos's format. Vigil's index cache
// is in memory: type IN-MEMORY, whose max_size and max_item_size it takes.
type IndexCacheConfig struct {
	MaxSize     int64 // bytes; replaces --index-cache-size
	MaxItemSize int64 // bytes; 0: as large as the cache
}

// ParseIndexCacheConfig parses an index cache configuration. Other cache types
// (MEMCACHED, REDIS) and enabled_items that leave out postings or series are refused:
// Vigil's cache holds index byte ranges, postings and series alike, in memory.
func ParseIndexCacheConfig(b []byte) (IndexCacheConfig, error) {
	var raw struct {
		Type   string `yaml:"type"`
		Config struct {
			MaxSize      string   `yaml:"max_size"`
			MaxItemSize  string   `yaml:"max_item_size"`
			EnabledItems []string `yaml:"enabled_items"`
		} `yaml:"config"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return IndexCacheConfig{}, fmt.Errorf("parse index cache config: %w", err)
	}
	if !strings.EqualFold(raw.Type, "IN-MEMORY") {
		return IndexCacheConfig{}, fmt.Errorf("index cache type %q is not supported: Vigil's index cache is in memory (type IN-MEMORY)", raw.Type)
	}
	if items := raw.Config.EnabledItems; len(items) > 0 && (!slices.Contains(items, "Postings") || !slices.Contains(items, "Series")) {
		return IndexCacheConfig{}, fmt.Errorf("index cache enabled_items %v: Vigil caches postings and series together; list both or none", items)
	}
	var c IndexCacheConfig
	for _, f := range []struct {
		name, val string
		dst       *int64
	}{{"max_size", raw.Config.MaxSize, &c.MaxSize}, {"max_item_size", raw.Config.MaxItemSize, &c.MaxItemSize}} {
		if f.val == "" {
			continue
		}
		n, err := units.ParseBase2Bytes(f.val)
		if err != nil {
			return IndexCacheConfig{}, fmt.Errorf("index cache %s %q: %w", f.name, f.val, err)
		}
		*f.dst = int64(n)
	}
	if c.MaxSize == 0 {
		c.MaxSize = 250 << 20 // Thanos's default
	}
	return c, nil
}

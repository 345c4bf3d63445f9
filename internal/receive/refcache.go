package receive

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// refCache remembers, per tenant, the TSDB reference and label set of each series it
// has appended, keyed by a hash of the labels as received. A known series then skips
// label validation, building its label set and the head's lookup by label hash: the
// three largest costs of an append after decoding. The cached label set is the one the
// head holds, so the cache costs about 48 bytes per series.
//
// A hit is checked label by label against what was received, so a hash collision only
// costs a miss. A reference the head has since dropped (the series went out of the
// head) is harmless: the head then looks the series up by its labels, and the cache
// learns the new reference.
type refCache struct {
	mu    sync.RWMutex
	m     map[uint64]*cachedSeries
	epoch atomic.Uint32
}

type cachedSeries struct {
	ref  storage.SeriesRef
	lset labels.Labels
	seen atomic.Uint32 // the epoch of the last hit, for sweep
}

func newRefCache() *refCache { return &refCache{m: map[uint64]*cachedSeries{}} }

// hashWire hashes labels as received, name and value separated so that moving a byte
// between them changes the hash. It lays them out in buf (returned for reuse) and hashes
// that in one call: several times faster than feeding a digest label by label.
func hashWire(ls []prompb.Label, buf []byte) (uint64, []byte) {
	buf = buf[:0]
	for _, l := range ls {
		buf = append(buf, l.Name...)
		buf = append(buf, 0xff)
		buf = append(buf, l.Value...)
		buf = append(buf, 0xff)
	}
	return xxhash.Sum64(buf), buf
}

// sameLabels reports whether lset is exactly the received labels, in order.
func sameLabels(lset labels.Labels, ls []prompb.Label) bool {
	if lset.Len() != len(ls) {
		return false
	}
	i, same := 0, true
	lset.Range(func(l labels.Label) {
		same = same && l.Name == ls[i].Name && l.Value == ls[i].Value
		i++
	})
	return same
}

// lookup fills hits[i] with the cached series of series[i], or nil.
func (c *refCache) lookup(series []prompb.TimeSeries, keys []uint64, hits []*cachedSeries) {
	epoch := c.epoch.Load()
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i := range series {
		e := c.m[keys[i]]
		if e != nil && sameLabels(e.lset, series[i].Labels) {
			hits[i] = e
			if e.seen.Load() != epoch {
				e.seen.Store(epoch)
			}
		}
	}
}

// add remembers new series.
func (c *refCache) add(keys []uint64, added []*cachedSeries) {
	epoch := c.epoch.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range added {
		if e != nil {
			e.seen.Store(epoch)
			c.m[keys[i]] = e
		}
	}
}

// sweep forgets the series not hit since the previous sweep, so that series that stopped
// (churn) do not stay cached for good.
func (c *refCache) sweep() int {
	prev := c.epoch.Add(1) - 1
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, e := range c.m {
		if e.seen.Load() != prev && e.seen.Load() != prev+1 {
			delete(c.m, k)
			n++
		}
	}
	return n
}

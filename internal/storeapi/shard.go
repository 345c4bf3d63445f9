package storeapi

import (
	"github.com/cespare/xxhash/v2"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// ShardMatcher decides whether a series belongs to the shard a request asks for
// (vertical query sharding). The hash input is name 0xFF value 0xFF for each selected
// label of the final series, as Thanos computes it.
type ShardMatcher struct {
	index, total uint64
	by           bool
	labels       map[string]struct{}
	buf          []byte
}

// NewShardMatcher returns nil when the request is not sharded.
func NewShardMatcher(si *storepb.ShardInfo) *ShardMatcher {
	if si == nil || si.GetTotalShards() < 1 {
		return nil
	}
	m := &ShardMatcher{index: uint64(si.GetShardIndex()), total: uint64(si.GetTotalShards()), by: si.GetBy(), labels: map[string]struct{}{}}
	for _, l := range si.GetLabels() {
		m.labels[l] = struct{}{}
	}
	return m
}

// Matches reports whether the series with these labels is in the shard. A nil matcher
// matches everything.
func (m *ShardMatcher) Matches(ls []*storepb.Label) bool {
	if m == nil {
		return true
	}
	m.buf = m.buf[:0]
	for _, l := range ls {
		if _, in := m.labels[l.Name]; in != m.by {
			continue
		}
		m.buf = append(m.buf, l.Name...)
		m.buf = append(m.buf, 0xff)
		m.buf = append(m.buf, l.Value...)
		m.buf = append(m.buf, 0xff)
	}
	return xxhash.Sum64(m.buf)%m.total == m.index
}

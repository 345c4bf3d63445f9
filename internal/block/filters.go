package block

import (
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"
)

// Names of the filters, which are also the states the compactor counts hidden blocks
// under (vigil_compact_synced_blocks), as Thanos names them.
const (
	StateTimeExcluded      = "time-excluded"
	StateLabelExcluded     = "label-excluded"
	StateTooFresh          = "too-fresh"
	StateMarkedForDeletion = "marked-for-deletion"
)

// Filter is one step of a Fetcher's filter chain. The chain runs over every block with
// a readable meta.json, in order, after each Fetch; the first filter that does not keep
// a block names it in Dir.Excluded and the later ones do not see it. All filters of one
// Fetch see the same now, read once from the fetcher's clock.
//
// Boundaries, the same for every component:
//   - A block holds data in [MinTime, MaxTime): MaxTime is exclusive, as in Prometheus
//     TSDB. A time range given as flags, [--min-time, --max-time], is inclusive at both
//     ends, and keeps every block that overlaps it (TimeRangeFilter).
//   - A delay is over when exactly that long has passed: a block is visible from
//     upload + consistency delay on (ConsistencyDelayFilter), and hidden from
//     deletion mark + delay on (DeletionDelayFilter).
type Filter interface {
	// Name is the state of a block the filter hides (one of the State constants).
	Name() string
	// Keep reports whether the filter keeps block d, which has a Meta, at time now.
	Keep(d *Dir, now time.Time) bool
}

// applyFilters sets Excluded on every directory with a Meta that a filter hides.
func applyFilters(dirs []*Dir, filters []Filter, now time.Time) {
	for _, d := range dirs {
		if d.Meta == nil {
			continue
		}
		for _, f := range filters {
			if !f.Keep(d, now) {
				d.Excluded = f.Name()
				break
			}
		}
	}
}

// TimeRangeFilter keeps the blocks with data in [Min, Max] (Unix milliseconds, both
// inclusive, as --min-time and --max-time are). A block [MinTime, MaxTime) overlaps the
// range when MinTime ≤ Max and MaxTime > Min: a block that ends (exclusively) exactly at
// Min holds no sample at or after Min, and a block that starts exactly at Max holds
// one sample time in the range.
type TimeRangeFilter struct {
	Min, Max int64
}

// Name implements Filter.
func (TimeRangeFilter) Name() string { return StateTimeExcluded }

// Keep implements Filter.
func (f TimeRangeFilter) Keep(d *Dir, _ time.Time) bool {
	return d.Meta.MinTime <= f.Max && d.Meta.MaxTime > f.Min
}

// RelabelFilter runs Prometheus relabel rules (--selector.relabel-config) over a block's
// external labels, without the labels named in Ignore, plus __block_id (its ULID). It
// keeps the block unless the rules drop it or leave no label. With no rules it keeps
// every block.
type RelabelFilter struct {
	Rules []*relabel.Config
	// Ignore are labels removed before the rules run: the compactor's replica labels,
	// so a shard never separates the replicas of one Prometheus pair.
	Ignore []string
}

// Name implements Filter.
func (RelabelFilter) Name() string { return StateLabelExcluded }

// Keep implements Filter.
func (f RelabelFilter) Keep(d *Dir, _ time.Time) bool {
	if len(f.Rules) == 0 {
		return true
	}
	lb := labels.NewBuilder(labels.FromMap(d.Meta.Thanos.Labels))
	lb.Del(f.Ignore...)
	lb.Set("__block_id", d.ID.String())
	return relabel.ProcessBuilder(lb, f.Rules...) && !lb.Labels().IsEmpty()
}

// ConsistencyDelayFilter hides a block until Delay has passed since it became visible
// (VisibleSince): it is visible from exactly VisibleSince + Delay on. An upload may
// still be settling in an eventually consistent bucket before then.
type ConsistencyDelayFilter struct {
	Delay time.Duration
	// ExemptCompacted makes blocks that the compactor or a repair wrote visible at once:
	// they are made of blocks already visible (the compactor's behaviour).
	ExemptCompacted bool
}

// Name implements Filter.
func (ConsistencyDelayFilter) Name() string { return StateTooFresh }

// Keep implements Filter.
func (f ConsistencyDelayFilter) Keep(d *Dir, now time.Time) bool {
	if f.ExemptCompacted && isCompacted(d.Meta.Thanos.Source) {
		return true
	}
	return !now.Before(VisibleSince(d.Meta).Add(f.Delay))
}

// isCompacted reports whether blocks from src are written from blocks already in the
// bucket: the compactor's and the repair tools'.
func isCompacted(src SourceType) bool {
	switch src {
	case SourceCompactor, SourceCompactorRepair, SourceBucketRepair:
		return true
	}
	return false
}

// VisibleSince is when a block became visible in the bucket: its thanos.upload_time, or
// the time in its ULID for blocks written without one.
func VisibleSince(m *Meta) time.Time {
	if !m.Thanos.UploadTime.IsZero() {
		return m.Thanos.UploadTime
	}
	return ulid.Time(m.ULID.Time())
}

// DeletionDelayFilter hides a block with a deletion mark once the mark is Delay old: from
// exactly deletion_time + Delay on (deletion_time is in Unix seconds). With Delay 0 a
// marked block is hidden at once. Blocks without a mark are kept.
type DeletionDelayFilter struct {
	Delay time.Duration
}

// Name implements Filter.
func (DeletionDelayFilter) Name() string { return StateMarkedForDeletion }

// Keep implements Filter.
func (f DeletionDelayFilter) Keep(d *Dir, now time.Time) bool {
	if d.Deletion == nil {
		return true
	}
	return now.Before(time.Unix(d.Deletion.DeletionTime, 0).Add(f.Delay))
}

// ParseRelabelConfig parses --selector.relabel-config, the rules of a RelabelFilter: a
// YAML list of Prometheus relabel configs, parsed strictly and validated.
func ParseRelabelConfig(content []byte) ([]*relabel.Config, error) {
	var cfgs []*relabel.Config
	if err := yaml.UnmarshalStrict(content, &cfgs); err != nil {
		return nil, fmt.Errorf("parse selector relabel config: %w", err)
	}
	for i, c := range cfgs {
		if err := c.Validate(model.UTF8Validation); err != nil {
			return nil, fmt.Errorf("selector relabel config rule %d: %w", i, err)
		}
	}
	return cfgs, nil
}

package block

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
)

// ErrOutOfOrderChunks reports chunks of a series that overlap or are out of order.
var ErrOutOfOrderChunks = errors.New("out-of-order or overlapping chunks")

// IndexIssue is a critical index problem: compacting such a block would write garbage,
// so it halts the compactor.
type IndexIssue struct{ msg string }

func (e *IndexIssue) Error() string { return e.msg }

// VerifyIndex checks the index of the block in dir against its time range [minT, maxT):
// postings are sorted, series are strictly ordered with sorted, non-empty labels (an
// *IndexIssue otherwise), every chunk has minTime ≤ maxTime and overlaps the block's
// range, and a series' chunks are in order without overlap (ErrOutOfOrderChunks). A chunk that sticks out of the range
// only partly is tolerated: compaction trims it.
func VerifyIndex(ctx context.Context, dir string, minT, maxT int64) error {
	ir, err := index.NewFileReader(filepath.Join(dir, IndexFilename), index.DecodePostingsRaw)
	if err != nil {
		return &IndexIssue{msg: fmt.Sprintf("open index of %s: %v", dir, err)}
	}
	defer ir.Close()
	k, v := index.AllPostingsKey()
	p, err := ir.Postings(ctx, k, v)
	if err != nil {
		return &IndexIssue{msg: fmt.Sprintf("read postings of %s: %v", dir, err)}
	}
	var (
		b          labels.ScratchBuilder
		chks       []chunks.Meta
		prev       labels.Labels
		prevRef    storage.SeriesRef
		seriesSeen int
	)
	for p.Next() {
		if seriesSeen++; seriesSeen%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ref := p.At()
		if seriesSeen > 1 && ref <= prevRef {
			return &IndexIssue{msg: fmt.Sprintf("index of %s: postings not sorted (%d after %d)", dir, ref, prevRef)}
		}
		prevRef = ref
		if err := ir.Series(ref, &b, &chks); err != nil {
			return &IndexIssue{msg: fmt.Sprintf("index of %s: read series %d: %v", dir, ref, err)}
		}
		lset := b.Labels()
		if err := checkLabels(lset); err != nil {
			return &IndexIssue{msg: fmt.Sprintf("index of %s: series %s: %v", dir, lset, err)}
		}
		if seriesSeen > 1 && labels.Compare(prev, lset) >= 0 {
			return &IndexIssue{msg: fmt.Sprintf("index of %s: series %s not after %s (duplicate or out of order)", dir, lset, prev)}
		}
		prev = lset.Copy()
		for i, c := range chks {
			if c.MinTime > c.MaxTime {
				return &IndexIssue{msg: fmt.Sprintf("index of %s: series %s: chunk %d has minTime %d > maxTime %d", dir, lset, i, c.MinTime, c.MaxTime)}
			}
			if c.MaxTime < minT || c.MinTime >= maxT {
				return fmt.Errorf("index of %s: series %s: chunk [%d,%d] lies outside the block range [%d,%d)",
					dir, lset, c.MinTime, c.MaxTime, minT, maxT)
			}
			if i > 0 && c.MinTime <= chks[i-1].MaxTime {
				return fmt.Errorf("index of %s: series %s: chunk [%d,%d] after [%d,%d]: %w",
					dir, lset, c.MinTime, c.MaxTime, chks[i-1].MinTime, chks[i-1].MaxTime, ErrOutOfOrderChunks)
			}
		}
	}
	if err := p.Err(); err != nil {
		return &IndexIssue{msg: fmt.Sprintf("index of %s: iterate postings: %v", dir, err)}
	}
	return nil
}

// checkLabels reports unsorted, duplicate or empty label names and empty values.
func checkLabels(lset labels.Labels) error {
	var err error
	prev := ""
	first := true
	lset.Range(func(l labels.Label) {
		switch {
		case err != nil:
		case l.Name == "" || l.Value == "":
			err = fmt.Errorf("empty label name or value %q=%q", l.Name, l.Value)
		case !first && l.Name <= prev:
			err = fmt.Errorf("label names not sorted or duplicated (%q after %q)", l.Name, prev)
		}
		prev, first = l.Name, false
	})
	return err
}

package dedup

import (
	"fmt"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Func selects the deduplication algorithm.
type Func int

const (
	// GapFill is Vigil's rule and the default: follow one replica and take samples from
	// another only across a real gap of the followed one (see the package documentation).
	GapFill Func = iota
	// Penalty is Thanos's penalty algorithm (--deduplication.func=penalty), kept for users
	// who want Thanos's exact output and so tests can show where it goes wrong.
	Penalty
)

// String returns the flag spelling of f.
func (f Func) String() string {
	switch f {
	case GapFill:
		return "gapfill"
	case Penalty:
		return "penalty"
	default:
		return fmt.Sprintf("Func(%d)", int(f))
	}
}

// ParseFunc parses a --deduplication.func value: "" or "gapfill" is GapFill and "penalty"
// is Penalty. "chain" (Thanos's merge for receivers) is recognised but not supported yet,
// so it is an error rather than silently becoming another algorithm.
func ParseFunc(s string) (Func, error) {
	switch s {
	case "", "gapfill":
		return GapFill, nil
	case "penalty":
		return Penalty, nil
	case "chain":
		return 0, fmt.Errorf("deduplication func %q is not supported yet", s)
	default:
		return 0, fmt.Errorf("unknown deduplication func %q (want gapfill or penalty)", s)
	}
}

// Options configures NewIterator.
type Options struct {
	// Func is the algorithm.
	Func Func
	// Counter is true when the PromQL function reading the series treats it as a counter
	// (see IsCounterFunc). Only then may values be shifted at a switch of replica, because
	// shifting a gauge would change what it reports.
	Counter bool
}

// IsCounterFunc reports whether a PromQL function name (storage.SelectHints.Func) reads
// its argument as a counter, so a drop in value means a reset: rate, increase, irate,
// resets, xrate and xincrease.
func IsCounterFunc(name string) bool {
	switch name {
	case "rate", "increase", "irate", "resets", "xrate", "xincrease":
		return true
	}
	return false
}

// NewIterator merges the sample iterators of the replicas of one series into one
// iterator. Every input must be time-ordered without duplicate timestamps. A single
// replica is returned unchanged and no replica gives an empty iterator. An unknown Func
// falls back to GapFill, the default. GapFill skips whole chunks of replicas it does not
// follow if their iterators implement ChunkSkipper.
func NewIterator(replicas []chunkenc.Iterator, opts Options) chunkenc.Iterator {
	switch len(replicas) {
	case 0:
		return chunkenc.NewNopIterator()
	case 1:
		return replicas[0]
	}
	if opts.Func == Penalty {
		return newPenaltyChain(replicas, opts.Counter)
	}
	return newGapFill(replicas, opts.Counter, anchorSame)
}

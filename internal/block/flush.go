package block

import "github.com/prometheus/prometheus/tsdb"

// FlushHead writes everything in a TSDB's head into a block, so that a component that
// keeps its own TSDB (receiver, ruler) can upload it before it exits or drops the TSDB.
// An empty head writes nothing.
func FlushHead(db *tsdb.DB) error {
	h := db.Head()
	if h.NumSeries() == 0 || h.MinTime() > h.MaxTime() {
		return nil
	}
	return db.CompactHead(tsdb.NewRangeHead(h, h.MinTime(), h.MaxTime()))
}

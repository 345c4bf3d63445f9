package compact

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reasons a block is marked for deletion (label of blocks_marked_for_deletion_total).
const (
	reasonCompacted = "compacted" // source of an uploaded compacted block
	reasonDuplicate = "duplicate" // its sources are covered by a bigger block of its group
	reasonRetention = "retention"
	reasonEmpty     = "empty" // zero samples and compacted into nothing
)

// metrics are the compactor's Prometheus metrics.
type metrics struct {
	iterations, iterationFailures prometheus.Counter
	lastSuccess                   prometheus.Gauge
	halted                        prometheus.Gauge

	syncs, syncFailures prometheus.Counter
	synced              *prometheus.GaugeVec

	groupsPlanned, groupsCompacted, groupsFailed prometheus.Counter
	compactions                                  *prometheus.CounterVec
	downsamples, downsampleFailures              *prometheus.CounterVec

	markedForDeletion, markedNoCompact *prometheus.CounterVec
	deleted, deletionFailures          prometheus.Counter
	partialDeleted                     prometheus.Counter

	bytesUploaded, bytesDownloaded prometheus.Counter
	localBlocksUsed                prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		iterations: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_iterations_total",
			Help: "Compactor iterations (sync, compaction, downsampling, retention, cleanup) run."}),
		iterationFailures: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_iteration_failures_total",
			Help: "Compactor iterations that ended with an error."}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{Name: "vigil_compact_last_successful_iteration_timestamp_seconds",
			Help: "Unix time of the end of the last iteration without errors."}),
		halted: f.NewGauge(prometheus.GaugeOpts{Name: "vigil_compact_halted",
			Help: "1 when the compactor hit a critical error (overlap, bad index, failed compaction) and stopped working."}),
		syncs: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_syncs_total",
			Help: "Syncs of block metadata from the bucket."}),
		syncFailures: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_sync_failures_total",
			Help: "Syncs of block metadata that failed."}),
		synced: f.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_compact_synced_blocks",
			Help: "Blocks seen by the last sync, by what the filters made of them."}, []string{"state"}),
		groupsPlanned: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_groups_planned_total",
			Help: "Groups for which the planner found blocks to compact, once per iteration."}),
		groupsCompacted: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_groups_compacted_total",
			Help: "Groups whose planned compactions all succeeded, once per iteration."}),
		groupsFailed: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_groups_failed_total",
			Help: "Groups whose compaction failed and that were skipped for the iteration."}),
		compactions: f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compact_compactions_total",
			Help: "Compacted blocks uploaded, by kind (horizontal: adjacent blocks; vertical: overlapping blocks)."}, []string{"kind"}),
		downsamples: f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compact_downsamples_total",
			Help: "Downsampled blocks uploaded, by target resolution."}, []string{"resolution"}),
		downsampleFailures: f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compact_downsample_failures_total",
			Help: "Blocks that failed to downsample, by target resolution."}, []string{"resolution"}),
		markedForDeletion: f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compact_blocks_marked_for_deletion_total",
			Help: "Blocks marked for deletion, by reason."}, []string{"reason"}),
		markedNoCompact: f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compact_blocks_marked_no_compact_total",
			Help: "Blocks marked not to be compacted, by reason."}, []string{"reason"}),
		deleted: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_blocks_deleted_total",
			Help: "Blocks deleted from the bucket after their deletion delay."}),
		deletionFailures: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_block_deletion_failures_total",
			Help: "Block deletions that failed (retried at the next cleanup)."}),
		partialDeleted: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_partial_uploads_deleted_total",
			Help: "Aborted partial uploads (no meta.json, older than 48h) deleted."}),
		bytesUploaded: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_uploaded_bytes_total",
			Help: "Bytes of compacted and downsampled blocks uploaded."}),
		bytesDownloaded: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_downloaded_bytes_total",
			Help: "Bytes of blocks downloaded for compaction and downsampling."}),
		localBlocksUsed: f.NewCounter(prometheus.CounterOpts{Name: "vigil_compact_local_blocks_used_total",
			Help: "Blocks read from the local copy kept since this compactor made them, instead of downloaded (--compact.keep-local-size)."}),
	}
}

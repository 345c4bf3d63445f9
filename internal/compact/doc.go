// Package compact is Vigil's compactor: it keeps a Thanos-format bucket small and fast to
// query over long ranges by compacting blocks, merging replicas into one deduplicated
// copy, downsampling, applying retention and deleting what is no longer needed. It reads
// and writes the same bucket layout, meta.json and markers as the Thanos compactor, so
// either can take over from the other.
//
// # Iteration
//
// Each Iteration syncs the bucket, deletes blocks whose deletion mark is older than the
// delete delay, marks duplicates for deletion, compacts every group until the planner
// finds nothing more, downsamples (raw → 5m, then 5m → 1h), applies retention and
// cleans up (marked blocks and aborted partial uploads). Run repeats it with --wait.
//
// # Sync and filters
//
// The bucket is listed and every block directory read once (meta.json is cached in
// memory: it never changes for a ULID). Filters, in order: the time range (--min-time,
// --max-time), the selector relabel rules over the external labels (without the replica
// labels, so a replica pair is never split between shards) plus __block_id,
// the consistency delay (blocks written by the compactor or a repair skip it), deletion
// marks (a marked block is hidden once half the delete delay has passed), the replica
// label remover (replica labels are dropped from the labels used for grouping; if none
// remain, <first replica label>="deduped" is used) and the duplicate filter: within a
// group, a block whose compaction sources are all among another block's sources holds
// nothing that block lacks, so it is hidden and marked for deletion. No-compact and
// no-downsample marks are recorded.
//
// # Groups and planner
//
// A group is the set of blocks with identical (post-removal) external labels and
// resolution; its key is "<resolution>@<labels hash>". Groups are compacted
// independently, --compact.concurrency at a time. The planner (planGroup) follows
// Prometheus's leveled planner with Thanos's changes, over the ranges 2h, 8h, 2d and
// 14d: overlapping blocks come first (vertical compaction, or a halt when it is off);
// otherwise the newest block is left out and the first aligned window with at least two
// blocks that spans its full range, or ends before the newest remaining block starts, is
// compacted. So four 2h blocks become one 8h block once a fifth (newer) block exists.
//
// # Compaction and the order that makes it crash safe
//
// The planned blocks are downloaded, their index verified (critical issues halt), and
// compacted with Prometheus's LeveledCompactor. The output gets a Thanos meta.json (the
// group's labels and resolution, source "compactor", level max+1, the union of the
// sources, the parents), its index is verified, it is uploaded (chunks, index, meta.json
// last) and only then are the source blocks marked for deletion. A crash at any point
// leaves either the old blocks alone, or an invisible partial upload (cleaned after 48h),
// or the new block next to its sources; in the last case the duplicate filter hides the
// sources at the next sync and marks them. Blocks are deleted only once marked, and
// marked only once covered by an uploaded block (or by retention), so no sample is lost
// and no time range stays visible twice in a group.
//
// # Offline deduplication
//
// With --deduplication.replica-label the replica labels leave the group labels, so the
// blocks of all replicas of a Prometheus HA pair land in one group. Their blocks overlap
// in time and are compacted vertically. Series with the same labels from different
// source blocks are merged by newDedupMergeFunc: chunks that overlap chunks of another
// block are decoded and merged with the querier's replica rule (internal/dedup), in
// non-counter mode, and re-encoded; chunks without overlap are copied. --deduplication.func
// selects the rule: "" or "gapfill" (Vigil's: follow one replica and take another's
// samples only across a real gap of it) or "penalty" (Thanos's penalty algorithm). The
// result stores each replica pair about once, with the gaps of one replica filled from
// the other. Non-counter mode never changes values, so a counter read a few
// milliseconds apart by the two replicas can step down where the merge switches replica;
// the querier cannot correct that afterwards because only one series is left (Thanos's
// offline dedup has the same property). Without replica labels (only
// --compact.enable-vertical-compaction) overlapping blocks are merged with Prometheus's
// compacting merger, which keeps identical samples once.
//
// Deviation from Thanos: there, --deduplication.func="" merges replicas with the
// compacting merger (interleaving both replicas' samples); here "" means gap-fill, the
// querier's default, because interleaving does not halve the data.
//
// # Downsampling, retention, cleanup
//
// Raw blocks spanning at least 40h are downsampled to 5m and 5m blocks spanning at least
// 10d to 1h (by duration, not age), unless every source of the block is already covered
// by a block of the target resolution or the block is marked no-downsample; sources are
// kept. Retention marks blocks whose maxTime is older than the retention of their
// resolution. Marked blocks are deleted (meta.json first) once the mark is --delete-delay
// old; partial uploads once their oldest object is 48h old, unless they carry a deletion
// mark (an interrupted deletion, finished by the normal cleaner).
//
// # Halting
//
// Overlaps without vertical compaction, critical index issues and failed compactions
// are HaltErrors. Run with Wait and HaltOnError then sets vigil_compact_halted to 1 and
// idles; otherwise the error is returned and vigil compact exits non-zero. Other
// errors (network, upload) fail only the group or block concerned for this iteration.
package compact

// Package downsample turns raw blocks into 5m and 1h resolution blocks in the Thanos
// AggrChunk format, and reads such chunks back.
//
// # On-disk format
//
// A downsampled block is a normal Prometheus TSDB block (index v2, chunk segment files)
// whose chunks carry the encoding byte 0xFF (EncAggr). The data of such a chunk is five
// entries, in the order COUNT, SUM, MIN, MAX, COUNTER:
//
//	uvarint(len(data)) [1 byte inner chunkenc encoding, data]
//
// where the encoding byte and data are present only when the length is non-zero; a zero
// length means the aggregate is absent. The inner chunks are ordinary Prometheus chunks
// (XOR for floats). A stock chunkenc.Pool rejects 0xFF, so blocks holding AggrChunks must
// be opened with NewPool (tsdb.OpenBlock(logger, dir, downsample.NewPool(), nil)).
//
// # Downsampling
//
// Each output sample summarises one window of Resolution milliseconds and is stamped at
// the window end t - t%res + res - 1, capped at the last timestamp of its batch (so the
// last aggregate of a chunk sits on the last input sample). Per window: the number of
// samples, their sum, min and max, and the counter: a running total over the whole
// batch that the first sample sets and every later sample v increases by v-last, or by
// v when v < last (a counter reset). The COUNTER sub-chunk additionally starts with the
// batch's first raw sample and ends with the batch's last raw value repeated at the last
// aggregate timestamp; readers (ApplyCounterResetsIterator) use the pair to detect
// resets between chunks. NaN samples are dropped.
//
// Batches (output chunks) are cut at multiples of BatchWindows × resolution since the
// epoch, so no window is ever split across two chunks, an output chunk holds at most
// BatchWindows aggregates (plus the two extra counter samples, well under the ~140
// samples Thanos aims for), and every 5m chunk Vigil writes covers whole hours, so
// 5m → 1h never has to split an hour between two input groups either. 5m → 1h works
// along input chunk boundaries (like Thanos) because only a chunk's first and last
// counter samples are true raw values: COUNT, SUM, MIN and MAX are re-aggregated per
// hour, and COUNTER is rebuilt from the input counter chunks read through the
// apply-counter-resets iterator.
//
// # Reading
//
// AggrsForFunc maps a PromQL function (SelectHints.Func) to the aggregates it reads:
// counters (rate, increase, ...) read COUNTER through NewApplyCounterResetsIterator,
// count_over_time COUNT, sum_over_time SUM, min/max_over_time MIN/MAX, and everything else
// the per-point average SUM/COUNT (NewAverageIterator).
//
// Native histograms are not downsampled yet (TODO): raw histogram samples are skipped
// and reported in the Downsample statistics, and histogram AggrChunks written by Thanos
// (COUNT, SUM and COUNTER in histogram encodings) are skipped when going 5m → 1h.
package downsample

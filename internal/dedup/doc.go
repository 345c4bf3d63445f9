// Package dedup merges the samples of HA Prometheus replicas of one series into one
// stream.
//
// Replicas scrape the same targets at different instants and each can miss data
// (restarts, failed scrapes). The querier gets one time-ordered sample iterator per
// replica of a series and must return one stream that reads like a single, complete
// replica. Interleaving the replicas' samples would be wrong for counters: each replica
// reads the counter at a slightly different moment (the timestamp is taken before the
// target answers), so two samples from different replicas a few milliseconds apart can
// step down, and PromQL treats any step down as a counter reset and adds the whole
// counter value to increase()/rate(). Thanos's penalty rule (Func Penalty, implemented
// here for compatibility) switches replica after about two missed scrapes but lets a
// switch land on such a step (Thanos issues #7623 and #1326: a rate of 790/s where every
// replica says 0.31/s), and it skips up to two scrape intervals of the other replica at
// each switch, which makes rate() wrong near the switch.
//
// # GapFill, Vigil's rule
//
// GapFill reads all replicas at once (not as a chain of pairs):
//
//   - It starts on the replica with the earliest sample (ties: lowest index) and follows
//     it while its next sample is on time: no later than 2 × the scrape interval after
//     the last emitted sample. The interval estimate is that replica's most recent
//     spacing that was not itself a gap; before it has one, the smallest spacing seen in
//     any replica. At the very start, when no spacing is known at all, the other
//     replicas are read ahead up to the followed one's next sample until one of them
//     shows two samples there (so a gap right after the first sample is noticed).
//     Twice the interval tolerates jitter and one lost scrape without leaving the
//     replica.
//   - Samples of other replicas at or before the emitted timestamp are consumed without
//     being emitted: they cover a moment the stream already has.
//   - When the followed replica's next sample is late, or it has ended, and another
//     replica has a sample strictly between the last emitted one and that late sample,
//     the merge switches to the replica with the earliest such sample and then follows
//     that one until it has a gap itself. Not switching back as soon as the first one
//     returns keeps switches, and so switch artefacts, to a minimum.
//   - If no replica has data in the gap, the gap stays.
//
// Counter mode (Options.Counter, set when the PromQL function reads counters, see
// IsCounterFunc) protects the switch. HA replicas scrape the same target, so they read
// the same counter and differ only in when they read it: the timestamp is the start of
// the scrape and the value is read a little later, so across a switch the value can be
// lower than the last emitted one although the new replica's timestamp is later. When
// switching to replica Y with value y after the last emitted value v:
//
//   - y ≥ v: y is used as read. y − v is then the counter's real increase between the
//     two reads, whatever the rate did in between.
//   - y < v, and Y's own previous sample is higher than y: Y saw a true reset. y is used
//     as read, so the drop shows and PromQL counts it as Y alone would.
//   - y < v otherwise (read skew, or Y has no earlier sample to compare with): Y gets the
//     offset v − y, so the stream stays level instead of showing a fake reset (#7623).
//
// The offset applies to Y's later values while Y is followed and is recomputed at each
// switch from the emitted value, so it is paid back at the next switch instead of
// accumulating (Thanos's permanent offsets do accumulate); a true reset of the followed
// replica (its value drops) clears it, so a reset shows with Y's own values. Histograms
// and NaN (stale markers) pass through and never set an offset.
//
// The offset rule first specified was "v − Y's last value at or before the switch"
// (keep Y's own increments). That value is up to one scrape interval older than the
// switch, so the increase in between is counted twice, once by each replica: up to 5% of
// a rate over 5m in every window that holds a switch (p99 3.9% in the property test,
// against 0.06% for this rule). Interpolating Y's value at the switch instant avoids the
// double count but goes wrong when the rate changes between Y's two samples (27% off on
// one rate[5m] point of the test). The rule here assumes the replicas read the same
// counter; if they did not (values apart by K), each switch to the higher one would add
// K to increase().
//
// Outside counter mode values are never altered.
//
// # Reading the replicas
//
// The rule is stated as if every replica were read in lockstep with the output, but only
// the followed replica is: the others' samples at or before the emitted instant are
// covered by it, and the rule only looks at the others when the followed replica is
// late or has ended (and at the start, until the followed replica has an interval
// estimate of its own). Only then are they caught up to the emitted instant. An input
// that implements ChunkSkipper (the querier's chunk lists do) skips the whole chunks
// before the one holding its last samples there, without decoding them, and reads that
// chunk's samples as the lockstep read would have; other inputs read every sample. The
// output is the lockstep one: it can differ only for a replica whose samples read after
// a skip do not show its interval (a chunk of one or two samples right before a gap of
// its own, after its interval changed), and for the minimum spacing used while the
// followed replica has no interval estimate, which does not see skipped samples (see
// catchUp). Two replicas of a day with one gap each cost about one replica's decoding.
// A chunk that is skipped is not decoded, so a corrupt chunk of a replica is only
// reported when the merge needs that chunk. Seek reads the followed replica up to the
// target, as Next would: skipping it could jump over a gap that makes the rule switch
// replica, or over the reset that clears a counter offset.
//
// # Penalty, Thanos's rule
//
// Penalty is written from the description of Thanos's pkg/dedup/iter.go in the Thanos
// compatibility notes (§3.2): after each emitted sample at t the replica not
// picked is penalised by 2 × (t − previous t) (5s for the first sample) and is only
// consulted for samples after that; more than two replicas are chained pairwise. In
// counter mode each input carries a permanent offset that is raised whenever a switch
// finds the input below the last emitted value. Being permanent, an offset raised across
// a true reset stays and inflates a later switch (the property test logs a rate of
// 2447/s where both replicas say 0.22/s).
package dedup

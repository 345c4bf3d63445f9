package bucketstore

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// writeSeriesBlock writes a block holding the given series, each with one sample every
// 15s in [mint, maxt) of value = its position in series, and uploads it with the given
// external labels.
func writeSeriesBlock(t *testing.T, bkt objstore.Bucket, ext map[string]string, series []labels.Labels, mint, maxt int64) ulid.ULID {
	t.Helper()
	return writeBlockWith(t, bkt, ext, series, mint, maxt, func(k int, _ int64) float64 { return float64(k) })
}

func matchName(name string) []*storepb.LabelMatcher {
	return []*storepb.LabelMatcher{eq("__name__", name)}
}

// checkSorted fails unless the series are strictly increasing by labels (a merged,
// sorted stream has no two series with equal labels).
func checkSorted(t *testing.T, got []*storepb.Series) {
	t.Helper()
	for k := 1; k < len(got); k++ {
		if storeapi.CompareLabels(got[k-1].Labels, got[k].Labels) >= 0 {
			t.Fatalf("stream not sorted or not merged at %d: %s then %s", k,
				storeapi.LabelsFromProto(got[k-1].Labels), storeapi.LabelsFromProto(got[k].Labels))
		}
	}
}

func labelStrings(ss []*storepb.Series) []string {
	out := make([]string, len(ss))
	for k, s := range ss {
		out[k] = storeapi.LabelsFromProto(s.Labels).String()
	}
	return out
}

func TestSeriesMergesReplicasWithoutReplicaLabels(t *testing.T) {
	bkt := newBucket(t)
	h := twoHours
	writeBlock(t, bkt, map[string]string{"cluster": "c", "replica": "a"}, 10, 0, h)
	writeBlock(t, bkt, map[string]string{"cluster": "c", "replica": "b"}, 10, 0, h)
	s := startStore(t, bkt, Config{})

	// Without stripping: both replicas, interleaved in label order.
	all, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: h, Matchers: matchName("m")})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 20 {
		t.Fatalf("%d series, want 20", len(all))
	}
	checkSorted(t, all)
	if got := labelStrings(all[:2]); got[0] != `{__name__="m", cluster="c", i="000", replica="a"}` || got[1] != `{__name__="m", cluster="c", i="000", replica="b"}` {
		t.Fatalf("first series %v", got)
	}
	perReplica := len(all[0].Chunks)
	if perReplica == 0 {
		t.Fatal("no chunks")
	}

	// Stripping the replica label: one series per i holding both replicas' chunks.
	got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: h, Matchers: matchName("m"), WithoutReplicaLabels: []string{"replica"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("%d series with replica stripped, want 10", len(got))
	}
	checkSorted(t, got)
	for k, sr := range got {
		want := labels.FromStrings("__name__", "m", "cluster", "c", "i", fmt.Sprintf("%03d", k))
		if ls := storeapi.LabelsFromProto(sr.Labels); !labels.Equal(ls, want) {
			t.Fatalf("series %d: %s, want %s", k, ls, want)
		}
		if len(sr.Chunks) != 2*perReplica {
			t.Fatalf("series %d: %d chunks, want %d from each replica", k, len(sr.Chunks), perReplica)
		}
		smp, err := storeapi.FloatSamples(&storepb.Series{Chunks: sr.Chunks[:perReplica]}, 0, h)
		if err != nil || len(smp) == 0 || smp[0].V != sampleValue(k, smp[0].T) {
			t.Fatalf("series %d: chunks do not decode to the written samples: %v %v", k, smp, err)
		}
	}

	// A name in without_replica_labels that is no external label strips nothing.
	got, err = collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: h, Matchers: matchName("m"), WithoutReplicaLabels: []string{"i"}})
	if err != nil || len(got) != 20 {
		t.Fatalf("stripping a series label: %d series, %v; want all 20 untouched", len(got), err)
	}

	// A matcher on an external label selects the label set.
	got, err = collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: h, Matchers: []*storepb.LabelMatcher{eq("replica", "b"), eq("i", "003")}})
	if err != nil || len(got) != 1 || storeapi.LabelsFromProto(got[0].Labels).Get("replica") != "b" {
		t.Fatalf("matcher on replica: %v, %v", labelStrings(got), err)
	}
}

func TestSeriesMergesAcrossTimeAndSelectsChunksInRange(t *testing.T) {
	bkt := newBucket(t)
	h := time.Hour.Milliseconds()
	ext := map[string]string{"replica": "a"}
	writeBlock(t, bkt, ext, 5, 0, h)
	writeBlock(t, bkt, ext, 5, h, 2*h)
	s := startStore(t, bkt, Config{})
	got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: h + 60000, MaxTime: h + 120000, Matchers: matchName("m")})
	if err != nil || len(got) != 5 {
		t.Fatalf("%d series, %v", len(got), err)
	}
	for _, sr := range got {
		for _, c := range sr.Chunks {
			if c.MaxTime < h+60000 || c.MinTime > h+120000 {
				t.Fatalf("chunk [%d, %d] outside the requested range", c.MinTime, c.MaxTime)
			}
			if c.MinTime < h {
				t.Fatalf("chunk [%d, %d] from the first block, which holds nothing in range", c.MinTime, c.MaxTime)
			}
		}
	}
}

func TestSeriesShardInfoPartitions(t *testing.T) {
	bkt := newBucket(t)
	writeBlock(t, bkt, map[string]string{"cluster": "c", "replica": "a"}, 40, 0, twoHours)
	s := startStore(t, bkt, Config{BatchSize: 16})
	checkShardsPartition(t, s, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m"), SkipChunks: true})
}

// Several blocks are read concurrently, each by its own goroutine, all filtering by the
// request's shard.
func TestSeriesShardInfoPartitionsAcrossBlocks(t *testing.T) {
	bkt := newBucket(t)
	writeBlock(t, bkt, map[string]string{"cluster": "c", "replica": "a"}, 40, 0, twoHours)
	writeBlock(t, bkt, map[string]string{"cluster": "c", "replica": "b"}, 40, 0, twoHours)
	s := startStore(t, bkt, Config{BatchSize: 16})
	checkShardsPartition(t, s, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m"), WithoutReplicaLabels: []string{"replica"}, SkipChunks: true})
}

// checkShardsPartition checks that 3 shards of base split its answer: every series in
// exactly one shard, each shard sorted.
func checkShardsPartition(t *testing.T, s *testStore, base *storepb.SeriesRequest) {
	t.Helper()
	all, err := collect(t, s.client, base)
	if err != nil {
		t.Fatal(err)
	}
	// by: hash the listed labels; without: hash every other label. Either way only "i"
	// differs between the series.
	for _, sh := range []struct {
		by     bool
		labels []string
	}{{true, []string{"i"}}, {false, []string{"__name__", "cluster"}}} {
		seen := map[string]int{}
		for shard := int64(0); shard < 3; shard++ {
			req := proto.Clone(base).(*storepb.SeriesRequest)
			req.ShardInfo = &storepb.ShardInfo{ShardIndex: shard, TotalShards: 3, By: sh.by, Labels: sh.labels}
			got, err := collect(t, s.client, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 || len(got) == len(all) {
				t.Fatalf("by=%v shard %d: %d of %d series; a shard should hold some but not all", sh.by, shard, len(got), len(all))
			}
			checkSorted(t, got)
			for _, l := range labelStrings(got) {
				seen[l]++
			}
		}
		for _, l := range labelStrings(all) {
			if seen[l] != 1 {
				t.Fatalf("by=%v: series %s in %d shards, want exactly 1", sh.by, l, seen[l])
			}
		}
		if len(seen) != len(all) {
			t.Fatalf("by=%v: shards hold %d series, the unsharded answer %d", sh.by, len(seen), len(all))
		}
	}
}

func TestSeriesSkipChunksAndLimit(t *testing.T) {
	bkt := newBucket(t)
	writeBlock(t, bkt, map[string]string{"replica": "a"}, 25, 0, twoHours)
	writeBlock(t, bkt, map[string]string{"replica": "b"}, 25, 0, twoHours)
	s := startStore(t, bkt, Config{BatchSize: 7})

	full, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m")})
	if err != nil || len(full) != 50 {
		t.Fatalf("%d series, %v", len(full), err)
	}
	labelsOnly, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m"), SkipChunks: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(labelStrings(labelsOnly), labelStrings(full)) {
		t.Fatal("skip_chunks returned other series than a full read")
	}
	for _, sr := range labelsOnly {
		if len(sr.Chunks) != 0 {
			t.Fatalf("skip_chunks: series %s has %d chunks", storeapi.LabelsFromProto(sr.Labels), len(sr.Chunks))
		}
	}
	// skip_chunks still honours the time range: no series without data in range.
	none, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: twoHours + 1, MaxTime: 3 * twoHours, Matchers: matchName("m"), SkipChunks: true})
	if err != nil || len(none) != 0 {
		t.Fatalf("skip_chunks outside the data: %d series, %v", len(none), err)
	}

	for _, limit := range []int64{1, 7, 30, 50, 80} {
		got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m"), Limit: limit})
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		want := full[:min(int(limit), len(full))]
		if !slices.Equal(labelStrings(got), labelStrings(want)) {
			t.Fatalf("limit %d: got %d series %v..., want the first %d of the full answer", limit, len(got), labelStrings(got)[:1], len(want))
		}
	}
}

// Stored series may carry labels named like the block's external labels (for example a
// scraped "replica" label). The external label wins, and since that moves series in the
// order, the stream must still come out sorted, with series that became equal merged.
func TestSeriesStoredLabelsNamedLikeExternalLabels(t *testing.T) {
	bkt := newBucket(t)
	ext := map[string]string{"b": "x", "replica": "r0"}
	rnd := rand.New(rand.NewSource(1))
	seen := map[string]bool{}
	var series []labels.Labels
	for len(series) < 300 {
		lb := labels.NewScratchBuilder(5)
		lb.Add("__name__", "m")
		for _, n := range []string{"a", "b", "c", "replica", "z"} {
			if rnd.Intn(3) > 0 {
				lb.Add(n, fmt.Sprint(rnd.Intn(3)))
			}
		}
		lb.Sort()
		ls := lb.Labels()
		if !seen[ls.String()] {
			seen[ls.String()] = true
			series = append(series, ls)
		}
	}
	writeSeriesBlock(t, bkt, ext, series, 0, 10*60000)
	s := startStore(t, bkt, Config{BatchSize: 16})
	if !s.sets()[0].blocks[0].ownExtNames {
		t.Fatal("block not recognised as holding labels named like external labels")
	}

	for _, strip := range [][]string{nil, {"replica"}, {"b", "replica"}} {
		t.Run(fmt.Sprintf("strip=%v", strip), func(t *testing.T) {
			// Expected: rewrite each stored series, then sort and merge equal label sets.
			count := map[string]int{}
			var wantLabels []labels.Labels
			for _, ls := range series {
				b := labels.NewBuilder(ls)
				for n, v := range ext {
					b.Set(n, v)
				}
				for _, n := range strip {
					b.Del(n)
				}
				if count[b.Labels().String()]++; count[b.Labels().String()] == 1 {
					wantLabels = append(wantLabels, b.Labels())
				}
			}
			slices.SortFunc(wantLabels, labels.Compare)
			want := make([]string, len(wantLabels))
			for k, ls := range wantLabels {
				want[k] = ls.String()
			}
			got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: matchName("m"), WithoutReplicaLabels: strip})
			if err != nil {
				t.Fatal(err)
			}
			checkSorted(t, got)
			gotStr := labelStrings(got)
			if !slices.Equal(gotStr, want) {
				t.Fatalf("got %d series, want %d:\n got %v\nwant %v", len(gotStr), len(want), gotStr[:min(5, len(gotStr))], want[:min(5, len(want))])
			}
			per := len(got[0].Chunks) / count[gotStr[0]]
			for k, sr := range got {
				if len(sr.Chunks) != per*count[gotStr[k]] {
					t.Fatalf("%s: %d chunks, want %d (%d stored series merged)", gotStr[k], len(sr.Chunks), per*count[gotStr[k]], count[gotStr[k]])
				}
			}
		})
	}
}

func TestLabelNamesAndValuesWithMatchersAndTimeRange(t *testing.T) {
	bkt := newBucket(t)
	h := time.Hour.Milliseconds()
	writeSeriesBlock(t, bkt, map[string]string{"replica": "a"}, []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "x"),
		labels.FromStrings("__name__", "up", "job", "y"),
		labels.FromStrings("__name__", "m", "foo", "1"),
	}, 0, h)
	writeSeriesBlock(t, bkt, map[string]string{"replica": "b"}, []labels.Labels{
		labels.FromStrings("__name__", "m", "bar", "2"),
		labels.FromStrings("__name__", "up", "job", "z", "replica", "stored"),
	}, 2*h, 3*h)
	s := startStore(t, bkt, Config{})
	ctx := context.Background()

	names := func(req *storepb.LabelNamesRequest) string {
		t.Helper()
		resp, err := s.client.LabelNames(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(resp.Names, ",")
	}
	values := func(req *storepb.LabelValuesRequest) string {
		t.Helper()
		resp, err := s.client.LabelValues(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(resp.Values, ",")
	}
	all := int64(math.MaxInt64)
	for _, tc := range []struct {
		name string
		req  *storepb.LabelNamesRequest
		want string
	}{
		{"everything", &storepb.LabelNamesRequest{End: all}, "__name__,bar,foo,job,replica"},
		{"matcher on a series label", &storepb.LabelNamesRequest{End: all, Matchers: matchName("m")}, "__name__,bar,foo,replica"},
		{"matcher and first block's range", &storepb.LabelNamesRequest{Start: 0, End: h, Matchers: matchName("m")}, "__name__,foo,replica"},
		{"second block's range", &storepb.LabelNamesRequest{Start: 2 * h, End: all}, "__name__,bar,job,replica"},
		{"range with no block", &storepb.LabelNamesRequest{Start: h + 1, End: 2*h - 1}, ""},
		{"matcher on an external label", &storepb.LabelNamesRequest{End: all, Matchers: []*storepb.LabelMatcher{eq("replica", "a")}}, "__name__,foo,job,replica"},
		{"external label not matching", &storepb.LabelNamesRequest{End: all, Matchers: []*storepb.LabelMatcher{eq("replica", "c")}}, ""},
		{"no matching series: no external label names either", &storepb.LabelNamesRequest{End: all, Matchers: matchName("nope")}, ""},
		{"replica label stripped", &storepb.LabelNamesRequest{End: all, WithoutReplicaLabels: []string{"replica"}}, "__name__,bar,foo,job"},
		{"limit", &storepb.LabelNamesRequest{End: all, Limit: 2}, "__name__,bar"},
	} {
		if got := names(tc.req); got != tc.want {
			t.Errorf("LabelNames %s: %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		req  *storepb.LabelValuesRequest
		want string
	}{
		{"series label", &storepb.LabelValuesRequest{Label: "job", End: all}, "x,y,z"},
		{"series label, time range", &storepb.LabelValuesRequest{Label: "job", Start: 0, End: h}, "x,y"},
		{"series label, matcher", &storepb.LabelValuesRequest{Label: "__name__", End: all, Matchers: []*storepb.LabelMatcher{eq("job", "z")}}, "up"},
		{"series label, regex matcher", &storepb.LabelValuesRequest{Label: "job", End: all, Matchers: []*storepb.LabelMatcher{
			{Type: storepb.LabelMatcher_RE, Name: "job", Value: "x|z"}}}, "x,z"},
		{"external label: the block set's value, not the stored one", &storepb.LabelValuesRequest{Label: "replica", End: all}, "a,b"},
		{"external label with matcher", &storepb.LabelValuesRequest{Label: "replica", End: all, Matchers: matchName("up")}, "a,b"},
		{"external label, only sets with matching series", &storepb.LabelValuesRequest{Label: "replica", End: all, Matchers: []*storepb.LabelMatcher{eq("foo", "1")}}, "a"},
		{"external label, time range", &storepb.LabelValuesRequest{Label: "replica", Start: 2 * h, End: all}, "b"},
		{"external label stripped", &storepb.LabelValuesRequest{Label: "replica", End: all, WithoutReplicaLabels: []string{"replica"}}, ""},
		{"matcher on an external label", &storepb.LabelValuesRequest{Label: "__name__", End: all, Matchers: []*storepb.LabelMatcher{eq("replica", "b")}}, "m,up"},
		{"limit", &storepb.LabelValuesRequest{Label: "job", End: all, Limit: 1}, "x"},
	} {
		if got := values(tc.req); got != tc.want {
			t.Errorf("LabelValues %s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := s.client.LabelValues(ctx, &storepb.LabelValuesRequest{End: all}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("LabelValues without a label name: %v, want InvalidArgument", err)
	}
}

func TestSeriesRequestErrors(t *testing.T) {
	bkt := newBucket(t)
	writeBlock(t, bkt, map[string]string{"replica": "a"}, 3, 0, twoHours)
	s := startStore(t, bkt, Config{})
	if _, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no matchers: %v, want InvalidArgument", err)
	}
	bad := []*storepb.LabelMatcher{{Type: storepb.LabelMatcher_RE, Name: "i", Value: "("}}
	if _, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: bad}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad regex: %v, want InvalidArgument", err)
	}
}

func TestInfoClampsToConfiguredTimeRange(t *testing.T) {
	bkt := newBucket(t)
	h := time.Hour.Milliseconds()
	writeBlock(t, bkt, map[string]string{"replica": "a"}, 1, 0, h)
	writeBlock(t, bkt, map[string]string{"replica": "a"}, 1, h, 2*h)
	s := newSyncedStore(t, bkt, Config{MinTime: 30 * 60000, MaxTime: h + 60000})
	info, err := s.Info(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Store.MinTime != 30*60000 || info.Store.MaxTime != h+60000 || len(info.LabelSets) != 1 {
		t.Fatalf("info %v: want the block range cut to --min-time/--max-time and one label set", info)
	}
	if !info.Store.SupportsSharding || !info.Store.SupportsWithoutReplicaLabels {
		t.Fatalf("info %v: sharding and without_replica_labels not advertised", info)
	}

	empty := newSyncedStore(t, newBucket(t), Config{MinTime: 5, MaxTime: 10})
	info, err = empty.Info(context.Background(), nil)
	if err != nil || info.Store.MinTime != 5 || info.Store.MaxTime != 10 || len(info.LabelSets) != 0 {
		t.Fatalf("info without blocks: %v, %v; want the configured range and no label sets", info, err)
	}
}

// A block that cannot be read is skipped with a warning naming the error (the client's
// partial-response strategy decides whether that fails the query); the pool is released.
func TestChunkReadErrorSkipsTheBlockWithAWarning(t *testing.T) {
	cb := &countingBucket{Bucket: newBucket(t)}
	writeBlock(t, cb, map[string]string{"replica": "a"}, 20, 0, twoHours)
	s := startStore(t, cb, Config{})
	cb.failChunks.Store(true)
	st, err := s.client.Series(context.Background(), &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m")})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for st.Next() {
		n++
	}
	if st.Err() != nil || n != 0 || len(st.Warnings()) != 1 || !strings.Contains(st.Warnings()[0], errInjected.Error()) {
		t.Fatalf("chunk read failure: %d series, err %v, warnings %v; want no series and one warning naming the bucket error", n, st.Err(), st.Warnings())
	}
	if f := testutil.ToFloat64(s.metrics.readFailures); f != 1 {
		t.Fatalf("read failures metric = %v, want 1", f)
	}
	if n := s.pool.used; n != 0 {
		t.Fatalf("%d chunk-pool bytes held after the failed request", n)
	}
	cb.failChunks.Store(false)
	if got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m")}); err != nil || len(got) != 20 {
		t.Fatalf("after the bucket recovered: %d series, %v", len(got), err)
	}
}

// A bucket error while reading postings or series from the index must fail the request,
// not the process.
func TestIndexReadErrorFailsTheRequest(t *testing.T) {
	cb := &countingBucket{Bucket: newBucket(t)}
	writeBlock(t, cb, map[string]string{"replica": "a"}, 200, 0, twoHours)
	// A cache smaller than the index, so that queries read the index from the bucket.
	s := newSyncedStore(t, cb, Config{IndexCacheSize: 1024})
	cb.failIndex.Store(true)
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("LabelValues panicked on a bucket error: %v", r)
			}
		}()
		_, err = s.LabelValues(context.Background(), &storepb.LabelValuesRequest{Label: "i", End: math.MaxInt64, Matchers: matchName("m")})
	}()
	if status.Code(err) != codes.Internal {
		t.Fatalf("index read failure: %v, want Internal", err)
	}
}

// The consequence of TestSelectBlocksSelectsEachBlockOnce: a raw block that fills two
// gaps between 1h blocks (here: blocks whose meta says 1h) has its chunks sent per gap.
func TestSeriesReadsEachBlockOnceWithDownsampledGaps(t *testing.T) {
	bkt := newBucket(t)
	m := time.Minute.Milliseconds()
	ext := map[string]string{"replica": "a"}
	writeBlock(t, bkt, ext, 1, 0, 120*m)
	for _, r := range [][2]int64{{30, 45}, {75, 90}} {
		id := writeBlock(t, bkt, ext, 1, r[0]*m, r[1]*m)
		editBucketMeta(t, bkt, id, func(mm *block.Meta) { mm.Thanos.Downsample.Resolution = block.Resolution1h })
	}
	s := startStore(t, bkt, Config{})
	got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: 120 * m, Matchers: matchName("m"), MaxResolutionWindow: block.Resolution1h})
	if err != nil || len(got) != 1 {
		t.Fatalf("%d series, %v", len(got), err)
	}
	smp, err := storeapi.FloatSamples(got[0], 0, 120*m)
	if err != nil {
		t.Fatal(err)
	}
	// 480 raw samples plus 2 x 60 from the "1h" blocks.
	if len(smp) != 600 {
		t.Fatalf("%d samples in %d chunks, want 600: the raw block was read more than once", len(smp), len(got[0].Chunks))
	}
}

// without_replica_labels strips only external labels (docs/storeapi.md): a stored series
// label of that name is data. Series keeps it; LabelNames must list it too.
func TestLabelNamesKeepsSeriesLabelNamedLikeAReplicaLabel(t *testing.T) {
	bkt := newBucket(t)
	writeSeriesBlock(t, bkt, map[string]string{"cluster": "c"}, []labels.Labels{labels.FromStrings("__name__", "m", "replica", "x")}, 0, 60000)
	s := startStore(t, bkt, Config{})
	strip := []string{"replica"}
	got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: 60000, Matchers: matchName("m"), WithoutReplicaLabels: strip})
	if err != nil || len(got) != 1 || storeapi.LabelsFromProto(got[0].Labels).Get("replica") != "x" {
		t.Fatalf("Series: %v, %v; want the stored replica label kept", labelStrings(got), err)
	}
	names, err := s.client.LabelNames(context.Background(), &storepb.LabelNamesRequest{End: 60000, WithoutReplicaLabels: strip})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names.Names, "replica") {
		t.Fatalf("LabelNames %v lacks the series label replica that Series returns", names.Names)
	}
}

package tsdbstore

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"google.golang.org/grpc/codes"

	"github.com/vigilhq/vigil/internal/block/blocktest"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

var tenantExt = labels.FromStrings("replica", "r0", "tenant_id", "a")

// histograms returns n integer (or float) native histogram samples every step from start.
func histograms(start int64, n int, float bool) []sample {
	out := make([]sample, n)
	for i := range out {
		out[i].t = start + int64(i)*step
		if float {
			out[i].fh = tsdbutil.GenerateTestFloatHistogram(int64(i))
		} else {
			out[i].h = tsdbutil.GenerateTestHistogram(int64(i))
		}
	}
	return out
}

// roundTripDB holds a persisted block (blocktest's test_metric series over the first two
// hours) and head data: test_metric{series="0"} continued, floats with one chunk still
// open, and both kinds of native histograms.
func roundTripDB(t *testing.T, opts *tsdb.Options) (*tsdb.DB, map[string][]sample) {
	dir := t.TempDir()
	h2 := 2 * time.Hour.Milliseconds()
	blocktest.CreateBlock(t, dir, 0, h2, 3)
	db := openDB(t, dir, opts)
	want := map[string][]sample{}
	for i := range 3 {
		var ss []sample
		for ts := int64(0); ts < h2; ts += blocktest.Step {
			ss = append(ss, sample{t: ts, f: float64(i*1000) + float64(ts)/blocktest.Step})
		}
		want[fmt.Sprintf(`{__name__="test_metric", series="%d"}`, i)] = ss
	}
	l := labels.FromStrings
	for _, hs := range []struct {
		lset    labels.Labels
		samples []sample
	}{
		{l("__name__", "test_metric", "series", "0"), floats(h2, 50, -7)},
		{l("__name__", "lat_hist", "job", "api"), histograms(h2, 130, false)},
		{l("__name__", "lat_float_hist", "job", "api"), histograms(h2, 40, true)},
		{l("__name__", "up", "instance", "i-2", "job", "node"), floats(h2+step/2, 1, math.NaN())},
		{l("__name__", "neg", "job", "x"), floats(h2, 10, -1e300)},
		// Last: the head takes no samples older than an hour before its newest.
		{l("__name__", "up", "instance", "i-1", "job", "node"), floats(h2, 300, 1)}, // 3 chunks, the last open
	} {
		appendSeries(t, db, hs.lset, hs.samples)
		want[hs.lset.String()] = append(want[hs.lset.String()], hs.samples...)
	}
	return db, want
}

func TestSeriesRoundTripsSamplesExactly(t *testing.T) {
	db, want := roundTripDB(t, nil)
	c := serveStore(t, New(db, tenantExt, Options{}))

	got := mustCollect(t, c, allTime(re("__name__", ".+")))
	if len(got) != len(want) {
		t.Fatalf("%d series, want %d: %v", len(got), len(want), labelStrings(got))
	}
	for _, s := range got {
		lset := storeapi.LabelsFromProto(s.Labels)
		if lset.Get("tenant_id") != "a" || lset.Get("replica") != "r0" {
			t.Errorf("%s lacks the external labels", lset)
		}
		stored := labels.NewBuilder(lset).Del("tenant_id", "replica").Labels().String()
		if err := sameSamples(decode(t, s), want[stored]); err != nil {
			t.Errorf("%s: %v", stored, err)
		}
		for i := 1; i < len(s.Chunks); i++ {
			if s.Chunks[i].MinTime <= s.Chunks[i-1].MaxTime {
				t.Errorf("%s: chunk %d starts at %d, before the previous one ends (%d)", stored, i, s.Chunks[i].MinTime, s.Chunks[i-1].MaxTime)
			}
		}
	}
}

func TestSeriesSendsWholeChunksOverlappingTheRange(t *testing.T) {
	db, want := roundTripDB(t, nil)
	c := serveStore(t, New(db, tenantExt, Options{}))
	h2 := 2 * time.Hour.Milliseconds()
	mint, maxt := h2+130*step, h2+140*step // inside the second chunk of up{instance="i-1"}

	got := mustCollect(t, c, &storepb.SeriesRequest{MinTime: mint, MaxTime: maxt, Matchers: []*storepb.LabelMatcher{eq("instance", "i-1")}})
	if len(got) != 1 || len(got[0].Chunks) != 1 {
		t.Fatalf("got %v, want one series with one chunk", got)
	}
	ss := decode(t, got[0])
	if ss[0].t > mint || ss[len(ss)-1].t < maxt {
		t.Errorf("chunk [%d, %d] was cut to the request [%d, %d]", ss[0].t, ss[len(ss)-1].t, mint, maxt)
	}
	all := want[`{__name__="up", instance="i-1", job="node"}`]
	if err := sameSamples(ss, all[120:240]); err != nil {
		t.Error(err)
	}

	// A series with no sample in the range is not sent.
	got = mustCollect(t, c, &storepb.SeriesRequest{MinTime: h2 + 60*step, MaxTime: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "neg")}})
	if len(got) != 0 {
		t.Errorf("got %v for a range after the series' last sample", labelStrings(got))
	}
}

func TestSeriesReencodesStartTimestampChunks(t *testing.T) {
	opts := tsdb.DefaultOptions()
	opts.FloatChunkEncoding = chunkenc.EncXOR2
	opts.EnableHistogramSTEncoding = true
	db, want := roundTripDB(t, opts)
	c := serveStore(t, New(db, tenantExt, Options{}))

	got := mustCollect(t, c, allTime(re("__name__", "up|lat_.*")))
	if len(got) != 4 {
		t.Fatalf("got %v", labelStrings(got))
	}
	for _, s := range got {
		stored := labels.NewBuilder(storeapi.LabelsFromProto(s.Labels)).Del("tenant_id", "replica").Labels().String()
		if err := sameSamples(decode(t, s), want[stored]); err != nil {
			t.Errorf("%s: %v", stored, err)
		}
	}
}

func TestSeriesPrunesOnExternalLabels(t *testing.T) {
	db := openDB(t, "", nil)
	appendSeries(t, db, labels.FromStrings("__name__", "up", "job", "a"), floats(0, 5, 1))
	c := serveStore(t, New(db, labels.FromStrings("cluster", "eu", "tenant_id", "a"), Options{}))

	for _, tc := range []struct {
		name string
		ms   []*storepb.LabelMatcher
		want int
		code codes.Code
	}{
		{"other value", []*storepb.LabelMatcher{eq("cluster", "us"), eq("__name__", "up")}, 0, codes.OK},
		{"same value", []*storepb.LabelMatcher{eq("cluster", "eu"), eq("__name__", "up")}, 1, codes.OK},
		{"regexp", []*storepb.LabelMatcher{re("tenant_id", "a|b"), eq("__name__", "up")}, 1, codes.OK},
		{"regexp not matching", []*storepb.LabelMatcher{re("tenant_id", "b|c"), eq("__name__", "up")}, 0, codes.OK},
		{"only external", []*storepb.LabelMatcher{eq("cluster", "eu")}, 0, codes.InvalidArgument},
		{"none", nil, 0, codes.InvalidArgument},
		{"bad regexp", []*storepb.LabelMatcher{re("job", "(")}, 0, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := collect(t, c, allTime(tc.ms...))
			wantCode(t, err, tc.code)
			if len(got) != tc.want {
				t.Errorf("%d series, want %d", len(got), tc.want)
			}
		})
	}
}

// expectedOrder rewrites stored label sets as a store with ext and stripped names serves
// them, sorted and with duplicates removed: what every Series answer must list.
func expectedOrder(stored []labels.Labels, ext labels.Labels, strip ...string) []string {
	var out []labels.Labels
	for _, ls := range stored {
		b := labels.NewBuilder(ls)
		ext.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
		for _, n := range strip {
			if ext.Has(n) {
				b.Del(n)
			}
		}
		out = append(out, b.Labels())
	}
	slices.SortFunc(out, labels.Compare)
	out = slices.CompactFunc(out, labels.Equal)
	strs := make([]string, len(out))
	for i, ls := range out {
		strs[i] = ls.String()
	}
	return strs
}

// sortTestSeries are stored label sets where the external label's position decides the
// order: some series lack labels that others have, and some carry "job" and "replica"
// of their own.
func sortTestSeries() []labels.Labels {
	var out []labels.Labels
	seen := map[string]bool{}
	for i := range 40 {
		b := labels.NewBuilder(labels.FromStrings("__name__", fmt.Sprint("m", i%3), "a", fmt.Sprint(i%5)))
		if i%2 == 0 {
			b.Set("c", fmt.Sprint(i%7))
		}
		if i%3 == 0 {
			b.Set("job", fmt.Sprint("j", i%4))
		}
		if i%5 == 0 {
			b.Set("replica", fmt.Sprint("own", i%2))
		}
		if i%11 == 0 {
			b.Set("zz", "1")
		}
		if ls := b.Labels(); !seen[ls.String()] {
			seen[ls.String()] = true
			out = append(out, ls)
		}
	}
	return out
}

func TestSeriesSortedAfterAddingExternalLabels(t *testing.T) {
	stored := sortTestSeries()
	db := openDB(t, "", nil)
	for i, ls := range stored {
		appendSeries(t, db, ls, floats(int64(i), 3, float64(i)))
	}
	for _, ext := range []labels.Labels{
		labels.FromStrings("Aregion", "x"),      // sorts before every series label
		labels.FromStrings("b", "x"),            // between a and c
		labels.FromStrings("zzz", "x"),          // after every series label
		labels.FromStrings("job", "override"),   // replaces some series' own job
		labels.FromStrings("b", "x", "zz", "y"), // replaces zz, sorts around others
	} {
		t.Run(ext.String(), func(t *testing.T) {
			c := serveStore(t, New(db, ext, Options{}))
			got := mustCollect(t, c, allTime(re("__name__", "m.")))
			if want := expectedOrder(stored, ext); !slices.Equal(labelStrings(got), want) {
				t.Errorf("order\n got %q\nwant %q", labelStrings(got), want)
			}
		})
	}
}

func TestSeriesWithoutReplicaLabels(t *testing.T) {
	stored := sortTestSeries()
	db := openDB(t, "", nil)
	for i, ls := range stored {
		appendSeries(t, db, ls, floats(int64(i)*step, 2, float64(i)))
	}
	ext := labels.FromStrings("replica", "r1", "tenant_id", "t")
	c := serveStore(t, New(db, ext, Options{}))

	req := allTime(re("__name__", "m."))
	req.WithoutReplicaLabels = []string{"replica", "job"} // job is not external: it stays
	got := mustCollect(t, c, req)
	want := expectedOrder(stored, ext, "replica", "job")
	if !slices.Equal(labelStrings(got), want) {
		t.Fatalf("order\n got %q\nwant %q", labelStrings(got), want)
	}
	// Stored series that differ only in their own replica label are one series now, with
	// the chunks of both in time order.
	total := 0
	for _, s := range got {
		ss := decode(t, s)
		total += len(ss)
		for i := 1; i < len(s.Chunks); i++ {
			if s.Chunks[i].MinTime < s.Chunks[i-1].MinTime {
				t.Errorf("%s: chunks not sorted by min time", storeapi.LabelsFromProto(s.Labels))
			}
		}
	}
	if total != 2*len(stored) {
		t.Errorf("%d samples over the joined series, want %d", total, 2*len(stored))
	}
}

func TestSeriesSkipChunks(t *testing.T) {
	db, want := roundTripDB(t, nil)
	c := serveStore(t, New(db, tenantExt, Options{}))

	full := mustCollect(t, c, allTime(re("__name__", ".+")))
	req := allTime(re("__name__", ".+"))
	req.SkipChunks = true
	got := mustCollect(t, c, req)
	if !slices.Equal(labelStrings(got), labelStrings(full)) || len(got) != len(want) {
		t.Fatalf("skip_chunks labels %q, want %q", labelStrings(got), labelStrings(full))
	}
	for _, s := range got {
		if len(s.Chunks) != 0 {
			t.Errorf("%s has %d chunks with skip_chunks", storeapi.LabelsFromProto(s.Labels), len(s.Chunks))
		}
	}
	// The time range still selects series, by their chunks' real time ranges: an open
	// head chunk must not make a series look current.
	later := 2*time.Hour.Milliseconds() + 100*step
	full = mustCollect(t, c, &storepb.SeriesRequest{MinTime: later, MaxTime: math.MaxInt64, Matchers: req.Matchers})
	req.MinTime = later
	got = mustCollect(t, c, req)
	if !slices.Equal(labelStrings(got), labelStrings(full)) || len(got) != 2 {
		t.Errorf("skip_chunks from %d: %q, want %q (2 series)", later, labelStrings(got), labelStrings(full))
	}
}

func TestSeriesShardsPartitionTheAnswer(t *testing.T) {
	stored := sortTestSeries()
	db := openDB(t, "", nil)
	for i, ls := range stored {
		appendSeries(t, db, ls, floats(0, 2, float64(i)))
	}
	c := serveStore(t, New(db, tenantExt, Options{}))
	all := labelStrings(mustCollect(t, c, allTime(re("__name__", "m."))))
	var union []string
	for i := range int64(3) {
		req := allTime(re("__name__", "m."))
		req.ShardInfo = &storepb.ShardInfo{ShardIndex: i, TotalShards: 3, Labels: []string{"a", "tenant_id"}, By: true}
		got := labelStrings(mustCollect(t, c, req))
		union = append(union, got...)
	}
	slices.Sort(union)
	want := slices.Clone(all)
	slices.Sort(want)
	if !slices.Equal(union, want) {
		t.Errorf("shards hold %q, want %q", union, want)
	}
}

func TestSeriesRequestLimitAndBatches(t *testing.T) {
	db := openDB(t, "", nil)
	for i := range 10 {
		appendSeries(t, db, labels.FromStrings("__name__", "up", "i", fmt.Sprint(i)), floats(0, 5, float64(i)))
	}
	c := serveStore(t, New(db, tenantExt, Options{}))

	req := allTime(eq("__name__", "up"))
	req.Limit = 3
	if got := mustCollect(t, c, req); len(got) != 3 {
		t.Errorf("limit 3: %d series", len(got))
	}
	req = allTime(eq("__name__", "up"))
	req.ResponseBatchSize = 4
	got := mustCollect(t, c, req)
	if len(got) != 10 {
		t.Fatalf("batches of 4: %d series", len(got))
	}
	for i, s := range got {
		if err := sameSamples(decode(t, s), floats(0, 5, float64(storeapi.LabelsFromProto(s.Labels).Get("i")[0]-'0'))); err != nil {
			t.Errorf("series %d: %v", i, err)
		}
	}
}

func TestSeriesLimitsGiveResourceExhausted(t *testing.T) {
	db := openDB(t, "", nil)
	for i := range 10 {
		appendSeries(t, db, labels.FromStrings("__name__", "up", "i", fmt.Sprint(i)), floats(0, 100, 0))
	}
	for _, lim := range []storeapi.RequestLimits{{Series: 5}, {Samples: 450}, {Bytes: 300}} {
		t.Run(fmt.Sprintf("%+v", lim), func(t *testing.T) {
			c := serveStore(t, New(db, tenantExt, Options{Limits: lim}))
			_, _, err := collect(t, c, allTime(eq("__name__", "up")))
			wantCode(t, err, codes.ResourceExhausted)
		})
	}
	c := serveStore(t, New(db, tenantExt, Options{Limits: storeapi.RequestLimits{Series: 10, Samples: 1000}}))
	if got := mustCollect(t, c, allTime(eq("__name__", "up"))); len(got) != 10 {
		t.Errorf("at the limits: %d series", len(got))
	}
}

func TestTimeRange(t *testing.T) {
	db := openDB(t, "", nil)
	s := New(db, tenantExt, Options{})
	if mint, maxt := s.TimeRange(); mint != math.MaxInt64 || maxt != math.MaxInt64 {
		t.Errorf("empty TSDB: [%d, %d]", mint, maxt)
	}
	appendSeries(t, db, labels.FromStrings("__name__", "up"), floats(1234, 2, 0))
	if mint, maxt := s.TimeRange(); mint != 1234 || maxt != math.MaxInt64 {
		t.Errorf("TSDB from 1234: [%d, %d]", mint, maxt)
	}
	if !labels.Equal(s.LabelSet(), tenantExt) {
		t.Errorf("LabelSet %s", s.LabelSet())
	}
}

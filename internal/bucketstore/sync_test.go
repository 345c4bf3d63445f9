package bucketstore

import (
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

var twoHours = 2 * time.Hour.Milliseconds()

func TestSyncIgnoresPartialUploadsAndNonBlockEntries(t *testing.T) {
	bkt := newBucket(t)
	good := writeBlock(t, bkt, map[string]string{"replica": "a"}, 3, 0, twoHours)
	partial := writeBlock(t, bkt, map[string]string{"replica": "b"}, 3, 0, twoHours)
	if err := bkt.Delete(context.Background(), partial.String()+"/meta.json"); err != nil {
		t.Fatal(err)
	}
	// Entries that are not blocks: old Thanos debug metas, other tools' directories,
	// top-level files, a ULID-named directory nested deeper.
	m, err := block.ReadMetaFromBucket(context.Background(), bkt, good)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := m.Encode()
	upload(t, bkt, "debug/metas/"+good.String()+".json", mb)
	upload(t, bkt, "parquet/"+good.String()+"/meta.json", mb)
	upload(t, bkt, "README", []byte("not a block"))
	upload(t, bkt, "not-a-ulid/meta.json", mb)

	s := newSyncedStore(t, bkt, Config{})
	checkServed(t, s, good)
	if n := testutil.ToFloat64(s.metrics.loadFailures); n != 0 {
		t.Fatalf("load failures = %v; partial uploads and other entries are not failures", n)
	}

	// Once the partial upload completes (meta.json last), the next sync serves it.
	copyBlockMeta(t, bkt, good, partial, map[string]string{"replica": "b"})
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkServed(t, s, good, partial)
}

// copyBlockMeta uploads a meta.json for block to (whose meta.json is missing), based on
// block from's with the ID and external labels replaced.
func copyBlockMeta(t *testing.T, bkt objstore.Bucket, from, to ulid.ULID, ext map[string]string) {
	t.Helper()
	m, err := block.ReadMetaFromBucket(context.Background(), bkt, from)
	if err != nil {
		t.Fatal(err)
	}
	m.ULID = to
	m.Thanos.Labels = ext
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	upload(t, bkt, to.String()+"/meta.json", b)
}

func deletionMark(id ulid.ULID, at time.Time) block.DeletionMark {
	return block.DeletionMark{ID: id, Version: block.MarkerVersion1, DeletionTime: at.Unix()}
}

func TestSyncDeletionMarks(t *testing.T) {
	bkt := newBucket(t)
	old := writeBlock(t, bkt, map[string]string{"replica": "old"}, 2, 0, twoHours)
	fresh := writeBlock(t, bkt, map[string]string{"replica": "fresh"}, 2, 0, twoHours)
	unmarked := writeBlock(t, bkt, map[string]string{"replica": "none"}, 2, 0, twoHours)
	broken := writeBlock(t, bkt, map[string]string{"replica": "broken"}, 2, 0, twoHours)
	uploadJSON(t, bkt, old.String()+"/deletion-mark.json", deletionMark(old, time.Now().Add(-25*time.Hour)))
	uploadJSON(t, bkt, fresh.String()+"/deletion-mark.json", deletionMark(fresh, time.Now().Add(-time.Hour)))
	upload(t, bkt, broken.String()+"/deletion-mark.json", []byte(`{"id":"`)) // partially written

	s := newSyncedStore(t, bkt, Config{IgnoreDeletionMarksDelay: 24 * time.Hour})
	checkServed(t, s, fresh, unmarked, broken)

	// A mark that appears later drops a loaded block at the next sync once it is old enough.
	uploadJSON(t, bkt, unmarked.String()+"/deletion-mark.json", deletionMark(unmarked, time.Now().Add(-48*time.Hour)))
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkServed(t, s, fresh, broken)

	// With no delay every marked block is dropped at once.
	s0 := newSyncedStore(t, bkt, Config{IgnoreDeletionMarksDelay: 0})
	checkServed(t, s0, broken)
}

func TestSyncConsistencyDelay(t *testing.T) {
	bkt := newBucket(t)
	ext := map[string]string{"replica": "a"}
	// Blocks just written: their ULIDs carry the current time.
	newNoUpload := writeBlock(t, bkt, ext, 2, 0, twoHours)
	newOldUpload := writeBlock(t, bkt, ext, 2, 0, twoHours)
	editBucketMeta(t, bkt, newOldUpload, func(m *block.Meta) { m.Thanos.UploadTime = time.Now().Add(-2 * time.Hour) })
	// Blocks whose ULIDs are two hours old.
	oldTime := ulid.Timestamp(time.Now().Add(-2 * time.Hour))
	oldNoUpload := ulid.MustNew(oldTime, strings.NewReader(strings.Repeat("a", 16)))
	oldNewUpload := ulid.MustNew(oldTime, strings.NewReader(strings.Repeat("b", 16)))
	copyBlockAs(t, bkt, newNoUpload, oldNoUpload)
	copyBlockAs(t, bkt, newNoUpload, oldNewUpload)
	editBucketMeta(t, bkt, oldNewUpload, func(m *block.Meta) { m.Thanos.UploadTime = time.Now() })

	// upload_time decides when set, the ULID time otherwise.
	s := newSyncedStore(t, bkt, Config{ConsistencyDelay: time.Hour})
	checkServed(t, s, newOldUpload, oldNoUpload)

	// The default (0s) serves everything at once.
	s0 := newSyncedStore(t, bkt, Config{})
	checkServed(t, s0, newNoUpload, newOldUpload, oldNoUpload, oldNewUpload)
}

func TestSyncTimeRange(t *testing.T) {
	bkt := newBucket(t)
	ext := map[string]string{"replica": "a"}
	h := time.Hour.Milliseconds()
	// Samples every 15s in [start, start+1h): meta max time is the last sample + 1.
	b0 := writeBlock(t, bkt, ext, 1, 0, h)
	b1 := writeBlock(t, bkt, ext, 1, h, 2*h)
	b2 := writeBlock(t, bkt, ext, 1, 2*h, 3*h)
	lastOf := func(start int64) int64 { return start + h - 15000 }

	for _, tc := range []struct {
		name             string
		minTime, maxTime int64
		want             []ulid.ULID
	}{
		{"everything", 0, 0, []ulid.ULID{b0, b1, b2}},
		{"only the middle block", h, 2*h - 1, []ulid.ULID{b1}},
		{"min time at a block's last sample", lastOf(0), 2*h - 1, []ulid.ULID{b0, b1}},
		{"min time just after a block's exclusive max", lastOf(0) + 1, 2*h - 1, []ulid.ULID{b1}},
		{"max time equal to a block's min time (inclusive)", h, 2 * h, []ulid.ULID{b1, b2}},
		{"range between blocks", lastOf(2*h) + 1, 10 * h, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSyncedStore(t, bkt, Config{MinTime: tc.minTime, MaxTime: tc.maxTime})
			checkServed(t, s, tc.want...)
		})
	}
}

func TestSyncSelectorRelabel(t *testing.T) {
	bkt := newBucket(t)
	a := writeBlock(t, bkt, map[string]string{"cluster": "a", "replica": "0"}, 1, 0, twoHours)
	b := writeBlock(t, bkt, map[string]string{"cluster": "b", "replica": "0"}, 1, 0, twoHours)
	c := writeBlock(t, bkt, map[string]string{"cluster": "c", "replica": "1"}, 1, 0, twoHours)

	for _, tc := range []struct {
		name, yaml string
		want       []ulid.ULID
	}{
		{"keep on an external label", `
- action: keep
  source_labels: [cluster]
  regex: a|c`, []ulid.ULID{a, c}},
		{"drop on an external label", `
- action: drop
  source_labels: [replica]
  regex: "0"`, []ulid.ULID{c}},
		{"keep on __block_id", `
- action: keep
  source_labels: [__block_id]
  regex: ` + b.String(), []ulid.ULID{b}},
		{"drop on __block_id", `
- action: drop
  source_labels: [__block_id]
  regex: ` + b.String(), []ulid.ULID{a, c}},
		{"all labels dropped: block not served", `
- action: labeldrop
  regex: .+`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := block.ParseRelabelConfig([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			s := newSyncedStore(t, bkt, Config{Relabel: rules})
			checkServed(t, s, tc.want...)
		})
	}

	// hashmod on __block_id shards the blocks: every block is served by exactly one shard.
	seen := map[ulid.ULID]int{}
	for shard := range 3 {
		rules, err := block.ParseRelabelConfig([]byte(`
- action: hashmod
  source_labels: [__block_id]
  target_label: shard
  modulus: 3
- action: keep
  source_labels: [shard]
  regex: "` + string(rune('0'+shard)) + `"`))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range served(newSyncedStore(t, bkt, Config{Relabel: rules})) {
			seen[id]++
		}
	}
	for _, id := range []ulid.ULID{a, b, c} {
		if seen[id] != 1 {
			t.Fatalf("block %s served by %d hashmod shards, want 1", id, seen[id])
		}
	}
}

func TestSyncDropsDeletedBlockAndItsIndexHeader(t *testing.T) {
	bkt := newBucket(t)
	gone := writeBlock(t, bkt, map[string]string{"replica": "a"}, 3, 0, twoHours)
	stays := writeBlock(t, bkt, map[string]string{"replica": "b"}, 3, 0, twoHours)
	dataDir := t.TempDir()
	s := startStore(t, bkt, Config{DataDir: dataDir})
	checkServed(t, s.Store, gone, stays)
	for _, id := range []ulid.ULID{gone, stays} {
		if _, err := os.Stat(filepath.Join(dataDir, id.String(), indexHeaderFile)); err != nil {
			t.Fatalf("no index-header for %s: %v", id, err)
		}
	}
	// A query fills the index cache for both blocks.
	if _, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: []*storepb.LabelMatcher{eq("__name__", "m")}}); err != nil {
		t.Fatal(err)
	}
	if !cachesBlock(s.cache, gone) {
		t.Fatal("query did not cache anything of the block")
	}

	if err := block.Delete(context.Background(), bkt, gone); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkServed(t, s.Store, stays)
	// The block is closed and its files removed in the background once queries are done.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(filepath.Join(dataDir, gone.String()))
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("index-header directory of the deleted block still there: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cachesBlock(s.cache, gone) {
		t.Fatal("index cache still holds the deleted block's data")
	}
	if _, err := os.Stat(filepath.Join(dataDir, stays.String(), indexHeaderFile)); err != nil {
		t.Fatalf("the other block's index-header was removed: %v", err)
	}
	got, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: []*storepb.LabelMatcher{eq("__name__", "m")}})
	if err != nil || len(got) != 3 {
		t.Fatalf("after the drop: %d series, err %v; want the remaining block's 3", len(got), err)
	}
}

func cachesBlock(c *SegmentCache, id ulid.ULID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byBlock[id] != nil
}

// Deleting a block starts with its meta.json; readers must treat the block as gone from
// then on (a directory without meta.json is a partial upload), also when they loaded it
// before.
func TestSyncDropsBlockWhoseMetaJSONWasDeleted(t *testing.T) {
	bkt := newBucket(t)
	id := writeBlock(t, bkt, map[string]string{"replica": "a"}, 3, 0, twoHours)
	s := newSyncedStore(t, bkt, Config{})
	checkServed(t, s, id)
	if err := bkt.Delete(context.Background(), id.String()+"/meta.json"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkServed(t, s)
}

// readsAt counts the calls whose range holds byte off.
func readsAt(calls []rangeCall, off int64) int {
	n := 0
	for _, c := range calls {
		if c.off <= off && off < c.off+c.length {
			n++
		}
	}
	return n
}

func TestIndexHeaderReusedOnRestart(t *testing.T) {
	fs := newBucket(t)
	id := writeBlock(t, fs, map[string]string{"replica": "a"}, 20, 0, twoHours)
	symOff, ptOff := indexTOCOffsets(t, fs, id)
	indexName := id.String() + "/index"
	attrs, err := fs.Attributes(context.Background(), indexName)
	if err != nil {
		t.Fatal(err)
	}
	tocOff := attrs.Size - tocLen
	dataDir := t.TempDir()
	// built reports whether the calls include the reads that build an index-header: the
	// header bytes at 0, the TOC, and the lengths of the two sections it copies.
	built := func(calls []rangeCall) bool {
		var head, toc, sym, pt bool
		for _, c := range calls {
			head = head || (c.off == 0 && c.length == headerLen)
			toc = toc || (c.off == tocOff && c.length == tocLen)
			sym = sym || (c.off == symOff && c.length == 4)
			pt = pt || (c.off == ptOff && c.length == 4)
		}
		return head && toc && sym && pt
	}

	first := &countingBucket{Bucket: fs}
	s1 := New(first, Config{DataDir: dataDir, IndexCacheSize: 1 << 20}, slog.New(slog.DiscardHandler), nil)
	if err := s1.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkServed(t, s1, id)
	if calls := first.rangesOn(indexName); !built(calls) {
		t.Fatalf("first start did not build the index-header from the header, TOC, symbols (%d) and postings offset table (%d): %v", symOff, ptOff, calls)
	}
	st, err := os.Stat(filepath.Join(dataDir, id.String(), indexHeaderFile))
	if err != nil || st.Size() != attrs.Size {
		t.Fatalf("index-header: %v, %v; want a file of the index's size %d", err, st, attrs.Size)
	}
	if _, err := os.Stat(filepath.Join(dataDir, id.String(), headerOKFile)); err != nil {
		t.Fatalf("no completion marker next to the index-header: %v", err)
	}
	s1.Close()

	second := &countingBucket{Bucket: fs}
	s2 := newSyncedStore(t, second, Config{DataDir: dataDir})
	checkServed(t, s2, id)
	if calls := second.rangesOn(indexName); built(calls) {
		t.Fatalf("a restart on the same data dir built the index-header again: %v", calls)
	}
	// The reused header serves queries.
	ls, err := s2.LabelValues(context.Background(), &storepb.LabelValuesRequest{Label: "i", End: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "m")}})
	if err != nil || len(ls.Values) != 20 {
		t.Fatalf("label values over the reused index-header: %v, %v", ls, err)
	}
	s2.Close()

	// Without the completion marker the header is rebuilt.
	if err := os.Remove(filepath.Join(dataDir, id.String(), headerOKFile)); err != nil {
		t.Fatal(err)
	}
	third := &countingBucket{Bucket: fs}
	s3 := newSyncedStore(t, third, Config{DataDir: dataDir})
	checkServed(t, s3, id)
	if !built(third.rangesOn(indexName)) {
		t.Fatal("index-header without its completion marker was reused instead of rebuilt")
	}
	s3.Close()

	// A header for an index of another size (the block was replaced) is rebuilt too.
	if err := os.Truncate(filepath.Join(dataDir, id.String(), indexHeaderFile), attrs.Size-1); err != nil {
		t.Fatal(err)
	}
	fourth := &countingBucket{Bucket: fs}
	checkServed(t, newSyncedStore(t, fourth, Config{DataDir: dataDir}), id)
	if !built(fourth.rangesOn(indexName)) {
		t.Fatal("index-header of the wrong size was reused instead of rebuilt")
	}
}

// The index-header holds the symbol table so that symbols are never read from the bucket
// again: not when a restarted store reopens the block, and not per series at query time.
func TestIndexHeaderServesSymbolsLocally(t *testing.T) {
	fs := newBucket(t)
	id := writeBlock(t, fs, map[string]string{"replica": "a"}, 500, 0, twoHours)
	symOff, _ := indexTOCOffsets(t, fs, id)
	indexName := id.String() + "/index"
	attrs, err := fs.Attributes(context.Background(), indexName)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	s1 := newSyncedStore(t, fs, Config{DataDir: dataDir})
	checkServed(t, s1, id)
	s1.Close()

	// Restart: nothing of the symbol table is read from the bucket.
	cb := &countingBucket{Bucket: fs}
	s := newSyncedStore(t, cb, Config{DataDir: dataDir, IndexCacheSize: attrs.Size / 4})
	checkServed(t, s, id)
	if n := readsAt(cb.rangesOn(indexName), symOff); n != 0 {
		t.Fatalf("restart read the symbols section (at %d) %d times from the bucket: %v", symOff, n, cb.rangesOn(indexName))
	}

	// A query reads postings and series ranges, not the whole index per series.
	cb.mu.Lock()
	cb.ranges = nil
	cb.mu.Unlock()
	if _, err := s.LabelValues(context.Background(), &storepb.LabelValuesRequest{Label: "i", End: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "m")}}); err != nil {
		t.Fatal(err)
	}
	var read int64
	for _, c := range cb.rangesOn(indexName) {
		read += c.length
	}
	if read > attrs.Size {
		t.Fatalf("one query over 500 series read %d bytes of a %d-byte index", read, attrs.Size)
	}
}

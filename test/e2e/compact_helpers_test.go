package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigilhq/vigil/internal/block"
	vobjstore "github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// Compaction test data: compactSeries/2 counters e2e_requests_total and compactSeries/2
// gauges e2e_gauge per replica, one sample every compactStep, in 2h blocks.
const (
	compactSeries  = 50
	compactStep    = 15_000 // ms
	compactBlockMS = int64(2 * time.Hour / time.Millisecond)
	// r1 scrapes compactR1Offset ms after r0, so the replicas' samples never share a
	// timestamp and their values differ slightly, as for a real HA pair.
	compactR1Offset = 7_000
)

var compactReplicas = []string{"r0", "r1"}

// compactSample implements chunks.Sample for a float sample.
type compactSample struct {
	t int64
	f float64
}

func (s compactSample) T() int64                      { return s.t }
func (s compactSample) ST() int64                     { return 0 }
func (s compactSample) F() float64                    { return s.f }
func (s compactSample) H() *histogram.Histogram       { return nil }
func (s compactSample) FH() *histogram.FloatHistogram { return nil }
func (s compactSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s compactSample) Copy() chunks.Sample           { return s }

// compactValue is the value of series i at time t (ms): both replicas sample the same
// functions. Counters grow by 1+i%5 per second (integral steps, like request counts);
// gauges follow a slow sine wave.
func compactValue(i int, t int64) float64 {
	if i%2 == 0 {
		return math.Floor(float64(t/1000) * float64(1+(i/2)%5))
	}
	return math.Round(1000*(50+40*math.Sin(float64(t)/3.6e6+float64(i)))) / 1000
}

func compactLabels(i int) labels.Labels {
	inst := "i" + strconv.Itoa(i/2)
	if i%2 == 0 {
		return labels.FromStrings("__name__", "e2e_requests_total", "job", "e2e", "instance", inst)
	}
	return labels.FromStrings("__name__", "e2e_gauge", "job", "e2e", "instance", inst)
}

// writeCompactBlocks writes the 2h blocks of both replicas covering [start, end) into
// dir/<replica>/ with thanos labels {cluster="e2e", replica=<r>} and returns their
// directories and the number of samples written.
func writeCompactBlocks(t *testing.T, dir string, start, end int64) (dirs []string, samples int) {
	t.Helper()
	for ri, r := range compactReplicas {
		rdir := filepath.Join(dir, r)
		for mint := start; mint < end; mint += compactBlockMS {
			series := make([]storage.Series, 0, compactSeries)
			for i := range compactSeries {
				var smp []chunks.Sample
				for ts := mint + int64(ri)*compactR1Offset; ts < mint+compactBlockMS; ts += compactStep {
					smp = append(smp, compactSample{t: ts, f: compactValue(i, ts)})
				}
				samples += len(smp)
				series = append(series, storage.NewListSeries(compactLabels(i), smp))
			}
			p, err := tsdb.CreateBlock(series, rdir, 4*compactBlockMS, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			m, err := block.ReadMeta(p)
			if err != nil {
				t.Fatal(err)
			}
			m.Thanos.Labels = map[string]string{"cluster": "e2e", "replica": r}
			m.Thanos.Source = block.SourceTest
			if err := block.WriteMeta(p, m); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, p)
		}
	}
	return dirs, samples
}

// objstoreYAMLPrefix is the MinIO objstore configuration with every object under prefix.
func objstoreYAMLPrefix(m *e2eutil.MinIO, prefix string) string {
	y := m.ObjstoreYAML("")
	if prefix != "" {
		y += "prefix: " + prefix + "\n"
	}
	return y
}

// uploadCompactBlocks uploads the block directories under prefix of the MinIO bucket and
// returns the objstore config file for that prefix.
func uploadCompactBlocks(t *testing.T, m *e2eutil.MinIO, prefix string, dirs []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	y := objstoreYAMLPrefix(m, prefix)
	bkt, err := vobjstore.NewBucket(ctx, []byte(y), slog.New(slog.DiscardHandler), nil, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	for _, d := range dirs {
		if err := block.Upload(ctx, slog.New(slog.DiscardHandler), bkt, d); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(t.TempDir(), "objstore.yml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bucketBlock is one block directory of the bucket as seen through minio-go.
type bucketBlock struct {
	id     ulid.ULID
	meta   *block.Meta // nil without meta.json (a partial upload)
	marked bool        // has deletion-mark.json
	bytes  int64       // all objects of the block
}

// visible reports whether readers (store, compactor) use the block.
func (b bucketBlock) visible() bool { return b.meta != nil && !b.marked }

// groupKey is the block's compaction group: resolution and external labels without the
// replica label.
func (b bucketBlock) groupKey() string {
	ls := labels.FromMap(b.meta.Thanos.Labels)
	ls = labels.NewBuilder(ls).Del("replica").Labels()
	return fmt.Sprintf("%d@%s", b.meta.Thanos.Downsample.Resolution, ls.String())
}

// listBucketBlocks reads every block under prefix through minio-go.
func listBucketBlocks(t *testing.T, m *e2eutil.MinIO, prefix string) []bucketBlock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := ""
	if prefix != "" {
		p = prefix + "/"
	}
	objs, err := m.Objects(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[ulid.ULID]*bucketBlock{}
	for name, size := range objs {
		dir, file, ok := strings.Cut(strings.TrimPrefix(name, p), "/")
		if !ok {
			continue
		}
		id, err := ulid.ParseStrict(dir)
		if err != nil {
			continue
		}
		b := byID[id]
		if b == nil {
			b = &bucketBlock{id: id}
			byID[id] = b
		}
		b.bytes += size
		switch file {
		case block.MetaFilename:
			raw, err := m.Get(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if b.meta, err = block.DecodeMeta(bytes.NewReader(raw)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case "deletion-mark.json":
			b.marked = true
		}
	}
	out := make([]bucketBlock, 0, len(byID))
	for _, b := range byID {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id.Compare(out[j].id) < 0 })
	return out
}

// rawBytes sums the bytes of every block that is not downsampled (blocks without meta.json
// included: they are stored too).
func rawBytes(bs []bucketBlock) int64 {
	var n int64
	for _, b := range bs {
		if b.meta == nil || b.meta.Thanos.Downsample.Resolution == 0 {
			n += b.bytes
		}
	}
	return n
}

// overlaps returns a description of every pair of visible blocks of one group whose time
// ranges overlap.
func overlaps(bs []bucketBlock) []string {
	groups := map[string][]bucketBlock{}
	for _, b := range bs {
		if b.visible() {
			groups[b.groupKey()] = append(groups[b.groupKey()], b)
		}
	}
	var out []string
	for k, g := range groups {
		sort.Slice(g, func(i, j int) bool { return g[i].meta.MinTime < g[j].meta.MinTime })
		for i := range g {
			for j := i + 1; j < len(g) && g[j].meta.MinTime < g[i].meta.MaxTime; j++ {
				out = append(out, fmt.Sprintf("group %s: %s [%d,%d) level %d and %s [%d,%d) level %d overlap", k,
					g[i].id, g[i].meta.MinTime, g[i].meta.MaxTime, g[i].meta.Compaction.Level,
					g[j].id, g[j].meta.MinTime, g[j].meta.MaxTime, g[j].meta.Compaction.Level))
			}
		}
	}
	slices.Sort(out)
	return out
}

func describeBlocks(bs []bucketBlock) string {
	var sb strings.Builder
	for _, b := range bs {
		if b.meta == nil {
			fmt.Fprintf(&sb, "  %s (no meta.json) %d bytes\n", b.id, b.bytes)
			continue
		}
		fmt.Fprintf(&sb, "  %s [%s, %s) level %d res %d labels %v marked %v %d bytes\n", b.id,
			time.UnixMilli(b.meta.MinTime).UTC().Format("01-02T15:04"), time.UnixMilli(b.meta.MaxTime).UTC().Format("01-02T15:04"),
			b.meta.Compaction.Level, b.meta.Thanos.Downsample.Resolution, b.meta.Thanos.Labels, b.marked, b.bytes)
	}
	return sb.String()
}

// compactQuery is one query of the fixed query set. Raw queries are instant queries
// returning a matrix (the raw samples); the others are range queries.
type compactQuery struct {
	name  string
	expr  string
	raw   bool
	relTo float64 // allowed relative difference before/after (see compactQueries)
}

// queryResult maps a series (metricKey) to its points.
type queryResult map[string][]e2eutil.RawSample

// runCompactQuery evaluates q over [start, end] with dedup at raw resolution.
func runCompactQuery(t *testing.T, base string, q compactQuery, start, end time.Time) queryResult {
	t.Helper()
	extra := url.Values{"dedup": {"true"}, "max_source_resolution": {"0s"}}
	var ss []promSeries
	if q.raw {
		_, ss = instantMatrix(t, base, q.expr, end, extra)
	} else {
		_, ss = rangeQuery(t, base, q.expr, start, end, 10*time.Minute, extra)
	}
	out := queryResult{}
	for _, s := range ss {
		var pts []e2eutil.RawSample
		for _, v := range s.Values {
			smp, err := decodePoint(v)
			if err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			pts = append(pts, smp)
		}
		out[metricKey(s.Metric)] = pts
	}
	return out
}

func decodePoint(pair [2]json.RawMessage) (e2eutil.RawSample, error) {
	var ts json.Number
	var v string
	if err := json.Unmarshal(pair[0], &ts); err != nil {
		return e2eutil.RawSample{}, err
	}
	if err := json.Unmarshal(pair[1], &v); err != nil {
		return e2eutil.RawSample{}, err
	}
	secs, err := strconv.ParseFloat(ts.String(), 64)
	if err != nil {
		return e2eutil.RawSample{}, err
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return e2eutil.RawSample{}, err
	}
	return e2eutil.RawSample{T: int64(math.Round(secs * 1000)), V: f}, nil
}

// diffResults describes how got differs from want: series missing or extra, points at
// other timestamps, or values further apart than rel (relative to the larger magnitude).
func diffResults(want, got queryResult, rel float64) string {
	var sb strings.Builder
	n := 0
	add := func(format string, args ...any) {
		if n < 10 {
			fmt.Fprintf(&sb, format+"\n", args...)
		}
		n++
	}
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			add("series %s missing (%d points before)", k, len(w))
			continue
		case !wok:
			add("series %s is new (%d points)", k, len(g))
			continue
		case len(w) != len(g):
			add("series %s: %d points, want %d", k, len(g), len(w))
			continue
		}
		for i := range w {
			if w[i].T != g[i].T {
				add("series %s point %d: at %d, want %d", k, i, g[i].T, w[i].T)
				break
			}
			d := math.Abs(w[i].V - g[i].V)
			if d > rel*math.Max(math.Abs(w[i].V), math.Abs(g[i].V)) && d > 1e-9 {
				add("series %s at %d: %v, want %v (rel diff %.3g)", k, w[i].T, g[i].V, w[i].V, d/math.Max(math.Abs(w[i].V), math.Abs(g[i].V)))
				break
			}
		}
	}
	if n > 10 {
		fmt.Fprintf(&sb, "... and %d more\n", n-10)
	}
	return sb.String()
}

var instanceRE = regexp.MustCompile(`__name__="(e2e_gauge|e2e_requests_total)".*instance="i(\d+)"`)

// diffRaw compares raw samples (see compactQueries): every sample of want must be in got
// with the same value; got may hold at most maxExtra more samples per series, each a
// genuine sample of replica r1 (timestamp start+compactR1Offset+k·compactStep, value
// compactValue there). It returns the differences and the number of extra samples.
func diffRaw(want, got queryResult, start int64, maxExtra int) (string, int) {
	var sb strings.Builder
	extras := 0
	for k, w := range want {
		if _, ok := got[k]; !ok {
			fmt.Fprintf(&sb, "series %s missing (%d samples before)\n", k, len(w))
		}
	}
	for k, g := range got {
		w, ok := want[k]
		if !ok {
			fmt.Fprintf(&sb, "series %s is new (%d samples)\n", k, len(g))
			continue
		}
		sm := instanceRE.FindStringSubmatch(k)
		if sm == nil {
			fmt.Fprintf(&sb, "series %s: unexpected labels\n", k)
			continue
		}
		inst, _ := strconv.Atoi(sm[2])
		idx := 2 * inst
		if sm[1] == "e2e_gauge" {
			idx++
		}
		wi, n, bad := 0, 0, 0
		for _, p := range g {
			if wi < len(w) && w[wi].T == p.T {
				if w[wi].V != p.V {
					fmt.Fprintf(&sb, "series %s at %d: %v, want %v\n", k, p.T, p.V, w[wi].V)
				}
				wi++
				continue
			}
			if wi < len(w) && w[wi].T < p.T {
				fmt.Fprintf(&sb, "series %s: sample at %d (value %v) missing\n", k, w[wi].T, w[wi].V)
				return sb.String(), extras
			}
			n++
			if (p.T-start-compactR1Offset)%compactStep != 0 || p.V != compactValue(idx, p.T) {
				bad++
				if bad <= 3 {
					fmt.Fprintf(&sb, "series %s: extra sample at %d value %v is not a sample of r1\n", k, p.T, p.V)
				}
			}
		}
		if wi < len(w) {
			fmt.Fprintf(&sb, "series %s: %d samples from %d on missing\n", k, len(w)-wi, w[wi].T)
		}
		if n > maxExtra {
			fmt.Fprintf(&sb, "series %s: %d extra samples, want at most %d\n", k, n, maxExtra)
		}
		extras += n
	}
	return sb.String(), extras
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/block/blocktest"
	vobjstore "github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// startPrometheusBlockDuration starts a Prometheus like e2eutil.StartPrometheus (scraping
// itself every second with extLabels) but cutting blocks of the given duration.
// StartPrometheus cannot do this through ExtraFlags: it always passes the 2h block
// duration flags, and Prometheus refuses a repeated flag ("cannot be repeated").
func startPrometheusBlockDuration(t *testing.T, blockDuration string) *e2eutil.Prometheus {
	t.Helper()
	bin := e2eutil.PrometheusBin(t)
	dir := t.TempDir()
	addr := e2eutil.FreeAddr(t)
	p := &e2eutil.Prometheus{Addr: addr, URL: "http://" + addr, Dir: dir,
		ConfigPath: filepath.Join(dir, "prometheus.yml"), DataDir: filepath.Join(dir, "data")}
	if err := p.WriteConfig(e2eutil.PrometheusConfig{ExternalLabels: extLabels, ScrapeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	p.Process = e2eutil.StartProcess(t, e2eutil.ProcessSpec{Name: "prometheus", Bin: bin, Dir: dir, Args: []string{
		"--config.file=" + p.ConfigPath,
		"--storage.tsdb.path=" + p.DataDir,
		"--web.listen-address=" + addr,
		"--storage.tsdb.min-block-duration=" + blockDuration,
		"--storage.tsdb.max-block-duration=" + blockDuration,
		"--log.level=info",
	}})
	if err := p.WaitReady(e2eutil.PrometheusStartTimeout); err != nil {
		t.Fatalf("start Prometheus: %v", err)
	}
	return p
}

// openBucket opens the MinIO bucket through Vigil's own objstore package, as the
// components do.
func openBucket(t *testing.T, m *e2eutil.MinIO) objstore.Bucket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bkt, err := vobjstore.NewBucket(ctx, []byte(m.ObjstoreYAML("")), slog.New(slog.DiscardHandler), nil, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bkt.Close() })
	return bkt
}

// testBlock is a block generated with blocktest.CreateBlock.
type testBlock struct {
	id         ulid.ULID
	mint, maxt int64 // from meta.json: first sample, last sample + 1
	series     int
	ext        map[string]string
	dir        string // the local block directory
}

// createTestBlock writes a block of n test_metric series in [mint, maxt) into dir with
// ext as its thanos.labels (and source "test"), ready for block.Upload.
func createTestBlock(t *testing.T, dir string, mint, maxt int64, n int, ext map[string]string) testBlock {
	t.Helper()
	id := blocktest.CreateBlock(t, dir, mint, maxt, n)
	blocktest.EditMeta(t, dir, id, func(m *block.Meta) {
		m.Thanos.Labels = ext
		m.Thanos.Source = block.SourceTest
	})
	meta, err := block.ReadMeta(filepath.Join(dir, id.String()))
	if err != nil {
		t.Fatal(err)
	}
	// The TSDB sets the block's max time to its last sample + 1, not to maxt.
	return testBlock{id: id, mint: meta.MinTime, maxt: meta.MaxTime, series: n, ext: ext, dir: filepath.Join(dir, id.String())}
}

// uploadTestBlock creates a block as createTestBlock does and uploads it to bkt.
func uploadTestBlock(t *testing.T, bkt objstore.Bucket, mint, maxt int64, n int, ext map[string]string) testBlock {
	t.Helper()
	dir := t.TempDir()
	b := createTestBlock(t, dir, mint, maxt, n, ext)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := block.Upload(ctx, slog.New(slog.DiscardHandler), bkt, b.dir); err != nil {
		t.Fatal(err)
	}
	return b
}

// expectedSamples returns what blocktest.CreateBlock wrote for series i of block b within
// [mint, maxt].
func (b testBlock) expectedSamples(i int, mint, maxt int64) []e2eutil.RawSample {
	var out []e2eutil.RawSample
	for ts := b.mint; ts < b.maxt; ts += blocktest.Step {
		if ts >= mint && ts <= maxt {
			out = append(out, e2eutil.RawSample{T: ts, V: float64(i*1000) + float64(ts-b.mint)/blocktest.Step})
		}
	}
	return out
}

// seriesKey is the labels.Labels.String of test_metric series i with external labels ext.
func seriesKey(i int, ext map[string]string) string {
	b := labels.NewBuilder(labels.FromStrings("__name__", "test_metric", "series", strconv.Itoa(i)))
	for k, v := range ext {
		b.Set(k, v)
	}
	return b.Labels().String()
}

// expectBlocks returns the samples the store should return for test_metric within
// [mint, maxt] when it serves exactly the given blocks.
func expectBlocks(mint, maxt int64, bs ...testBlock) seriesSamples {
	out := seriesSamples{}
	for _, b := range bs {
		for i := range b.series {
			if smp := b.expectedSamples(i, mint, maxt); len(smp) > 0 {
				k := seriesKey(i, b.ext)
				out[k] = append(out[k], smp...)
			}
		}
	}
	return out
}

// allTestMetric is a Series request for every test_metric sample.
func allTestMetric() *storepb.SeriesRequest {
	return &storepb.SeriesRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64,
		Matchers: []*storepb.LabelMatcher{eq("__name__", "test_metric")}}
}

// metricValue returns the sum of all samples of the metric name (any labels) on the
// component's /metrics page, and whether there was any.
func metricValue(base, name string) (float64, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, body, err := e2eutil.HTTPGet(ctx, base+"/metrics")
	if err != nil {
		return 0, false, err
	}
	if code != 200 {
		return 0, false, fmt.Errorf("GET %s/metrics: HTTP %d", base, code)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest == "" || (rest[0] != ' ' && rest[0] != '{')) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("parse %q: %w", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, nil
}

// mustMetric is metricValue that fails the test if the metric is missing.
func mustMetric(t *testing.T, base, name string) float64 {
	t.Helper()
	v, ok, err := metricValue(base, name)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("%s/metrics has no %s", base, name)
	}
	return v
}

// infoLabelSets renders the label sets of an Info response, sorted.
func infoLabelSets(sets []*storepb.LabelSet) []string {
	out := make([]string, 0, len(sets))
	for _, s := range sets {
		out = append(out, storeapi.LabelsFromProto(s.Labels).String())
	}
	slices.Sort(out)
	return out
}

// stallProxy is a TCP proxy between a client and a server (MinIO) that forwards bytes
// both ways until it stalls. Armed with StallOn, it stalls as soon as the client sends
// bytes containing the trigger, before forwarding them: from then on nothing is forwarded
// on any connection in either direction, the bytes held back are never delivered, and the
// client waits forever for its response. Closing the proxy drops every connection.
type stallProxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu        sync.Mutex
	trigger   []byte
	stalled   bool
	stalledOn string // the first line of the client bytes that triggered the stall
	stop      chan struct{}
	conns     []net.Conn
	wg        sync.WaitGroup
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{Addr: ln.Addr().String(), target: target, ln: ln, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// StallOn arms the proxy: it stalls when a client sends bytes containing trigger.
func (p *stallProxy) StallOn(trigger string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger = []byte(trigger)
}

// Stalled reports whether the proxy has stalled and on which request line.
func (p *stallProxy) Stalled() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalled, p.stalledOn
}

// Close stops the proxy and closes every connection, forwarding nothing held back.
func (p *stallProxy) Close() {
	p.mu.Lock()
	select {
	case <-p.stop:
		p.mu.Unlock()
		return
	default:
	}
	close(p.stop)
	conns := p.conns
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		select {
		case <-p.stop:
			p.mu.Unlock()
			client.Close()
			server.Close()
			return
		default:
		}
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Add(2)
		var open sync.WaitGroup
		open.Add(2)
		go func() { open.Wait(); client.Close(); server.Close() }()
		go p.pipe(client, server, true, &open)
		go p.pipe(server, client, false, &open)
	}
}

// pipe copies src to dst until src ends (then it half-closes dst) or fails (then it
// closes both), or until the proxy stalls: a stalled pipe holds its bytes and waits for
// Close. Both connections are closed once both directions are done.
func (p *stallProxy) pipe(src, dst net.Conn, fromClient bool, open *sync.WaitGroup) {
	defer p.wg.Done()
	defer open.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if fromClient && !p.stalled && p.trigger != nil {
				if i := bytes.Index(buf[:n], p.trigger); i >= 0 {
					p.stalled = true
					line := buf[:n]
					start := bytes.LastIndexByte(line[:i], '\n') + 1
					end := len(line)
					if j := bytes.IndexByte(line[i:], '\n'); j >= 0 {
						end = i + j
					}
					p.stalledOn = strings.TrimSpace(string(line[start:end]))
				}
			}
			stalled := p.stalled
			p.mu.Unlock()
			if stalled {
				<-p.stop // hold everything; never forward
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if err == io.EOF {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}

// blockObjects lists the objects of block id in the bucket (relative to the block).
func blockObjects(t *testing.T, m *e2eutil.MinIO, id ulid.ULID) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	objs, err := m.Objects(ctx, id.String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for k, v := range objs {
		out[strings.TrimPrefix(k, id.String()+"/")] = v
	}
	return out
}

// bucketMetas reads the meta.json of every block in the bucket that has one.
func bucketMetas(ctx context.Context, m *e2eutil.MinIO) (map[ulid.ULID]*block.Meta, error) {
	names, err := m.ObjectNames(ctx, "")
	if err != nil {
		return nil, err
	}
	out := map[ulid.ULID]*block.Meta{}
	for _, n := range names {
		dir, file, ok := strings.Cut(n, "/")
		if !ok || file != block.MetaFilename {
			continue
		}
		id, err := ulid.ParseStrict(dir)
		if err != nil {
			continue
		}
		b, err := m.Get(ctx, n)
		if err != nil {
			return nil, err
		}
		meta, err := block.DecodeMeta(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out[id] = meta
	}
	return out, nil
}

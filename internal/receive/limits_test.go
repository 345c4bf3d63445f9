package receive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

const limitsYAML = `
write:
  global:
    max_concurrency: 4
    meta_monitoring_url: http://localhost:9090
    meta_monitoring_limit_query: "sum(prometheus_tsdb_head_series) by (tenant)"
  default:
    request:
      series_limit: 3
      samples_limit: 6
    head_series_limit: 50
  tenants:
    small:
      request:
        series_limit: 1
    unlimited:
      request:
        series_limit: 0
        samples_limit: 0
      head_series_limit: 0
    sized:
      request:
        size_bytes_limit: 64
    capped:
      head_series_limit: 2
`

func mustLimits(t testing.TB, y string) *Limits {
	t.Helper()
	cfg, err := ParseLimits([]byte(y))
	if err != nil {
		t.Fatalf("ParseLimits: %v", err)
	}
	return NewLimits(cfg)
}

func TestParseLimitsInheritance(t *testing.T) {
	l := mustLimits(t, limitsYAML)
	cases := []struct {
		tenant                string
		size, series, samples int64
		head                  uint64
	}{
		{"anyone", 0, 3, 6, 50},
		{"small", 0, 1, 6, 50},
		{"unlimited", 0, 0, 0, 0},
		{"sized", 64, 3, 6, 50},
		{"capped", 0, 3, 6, 2},
	}
	for _, tc := range cases {
		size, series, samples := l.Request(tc.tenant)
		if size != tc.size || series != tc.series || samples != tc.samples {
			t.Errorf("%s: request limits (%d, %d, %d), want (%d, %d, %d)", tc.tenant, size, series, samples, tc.size, tc.series, tc.samples)
		}
		if got := l.HeadSeries(tc.tenant); got != tc.head {
			t.Errorf("%s: head series limit %d, want %d", tc.tenant, got, tc.head)
		}
	}
	if got := l.MaxConcurrency(); got != 4 {
		t.Errorf("max concurrency %d, want 4", got)
	}
	var none *Limits
	if a, b, c := none.Request("x"); a != 0 || b != 0 || c != 0 || none.HeadSeries("x") != 0 || none.MaxConcurrency() != 0 {
		t.Error("nil limits impose limits")
	}
	for _, empty := range []string{"", "  \n", "write: {}"} {
		if cfg, err := ParseLimits([]byte(empty)); err != nil || cfg == nil {
			t.Errorf("ParseLimits(%q) = %v, %v; want empty limits", empty, cfg, err)
		}
	}
}

func TestParseLimitsStrict(t *testing.T) {
	bad := map[string]string{
		"unknown top-level key":   "writes:\n  default: {}\n",
		"unknown request key":     "write:\n  default:\n    request:\n      series_limits: 3\n",
		"unknown tenant key":      "write:\n  tenants:\n    a:\n      head_series: 3\n",
		"unknown global key":      "write:\n  global:\n    concurrency: 3\n",
		"negative tenant size":    "write:\n  tenants:\n    a:\n      request:\n        size_bytes_limit: -1\n",
		"negative tenant series":  "write:\n  tenants:\n    a:\n      request:\n        series_limit: -5\n",
		"negative tenant samples": "write:\n  tenants:\n    a:\n      request:\n        samples_limit: -5\n",
		"negative head series":    "write:\n  default:\n    head_series_limit: -1\n",
		"not a number":            "write:\n  default:\n    request:\n      series_limit: lots\n",
		"tenant with a path":      "write:\n  tenants:\n    ../x:\n      head_series_limit: 1\n",
		"not YAML":                "write: [",
	}
	for name, y := range bad {
		if _, err := ParseLimits([]byte(y)); err == nil {
			t.Errorf("%s: ParseLimits accepted\n%s", name, y)
		}
	}
}

func TestParseLimitsNegativeDefaults(t *testing.T) {
	for name, y := range map[string]string{
		"default size":    "write:\n  default:\n    request:\n      size_bytes_limit: -1\n",
		"default series":  "write:\n  default:\n    request:\n      series_limit: -1\n",
		"default samples": "write:\n  default:\n    request:\n      samples_limit: -1\n",
		"max concurrency": "write:\n  global:\n    max_concurrency: -1\n",
	} {
		if _, err := ParseLimits([]byte(y)); err == nil {
			t.Errorf("%s: negative value accepted", name)
		}
	}
}

func TestWatchLimitsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "limits.yaml")
	// Replace the file atomically: the watcher must never see a half-written file here
	// (TestWatchLimitsFileTruncated covers that).
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	seriesLimit := func(l *Limits) func() int64 {
		return func() int64 { _, s, _ := l.Request("x"); return s }
	}
	write("write:\n  default:\n    request:\n      series_limit: 1\n")
	l := mustLimits(t, "write:\n  default:\n    request:\n      series_limit: 1\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { WatchLimitsFile(ctx, l, path, 10*time.Millisecond, testLogger()); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	get := seriesLimit(l)
	// writeUntil rewrites the file, each time with another comment, until the limit is
	// applied: the watcher may have read the first version as its starting point.
	writeUntil := func(want int64) {
		t.Helper()
		i := 0
		eventually(t, 5*time.Second, func() string {
			if got := get(); got != want {
				i++
				write(fmt.Sprintf("# version %d\nwrite:\n  default:\n    request:\n      series_limit: %d\n", i, want))
				return fmt.Sprintf("series limit %d, want %d", got, want)
			}
			return ""
		})
	}
	writeUntil(2)
	write("write:\n  default:\n    request:\n      series_limit: [broken\n")
	time.Sleep(100 * time.Millisecond)
	if got := get(); got != 2 {
		t.Fatalf("broken file changed the limit to %d", got)
	}
	write("write:\n  default:\n    request:\n      serie_limit: 7\n") // unknown key: refused too
	time.Sleep(100 * time.Millisecond)
	if got := get(); got != 2 {
		t.Fatalf("file with an unknown key changed the limit to %d", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := get(); got != 2 {
		t.Fatalf("deleted file changed the limit to %d", got)
	}
	writeUntil(3)
}

// TestWatchLimitsFileTruncated: a file rewritten in place (truncate, then write, as
// editors and shell redirections do) can be read empty between the two. That moment
// must not lift every limit.
func TestWatchLimitsFileTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "limits.yaml")
	const y = "write:\n  default:\n    request:\n      series_limit: 2\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	l := mustLimits(t, y)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { WatchLimitsFile(ctx, l, path, 10*time.Millisecond, testLogger()); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(50 * time.Millisecond)
	if err := os.WriteFile(path, nil, 0o600); err != nil { // the truncated moment, held
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, s, _ := l.Request("x"); s != 2 {
		t.Fatalf("an empty limits file lifted the limits: series limit now %d, want 2", s)
	}
}

// manySeries is n one-sample series named prefix_i, each with samples samples.
func manySeries(prefix string, n, samples int) []prompb.TimeSeries {
	ts := nowMs()
	out := make([]prompb.TimeSeries, n)
	for i := range out {
		out[i] = floatSeries(fmt.Sprintf("%s_%d", prefix, i), ts, 1, samples)
	}
	return out
}

// bigSeries is one sample whose labels do not compress below 64 bytes.
func bigSeries(name string) prompb.TimeSeries {
	var sb strings.Builder
	for i := range 40 {
		fmt.Fprintf(&sb, "%x", (i*7919)%251)
	}
	return prompb.TimeSeries{Labels: lbls("__name__", name, "payload", sb.String()), Samples: []prompb.Sample{{Timestamp: nowMs(), Value: 1}}}
}

func TestRequestLimits413(t *testing.T) {
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "anyone", Limits: mustLimits(t, limitsYAML)})
	cases := []struct {
		name   string
		tenant string
		series []prompb.TimeSeries
		want   int
	}{
		{"default series limit", "anyone", manySeries("a", 4, 1), 413},
		{"default samples limit", "anyone", manySeries("b", 2, 4), 413},
		{"default within limits", "anyone", manySeries("c", 3, 2), 200},
		{"override series limit", "small", manySeries("d", 2, 1), 413},
		{"inherited samples limit", "small", manySeries("e", 1, 7), 413},
		{"override within limits", "small", manySeries("f", 1, 6), 200},
		{"override to unlimited", "unlimited", manySeries("g", 20, 5), 200},
		{"size limit", "sized", []prompb.TimeSeries{bigSeries("h")}, 413},
		{"histograms count as samples", "anyone", []prompb.TimeSeries{histogramSeries("i", nowMs(), 7)}, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := countPoints(t, n.tenants, tc.tenant)
			code, body := n.writeV1(t, tc.tenant, tc.series...)
			if code != tc.want {
				t.Fatalf("status %d (%s), want %d", code, body, tc.want)
			}
			added := countPoints(t, n.tenants, tc.tenant) - before
			want := 0
			if tc.want == 200 {
				want = len(tc.series) * (len(tc.series[0].Samples) + len(tc.series[0].Histograms))
			}
			if added != want {
				t.Errorf("%d points added, want %d", added, want)
			}
		})
	}
	// The size limit also holds for a body of unknown length (chunked).
	body := encodeV1(t, bigSeries("j"))
	if len(body) <= 64 {
		t.Fatalf("test body of %d bytes is not over the limit", len(body))
	}
	req, _ := http.NewRequest(http.MethodPost, n.url+"/api/v1/receive", io.MultiReader(bytes.NewReader(body)))
	for k, v := range rw1Headers("sized") {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || req.ContentLength > 0 {
		t.Errorf("chunked body over the size limit: status %d (content length %d), want 413", resp.StatusCode, req.ContentLength)
	}
	// A small request of the sized tenant passes.
	small := []prompb.TimeSeries{{Labels: lbls("__name__", "k"), Samples: []prompb.Sample{{Timestamp: nowMs(), Value: 1}}}}
	if code, body := n.writeV1(t, "sized", small...); code != http.StatusOK {
		t.Errorf("small request: status %d (%s), want 200", code, body)
	}
}

func TestHeadSeriesLimit429(t *testing.T) {
	l := mustLimits(t, limitsYAML)
	n := newLocalNode(t, HandlerOptions{DefaultTenant: "anyone", Limits: l})
	if code, body := n.writeV1(t, "capped", manySeries("a", 2, 1)...); code != http.StatusOK {
		t.Fatalf("status %d (%s)", code, body)
	}
	before := countPoints(t, n.tenants, "capped")
	code, body := n.writeV1(t, "capped", manySeries("b", 1, 1)...)
	if code != http.StatusTooManyRequests {
		t.Fatalf("over the head-series limit: status %d (%s), want 429", code, body)
	}
	if after := countPoints(t, n.tenants, "capped"); after != before {
		t.Errorf("points %d → %d after a 429", before, after)
	}
	// Another tenant is not affected.
	if code, _ := n.writeV1(t, "unlimited", manySeries("c", 5, 1)...); code != http.StatusOK {
		t.Errorf("unlimited tenant: status %d", code)
	}
	// Limits swapped at run time apply to the next request.
	cfg, err := ParseLimits([]byte(strings.ReplaceAll(limitsYAML, "head_series_limit: 2", "head_series_limit: 10")))
	if err != nil {
		t.Fatal(err)
	}
	l.Set(cfg)
	if code, body := n.writeV1(t, "capped", manySeries("b", 1, 1)...); code != http.StatusOK {
		t.Errorf("after raising the limit: status %d (%s), want 200", code, body)
	}
}

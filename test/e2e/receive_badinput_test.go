package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// TestReceiveBadInput: each kind of bad request gets its status code and a message, and
// nothing already stored is lost. The limits file is reloaded while the receiver runs.
func TestReceiveBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	limitsFile := filepath.Join(t.TempDir(), "limits.yml")
	writeLimits := func(y string) {
		if err := os.WriteFile(limitsFile, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeLimits("write:\n  default:\n    request:\n      series_limit: 100\n      samples_limit: 1000\n  tenants:\n    small:\n      head_series_limit: 5\n")
	recv, rwURL := startReceiver(t, dir, `--label=receive_replica="r0"`,
		"--receive.limits-config-file="+limitsFile, "--receive.limits-config-reload-interval=200ms")
	q := e2eutil.StartVigil(t, "query", "--endpoint="+recv.GRPCAddr)
	q.MustWaitReady(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	good := ringSeries(50, 0, t0)
	if r, err := e2eutil.RemoteWrite(ctx, rwURL, "", good); err != nil || r.Code != 200 {
		t.Fatalf("good write: %v %+v", err, r)
	}
	stored := func() float64 {
		r := mustAPI(t, q.HTTPURL, "/api/v1/query", url.Values{"query": {"count(ring_load)"}, "time": {unixParam(t0)}})
		vec := mustSeriesResult(t, r, "vector")
		if len(vec) != 1 {
			return 0
		}
		return vec[0].value(t).V
	}
	e2eutil.Poll(t, 15*time.Second, 200*time.Millisecond, func() error {
		if n := stored(); n != 50 {
			return fmt.Errorf("%v series stored, want 50", n)
		}
		return nil
	})

	raw := func(ts []prompb.TimeSeries) []byte {
		wr := prompb.WriteRequest{Timeseries: ts}
		b, _ := wr.Marshal()
		return b
	}
	unsorted := []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "job", Value: "x"}, {Name: "__name__", Value: "bad"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: t0.UnixMilli()}}}}
	cases := []struct {
		name    string
		body    []byte
		headers map[string]string
		code    int
		msg     string
	}{
		{"garbage body", snappy.Encode(nil, []byte("this is not a protobuf message \xff\xff\xff")), nil, 400, "decode remote-write 1.0 request"},
		{"wrong snappy", []byte("definitely not snappy"), nil, 400, "snappy"},
		{"tenant path", e2eutil.EncodeWriteRequest(good), map[string]string{"THANOS-TENANT": "../x"}, 400, "invalid tenant"},
		{"out of order", e2eutil.EncodeWriteRequest(ringSeries(50, -30, t0)), nil, 409, "out of order sample"},
		{"duplicate value", e2eutil.EncodeWriteRequest(func() []prompb.TimeSeries { s := ringSeries(1, 0, t0); s[0].Samples[0].Value = -1; return s }()), nil, 409, "duplicate sample"},
		{"unsorted labels", snappy.Encode(nil, raw(unsorted)), nil, 400, "labels out of order"},
		{"over series limit", e2eutil.EncodeWriteRequest(ringSeries(101, 1, t0)), nil, 413, "limit of 100 series"},
		{"unsupported content type", e2eutil.EncodeWriteRequest(good), map[string]string{"Content-Type": "application/json"}, 415, "unsupported content type"},
		{"unsupported encoding", e2eutil.EncodeWriteRequest(good), map[string]string{"Content-Encoding": "gzip"}, 415, "unsupported content encoding"},
		{"head series limit", e2eutil.EncodeWriteRequest(ringSeries(6, 1, t0)), map[string]string{"THANOS-TENANT": "small"}, 0, ""},
		{"over head series limit", e2eutil.EncodeWriteRequest(ringSeries(6, 2, t0)), map[string]string{"THANOS-TENANT": "small"}, 429, "head series"},
	}
	for _, c := range cases {
		r, err := e2eutil.PostRemoteWrite(ctx, rwURL, c.body, c.headers)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.code == 0 {
			continue // a setup request
		}
		if r.Code != c.code || !strings.Contains(r.Body, c.msg) {
			t.Errorf("%s: HTTP %d %q, want %d mentioning %q", c.name, r.Code, r.Body, c.code, c.msg)
		}
		t.Logf("%s: HTTP %d %s", c.name, r.Code, strings.TrimSpace(r.Body))
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "x")); err == nil {
		t.Errorf("tenant ../x created a directory outside --tsdb.path")
	}
	if n := stored(); n != 50 {
		t.Errorf("after the bad requests %v series are stored, want the 50 stored before", n)
	}

	// Raise the series limit in the file: the next request over the old limit passes.
	writeLimits("write:\n  default:\n    request:\n      series_limit: 200\n")
	e2eutil.Poll(t, 10*time.Second, 100*time.Millisecond, func() error {
		r, err := e2eutil.RemoteWrite(ctx, rwURL, "", ringSeries(101, 3, t0))
		if err != nil || r.Code != 200 {
			return fmt.Errorf("write of 101 series after raising the limit: %v HTTP %d %s", err, r.Code, r.Body)
		}
		return nil
	})
	if recv.Exited() {
		t.Fatal("receiver exited")
	}
}

package receive

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
)

// decodeBody runs the handler's decode path over body as message type msg, with
// buffers from the handler's pool, and returns the series encoded as remote write 1.0
// (the buffers go back to the pool, so the next decode reuses them).
func decodeBody(t *testing.T, h *Handler, body []byte, msg string) ([]byte, v2Stats, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/receive", bytes.NewReader(body))
	bufs := h.bufs.get()
	defer h.bufs.put(bufs)
	_, series, stats, err := h.decode(r, msg, bufs)
	if err != nil {
		return nil, stats, err
	}
	if msg == protoV2 {
		var want v2Stats
		for _, s := range series {
			want.samples += len(s.Samples)
			want.histograms += len(s.Histograms)
			want.exemplars += len(s.Exemplars)
		}
		if stats != want {
			t.Fatalf("stats %+v, counted %+v", stats, want)
		}
	}
	enc, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatalf("re-encode decoded series: %v", err)
	}
	return enc, stats, nil
}

// checkReencodes: decoded series, re-encoded as remote write 1.0, decode again through
// the handler (reusing the buffers) to the same bytes.
func checkReencodes(t *testing.T, h *Handler, enc []byte) {
	t.Helper()
	enc2, _, err := decodeBody(t, h, snappy.Encode(nil, enc), protoV1)
	if err != nil {
		t.Fatalf("decode re-encoded request: %v", err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatal("re-encoding not stable")
	}
}

// canonicalGogo is Prometheus' own decoding of a 1.0 request, encoded again without
// the unknown fields of series, labels and samples (the handler skips those).
func canonicalGogo(b []byte) ([]byte, bool) {
	var req prompb.WriteRequest
	if req.Unmarshal(b) != nil {
		return nil, false
	}
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		ts.XXX_unrecognized = nil
		for j := range ts.Labels {
			ts.Labels[j].XXX_unrecognized = nil
		}
		for j := range ts.Samples {
			ts.Samples[j].XXX_unrecognized = nil
		}
	}
	enc, err := (&prompb.WriteRequest{Timeseries: req.Timeseries}).Marshal()
	return enc, err == nil
}

// checkDecodeError: a refused body is refused as the client's fault.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	if c := CauseOf(err); c != CauseBadRequest && c != CauseTooLarge {
		t.Fatalf("decode error with cause %d (HTTP %d): %v", c, c.HTTPStatus(), err)
	}
}

func fuzzHandler() *Handler {
	return NewHandler(testLogger(), prometheus.NewRegistry(), nil, HandlerOptions{DefaultTenant: "t"})
}

func FuzzDecodeRemoteWriteV1(f *testing.F) {
	for _, series := range [][]prompb.TimeSeries{mixedSeries(1_700_000_000_000), nil, {{Labels: lbls("a", "b")}}} {
		b, _ := (&prompb.WriteRequest{Timeseries: series}).Marshal()
		f.Add(b)
	}
	f.Add(snappy.Encode(nil, []byte("\x0a\x02\x0a\x00")))
	f.Add([]byte("\xff\xff\xff\xff\x0f"))
	h := fuzzHandler()
	f.Fuzz(func(t *testing.T, b []byte) {
		want, gogoOK := canonicalGogo(b)
		for i, body := range [][]byte{b, snappy.Encode(nil, b)} {
			enc, _, err := decodeBody(t, h, body, protoV1)
			if err != nil {
				checkDecodeError(t, err)
				if i == 1 && gogoOK {
					// gogo skips unknown fields loosely (a group's end marker and the
					// field numbers inside it are not checked); the handler may refuse
					// such malformed unknown fields, but must decode the same series
					// without them.
					got, _, err2 := decodeBody(t, h, snappy.Encode(nil, want), protoV1)
					if err2 != nil || !bytes.Equal(got, want) {
						t.Fatalf("Prometheus decodes the request, the handler refuses it (%v) and its series (%v)", err, err2)
					}
				}
				continue
			}
			checkReencodes(t, h, enc)
			if i == 1 && gogoOK && !bytes.Equal(enc, want) {
				t.Fatal("the handler decodes other series than Prometheus does")
			}
		}
	})
}

func FuzzDecodeRemoteWriteV2(f *testing.F) {
	for _, series := range [][]prompb.TimeSeries{mixedSeries(1_700_000_000_000), nil} {
		raw, _ := snappy.Decode(nil, encodeV2(f, series...))
		f.Add(raw)
	}
	f.Add([]byte("\x22\x00\x22\x01a\x2a\x04\x0a\x02\x01\x05")) // symbols "", "a"; a reference out of range
	f.Add([]byte("\x2a\x03\x0a\x01\x00"))
	h := fuzzHandler()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, body := range [][]byte{b, snappy.Encode(nil, b)} {
			enc, _, err := decodeBody(t, h, body, protoV2)
			if err != nil {
				checkDecodeError(t, err)
				continue
			}
			checkReencodes(t, h, enc)
		}
	})
}

// FuzzOTLPHandler posts arbitrary OTLP bodies, protobuf or JSON, to a receiver with a
// real TSDB: never a panic, and never a 5xx.
func FuzzOTLPHandler(f *testing.F) {
	ts := time.Unix(1_700_000_000, 0)
	pb, _ := otlpBody(f, otlpMetrics(ts, 1), false)
	js, _ := otlpBody(f, otlpMetrics(ts, 1), true)
	f.Add(pb, false)
	f.Add(js, true)
	f.Add([]byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asDouble":1}]}}]}]}]}`), true)
	f.Add([]byte("\x0a\x00"), false)
	f.Add([]byte("{"), true)
	n := newLocalNode(f, HandlerOptions{DefaultTenant: "t"})
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		ct := "application/x-protobuf"
		if json {
			ct = "application/json"
		}
		r := httptest.NewRequest(http.MethodPost, "/api/v1/otlp", bytes.NewReader(body))
		r.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		n.handler.serveOTLP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for an OTLP body: %s", w.Code, w.Body.String())
		}
	})
}

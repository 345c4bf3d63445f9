package e2eutil

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// RemoteWriteResult is a receiver's answer to one remote-write request.
type RemoteWriteResult struct {
	Code int
	Body string
}

// PostRemoteWrite sends a raw body to a remote-write URL with the headers Prometheus sends
// (override them with headers; an empty value deletes one).
func PostRemoteWrite(ctx context.Context, url string, body []byte, headers map[string]string) (RemoteWriteResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return RemoteWriteResult{}, err
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return RemoteWriteResult{}, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return RemoteWriteResult{Code: resp.StatusCode, Body: string(b)}, nil
}

// EncodeWriteRequest encodes series as a remote-write 1.0 body (snappy block format).
func EncodeWriteRequest(series []prompb.TimeSeries) []byte {
	wr := prompb.WriteRequest{Timeseries: series}
	raw, err := wr.Marshal()
	if err != nil {
		panic(fmt.Sprintf("marshal WriteRequest: %v", err)) // only with invalid in-memory data
	}
	return snappy.Encode(nil, raw)
}

// RemoteWrite sends series as remote write 1.0 and returns the answer.
func RemoteWrite(ctx context.Context, url, tenant string, series []prompb.TimeSeries) (RemoteWriteResult, error) {
	h := map[string]string{}
	if tenant != "" {
		h["THANOS-TENANT"] = tenant
	}
	return PostRemoteWrite(ctx, url, EncodeWriteRequest(series), h)
}

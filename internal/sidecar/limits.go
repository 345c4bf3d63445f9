package sidecar

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/promclient"
)

// errLimitReached ends a stream early once the request's own series limit is met; it is
// not an error for the client.
var errLimitReached = errors.New("request series limit reached")

// limiter enforces the per-request series and sample limits.
type limiter struct {
	limits      Limits
	reqSeries   int64 // SeriesRequest.limit: stop quietly after this many series
	samples     int
	seriesCount int
}

func newLimiter(l Limits, reqLimit int64) *limiter { return &limiter{limits: l, reqSeries: reqLimit} }

// seriesDone reports whether the request's own series limit has been reached.
func (l *limiter) seriesDone(sent int) bool {
	return l.reqSeries > 0 && int64(sent) >= l.reqSeries
}

// addSamples counts a series and its samples (from the chunk headers) against the limits.
func (l *limiter) addSamples(chks []promclient.RawChunk) error {
	l.seriesCount++
	if l.limits.Series > 0 && l.seriesCount > l.limits.Series {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("exceeded series limit: more than %d series (--store.limits.request-series)", l.limits.Series))
	}
	if l.limits.Samples == 0 {
		return nil
	}
	for _, c := range chks {
		if len(c.Data) >= 2 {
			l.samples += int(binary.BigEndian.Uint16(c.Data))
		}
	}
	if l.samples > l.limits.Samples {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("exceeded samples limit: more than %d samples (--store.limits.request-samples)", l.limits.Samples))
	}
	return nil
}

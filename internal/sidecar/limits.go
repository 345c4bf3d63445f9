package sidecar

import (
	"errors"

	"github.com/vigilhq/vigil/internal/promclient"
	"github.com/vigilhq/vigil/internal/storeapi"
)

// errLimitReached ends a stream early once the request's own series limit is met; it is
// not an error for the client.
var errLimitReached = errors.New("request series limit reached")

// limiter enforces the per-request series and sample limits, and the request's own
// series limit.
type limiter struct {
	*storeapi.Limiter
	reqSeries int64 // SeriesRequest.limit: stop quietly after this many series
}

func newLimiter(l Limits, reqLimit int64) *limiter {
	return &limiter{
		Limiter:   storeapi.NewLimiter(storeapi.RequestLimits{Series: int64(l.Series), Samples: int64(l.Samples)}),
		reqSeries: reqLimit,
	}
}

// seriesDone reports whether the request's own series limit has been reached.
func (l *limiter) seriesDone(sent int) bool {
	return l.reqSeries > 0 && int64(sent) >= l.reqSeries
}

// addSamples counts a series and its samples, from the headers of the chunks Prometheus
// sent (also when the request skips chunks), against the limits.
func (l *limiter) addSamples(chks []promclient.RawChunk) error {
	n := 0
	for _, c := range chks {
		n += storeapi.ChunkDataSamples(c.Data)
	}
	return l.Count(int64(n), 0)
}

package bucketstore

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// bytePool bounds the bytes of series batches (chunk data, labels and the structures
// holding them, see heldSize) all requests hold at once (--chunk-pool-size). A
// request that would go over it fails with ResourceExhausted instead of waiting: waiting
// could deadlock requests that each hold part of the pool.
type bytePool struct {
	mu    sync.Mutex
	max   int64
	used  int64
	inUse prometheus.Gauge
}

func newBytePool(max int64, reg prometheus.Registerer) *bytePool {
	p := &bytePool{max: max, inUse: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_store_chunk_pool_bytes_in_use", Help: "Bytes of series batches (chunks, labels) held by in-flight requests, bounded by --chunk-pool-size.",
	})}
	if reg != nil {
		reg.MustRegister(p.inUse)
	}
	return p
}

// acquire takes n bytes or fails with ResourceExhausted. max 0 means unbounded.
func (p *bytePool) acquire(n int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.max > 0 && p.used+n > p.max {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf(
			"chunk pool exhausted: reading %d more bytes of series would exceed --chunk-pool-size=%d (in use: %d); narrow the query or raise the flag",
			n, p.max, p.used))
	}
	p.used += n
	p.inUse.Set(float64(p.used))
	return nil
}

func (p *bytePool) release(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used -= n
	p.inUse.Set(float64(p.used))
}

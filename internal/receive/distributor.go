package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/hashring"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/writepb"
)

// Distributor places each series of a write on the hashring and writes it to its
// replicas: the local TSDB directly, the other receivers through
// thanos.WriteableStore/RemoteWrite. Without a ring it writes everything locally.
type Distributor struct {
	logger  *slog.Logger
	writer  *Writer
	local   string
	rf      int
	timeout time.Duration
	ring    atomic.Pointer[hashring.Ring]
	peers   *storeapi.ConnPool // connections to the other receivers

	forwards *prometheus.CounterVec
}

// GRPCReceiveWindow is the flow-control window of each incoming gRPC stream of a
// receiver: a forwarded write (often several hundred KB) arrives without waiting for
// window updates, which under concurrent writes stalled calls for seconds.
const GRPCReceiveWindow = 8 << 20

// DistributorOptions configure a Distributor.
type DistributorOptions struct {
	// LocalEndpoint is this receiver's address in the ring (--receive.local-endpoint).
	LocalEndpoint string
	// ReplicationFactor is --receive.replication-factor.
	ReplicationFactor int
	// ForwardTimeout bounds each forwarded write (--receive-forward-timeout).
	ForwardTimeout time.Duration
	// DialOptions are used for the connections to the other receivers.
	DialOptions []grpc.DialOption
}

// NewDistributor returns a distributor writing through w.
func NewDistributor(logger *slog.Logger, reg prometheus.Registerer, w *Writer, opts DistributorOptions) *Distributor {
	if opts.ReplicationFactor < 1 {
		opts.ReplicationFactor = 1
	}
	if opts.ForwardTimeout <= 0 {
		opts.ForwardTimeout = 5 * time.Second
	}
	return &Distributor{
		logger: logger, writer: w, local: opts.LocalEndpoint, rf: opts.ReplicationFactor, timeout: opts.ForwardTimeout,
		peers: storeapi.NewConnPool(peerIdleTimeout, opts.DialOptions...),
		forwards: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_receive_forward_requests_total",
			Help: "Writes forwarded to other receivers, by result.",
		}, []string{"result"}),
	}
}

// SetRing installs a new hashring; nil writes everything locally.
func (d *Distributor) SetRing(r *hashring.Ring) error {
	if r != nil {
		if err := r.ReplicationPossible(d.rf); err != nil {
			return fmt.Errorf("hashring cannot hold %d replicas: %w", d.rf, err)
		}
	}
	d.ring.Store(r)
	return nil
}

// Ring returns the hashring in use, nil when there is none.
func (d *Distributor) Ring() *hashring.Ring { return d.ring.Load() }

// writeQuorum is how many replicas of a series must be written for the write to count:
// a majority, except that two replicas need only one, as in Thanos.
func writeQuorum(rf int) int {
	if rf == 2 {
		return 1
	}
	return rf/2 + 1
}

// replicaBatch is the series one endpoint stores as replica n.
type replicaBatch struct {
	addr string
	n    int
	idx  []int
}

// Write stores series for tenant. replica is the 1-based replica number of a forwarded
// write (0 for a client's write), which is stored locally as is.
func (d *Distributor) Write(ctx context.Context, tenant string, series []prompb.TimeSeries, replica int64) error {
	return d.write(ctx, tenant, series, replica, nil)
}

// write is Write that calls release, if not nil, once nothing reads series any more:
// after the answer, when replicas are still writing in the background.
func (d *Distributor) write(ctx context.Context, tenant string, series []prompb.TimeSeries, replica int64, release func()) error {
	if release == nil {
		release = func() {}
	}
	ring := d.ring.Load()
	if len(series) == 0 || ring == nil || replica > 0 {
		defer release()
		if len(series) == 0 {
			return nil
		}
		return d.writer.Write(ctx, tenant, series)
	}
	batches, err := d.place(ring, tenant, series)
	if err != nil {
		release()
		return err
	}
	return d.replicate(ctx, tenant, series, batches, release)
}

// place groups the series by the endpoint and replica number that store them.
func (d *Distributor) place(ring *hashring.Ring, tenant string, series []prompb.TimeSeries) ([]*replicaBatch, error) {
	type key struct {
		addr string
		n    int
	}
	byKey := map[key]*replicaBatch{}
	var out []*replicaBatch
	for i := range series {
		h := hashring.HashSeries(tenant, series[i].Labels)
		for n := 0; n < d.rf; n++ {
			ep, err := ring.GetN(tenant, h, uint64(n))
			if err != nil {
				return nil, &WriteError{Cause: CauseInternal, Err: fmt.Errorf("place series on the hashring: %w", err)}
			}
			k := key{ep.Address, n}
			b := byKey[k]
			if b == nil {
				b = &replicaBatch{addr: ep.Address, n: n}
				byKey[k] = b
				out = append(out, b)
			}
			b.idx = append(b.idx, i)
		}
	}
	return out, nil
}

type batchResult struct {
	b   *replicaBatch
	err error
}

// stragglerGrace is the least time the replicas still writing get once every series
// has its quorum.
const stragglerGrace = 100 * time.Millisecond

// replicate writes every batch concurrently. It fails as soon as one series can no
// longer reach its quorum. Once every series has its quorum it still waits for the other
// replicas, for at most max(stragglerGrace, twice the time the quorum took): a client
// sends a series' next samples only after this answer, and a replica that got them
// before the current ones would refuse the current ones as out of order. A replica
// slower than that is left to finish in the background (bounded by the forward timeout)
// and misses samples only if it is that far behind.
func (d *Distributor) replicate(ctx context.Context, tenant string, series []prompb.TimeSeries, batches []*replicaBatch, release func()) error {
	start := time.Now()
	quorum := writeQuorum(d.rf)
	maxFailures := d.rf - quorum
	results := make(chan batchResult, len(batches))
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
	var wg sync.WaitGroup
	for _, b := range batches {
		wg.Go(func() { results <- batchResult{b, d.writeBatch(fctx, tenant, series, b)} })
	}
	go func() { wg.Wait(); cancel(); release() }()

	ok := make([]int8, len(series))
	failed := make([]int8, len(series))
	done := 0
	var errs []error
	var grace <-chan time.Time
	for range batches {
		var r batchResult
		select {
		case r = <-results:
		case <-grace:
			return nil
		case <-ctx.Done():
			return &WriteError{Cause: CauseUnavailable, Err: fmt.Errorf("waiting for replicas: %w", ctx.Err())}
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("replica %d at %s: %w", r.b.n+1, r.b.addr, r.err))
		}
		for _, i := range r.b.idx {
			if r.err == nil {
				if ok[i]++; int(ok[i]) == quorum {
					done++
				}
			} else if failed[i]++; int(failed[i]) > maxFailures {
				return quorumError(errs, quorum, d.rf)
			}
		}
		if done == len(series) && grace == nil {
			grace = time.After(max(stragglerGrace, 2*time.Since(start)))
		}
	}
	if done == len(series) {
		return nil
	}
	return quorumError(errs, quorum, d.rf)
}

// writeBatch writes one endpoint's share of the series.
func (d *Distributor) writeBatch(ctx context.Context, tenant string, series []prompb.TimeSeries, b *replicaBatch) error {
	sub := make([]prompb.TimeSeries, len(b.idx))
	for j, i := range b.idx {
		sub[j] = series[i]
	}
	if b.addr == d.local {
		return d.writer.Write(ctx, tenant, sub)
	}
	err := d.forward(ctx, b.addr, &writepb.WriteRequest{Timeseries: sub, Tenant: tenant, Replica: int64(b.n + 1)})
	if err != nil {
		d.forwards.WithLabelValues("error").Inc()
		return err
	}
	d.forwards.WithLabelValues("success").Inc()
	return nil
}

// quorumError is the error of a write that missed its quorum. Its cause is the most
// frequent cause among the replicas' errors; on a tie the one a client retries wins,
// so that nothing is dropped that a retry could still store.
func quorumError(errs []error, quorum, rf int) error {
	counts := map[Cause]int{}
	for _, err := range errs {
		counts[CauseOf(err)]++
	}
	best, bestN := CauseUnavailable, 0
	for _, c := range []Cause{CauseUnavailable, CauseTooMany, CauseInternal, CauseTooLarge, CauseConflict, CauseBadRequest} {
		if counts[c] > bestN {
			best, bestN = c, counts[c]
		}
	}
	return &WriteError{Cause: best, Err: fmt.Errorf("write quorum of %d of %d replicas not reached: %w", quorum, rf, errors.Join(errs...))}
}

// peerIdleTimeout is how long a connection to another receiver is kept unused: a
// receiver dropped from the hashring stops being written to, and its connection closes.
const peerIdleTimeout = 10 * time.Minute

// forward sends a write to the receiver at addr over the pooled connection.
func (d *Distributor) forward(ctx context.Context, addr string, req *writepb.WriteRequest) error {
	cc, err := d.peers.Get(addr)
	if err != nil {
		return &WriteError{Cause: CauseUnavailable, Err: fmt.Errorf("connect to receiver: %w", err)}
	}
	if _, err := writepb.NewClient(cc).RemoteWrite(ctx, req); err != nil {
		if s, ok := status.FromError(err); ok {
			return fmt.Errorf("forward to %s: %w", addr, s.Err())
		}
		return fmt.Errorf("forward to %s: %w", addr, err)
	}
	return nil
}

// Close closes the connections to the other receivers.
func (d *Distributor) Close() error { return d.peers.Close() }

// GRPCServer serves thanos.WriteableStore: writes forwarded by other receivers.
type GRPCServer struct {
	D             *Distributor
	DefaultTenant string
}

// RemoteWrite stores a forwarded write (or, with replica 0, distributes it).
func (s GRPCServer) RemoteWrite(ctx context.Context, req *writepb.WriteRequest) (*writepb.WriteResponse, error) {
	tenant := req.Tenant
	if tenant == "" {
		tenant = s.DefaultTenant
	}
	if err := s.D.Write(ctx, tenant, req.Timeseries, req.Replica); err != nil {
		return nil, status.Error(CauseOf(err).grpcCode(), err.Error())
	}
	return &writepb.WriteResponse{}, nil
}

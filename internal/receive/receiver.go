// Package receive is the write path: it accepts Prometheus remote write (1.0 and 2.0)
// and OTLP metrics, places each series on a hashring shared with other receivers,
// replicates it with a write quorum, stores it in one TSDB per tenant, serves every
// tenant over the StoreAPI and uploads finished blocks to object storage.
package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/hashring"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/internal/storeapi/writepb"
	"github.com/vigilhq/vigil/internal/tsdbstore"
)

// Config is a receiver's configuration, the flags of `vigil receive`.
type Config struct {
	TSDB          TSDBOptions
	Handler       HandlerOptions
	Distributor   DistributorOptions
	UploadEvery   time.Duration
	LimitsFile    string        // watched when set
	LimitsReload  time.Duration // how often LimitsFile is checked
	HashringsFile string        // watched when set
	Hashrings     []byte        // inline hashring configuration, when no file
	HashringsAlgo string
	HashringsPoll time.Duration
}

// Receiver is the assembled write path.
type Receiver struct {
	logger  *slog.Logger
	cfg     Config
	tenants *Tenants
	dist    *Distributor
	handler *Handler
	multi   *tsdbstore.Multi
	watcher *hashring.Watcher
}

// New opens the tenants on disk and builds the write path; nothing is served yet.
func New(logger *slog.Logger, reg prometheus.Registerer, cfg Config) (*Receiver, error) {
	r := &Receiver{logger: logger, cfg: cfg}
	ring, err := r.loadRing(logger, reg)
	if err != nil {
		return nil, err
	}
	cfg.TSDB.RingLabels = func(tenant string) labels.Labels {
		if ring := r.dist.Ring(); ring != nil {
			if ls, err := ring.ExternalLabels(tenant); err == nil {
				return ls
			}
		}
		return labels.EmptyLabels()
	}
	r.dist = NewDistributor(logger, reg, nil, cfg.Distributor)
	if err := r.dist.SetRing(ring); err != nil {
		return nil, err
	}
	if r.tenants, err = NewTenants(logger, reg, cfg.TSDB); err != nil {
		return nil, err
	}
	r.dist.writer = NewWriter(r.tenants, cfg.Handler.Limits)
	r.handler = NewHandler(logger, reg, r.dist, cfg.Handler)
	r.multi = tsdbstore.NewMulti(r.tenants.Stores, storepb.StoreType_RECEIVE, tsdbstore.MultiOptions{
		Logger: logger, Limits: cfg.TSDB.Store.Limits,
	})
	return r, nil
}

// loadRing reads the hashring configuration; nil means every write is stored locally.
func (r *Receiver) loadRing(logger *slog.Logger, reg prometheus.Registerer) (*hashring.Ring, error) {
	switch {
	case r.cfg.HashringsFile != "":
		w, err := hashring.NewWatcher(r.cfg.HashringsFile, r.cfg.HashringsPoll, r.cfg.HashringsAlgo, logger, reg)
		if err != nil {
			return nil, fmt.Errorf("hashrings file: %w", err)
		}
		r.watcher = w
		return w.Ring(), nil
	case len(r.cfg.Hashrings) > 0:
		cfgs, err := hashring.ParseConfig(r.cfg.Hashrings)
		if err != nil {
			return nil, fmt.Errorf("--receive.hashrings: %w", err)
		}
		return hashring.New(cfgs, r.cfg.HashringsAlgo)
	}
	return nil, nil
}

// Register serves the StoreAPI and WriteableStore on srv and the write endpoints on the
// remote-write mux.
func (r *Receiver) Register(srv *grpc.Server, rw interface {
	Handle(string, http.Handler)
}) {
	storeapi.Register(srv, r.multi, r.multi, storepb.StoreType_RECEIVE)
	writepb.RegisterWriteableStoreServer(srv, GRPCServer{D: r.dist, DefaultTenant: r.cfg.Handler.DefaultTenant})
	r.handler.Register(rw)
}

// Run uploads blocks, prunes idle tenants and follows the hashring and limits files
// until ctx is done.
func (r *Receiver) Run(ctx context.Context) error {
	if r.watcher != nil {
		go r.watcher.Run(ctx, func(ring *hashring.Ring) {
			if err := r.dist.SetRing(ring); err != nil {
				r.logger.Error("new hashring refused; keeping the one in use", "err", err)
				return
			}
			r.logger.Info("hashring changed", "endpoints", len(ring.Endpoints()))
		})
	}
	if r.cfg.LimitsFile != "" && r.cfg.Handler.Limits != nil {
		go WatchLimitsFile(ctx, r.cfg.Handler.Limits, r.cfg.LimitsFile, r.cfg.LimitsReload, r.logger)
	}
	return r.tenants.Run(ctx, r.cfg.UploadEvery)
}

// Close flushes every tenant's head into a block, uploads it and closes the TSDBs. Call
// it after the servers stopped, so that no write is lost to the flush.
func (r *Receiver) Close(ctx context.Context) error {
	return errors.Join(r.tenants.Close(ctx, r.cfg.TSDB.Bucket != nil), r.dist.Close())
}

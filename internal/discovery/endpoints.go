package discovery

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Endpoints combines static specs (the --endpoint/--store flags), file SD
// targets and DNS resolution into the current list of StoreAPI addresses.
type Endpoints struct {
	static   []string
	fsd      *FileSD
	dns      *DNS
	interval time.Duration
	logger   *slog.Logger

	refreshMu sync.Mutex // serialises Refresh, so results land in order
	mu        sync.Mutex // guards addrs
	addrs     []string
}

// NewEndpoints returns an Endpoints resolving static and fsd's targets (fsd
// may be nil) with dns, every interval (--store.sd-dns-interval; never, if
// interval <= 0) and whenever fsd's targets change. If dns is nil, a DNS on
// net.DefaultResolver without metrics is used.
func NewEndpoints(static []string, fsd *FileSD, dns *DNS, interval time.Duration, logger *slog.Logger) *Endpoints {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dns == nil {
		dns = NewDNS(nil, logger, nil)
	}
	return &Endpoints{
		static:   slices.Clone(static),
		fsd:      fsd,
		dns:      dns,
		interval: interval,
		logger:   logger,
	}
}

// Addresses returns the current resolved addresses, sorted and de-duplicated.
func (e *Endpoints) Addresses() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.addrs)
}

// Refresh performs one resolution pass over the static specs and the file SD
// targets. If the files have never been read, it reads them first. Addresses
// are updated even when the returned error (which joins file and DNS errors)
// is non-nil: failed files and names keep their last good results.
func (e *Endpoints) Refresh(ctx context.Context) error {
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()

	var errs []error
	specs := slices.Clone(e.static)
	if e.fsd != nil {
		if !e.fsd.isLoaded() {
			errs = append(errs, e.fsd.Refresh(ctx))
		}
		specs = append(specs, e.fsd.Targets()...)
	}
	addrs, err := e.dns.Resolve(ctx, specs)
	errs = append(errs, err)

	e.mu.Lock()
	changed := !slices.Equal(addrs, e.addrs)
	e.addrs = addrs
	e.mu.Unlock()
	if changed {
		e.logger.Info("endpoint addresses changed", "addresses", addrs)
	}
	return errors.Join(errs...)
}

// Run resolves once, then again every interval and whenever the file SD
// targets change, until ctx is done; it then returns nil. Errors are logged;
// failed files and names keep their last good results. Each pass is bounded
// by the interval (if positive) so that a hung lookup cannot stall Run.
func (e *Endpoints) Run(ctx context.Context) error {
	refresh := func() {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if e.interval > 0 {
			rctx, cancel = context.WithTimeout(ctx, e.interval)
		}
		defer cancel()
		if err := e.Refresh(rctx); err != nil && ctx.Err() == nil {
			e.logger.Warn("endpoint discovery failed; keeping last good addresses", "err", err)
		}
	}
	refresh()

	var wg sync.WaitGroup
	defer wg.Wait()
	fsdCtx, cancel := context.WithCancel(ctx)
	defer cancel() // runs before wg.Wait

	changes := make(chan struct{}, 1)
	if e.fsd != nil {
		wg.Go(func() {
			_ = e.fsd.Run(fsdCtx, func() {
				select {
				case changes <- struct{}{}:
				default: // a refresh is already pending
				}
			})
		})
	}

	var tick <-chan time.Time
	if e.interval > 0 {
		t := time.NewTicker(e.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			refresh()
		case <-changes:
			refresh()
		}
	}
}

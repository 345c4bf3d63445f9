package query

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
)

// Endpoint is one StoreAPI endpoint as last seen by an Info probe.
type Endpoint struct {
	Addr          string
	Client        *storeapi.Client
	LabelSets     []labels.Labels
	MinTime       int64
	MaxTime       int64
	ComponentType string
	// WithoutReplicaLabels reports whether the endpoint strips replica labels itself.
	WithoutReplicaLabels bool
}

type endpointState struct {
	Endpoint
	healthy     bool
	lastCheck   time.Time
	lastErr     error
	lastHealthy time.Time
	added       time.Time
}

// EndpointSet keeps a client per discovered address and probes each with Info. Only
// healthy endpoints that serve the StoreAPI are queried; an endpoint unhealthy for longer
// than the unhealthy timeout is dropped.
type EndpointSet struct {
	addresses        func() []string
	dialOpts         []grpc.DialOption
	infoTimeout      time.Duration
	unhealthyTimeout time.Duration
	logger           *slog.Logger
	now              func() time.Time

	mu        sync.RWMutex
	endpoints map[string]*endpointState

	healthyGauge prometheus.Gauge
}

// EndpointSetConfig configures an EndpointSet.
type EndpointSetConfig struct {
	Addresses        func() []string // current discovered addresses
	DialOptions      []grpc.DialOption
	InfoTimeout      time.Duration // per-probe timeout (5s)
	UnhealthyTimeout time.Duration // --store.unhealthy-timeout (5m)
}

// NewEndpointSet returns an EndpointSet; call Update (or Run) to probe.
func NewEndpointSet(cfg EndpointSetConfig, logger *slog.Logger, reg prometheus.Registerer) *EndpointSet {
	e := &EndpointSet{
		addresses: cfg.Addresses, dialOpts: cfg.DialOptions, infoTimeout: cfg.InfoTimeout,
		unhealthyTimeout: cfg.UnhealthyTimeout, logger: logger, now: time.Now,
		endpoints: map[string]*endpointState{},
		healthyGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_query_endpoints_healthy", Help: "Number of healthy StoreAPI endpoints.",
		}),
	}
	if e.infoTimeout <= 0 {
		e.infoTimeout = 5 * time.Second
	}
	if reg != nil {
		reg.MustRegister(e.healthyGauge)
	}
	return e
}

// Run probes every interval until ctx is done.
func (e *EndpointSet) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		e.Update(ctx)
		select {
		case <-ctx.Done():
			e.Close()
			return nil
		case <-t.C:
		}
	}
}

// Update reconciles the set with the discovered addresses and probes every endpoint
// concurrently.
func (e *EndpointSet) Update(ctx context.Context) {
	addrs := e.addresses()
	e.mu.Lock()
	for _, a := range addrs {
		if _, ok := e.endpoints[a]; ok {
			continue
		}
		c, err := storeapi.Dial(a, e.dialOpts...)
		st := &endpointState{Endpoint: Endpoint{Addr: a, Client: c}, added: e.now(), lastErr: err}
		e.endpoints[a] = st
	}
	for a, st := range e.endpoints {
		if !slices.Contains(addrs, a) {
			e.drop(a, st, "no longer discovered")
		}
	}
	states := make([]*endpointState, 0, len(e.endpoints))
	for _, st := range e.endpoints {
		states = append(states, st)
	}
	e.mu.Unlock()

	var wg sync.WaitGroup
	for _, st := range states {
		if st.Client == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.probe(ctx, st)
		}()
	}
	wg.Wait()

	e.mu.Lock()
	healthy := 0
	for a, st := range e.endpoints {
		since := st.lastHealthy
		if since.IsZero() {
			since = st.added
		}
		if !st.healthy && e.unhealthyTimeout > 0 && e.now().Sub(since) > e.unhealthyTimeout {
			e.drop(a, st, "unhealthy for longer than --store.unhealthy-timeout")
			continue
		}
		if st.healthy {
			healthy++
		}
	}
	e.mu.Unlock()
	e.healthyGauge.Set(float64(healthy))
}

// drop removes an endpoint; e.mu must be held.
func (e *EndpointSet) drop(addr string, st *endpointState, why string) {
	e.logger.Info("removing StoreAPI endpoint", "address", addr, "reason", why)
	if st.Client != nil {
		_ = st.Client.Close()
	}
	delete(e.endpoints, addr)
}

func (e *EndpointSet) probe(ctx context.Context, st *endpointState) {
	ctx, cancel := context.WithTimeout(ctx, e.infoTimeout)
	defer cancel()
	info, err := st.Client.Info(ctx)
	if err == nil && info.GetStore() == nil {
		err = fmt.Errorf("endpoint does not serve the StoreAPI (component %q)", info.GetComponentType())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st.lastCheck = e.now()
	wasHealthy := st.healthy
	st.healthy, st.lastErr = err == nil, err
	if err != nil {
		if wasHealthy || st.lastHealthy.IsZero() {
			e.logger.Warn("StoreAPI endpoint unhealthy", "address", st.Addr, "err", err)
		}
		return
	}
	if !wasHealthy {
		e.logger.Info("StoreAPI endpoint healthy", "address", st.Addr, "type", info.GetComponentType())
	}
	st.lastHealthy = st.lastCheck
	st.applyInfo(info)
}

func (st *endpointState) applyInfo(info *infopb.InfoResponse) {
	st.ComponentType = info.GetComponentType()
	st.MinTime, st.MaxTime = info.GetStore().GetMinTime(), info.GetStore().GetMaxTime()
	st.WithoutReplicaLabels = info.GetStore().GetSupportsWithoutReplicaLabels()
	st.LabelSets = st.LabelSets[:0]
	for _, ls := range info.GetLabelSets() {
		st.LabelSets = append(st.LabelSets, storeapi.LabelsFromProto(ls.GetLabels()))
	}
}

// Healthy returns a snapshot of the healthy endpoints, and the problems of the
// unhealthy ones (as warnings a query can show).
func (e *EndpointSet) Healthy() ([]Endpoint, []string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]Endpoint, 0, len(e.endpoints))
	var problems []string
	for _, st := range e.endpoints {
		if st.healthy {
			ep := st.Endpoint
			ep.LabelSets = slices.Clone(st.LabelSets)
			out = append(out, ep)
		} else if st.lastErr != nil {
			problems = append(problems, fmt.Sprintf("endpoint %s is unavailable and was not queried: %v", st.Addr, st.lastErr))
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.Addr, b.Addr) })
	slices.Sort(problems)
	return out, problems
}

// Stores lists every known endpoint for /api/v1/stores, keyed by component type.
func (e *EndpointSet) Stores() map[string][]StoreStatus {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := map[string][]StoreStatus{}
	for _, st := range e.endpoints {
		s := StoreStatus{Name: st.Addr, LastCheck: st.lastCheck, MinTime: st.MinTime, MaxTime: st.MaxTime, ComponentType: st.ComponentType}
		if st.lastErr != nil {
			msg := st.lastErr.Error()
			s.LastError = &msg
		}
		for _, ls := range st.LabelSets {
			s.LabelSets = append(s.LabelSets, ls.Map())
		}
		typ := st.ComponentType
		if typ == "" {
			typ = "unknown"
		}
		out[typ] = append(out[typ], s)
	}
	for _, l := range out {
		slices.SortFunc(l, func(a, b StoreStatus) int { return strings.Compare(a.Name, b.Name) })
	}
	return out
}

// Close closes every client.
func (e *EndpointSet) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for a, st := range e.endpoints {
		if st.Client != nil {
			_ = st.Client.Close()
		}
		delete(e.endpoints, a)
	}
}

// Matches reports whether an endpoint may hold series for the matchers in [mint, maxt]:
// its time range overlaps and at least one of its label sets is not contradicted.
func (ep *Endpoint) Matches(mint, maxt int64, ms []*labels.Matcher) bool {
	if mint > ep.MaxTime || maxt < ep.MinTime {
		return false
	}
	if len(ep.LabelSets) == 0 {
		return true
	}
	for _, ls := range ep.LabelSets {
		if labelSetMatches(ls, ms) {
			return true
		}
	}
	return false
}

func labelSetMatches(ls labels.Labels, ms []*labels.Matcher) bool {
	if ls.IsEmpty() {
		return true
	}
	for _, m := range ms {
		if !ls.Has(m.Name) {
			continue // the series may carry the label itself
		}
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

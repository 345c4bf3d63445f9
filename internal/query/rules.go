package query

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// RulesProxy fans thanos.Rules out to the healthy endpoints whose Info advertises the
// Rules API (sidecars, rulers, queriers) and returns what they answer, unmerged
// (rulesapi.Merge deduplicates). It implements rulesapi.Source.
//
// Each request first asks every healthy endpoint's Info whether it serves rules (the
// endpoint set's probe keeps only StoreAPI facts), then calls Rules on those that do,
// over a connection of its own per endpoint.
type RulesProxy struct {
	endpoints   *EndpointSet
	dialOpts    []grpc.DialOption
	infoTimeout time.Duration
	now         func() time.Time

	mu    sync.Mutex
	conns map[string]*rulesConn
}

type rulesConn struct {
	conn     *grpc.ClientConn
	client   rulespb.RulesClient
	lastUsed time.Time
}

// idleConnTimeout is how long a connection to an endpoint no longer healthy is kept.
const idleConnTimeout = 10 * time.Minute

// NewRulesProxy returns a Rules fan-out over the endpoint set. dialOpts are those of the
// endpoint set (storeapi.DialOptions); infoTimeout bounds each Info call (0 = 5s).
func NewRulesProxy(endpoints *EndpointSet, dialOpts []grpc.DialOption, infoTimeout time.Duration) *RulesProxy {
	if infoTimeout <= 0 {
		infoTimeout = 5 * time.Second
	}
	return &RulesProxy{endpoints: endpoints, dialOpts: dialOpts, infoTimeout: infoTimeout,
		now: time.Now, conns: map[string]*rulesConn{}}
}

// RuleGroups asks every rules endpoint, in address order. Endpoints found unhealthy by
// the last probe are warnings (as for Series); an endpoint that fails now is a warning
// with the WARN strategy and fails the request with ABORT.
func (p *RulesProxy) RuleGroups(ctx context.Context, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, error) {
	eps, problems := p.endpoints.Healthy()
	serves := make([]bool, len(eps))
	infoErr := make([]error, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := context.WithTimeout(ctx, p.infoTimeout)
			defer cancel()
			info, err := ep.Client.Info(ictx)
			serves[i], infoErr[i] = info.GetRules() != nil, err
		}()
	}
	wg.Wait()

	var (
		targets  []rulesapi.Target
		warnings []string
	)
	for i, ep := range eps {
		switch {
		case infoErr[i] != nil:
			// It was healthy a moment ago and may serve rules: a failure like any other.
			err := fmt.Errorf("fetch rules from %s: info: %w", ep.Addr, infoErr[i])
			if req.GetPartialResponseStrategy() == storepb.PartialResponseStrategy_ABORT {
				return nil, nil, err
			}
			warnings = append(warnings, err.Error())
		case serves[i]:
			targets = append(targets, rulesapi.Target{Name: ep.Addr, Client: p.client(ep.Addr)})
		}
	}
	p.closeIdle()
	groups, fanWarnings, err := rulesapi.Fanout(ctx, targets, req)
	if err != nil {
		return nil, nil, err
	}
	return groups, append(append(problems, warnings...), fanWarnings...), nil
}

// client returns the Rules client of addr, dialling on first use.
func (p *RulesProxy) client(addr string) rulespb.RulesClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		c.lastUsed = p.now()
		return c.client
	}
	conn, err := grpc.NewClient(addr, p.dialOpts...)
	if err != nil {
		return failingRulesClient{err: err}
	}
	c := &rulesConn{conn: conn, client: rulespb.NewRulesClient(conn), lastUsed: p.now()}
	p.conns[addr] = c
	return c.client
}

// closeIdle closes connections not used for idleConnTimeout.
func (p *RulesProxy) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		if p.now().Sub(c.lastUsed) > idleConnTimeout {
			_ = c.conn.Close()
			delete(p.conns, a)
		}
	}
}

// Close closes every connection.
func (p *RulesProxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		_ = c.conn.Close()
		delete(p.conns, a)
	}
}

// failingRulesClient reports a dial error as the endpoint's failure.
type failingRulesClient struct{ err error }

func (f failingRulesClient) Rules(context.Context, *rulespb.RulesRequest, ...grpc.CallOption) (rulespb.Rules_RulesClient, error) {
	return nil, f.err
}

package query

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
	"github.com/vigilhq/vigil/internal/streamapi"
)

// APIEndpoints reads the APIs served beside the StoreAPI (thanos.Rules, Metadata,
// Targets, Exemplars) from the healthy endpoints that serve them. The querier has one,
// shared by the proxies of these APIs.
//
// Each request first asks every healthy endpoint's Info which APIs it serves (the
// endpoint set's probe keeps only StoreAPI facts), then calls those that serve the API
// over a connection of this set's own per endpoint: dialled on first use, closed when
// unused for idleConnTimeout.
type APIEndpoints struct {
	endpoints   *EndpointSet
	infoTimeout time.Duration
	conns       *storeapi.ConnPool
}

// idleConnTimeout is how long a connection to an endpoint no longer used is kept.
const idleConnTimeout = 10 * time.Minute

// NewAPIEndpoints returns the API endpoints of the endpoint set. dialOpts are those of
// the endpoint set (storeapi.DialOptions); infoTimeout bounds each Info call (0 = 5s).
func NewAPIEndpoints(endpoints *EndpointSet, dialOpts []grpc.DialOption, infoTimeout time.Duration) *APIEndpoints {
	if infoTimeout <= 0 {
		infoTimeout = 5 * time.Second
	}
	return &APIEndpoints{endpoints: endpoints, infoTimeout: infoTimeout,
		conns: storeapi.NewConnPool(idleConnTimeout, dialOpts...)}
}

// APIEndpoint is a healthy endpoint that serves the API asked for.
type APIEndpoint struct {
	Endpoint
	// Conn is the connection to call the API on, e.g. with rulespb.NewRulesClient.
	Conn grpc.ClientConnInterface
}

// API describes one of the APIs for FanoutAPI.
type API struct {
	// What names it in messages, e.g. "rules".
	What string
	// Serves reports whether an endpoint's Info advertises it.
	Serves func(*infopb.InfoResponse) bool
}

// FanoutAPI asks every healthy endpoint that serves api, in address order, with fetch
// (streamapi.Fanout), and returns their items and warnings. Endpoints found unhealthy
// by the last probe are warnings (as for Series); an endpoint that fails now, its Info
// included, is a warning with the WARN strategy and fails the request with ABORT.
// fetch may return nothing for an endpoint the request does not concern.
func FanoutAPI[Item any](ctx context.Context, a *APIEndpoints, api API, strategy storepb.PartialResponseStrategy,
	fetch func(context.Context, APIEndpoint) ([]Item, []string, error)) ([]Item, []string, error) {
	targets, warnings, err := a.serving(ctx, api, strategy)
	if err != nil {
		return nil, nil, err
	}
	items, fanWarnings, err := streamapi.Fanout(ctx, api.What, targets, strategy, fetch)
	if err != nil {
		return nil, nil, err
	}
	return items, append(warnings, fanWarnings...), nil
}

// serving returns the healthy endpoints whose Info advertises api, with the warnings
// of the others that failed.
func (a *APIEndpoints) serving(ctx context.Context, api API, strategy storepb.PartialResponseStrategy) ([]streamapi.Target[APIEndpoint], []string, error) {
	eps, problems := a.endpoints.Healthy()
	serves := make([]bool, len(eps))
	infoErr := make([]error, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := context.WithTimeout(ctx, a.infoTimeout)
			defer cancel()
			info, err := ep.Client.Info(ictx)
			serves[i], infoErr[i] = err == nil && api.Serves(info), err
		}()
	}
	wg.Wait()

	var targets []streamapi.Target[APIEndpoint]
	warnings := problems
	for i, ep := range eps {
		var conn *grpc.ClientConn
		err := infoErr[i]
		if err == nil && serves[i] {
			conn, err = a.conns.Get(ep.Addr)
		}
		switch {
		case err != nil:
			// It was healthy a moment ago and may serve the API: a failure like any other.
			err = fmt.Errorf("fetch %s from %s: info: %w", api.What, ep.Addr, err)
			if strategy == storepb.PartialResponseStrategy_ABORT {
				return nil, nil, err
			}
			warnings = append(warnings, err.Error())
		case serves[i]:
			targets = append(targets, streamapi.Target[APIEndpoint]{Name: ep.Addr, Client: APIEndpoint{Endpoint: ep, Conn: conn}})
		}
	}
	return targets, warnings, nil
}

// Close closes every connection.
func (a *APIEndpoints) Close() { _ = a.conns.Close() }

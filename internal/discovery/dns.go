package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxParallelLookups bounds the number of specs resolved concurrently by one
// Resolve call.
const maxParallelLookups = 8

// Resolver is the subset of *net.Resolver used by DNS, so tests can inject a
// fake. net.DefaultResolver satisfies it.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// DNS resolves endpoint specs (see ValidateSpec) into host:port addresses.
//
// It remembers the last successful result of every spec: when a lookup fails,
// the previous addresses of that spec are kept and the error is reported, as
// the Thanos querier does. A name that does not exist (NXDOMAIN) is not a
// failure: it resolves to no addresses, again as in Thanos.
//
// A DNS is meant to be used by one caller (one Endpoints): each Resolve call
// forgets the cached results of specs it was not asked about.
type DNS struct {
	resolver Resolver
	logger   *slog.Logger
	lookups  prometheus.Counter
	failures prometheus.Counter

	mu   sync.Mutex          // serialises Resolve; guards last
	last map[string][]string // spec -> last good addresses
}

// NewDNS returns a DNS using r (net.DefaultResolver if nil). Its metrics,
// vigil_dns_lookups_total and vigil_dns_failures_total, are registered on reg
// unless reg is nil; registering twice on the same registry shares the counters.
func NewDNS(r Resolver, logger *slog.Logger, reg prometheus.Registerer) *DNS {
	if r == nil {
		r = net.DefaultResolver
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &DNS{
		resolver: r,
		logger:   logger,
		lookups: newCounter(reg, "vigil_dns_lookups_total",
			"Number of DNS resolutions of endpoint addresses (dns+, dnsdualstack+, dnssrv+, dnssrvnoa+)."),
		failures: newCounter(reg, "vigil_dns_failures_total",
			"Number of failed DNS resolutions of endpoint addresses."),
		last: make(map[string][]string),
	}
}

// Resolve turns specs into addresses: specs without a prefix are returned as
// is, prefixed ones are looked up. The result is sorted and de-duplicated.
//
// Specs that fail (invalid syntax or a DNS error) contribute their last good
// addresses, if any, and their errors are joined into the returned error; the
// returned addresses are usable even when the error is non-nil.
func (d *DNS) Resolve(ctx context.Context, specs []string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()

	uniq := dedupe(specs)
	results := make([][]string, len(uniq))
	errs := make([]error, len(uniq))

	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelLookups)
	for i, raw := range uniq {
		sp, err := parseSpec(raw)
		if err != nil {
			errs[i] = err
			continue
		}
		if sp.kind == kindStatic {
			results[i] = []string{raw}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i], errs[i] = d.lookup(ctx, sp)
		})
	}
	wg.Wait()

	next := make(map[string][]string, len(uniq))
	var out []string
	for i, raw := range uniq {
		if errs[i] != nil {
			if prev, ok := d.last[raw]; ok {
				d.logger.Debug("keeping last good addresses after failed resolution",
					"endpoint", raw, "addresses", prev, "err", errs[i])
				next[raw] = prev
				out = append(out, prev...)
			}
			continue
		}
		next[raw] = results[i]
		out = append(out, results[i]...)
	}
	d.last = next

	slices.Sort(out)
	return slices.Compact(out), errors.Join(errs...)
}

// lookup resolves one prefixed spec and counts it.
func (d *DNS) lookup(ctx context.Context, sp spec) ([]string, error) {
	d.lookups.Inc()
	addrs, err := d.lookupSpec(ctx, sp)
	if err != nil {
		d.failures.Inc()
		return nil, fmt.Errorf("resolve endpoint %q: %w", sp.raw, err)
	}
	if len(addrs) == 0 {
		d.logger.Warn("DNS lookup yielded no addresses", "endpoint", sp.raw)
	}
	return addrs, nil
}

func (d *DNS) lookupSpec(ctx context.Context, sp spec) ([]string, error) {
	switch sp.kind {
	case kindA, kindDualStack:
		return d.lookupIPs(ctx, sp.host, sp.port)
	case kindSRV, kindSRVNoA:
		_, recs, err := d.resolver.LookupSRV(ctx, "", "", sp.host)
		if err != nil {
			if !isNotFound(err) {
				return nil, fmt.Errorf("lookup SRV %s: %w", sp.host, err)
			}
			d.logger.Warn("SRV name not found", "endpoint", sp.raw, "err", err)
		}
		var out []string
		for _, rec := range recs {
			// The port in the spec, if any, wins over the SRV port.
			port := sp.port
			if port == "" {
				port = strconv.Itoa(int(rec.Port))
			}
			if sp.kind == kindSRVNoA {
				out = append(out, net.JoinHostPort(rec.Target, port))
				continue
			}
			addrs, err := d.lookupIPs(ctx, rec.Target, port)
			if err != nil {
				return nil, fmt.Errorf("SRV %s: %w", sp.host, err)
			}
			out = append(out, addrs...)
		}
		return out, nil
	default:
		return []string{sp.raw}, nil
	}
}

// lookupIPs returns host's IPs (A and AAAA) joined with port. A host that does
// not exist yields no addresses and no error.
func (d *DNS) lookupIPs(ctx context.Context, host, port string) ([]string, error) {
	ips, err := d.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		if !isNotFound(err) {
			return nil, fmt.Errorf("lookup IP addresses of %s: %w", host, err)
		}
		d.logger.Warn("host not found", "host", host, "err", err)
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.String(), port))
	}
	return out, nil
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// dedupe returns s without repeated elements, keeping the first occurrence.
func dedupe(s []string) []string {
	seen := make(map[string]struct{}, len(s))
	out := make([]string, 0, len(s))
	for _, v := range s {
		if _, ok := seen[v]; ok {
			continue
		}
		seen[v] = struct{}{}
		out = append(out, v)
	}
	return out
}

// newCounter creates a counter and registers it on reg (if non-nil). If an
// identical counter is already registered there, that one is returned so that
// several components can share a registry.
func newCounter(reg prometheus.Registerer, name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("discovery: register metric %s: %v", name, err))
	}
	return c
}

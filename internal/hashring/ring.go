package hashring

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

var (
	// ErrNoMatchingHashring is returned for a tenant that no hashring accepts.
	ErrNoMatchingHashring = errors.New("no matching hashring to handle tenant")
	// ErrInsufficientEndpoints is returned for a replica a hashring cannot place
	// on a distinct endpoint.
	ErrInsufficientEndpoints = errors.New("insufficient endpoints")
)

// Ring routes a tenant to the first matching hashring (a hashring without
// tenants matches all; none matching is an error) and places series. A Ring is
// immutable and safe for concurrent use; a new file means a new Ring.
type Ring struct {
	hashrings []*hashring
	endpoints []Endpoint
}

// hashring is one parsed Config, ready for lookups.
type hashring struct {
	name           string
	matchAll       bool
	exact          map[string]struct{}
	globs          []string
	externalLabels labels.Labels

	hashmod []Endpoint // sorted by address; nil for ketama
	ketama  *ketama    // nil for hashmod
}

// New builds a Ring from parsed configs. defaultAlgorithm applies to hashrings
// without an algorithm; empty means hashmod, Thanos's default.
func New(cfgs []Config, defaultAlgorithm string) (*Ring, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("no hashrings configured")
	}
	switch defaultAlgorithm {
	case "":
		defaultAlgorithm = AlgorithmHashmod
	case AlgorithmHashmod, AlgorithmKetama:
	default:
		return nil, fmt.Errorf("unknown default hashring algorithm %q", defaultAlgorithm)
	}
	r := &Ring{}
	for i := range cfgs {
		h, err := newHashring(&cfgs[i], defaultAlgorithm)
		if err != nil {
			return nil, fmt.Errorf("hashring %s: %w", describe(i, cfgs[i].Hashring), err)
		}
		r.hashrings = append(r.hashrings, h)
	}
	r.endpoints = uniqueEndpoints(cfgs)
	return r, nil
}

// newHashring validates cfg and prepares its tenant matcher and placement.
func newHashring(cfg *Config, defaultAlgorithm string) (*hashring, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &hashring{
		name:           cfg.Hashring,
		matchAll:       len(cfg.Tenants) == 0,
		externalLabels: labels.FromMap(cfg.ExternalLabels),
	}
	if cfg.TenantMatcherType == TenantMatcherGlob {
		h.globs = slices.Clone(cfg.Tenants)
	} else {
		h.exact = make(map[string]struct{}, len(cfg.Tenants))
		for _, t := range cfg.Tenants {
			h.exact[t] = struct{}{}
		}
	}
	// Copy: the caller's config must not change under a live ring.
	endpoints := slices.Clone(cfg.Endpoints)
	algorithm := cmp.Or(cfg.Algorithm, defaultAlgorithm)
	if algorithm == AlgorithmKetama {
		k, err := newKetama(endpoints, sectionsPerEndpoint)
		if err != nil {
			return nil, err
		}
		h.ketama = k
		return h, nil
	}
	for _, e := range endpoints {
		if e.AZ != "" {
			// As in Thanos: hashmod would ignore the AZs and give a false sense of safety.
			return nil, fmt.Errorf("hashmod does not support AZ-aware endpoints (%q has az %q): use ketama or remove the AZs", e.Address, e.AZ)
		}
	}
	slices.SortFunc(endpoints, func(a, b Endpoint) int { return strings.Compare(a.Address, b.Address) })
	h.hashmod = endpoints
	return h, nil
}

// uniqueEndpoints lists every endpoint once per address (the first occurrence
// in config order wins), sorted by address.
func uniqueEndpoints(cfgs []Config) []Endpoint {
	seen := make(map[string]struct{})
	var out []Endpoint
	for _, c := range cfgs {
		for _, e := range c.Endpoints {
			if _, ok := seen[e.Address]; !ok {
				seen[e.Address] = struct{}{}
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// lookup returns the first hashring that accepts tenant. It runs per series,
// so it must not allocate: exact tenants are a map lookup and globs use
// filepath.Match, the matcher Thanos uses.
func (r *Ring) lookup(tenant string) (*hashring, error) {
	for _, h := range r.hashrings {
		if h.matchAll {
			return h, nil
		}
		if _, ok := h.exact[tenant]; ok {
			return h, nil
		}
		for _, g := range h.globs {
			// Patterns were validated when the ring was built, so err is nil.
			if ok, err := filepath.Match(g, tenant); ok && err == nil {
				return h, nil
			}
		}
	}
	return nil, fmt.Errorf("%w %q", ErrNoMatchingHashring, tenant)
}

// GetN returns replica n (0-based) of a series with the given HashSeries hash,
// in the hashring matching tenant.
func (r *Ring) GetN(tenant string, hash uint64, n uint64) (Endpoint, error) {
	h, err := r.lookup(tenant)
	if err != nil {
		return Endpoint{}, err
	}
	if h.ketama != nil {
		return h.ketama.get(hash, n)
	}
	size := uint64(len(h.hashmod))
	if n >= size {
		return Endpoint{}, fmt.Errorf("%w: have %d, want %d", ErrInsufficientEndpoints, size, n+1)
	}
	// Adding n before the modulo (not after) is what Thanos does; both wrap
	// the same way except on uint64 overflow, where only this form matches.
	return h.hashmod[(hash+n)%size], nil
}

// ExternalLabels returns the external_labels of the hashring matching tenant.
func (r *Ring) ExternalLabels(tenant string) (labels.Labels, error) {
	h, err := r.lookup(tenant)
	if err != nil {
		return labels.EmptyLabels(), err
	}
	return h.externalLabels, nil
}

// Endpoints returns every endpoint of every hashring, once per address,
// sorted by address. The caller must not modify the result.
func (r *Ring) Endpoints() []Endpoint {
	return r.endpoints
}

// ReplicationPossible reports whether every hashring can place n replicas of a
// series on distinct endpoints: hashmod needs n endpoints, ketama needs n
// endpoints that AZ balancing can all use (and n <= MaxKetamaReplicas).
func (r *Ring) ReplicationPossible(n int) error {
	if n < 1 {
		return fmt.Errorf("replication factor must be at least 1, got %d", n)
	}
	for i, h := range r.hashrings {
		var err error
		switch {
		case h.ketama != nil && n > h.ketama.replicas:
			err = h.ketama.insufficient(uint64(n - 1))
		case h.ketama == nil && n > len(h.hashmod):
			err = fmt.Errorf("%w: have %d, want %d", ErrInsufficientEndpoints, len(h.hashmod), n)
		}
		if err != nil {
			return fmt.Errorf("hashring %s: %w", describe(i, h.name), err)
		}
	}
	return nil
}

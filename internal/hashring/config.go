// Package hashring parses Thanos-compatible receiver hashring files and places
// series on receivers exactly as Thanos does (hashmod and ketama), so that
// Vigil and Thanos receivers can share one ring.
package hashring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
)

// Algorithm names accepted in the "algorithm" field and as a default.
const (
	AlgorithmHashmod = "hashmod"
	AlgorithmKetama  = "ketama"
)

// Tenant matcher types accepted in the "tenant_matcher_type" field.
const (
	TenantMatcherExact = "exact"
	TenantMatcherGlob  = "glob"
)

// DefaultCapNProtoPort is the port Thanos assumes for an endpoint's Cap'n Proto
// replication address when the config does not give one.
const DefaultCapNProtoPort = "19391"

// Endpoint is one receiver in a ring. JSON: either a plain "host:port" string or
// {"address": "...", "capnproto_address": "...", "az": "..."}.
type Endpoint struct {
	Address          string `json:"address"`
	CapNProtoAddress string `json:"capnproto_address,omitempty"`
	AZ               string `json:"az,omitempty"`
}

// UnmarshalJSON accepts both endpoint forms and, like Thanos, defaults the Cap'n
// Proto address to the endpoint's host on DefaultCapNProtoPort.
func (e *Endpoint) UnmarshalJSON(data []byte) error {
	var addr string
	if err := json.Unmarshal(data, &addr); err == nil {
		*e = Endpoint{Address: addr}
	} else {
		// An alias type has no UnmarshalJSON, which avoids recursing into this method.
		type plain Endpoint
		var p plain
		if err := decodeStrict(data, &p); err != nil {
			return fmt.Errorf("endpoint must be a \"host:port\" string or an object: %w", err)
		}
		*e = Endpoint(p)
	}
	if e.Address == "" {
		return errors.New("endpoint address must be set")
	}
	if e.CapNProtoAddress == "" {
		e.CapNProtoAddress = defaultCapNProtoAddress(e.Address)
	}
	return nil
}

// defaultCapNProtoAddress swaps the port of addr for DefaultCapNProtoPort. An
// address without a port is taken to be a bare host.
func defaultCapNProtoAddress(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return net.JoinHostPort(host, DefaultCapNProtoPort)
}

// Config is one entry of the hashrings file (a JSON array).
type Config struct {
	// Hashring is an optional name, used in logs and errors.
	Hashring string `json:"hashring,omitempty"`
	// Tenants routed to this hashring; none means every tenant.
	Tenants []string `json:"tenants,omitempty"`
	// TenantMatcherType is "exact" (default when empty) or "glob"
	// (path/filepath.Match patterns, as in Thanos).
	TenantMatcherType string `json:"tenant_matcher_type,omitempty"`
	// Endpoints are the receivers of this hashring.
	Endpoints []Endpoint `json:"endpoints"`
	// Algorithm is "hashmod", "ketama" or empty for the receiver's default.
	Algorithm string `json:"algorithm,omitempty"`
	// ExternalLabels are added to the blocks of tenants of this hashring.
	ExternalLabels map[string]string `json:"external_labels,omitempty"`
}

// fileConfig is the on-disk shape of one hashring: Config plus the fields
// Thanos knows that Vigil only accepts in their inactive form.
type fileConfig struct {
	Config
	ShuffleSharding json.RawMessage `json:"shuffle_sharding_config,omitempty"`
}

// ParseConfig parses and validates a hashrings file. It rejects what Thanos
// would silently accept but route surprisingly (unknown fields, duplicate
// endpoints) and what Vigil cannot place identically (shuffle sharding).
func ParseConfig(data []byte) ([]Config, error) {
	var files []fileConfig
	if err := decodeStrict(data, &files); err != nil {
		return nil, fmt.Errorf("parsing hashrings config: %w", err)
	}
	if len(files) == 0 {
		return nil, errors.New("hashrings config contains no hashrings")
	}
	cfgs := make([]Config, len(files))
	for i, f := range files {
		if err := checkShuffleSharding(f.ShuffleSharding); err != nil {
			return nil, fmt.Errorf("hashring %s: %w", describe(i, f.Hashring), err)
		}
		if err := f.Config.validate(); err != nil {
			return nil, fmt.Errorf("hashring %s: %w", describe(i, f.Hashring), err)
		}
		cfgs[i] = f.Config
	}
	return cfgs, nil
}

// decodeStrict decodes exactly one JSON value, refusing unknown fields, so
// that a typo such as "tenant" does not silently turn a hashring into a
// catch-all.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// checkShuffleSharding accepts a shuffle sharding section only if it is
// disabled (shard_size 0): an active one changes placement in Thanos.
func checkShuffleSharding(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s struct {
		ShardSize int `json:"shard_size"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("shuffle_sharding_config: %w", err)
	}
	if s.ShardSize > 0 {
		return errors.New("shuffle_sharding_config with shard_size > 0 is not supported")
	}
	return nil
}

// validate checks one hashring on its own; algorithm-dependent checks (such as
// AZs with hashmod) happen in New, once the default algorithm is known.
func (c *Config) validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("no endpoints")
	}
	seen := make(map[string]struct{}, len(c.Endpoints))
	for _, e := range c.Endpoints {
		if _, dup := seen[e.Address]; dup {
			return fmt.Errorf("duplicate endpoint %q", e.Address)
		}
		seen[e.Address] = struct{}{}
	}
	switch c.Algorithm {
	case "", AlgorithmHashmod, AlgorithmKetama:
	default:
		return fmt.Errorf("unknown algorithm %q (want %q or %q)", c.Algorithm, AlgorithmHashmod, AlgorithmKetama)
	}
	switch c.TenantMatcherType {
	case "", TenantMatcherExact:
	case TenantMatcherGlob:
		for _, p := range c.Tenants {
			// Match checks the whole pattern's syntax even when it does not match.
			if _, err := filepath.Match(p, ""); err != nil {
				return fmt.Errorf("bad tenant glob %q: %w", p, err)
			}
		}
	default:
		return fmt.Errorf("unknown tenant_matcher_type %q (want %q or %q)", c.TenantMatcherType, TenantMatcherExact, TenantMatcherGlob)
	}
	for name := range c.ExternalLabels {
		if name == "" {
			return errors.New("external label with an empty name")
		}
	}
	return nil
}

// describe names a hashring in errors: by name when it has one, else by index.
func describe(i int, name string) string {
	if name != "" {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("#%d", i)
}

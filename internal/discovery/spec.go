// Package discovery turns the querier's endpoint flags (--endpoint/--store,
// --store.sd-files) into the current list of StoreAPI addresses, following the
// Thanos querier's address syntax and re-resolution rules.
//
// An endpoint spec is one of:
//
//	host:port                       used as is
//	dns+host:port                   A/AAAA lookup; every IP with the port
//	dnsdualstack+host:port          A and AAAA lookup; every IP with the port
//	dnssrv+name[:port]              SRV lookup; every target resolved to IPs, with
//	                                the SRV port (or the explicit port, if given)
//	dnssrvnoa+name[:port]           SRV lookup; every target host name with the
//	                                SRV port (or the explicit port), not resolved
package discovery

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// lookupKind says how an endpoint spec is turned into addresses.
type lookupKind int

const (
	kindStatic    lookupKind = iota // host:port, no lookup
	kindA                           // dns+
	kindDualStack                   // dnsdualstack+
	kindSRV                         // dnssrv+
	kindSRVNoA                      // dnssrvnoa+
)

// kindOf maps a spec prefix (without "+") to its lookup kind.
func kindOf(prefix string) (lookupKind, bool) {
	switch prefix {
	case "dns":
		return kindA, true
	case "dnsdualstack":
		return kindDualStack, true
	case "dnssrv":
		return kindSRV, true
	case "dnssrvnoa":
		return kindSRVNoA, true
	}
	return kindStatic, false
}

const supportedPrefixes = "dns+, dnsdualstack+, dnssrv+, dnssrvnoa+"

// spec is a parsed endpoint spec.
type spec struct {
	raw  string     // as given, used as the cache key
	kind lookupKind // how to resolve it
	host string     // host name, IP or SRV name
	port string     // port; may be empty only for SRV kinds
}

// ValidateSpec reports whether spec is a valid endpoint address: host:port, or
// one of the prefixes dns+, dnsdualstack+ (both need host:port), dnssrv+ or
// dnssrvnoa+ (a name with an optional :port that overrides the SRV port).
// The error names the offending spec and says what is wrong with it.
func ValidateSpec(spec string) error {
	_, err := parseSpec(spec)
	return err
}

func parseSpec(s string) (spec, error) {
	sp := spec{raw: s, kind: kindStatic}
	if strings.TrimSpace(s) == "" {
		return sp, errors.New("empty endpoint address")
	}
	if strings.TrimSpace(s) != s {
		return sp, fmt.Errorf("endpoint %q: leading or trailing white space", s)
	}
	rest := s
	if prefix, name, ok := strings.Cut(s, "+"); ok {
		kind, known := kindOf(prefix)
		if !known {
			return sp, fmt.Errorf("endpoint %q: unknown prefix %q (supported: %s)", s, prefix+"+", supportedPrefixes)
		}
		sp.kind, rest = kind, name
	}

	switch sp.kind {
	case kindSRV, kindSRVNoA:
		if !strings.Contains(rest, ":") {
			sp.host = rest
		} else {
			host, port, err := net.SplitHostPort(rest)
			if err != nil {
				return sp, fmt.Errorf("endpoint %q: %w", s, err)
			}
			if err := checkPort(port); err != nil {
				return sp, fmt.Errorf("endpoint %q: %w", s, err)
			}
			sp.host, sp.port = host, port
		}
		if sp.host == "" {
			return sp, fmt.Errorf("endpoint %q: missing SRV name", s)
		}
		return sp, nil
	default:
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			var ae *net.AddrError
			if errors.As(err, &ae) && ae.Err == "missing port in address" {
				return sp, fmt.Errorf("endpoint %q: missing port (want %shost:port)", s, prefixOf(s))
			}
			return sp, fmt.Errorf("endpoint %q: %w", s, err)
		}
		if host == "" {
			return sp, fmt.Errorf("endpoint %q: missing host (want %shost:port)", s, prefixOf(s))
		}
		if err := checkPort(port); err != nil {
			return sp, fmt.Errorf("endpoint %q: %w", s, err)
		}
		sp.host, sp.port = host, port
		return sp, nil
	}
}

// prefixOf returns the "xxx+" prefix of s, or "" if it has none.
func prefixOf(s string) string {
	if prefix, _, ok := strings.Cut(s, "+"); ok {
		return prefix + "+"
	}
	return ""
}

func checkPort(port string) error {
	if port == "" {
		return errors.New("empty port")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("invalid port %q (want 1-65535)", port)
	}
	return nil
}

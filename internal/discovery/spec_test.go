package discovery

import (
	"strings"
	"testing"
)

func TestParseSpecKinds(t *testing.T) {
	tests := []struct {
		spec       string
		kind       lookupKind
		host, port string
	}{
		{"store:10901", kindStatic, "store", "10901"},
		{"10.0.0.1:10901", kindStatic, "10.0.0.1", "10901"},
		{"[::1]:10901", kindStatic, "::1", "10901"},
		{"dns+store.ns.svc:10901", kindA, "store.ns.svc", "10901"},
		{"dns+[::1]:10901", kindA, "::1", "10901"},
		{"dnsdualstack+store:10901", kindDualStack, "store", "10901"},
		{"dnssrv+_grpc._tcp.store.ns", kindSRV, "_grpc._tcp.store.ns", ""},
		{"dnssrv+store.ns:19000", kindSRV, "store.ns", "19000"},
		{"dnssrvnoa+_grpc._tcp.store.ns", kindSRVNoA, "_grpc._tcp.store.ns", ""},
	}
	for _, tc := range tests {
		sp, err := parseSpec(tc.spec)
		if err != nil {
			t.Errorf("parseSpec(%q): unexpected error %v", tc.spec, err)
			continue
		}
		if sp.kind != tc.kind || sp.host != tc.host || sp.port != tc.port || sp.raw != tc.spec {
			t.Errorf("parseSpec(%q) = %+v, want kind %d host %q port %q", tc.spec, sp, tc.kind, tc.host, tc.port)
		}
		if err := ValidateSpec(tc.spec); err != nil {
			t.Errorf("ValidateSpec(%q) = %v, want nil", tc.spec, err)
		}
	}
}

func TestValidateSpecErrors(t *testing.T) {
	tests := []struct {
		spec string
		want []string // substrings of the error
	}{
		{"", []string{"empty endpoint address"}},
		{"foo+x:1", []string{`"foo+x:1"`, `unknown prefix "foo+"`, "dnssrv+"}},
		{"DNS+x:1", []string{`unknown prefix "DNS+"`}},
		{"dns+store", []string{`"dns+store"`, "missing port", "dns+host:port"}},
		{"dnsdualstack+store", []string{"missing port", "dnsdualstack+host:port"}},
		{"store", []string{`"store"`, "missing port", "want host:port"}},
		{"dns+:10901", []string{"missing host"}},
		{":10901", []string{"missing host"}},
		{"dns+store:grpc", []string{`invalid port "grpc"`}},
		{"store:0", []string{`invalid port "0"`}},
		{"store:70000", []string{`invalid port "70000"`}},
		{"store:", []string{"empty port"}},
		{"dnssrv+", []string{`"dnssrv+"`, "missing SRV name"}},
		{"dnssrvnoa+:10901", []string{"missing SRV name"}},
		{"dnssrv+name:", []string{"empty port"}},
		{"dnssrv+name:x", []string{`invalid port "x"`}},
		{" store:1", []string{"white space"}},
		{"::1:10901", []string{"too many colons"}},
	}
	for _, tc := range tests {
		err := ValidateSpec(tc.spec)
		if err == nil {
			t.Errorf("ValidateSpec(%q) = nil, want error", tc.spec)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ValidateSpec(%q) = %q, want it to contain %q", tc.spec, err, w)
			}
		}
	}
}

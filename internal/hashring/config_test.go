package hashring

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseConfigEndpointForms(t *testing.T) {
	cfgs, err := ParseConfig([]byte(`[
		{"hashring": "h", "tenants": ["a", "b"], "tenant_matcher_type": "exact", "algorithm": "ketama",
		 "external_labels": {"region": "eu"},
		 "shuffle_sharding_config": {"shard_size": 0},
		 "endpoints": [
			"recv-0.recv:10901",
			{"address": "recv-1.recv:10901", "az": "z1"},
			{"address": "recv-2.recv:10901", "capnproto_address": "recv-2.recv:7777"},
			"[::1]:10901",
			"bare-host"
		]}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{
		{Address: "recv-0.recv:10901", CapNProtoAddress: "recv-0.recv:19391"},
		{Address: "recv-1.recv:10901", CapNProtoAddress: "recv-1.recv:19391", AZ: "z1"},
		{Address: "recv-2.recv:10901", CapNProtoAddress: "recv-2.recv:7777"},
		{Address: "[::1]:10901", CapNProtoAddress: "[::1]:19391"},
		{Address: "bare-host", CapNProtoAddress: "bare-host:19391"},
	}
	c := cfgs[0]
	if !slices.Equal(c.Endpoints, want) {
		t.Errorf("endpoints = %+v\nwant        %+v", c.Endpoints, want)
	}
	if c.Hashring != "h" || !slices.Equal(c.Tenants, []string{"a", "b"}) || c.Algorithm != AlgorithmKetama ||
		c.TenantMatcherType != TenantMatcherExact || !maps.Equal(c.ExternalLabels, map[string]string{"region": "eu"}) {
		t.Errorf("config = %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, in, wantErr string
	}{
		{"not json", `{`, "parsing hashrings config"},
		{"not an array", `{"endpoints": ["a"]}`, "cannot unmarshal object"},
		{"empty array", `[]`, "no hashrings"},
		{"null", `null`, "no hashrings"},
		{"trailing data", `[{"endpoints": ["a"]}] []`, "unexpected data"},
		{"no endpoints", `[{"hashring": "x"}]`, `hashring "x": no endpoints`},
		{"empty endpoints", `[{"endpoints": []}]`, "hashring #0: no endpoints"},
		{"empty address", `[{"endpoints": [""]}]`, "endpoint address must be set"},
		{"object without address", `[{"endpoints": [{"az": "a"}]}]`, "endpoint address must be set"},
		{"endpoint of wrong type", `[{"endpoints": [42]}]`, "endpoint must be"},
		{"unknown endpoint field", `[{"endpoints": [{"address": "a", "zone": "z"}]}]`, `unknown field "zone"`},
		{"duplicate endpoint", `[{"endpoints": ["a:1", {"address": "a:1"}]}]`, `duplicate endpoint "a:1"`},
		{"unknown algorithm", `[{"endpoints": ["a"], "algorithm": "rendezvous"}]`, `unknown algorithm "rendezvous"`},
		{"unknown matcher", `[{"endpoints": ["a"], "tenant_matcher_type": "regex"}]`, `unknown tenant_matcher_type "regex"`},
		{"bad glob", `[{"endpoints": ["a"], "tenants": ["ok-*", "bad["], "tenant_matcher_type": "glob"}]`, `bad tenant glob "bad["`},
		{"unknown field", `[{"endpoints": ["a"], "tenant": ["t"]}]`, `unknown field "tenant"`},
		{"shuffle sharding", `[{"endpoints": ["a"], "shuffle_sharding_config": {"shard_size": 2}}]`, "shuffle_sharding_config with shard_size > 0"},
		{"empty label name", `[{"endpoints": ["a"], "external_labels": {"": "v"}}]`, "empty name"},
		{"second hashring bad", `[{"endpoints": ["a"]}, {"endpoints": []}]`, "hashring #1: no endpoints"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseConfigAcceptsSameEndpointInTwoHashrings(t *testing.T) {
	// Thanos allows one receiver to serve several hashrings.
	_, err := ParseConfig([]byte(`[{"tenants": ["a"], "endpoints": ["r:1"]}, {"endpoints": ["r:1", "s:1"]}]`))
	if err != nil {
		t.Fatal(err)
	}
}

package hashring

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

func TestHashSeriesLayout(t *testing.T) {
	long := strings.Repeat("v", 700) // forces the streaming path
	cases := []struct {
		name   string
		tenant string
		ls     []prompb.Label
		input  string
	}{
		{"no labels", "t", nil, "t\xff"},
		{"one label", "tenant", pod("nginx"), "tenant\xffpod\xffnginx\xff"},
		{"order kept", "t", []prompb.Label{{Name: "b", Value: "2"}, {Name: "a", Value: "1"}}, "t\xffb\xff2\xffa\xff1\xff"},
		{"empty tenant", "", []prompb.Label{{Name: "a", Value: ""}}, "\xffa\xff\xff"},
		{"long value", "t", []prompb.Label{{Name: "a", Value: "1"}, {Name: "big", Value: long}, {Name: "z", Value: "9"}},
			"t\xffa\xff1\xffbig\xff" + long + "\xffz\xff9\xff"},
		{"long tenant", long, pod("x"), long + "\xffpod\xffx\xff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := HashSeries(tc.tenant, tc.ls), xxhash.Sum64String(tc.input); got != want {
				t.Errorf("HashSeries = %#x, want xxhash64(%q) = %#x", got, tc.input, want)
			}
		})
	}
}

func TestTenantMatching(t *testing.T) {
	cfgs := []Config{
		{Hashring: "exact", Tenants: []string{"alpha", "team-*"}, Endpoints: endpoints("exact:1"),
			ExternalLabels: map[string]string{"ring": "exact"}},
		{Hashring: "glob", Tenants: []string{"team-*", "?x"}, TenantMatcherType: TenantMatcherGlob, Endpoints: endpoints("glob:1"),
			ExternalLabels: map[string]string{"ring": "glob"}},
		{Hashring: "default", Endpoints: endpoints("default:1")},
	}
	only := []Config{cfgs[0], cfgs[1]}
	cases := []struct {
		name   string
		cfgs   []Config
		tenant string
		want   string // endpoint address; "" means ErrNoMatchingHashring
	}{
		{"exact match", cfgs, "alpha", "exact:1"},
		{"exact type does not glob", cfgs, "team-a", "glob:1"},
		{"exact type matches the literal", cfgs, "team-*", "exact:1"},
		{"glob star", only, "team-blue", "glob:1"},
		{"glob question mark", only, "ax", "glob:1"},
		{"glob anchored", only, "my-team-blue", ""},
		{"no tenants matches all", cfgs, "whoever", "default:1"},
		{"no match", only, "whoever", ""},
		{"first match wins", []Config{{Endpoints: endpoints("first:1")}, cfgs[0]}, "alpha", "first:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRing(t, tc.cfgs, "")
			got, err := r.GetN(tc.tenant, 12345, 0)
			if tc.want == "" {
				if !errors.Is(err, ErrNoMatchingHashring) {
					t.Fatalf("err = %v, want ErrNoMatchingHashring", err)
				}
				if _, err := r.ExternalLabels(tc.tenant); !errors.Is(err, ErrNoMatchingHashring) {
					t.Fatalf("ExternalLabels err = %v, want ErrNoMatchingHashring", err)
				}
				return
			}
			if err != nil || got.Address != tc.want {
				t.Fatalf("GetN = %v, %v; want %s", got.Address, err, tc.want)
			}
		})
	}
}

func TestExternalLabels(t *testing.T) {
	r := mustRing(t, []Config{
		{Tenants: []string{"a"}, Endpoints: endpoints("x"), ExternalLabels: map[string]string{"z": "1", "b": "2"}},
		{Endpoints: endpoints("y")},
	}, "")
	got, err := r.ExternalLabels("a")
	if err != nil || !labels.Equal(got, labels.FromStrings("b", "2", "z", "1")) {
		t.Errorf("ExternalLabels(a) = %v, %v", got, err)
	}
	got, err = r.ExternalLabels("other")
	if err != nil || !got.IsEmpty() {
		t.Errorf("ExternalLabels(other) = %v, %v; want empty", got, err)
	}
}

func TestHashmodPlacement(t *testing.T) {
	// Given unsorted; Thanos sorts by address before taking (hash+n) % len.
	r := mustRing(t, []Config{{Endpoints: endpoints("c:1", "a:1", "d:1", "b:1")}}, AlgorithmHashmod)
	sorted := []string{"a:1", "b:1", "c:1", "d:1"}
	cases := []struct {
		hash, n uint64
		want    string
	}{
		{0, 0, "a:1"}, {0, 1, "b:1"}, {0, 3, "d:1"},
		{6, 0, "c:1"}, {6, 1, "d:1"}, {6, 2, "a:1"},
		{math.MaxUint64, 0, sorted[math.MaxUint64%4]},
		{math.MaxUint64, 1, "a:1"}, // hash+n wraps to 0 before the modulo
		{math.MaxUint64 - 1, 2, "a:1"},
	}
	for _, tc := range cases {
		got, err := r.GetN("t", tc.hash, tc.n)
		if err != nil || got.Address != tc.want {
			t.Errorf("GetN(%d, %d) = %s, %v; want %s", tc.hash, tc.n, got.Address, err, tc.want)
		}
	}
	if _, err := r.GetN("t", 0, 4); !errors.Is(err, ErrInsufficientEndpoints) {
		t.Errorf("GetN(n=4): err = %v, want ErrInsufficientEndpoints", err)
	}
	// The default algorithm is hashmod.
	d := mustRing(t, []Config{{Endpoints: endpoints("c:1", "a:1", "d:1", "b:1")}}, "")
	for h := range uint64(50) {
		x, _ := r.GetN("t", h*0x9e3779b97f4a7c15, 1)
		y, _ := d.GetN("t", h*0x9e3779b97f4a7c15, 1)
		if x != y {
			t.Fatalf("default algorithm differs from hashmod at %d", h)
		}
	}
}

func TestNewErrors(t *testing.T) {
	withAZ := []Endpoint{{Address: "a", AZ: "1"}, {Address: "b", AZ: "2"}}
	cases := []struct {
		name    string
		cfgs    []Config
		alg     string
		wantErr string
	}{
		{"no configs", nil, "", "no hashrings"},
		{"unknown default", []Config{{Endpoints: endpoints("a")}}, "maglev", `unknown default hashring algorithm "maglev"`},
		{"hashmod with AZ", []Config{{Endpoints: withAZ}}, "", "hashmod does not support AZ"},
		{"default hashmod with AZ", []Config{{Endpoints: withAZ, Algorithm: AlgorithmHashmod}}, AlgorithmKetama, "hashmod does not support AZ"},
		{"invalid config", []Config{{Hashring: "h"}}, "", `hashring "h": no endpoints`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfgs, tc.alg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	// Ketama takes AZs, whether chosen per hashring or by default.
	mustRing(t, []Config{{Endpoints: withAZ}}, AlgorithmKetama)
}

func TestEndpoints(t *testing.T) {
	r := mustRing(t, []Config{
		{Tenants: []string{"a"}, Endpoints: []Endpoint{{Address: "r2", AZ: "z"}, {Address: "r1", AZ: "z"}}, Algorithm: AlgorithmKetama},
		{Endpoints: endpoints("r3", "r2")},
	}, "")
	got := r.Endpoints()
	want := []Endpoint{{Address: "r1", AZ: "z"}, {Address: "r2", AZ: "z"}, {Address: "r3"}}
	if !slices.Equal(got, want) {
		t.Errorf("Endpoints = %+v, want %+v", got, want)
	}
}

func TestReplicationPossible(t *testing.T) {
	r := mustRing(t, []Config{
		{Tenants: []string{"a"}, Endpoints: endpoints("a1", "a2", "a3")},
		{Endpoints: endpoints("b1", "b2"), Algorithm: AlgorithmKetama},
	}, "")
	for n, ok := range map[int]bool{1: true, 2: true, 3: false, 0: false, -1: false} {
		if err := r.ReplicationPossible(n); (err == nil) != ok {
			t.Errorf("ReplicationPossible(%d) = %v, want ok=%v", n, err, ok)
		}
	}
	if err := r.ReplicationPossible(3); err == nil || !strings.Contains(err.Error(), "hashring #1") {
		t.Errorf("ReplicationPossible(3) = %v, want it to name hashring #1", err)
	}
}

func TestGetNDoesNotAllocate(t *testing.T) {
	r := mustRing(t, []Config{
		{Tenants: []string{"x-*"}, TenantMatcherType: TenantMatcherGlob, Endpoints: endpoints("g1", "g2", "g3")},
		{Tenants: []string{"exact"}, Endpoints: endpoints("e1", "e2", "e3"), Algorithm: AlgorithmKetama},
	}, "")
	ls := pod("nginx")
	for _, tenant := range []string{"x-1", "exact"} {
		allocs := testing.AllocsPerRun(100, func() {
			h := HashSeries(tenant, ls)
			for n := range uint64(3) {
				if _, err := r.GetN(tenant, h, n); err != nil {
					t.Fatal(err)
				}
			}
		})
		if allocs != 0 {
			t.Errorf("tenant %s: %v allocations per series, want 0", tenant, allocs)
		}
	}
}

package hashring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

func endpoints(addrs ...string) []Endpoint {
	out := make([]Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = Endpoint{Address: a}
	}
	return out
}

func pod(v string) []prompb.Label { return []prompb.Label{{Name: "pod", Value: v}} }

// TestKetamaGoldenThanos reproduces TestKetamaHashringGet of Thanos
// (pkg/receive/hashring_test.go): tenant "tenant", 10 sections per endpoint,
// the expected endpoints are the ones asserted there. Passing them checks the
// series hash bytes, the "<address>:<i>" section hashes, the section order, the
// clockwise lookup and the replica walk together against Thanos.
func TestKetamaGoldenThanos(t *testing.T) {
	cases := []struct {
		name      string
		endpoints []Endpoint
		series    []prompb.Label
		n         uint64
		want      string
	}{
		{"base case", endpoints("node-1", "node-2", "node-3"), pod("nginx"), 0, "node-2"},
		{"replica 1", endpoints("node-1", "node-2", "node-3"), pod("nginx"), 1, "node-1"},
		{"replica 2", endpoints("node-1", "node-2", "node-3"), pod("nginx"), 2, "node-3"},
		{"replica 2, reordered", endpoints("node-1", "node-3", "node-2"), pod("nginx"), 2, "node-3"},
		{"new node at beginning", endpoints("node-0", "node-1", "node-2", "node-3"), pod("nginx"), 0, "node-2"},
		{"new node at end", endpoints("node-1", "node-2", "node-3", "node-4"), pod("nginx"), 0, "node-2"},
		{"other series", endpoints("node-1", "node-2", "node-3"), pod("thanos"), 0, "node-3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := newKetama(tc.endpoints, 10)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.get(HashSeries("tenant", tc.series), tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if got.Address != tc.want {
				t.Errorf("replica %d = %s, want %s", tc.n, got.Address, tc.want)
			}
		})
	}
}

// referenceReplicas is a literal, slow restatement of Thanos's replica walk
// (maps, a fresh scan for the least-populated AZ) for one section and rf.
func referenceReplicas(k *ketama, i, rf int) []uint16 {
	azs := map[string]int{}
	for _, e := range k.endpoints {
		azs[e.AZ] = 0
	}
	chosen := map[uint16]bool{}
	var out []uint16
	for j := i; len(out) < rf; j = (j + 1) % len(k.sections) {
		owner := k.sections[j].replicas[0]
		az := k.endpoints[owner].AZ
		least := -1
		for _, c := range azs {
			if least < 0 || c < least {
				least = c
			}
		}
		if chosen[owner] || (len(azs) > 1 && azs[az] > 0 && azs[az] > least) {
			continue
		}
		chosen[owner] = true
		azs[az]++
		out = append(out, owner)
	}
	return out
}

func TestKetamaReplicasMatchReferenceWalk(t *testing.T) {
	rings := [][]Endpoint{
		endpoints("a", "b", "c", "d", "e"),
		{{Address: "a", AZ: "1"}, {Address: "b", AZ: "2"}, {Address: "c", AZ: "3"}, {Address: "d", AZ: "1"}, {Address: "e", AZ: "2"}, {Address: "f", AZ: "3"}},
		{{Address: "a", AZ: "1"}, {Address: "b", AZ: "1"}, {Address: "c", AZ: "1"}, {Address: "d", AZ: "2"}},
		{{Address: "a", AZ: "1"}, {Address: "b"}, {Address: "c", AZ: "1"}, {Address: "d"}, {Address: "e", AZ: "2"}},
	}
	for ri, eps := range rings {
		k, err := newKetama(eps, 50)
		if err != nil {
			t.Fatal(err)
		}
		for i := range k.sections {
			// Thanos computes exactly rf replicas; any rf must give a prefix of ours.
			for rf := 1; rf <= k.replicas; rf++ {
				want := referenceReplicas(k, i, rf)
				if got := k.sections[i].replicas[:rf]; !slices.Equal(got, want) {
					t.Fatalf("ring %d section %d rf %d: replicas %v, want %v", ri, i, rf, got, want)
				}
			}
		}
	}
}

func TestBalancedReplicas(t *testing.T) {
	cases := []struct {
		sizes []int
		want  int
	}{
		{[]int{5}, 5},
		{[]int{2, 2, 2}, 6},
		{[]int{3, 1}, 3},           // a, b, then one more in the big AZ, then stuck
		{[]int{2, 2, 2, 3, 3}, 12}, // Thanos's EvenAZSpread case with 10 replicas fits
		{[]int{1, 4, 4}, 5},
	}
	for _, tc := range cases {
		if got := balancedReplicas(tc.sizes); got != tc.want {
			t.Errorf("balancedReplicas(%v) = %d, want %d", tc.sizes, got, tc.want)
		}
	}
}

func mustRing(t testing.TB, cfgs []Config, alg string) *Ring {
	t.Helper()
	r, err := New(cfgs, alg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomSeries(rng *rand.Rand) []prompb.Label {
	return []prompb.Label{
		{Name: "__name__", Value: "http_requests_total"},
		{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9090", rng.IntN(256), rng.IntN(256))},
		{Name: "series", Value: fmt.Sprint(rng.Uint64())},
	}
}

func TestKetamaReplicasDistinctAndAZBalanced(t *testing.T) {
	eps := []Endpoint{
		{Address: "r1", AZ: "a"}, {Address: "r2", AZ: "b"}, {Address: "r3", AZ: "c"},
		{Address: "r4", AZ: "a"}, {Address: "r5", AZ: "b"}, {Address: "r6", AZ: "c"},
	}
	r := mustRing(t, []Config{{Endpoints: eps, Algorithm: AlgorithmKetama}}, "")
	if err := r.ReplicationPossible(6); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		h := HashSeries("t", randomSeries(rng))
		seen := map[string]bool{}
		perAZ := map[string]int{}
		for n := range uint64(6) {
			e, err := r.GetN("t", h, n)
			if err != nil {
				t.Fatal(err)
			}
			if seen[e.Address] {
				t.Fatalf("hash %d: replica %d repeats %s", h, n, e.Address)
			}
			seen[e.Address] = true
			perAZ[e.AZ]++
			if n == 2 && len(perAZ) != 3 {
				t.Fatalf("hash %d: first 3 replicas cover AZs %v, want all 3", h, perAZ)
			}
		}
	}
}

func TestKetamaUnbalancedAZsLimitReplicas(t *testing.T) {
	eps := []Endpoint{{Address: "a1", AZ: "a"}, {Address: "a2", AZ: "a"}, {Address: "a3", AZ: "a"}, {Address: "b1", AZ: "b"}}
	r := mustRing(t, []Config{{Endpoints: eps, Algorithm: AlgorithmKetama}}, "")
	if err := r.ReplicationPossible(3); err != nil {
		t.Fatalf("rf 3: %v", err)
	}
	// Thanos would spin forever building this ring for rf 4.
	if err := r.ReplicationPossible(4); !errors.Is(err, ErrInsufficientEndpoints) {
		t.Fatalf("rf 4: err = %v, want ErrInsufficientEndpoints", err)
	}
	if _, err := r.GetN("t", 42, 3); !errors.Is(err, ErrInsufficientEndpoints) {
		t.Fatalf("GetN(3): err = %v, want ErrInsufficientEndpoints", err)
	}
	for h := uint64(0); h < 1<<20; h += 997 {
		var inB bool
		for n := range uint64(2) {
			e, _ := r.GetN("t", h*0x9e3779b97f4a7c15, n)
			inB = inB || e.AZ == "b"
		}
		if !inB {
			t.Fatalf("hash %d: the first 2 replicas skip AZ b", h)
		}
	}
}

func TestKetamaInsufficientEndpoints(t *testing.T) {
	r := mustRing(t, []Config{{Endpoints: endpoints("a", "b", "c")}}, AlgorithmKetama)
	for n := range uint64(3) {
		if _, err := r.GetN("t", 7, n); err != nil {
			t.Fatalf("GetN(%d): %v", n, err)
		}
	}
	for _, n := range []uint64{3, 4, 100} {
		if _, err := r.GetN("t", 7, n); !errors.Is(err, ErrInsufficientEndpoints) {
			t.Errorf("GetN(%d): err = %v, want ErrInsufficientEndpoints", n, err)
		}
	}
	big := make([]Endpoint, 12)
	for i := range big {
		big[i].Address = fmt.Sprintf("r%d", i)
	}
	r = mustRing(t, []Config{{Endpoints: big}}, AlgorithmKetama)
	if err := r.ReplicationPossible(MaxKetamaReplicas + 1); !errors.Is(err, ErrInsufficientEndpoints) {
		t.Errorf("rf %d: err = %v, want ErrInsufficientEndpoints", MaxKetamaReplicas+1, err)
	}
}

func TestKetamaDistribution(t *testing.T) {
	r := mustRing(t, []Config{{Endpoints: endpoints("10.0.0.1:10901", "10.0.0.2:10901", "10.0.0.3:10901")}}, AlgorithmKetama)
	const series = 100000
	rng := rand.New(rand.NewPCG(3, 4))
	count := map[string]int{}
	for range series {
		e, err := r.GetN("tenant", HashSeries("tenant", randomSeries(rng)), 0)
		if err != nil {
			t.Fatal(err)
		}
		count[e.Address]++
	}
	for addr, c := range count {
		if share := float64(c) / series; share < 0.25 || share > 0.42 {
			t.Errorf("%s owns %.1f%% of series, want 25-42%%", addr, 100*share)
		}
	}
	if len(count) != 3 {
		t.Errorf("series landed on %d endpoints, want 3", len(count))
	}
}

func TestKetamaMinimalMovement(t *testing.T) {
	before := mustRing(t, []Config{{Endpoints: endpoints("a:1", "b:1", "c:1")}}, AlgorithmKetama)
	after := mustRing(t, []Config{{Endpoints: endpoints("a:1", "b:1", "c:1", "d:1")}}, AlgorithmKetama)
	const series = 20000
	rng := rand.New(rand.NewPCG(5, 6))
	kept := 0
	for range series {
		h := HashSeries("t", randomSeries(rng))
		old, _ := before.GetN("t", h, 0)
		cur, _ := after.GetN("t", h, 0)
		switch {
		case old == cur:
			kept++
		case cur.Address != "d:1":
			t.Fatalf("hash %d moved from %s to %s, not to the new endpoint", h, old.Address, cur.Address)
		}
	}
	if share := float64(kept) / series; share < 0.6 {
		t.Errorf("only %.1f%% of series kept replica 0, want >= 60%%", 100*share)
	}
}

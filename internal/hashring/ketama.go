package hashring

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// sectionsPerEndpoint is the number of ring points per endpoint (Thanos's
// SectionsPerNode); changing it moves series, so it must stay 1000.
const sectionsPerEndpoint = 1000

// MaxKetamaReplicas bounds the replicas precomputed for each ketama section,
// hence the replication factor a ketama hashring can serve. Thanos computes
// exactly RF replicas; the replica list for a smaller RF is a prefix of the one
// for a larger RF, so computing a fixed number up front places series
// identically for every RF up to this bound.
const MaxKetamaReplicas = 8

// section is one point of the ketama ring. replicas[0] is the endpoint owning
// the point; replicas[1:] are the next distinct endpoints clockwise, AZ-balanced.
// The fixed-size array keeps a lookup to one cache line.
type section struct {
	hash     uint64
	replicas [MaxKetamaReplicas]uint16
}

// ketama is a consistent-hashing ring over endpoints in config order (the
// order matters only for indexes, never for placement).
type ketama struct {
	endpoints []Endpoint
	sections  []section // ascending by hash
	replicas  int       // valid entries of every section's replicas
}

// newKetama builds the ring with perEndpoint sections per endpoint; tests use a
// smaller number to reproduce Thanos's golden cases.
func newKetama(endpoints []Endpoint, perEndpoint int) (*ketama, error) {
	if len(endpoints) > math.MaxUint16 {
		return nil, fmt.Errorf("ketama: %d endpoints, at most %d supported", len(endpoints), math.MaxUint16)
	}
	k := &ketama{
		endpoints: endpoints,
		sections:  make([]section, 0, len(endpoints)*perEndpoint),
	}
	var key []byte
	for idx, e := range endpoints {
		for i := 1; i <= perEndpoint; i++ {
			// The point hash is xxhash64 of "<address>:<i>", i counting from 1.
			key = append(append(key[:0], e.Address...), ':')
			key = strconv.AppendInt(key, int64(i), 10)
			s := section{hash: xxhash.Sum64(key)}
			s.replicas[0] = uint16(idx)
			k.sections = append(k.sections, s)
		}
	}
	// Ties (two distinct "<address>:<i>" with one 64-bit hash) are left to
	// chance in Thanos; ordering them by endpoint at least keeps Vigil stable.
	slices.SortFunc(k.sections, func(a, b section) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.replicas[0], b.replicas[0]))
	})
	azOf, azSizes := availabilityZones(endpoints)
	k.replicas = min(balancedReplicas(azSizes), MaxKetamaReplicas)
	k.fillReplicas(azOf, len(azSizes))
	return k, nil
}

// availabilityZones numbers the distinct AZs of endpoints ("" counts as one, as
// in Thanos) and returns each endpoint's AZ number and each AZ's size.
func availabilityZones(endpoints []Endpoint) (azOf []int, sizes []int) {
	ids := make(map[string]int)
	azOf = make([]int, len(endpoints))
	for i, e := range endpoints {
		id, ok := ids[e.AZ]
		if !ok {
			id = len(sizes)
			ids[e.AZ] = id
			sizes = append(sizes, 0)
		}
		azOf[i] = id
		sizes[id]++
	}
	return azOf, sizes
}

// balancedReplicas is how many distinct replicas the AZ rule lets a section
// have. Replicas may only go to an AZ holding the fewest replicas so far, so
// every AZ fills up to the smallest AZ's size, after which each larger AZ gets
// exactly one more. Thanos loops forever past this number; Vigil reports it.
func balancedReplicas(azSizes []int) int {
	if len(azSizes) == 1 {
		return azSizes[0]
	}
	smallest := slices.Min(azSizes)
	n := len(azSizes) * smallest
	for _, s := range azSizes {
		if s > smallest {
			n++
		}
	}
	return n
}

// fillReplicas computes each section's replicas as Thanos does: walk clockwise
// from the section itself, skip endpoints already chosen, and, when there is
// more than one AZ, skip an endpoint whose AZ already holds replicas and more
// of them than the least-populated AZ.
func (k *ketama) fillReplicas(azOf []int, numAZ int) {
	chosen := make([]bool, len(k.endpoints))
	perAZ := make([]int, numAZ)
	for i := range k.sections {
		picked := k.sections[i].replicas[:0]
		for j := i; len(picked) < k.replicas; j = (j + 1) % len(k.sections) {
			// replicas[0] of every section is its owner, even once filled.
			owner := k.sections[j].replicas[0]
			az := azOf[owner]
			if chosen[owner] || (numAZ > 1 && perAZ[az] > 0 && perAZ[az] > slices.Min(perAZ)) {
				continue
			}
			chosen[owner] = true
			perAZ[az]++
			picked = append(picked, owner) // writes into the section's array
		}
		for _, e := range picked {
			chosen[e] = false
		}
		clear(perAZ)
	}
}

// get returns replica n of the series hashed to h: the replicas of the first
// section whose hash is >= h, wrapping around to the first section.
func (k *ketama) get(h, n uint64) (Endpoint, error) {
	if n >= uint64(k.replicas) {
		return Endpoint{}, k.insufficient(n)
	}
	lo, hi := 0, len(k.sections)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if k.sections[mid].hash < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(k.sections) {
		lo = 0
	}
	return k.endpoints[k.sections[lo].replicas[n]], nil
}

// insufficient explains why replica n cannot be served.
func (k *ketama) insufficient(n uint64) error {
	switch {
	case n >= uint64(len(k.endpoints)):
		return fmt.Errorf("%w: have %d, want %d", ErrInsufficientEndpoints, len(k.endpoints), n+1)
	case k.replicas == MaxKetamaReplicas:
		return fmt.Errorf("%w: ketama supports at most %d replicas, want %d", ErrInsufficientEndpoints, MaxKetamaReplicas, n+1)
	default:
		return fmt.Errorf("%w: AZ balancing allows %d replicas over %d endpoints, want %d",
			ErrInsufficientEndpoints, k.replicas, len(k.endpoints), n+1)
	}
}

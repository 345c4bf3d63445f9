// Package query is the querier's read path: a storage.Queryable over every StoreAPI
// endpoint, with replica deduplication, that the PromQL engine and the HTTP API use.
package query

import (
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/prometheus/prometheus/storage"
)

// Options are the per-request knobs of the Thanos query API.
type Options struct {
	// Dedup merges replicas (series that differ only in ReplicaLabels); effective only
	// when ReplicaLabels is non-empty.
	Dedup bool
	// ReplicaLabels are the label names that tell replicas apart (--query.replica-label,
	// overridden per request by replicaLabels[]).
	ReplicaLabels []string
	// PartialResponse returns what the healthy endpoints have, with warnings, when some
	// fail; without it any endpoint failure fails the query.
	PartialResponse bool
	// MaxSourceResolution is the coarsest downsampling resolution (ms) the query may read.
	MaxSourceResolution int64
	// StoreMatchers restrict the endpoints queried (storeMatch[] against __address__).
	// nil means all endpoints.
	StoreMatchers [][]*labels.Matcher
}

// QueryableFactory builds a Queryable for one request's options.
type QueryableFactory func(Options) storage.Queryable

// StoreStatus describes one endpoint for /api/v1/stores and the UI.
type StoreStatus struct {
	Name      string              `json:"name"`
	LastCheck time.Time           `json:"lastCheck"`
	LastError *string             `json:"lastError"`
	LabelSets []map[string]string `json:"labelSets"`
	MinTime   int64               `json:"minTime"`
	MaxTime   int64               `json:"maxTime"`
	// ComponentType is the Info component type (sidecar, store, query, rule, receive).
	ComponentType string `json:"-"`
}

// StoresLister lists the endpoints the querier knows, grouped by component type.
type StoresLister interface {
	Stores() map[string][]StoreStatus
}

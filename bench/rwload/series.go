// Package rwload generates Prometheus remote-write 1.0 load: N synthetic series with
// realistic label sets, S scrape steps each, sent in snappy-compressed
// prompb.WriteRequest batches by C concurrent senders.
//
// The request bodies are all encoded by Build before Run starts the clock, so that the
// generator's own CPU does not count against the receiver it measures (the benchmark
// machine has two cores, shared with the receivers).
//
// Samples of one series must reach a receiver in time order, or it answers 409 (out of
// order). Build therefore gives every sender a disjoint set of series, and each sender has
// one request in flight and sends its batches step by step: every batch holding step i of
// a series is acknowledged before one holding step i+1 is sent.
package rwload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/prometheus/prometheus/prompb"
)

// metric is one name of the metric-name pool.
type metric struct {
	name    string
	counter bool    // counter (increases) or gauge (random walk)
	scale   float64 // typical size of one step's increase (counter) or move (gauge)
	base    float64 // typical starting value
}

// metrics is the pool of metric names. The mix and magnitudes are those of a node and
// HTTP service scrape; they matter only for how well the values compress in the TSDB.
var metrics = []metric{
	{"http_requests_total", true, 40, 1e5},
	{"http_request_duration_seconds_sum", true, 3, 1e4},
	{"http_request_duration_seconds_count", true, 40, 1e5},
	{"process_cpu_seconds_total", true, 0.2, 5e3},
	{"node_network_receive_bytes_total", true, 2e5, 1e10},
	{"node_cpu_seconds_total", true, 7, 1e6},
	{"go_goroutines", false, 2, 200},
	{"process_resident_memory_bytes", false, 1e6, 3e8},
	{"node_memory_MemAvailable_bytes", false, 5e6, 8e9},
	{"node_load1", false, 0.1, 1.5},
}

var (
	jobs       = []string{"api", "node", "postgres", "redis", "kafka", "ingress", "auth", "billing"}
	namespaces = []string{"default", "monitoring", "payments", "search", "checkout", "platform"}
	clusters   = []string{"eu-west-1", "us-east-1", "ap-south-1"}
	envs       = []string{"prod", "staging"}
)

// seriesLabels returns the labels of series i, sorted by name as remote write requires:
// __name__, cluster, env, instance, job, namespace, pod (7 labels). Series i is metric
// i%len(metrics) of target i/len(metrics); the target's instance address makes every
// label set unique.
func seriesLabels(i int) []prompb.Label {
	m := metrics[i%len(metrics)]
	t := i / len(metrics)
	job := jobs[t%len(jobs)]
	ls := []prompb.Label{
		{Name: "__name__", Value: m.name},
		{Name: "cluster", Value: clusters[t%len(clusters)]},
		{Name: "env", Value: envs[(t/7)%len(envs)]},
		{Name: "instance", Value: fmt.Sprintf("10.%d.%d.%d:9100", (t>>16)&255, (t>>8)&255, t&255)},
		{Name: "job", Value: job},
		{Name: "namespace", Value: namespaces[(t/3)%len(namespaces)]},
		{Name: "pod", Value: fmt.Sprintf("%s-%08x-%d", job, uint32(t)*2654435761, t%5)},
	}
	return ls
}

// seriesState is the value generator of one series.
type seriesState struct {
	labels []prompb.Label
	m      metric
	v      float64
}

// newSeries makes series i with a starting value drawn from rng.
func newSeries(i int, rng *rand.Rand) seriesState {
	m := metrics[i%len(metrics)]
	v := math.Round(m.base * (0.5 + rng.Float64()))
	return seriesState{labels: seriesLabels(i), m: m, v: v}
}

// next advances the series by one scrape step and returns the new value. Counters grow
// by a non-negative amount (integers when their scale is, as request counts are); gauges
// take a random-walk step and stay non-negative.
func (s *seriesState) next(rng *rand.Rand) float64 {
	if s.m.counter {
		inc := s.m.scale * 2 * rng.Float64()
		if s.m.scale >= 1 {
			inc = math.Round(inc)
		}
		s.v += inc
	} else {
		s.v = math.Abs(s.v + s.m.scale*rng.NormFloat64())
	}
	return s.v
}

// MetricNames returns the names of the metric pool, sorted.
func MetricNames() []string {
	names := make([]string, len(metrics))
	for i, m := range metrics {
		names[i] = m.name
	}
	slices.Sort(names)
	return names
}

package leaderelection

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the leader election metrics of one lease.
type metrics struct {
	isLeader    prometheus.Gauge
	transitions prometheus.Counter
	lastRenew   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, lease string) *metrics {
	f := promauto.With(reg)
	l := prometheus.Labels{"lease": lease}
	return &metrics{
		isLeader: f.NewGauge(prometheus.GaugeOpts{Name: "vigil_leader_election_is_leader", ConstLabels: l,
			Help: "1 while this process leads and its work may run, 0 otherwise."}),
		transitions: f.NewCounter(prometheus.CounterOpts{Name: "vigil_leader_election_transitions_total", ConstLabels: l,
			Help: "Times this process became leader."}),
		lastRenew: f.NewGauge(prometheus.GaugeOpts{Name: "vigil_leader_election_last_renew_timestamp_seconds", ConstLabels: l,
			Help: "When this process sent its last successful acquisition or renewal of the lease (Unix seconds)."}),
	}
}

func (m *metrics) renewed(at time.Time) {
	m.lastRenew.Set(float64(at.UnixNano()) / 1e9)
}

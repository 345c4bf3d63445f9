package reloader

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the reloader's; the names are Thanos's with vigil_ in place of thanos_,
// plus the last config change time, which Thanos does not have.
type metrics struct {
	reloads, reloadFailures      prometheus.Counter
	applies, applyFailures       prometheus.Counter
	lastReloadOK, lastReloadTime prometheus.Gauge
	lastConfigChange             prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	const p = "vigil_sidecar_reloader_"
	return &metrics{
		reloads: f.NewCounter(prometheus.CounterOpts{Name: p + "reloads_total",
			Help: "Reload requests sent to Prometheus, retries included."}),
		reloadFailures: f.NewCounter(prometheus.CounterOpts{Name: p + "reloads_failed_total",
			Help: "Reload requests that failed (Prometheus unreachable, or it rejected the configuration)."}),
		applies: f.NewCounter(prometheus.CounterOpts{Name: p + "config_apply_operations_total",
			Help: "Passes over the config file and rule directories after a change or at the watch interval."}),
		applyFailures: f.NewCounter(prometheus.CounterOpts{Name: p + "config_apply_operations_failed_total",
			Help: "Passes that could not produce a configuration (unreadable input, unset variable, invalid YAML); Prometheus was not reloaded."}),
		lastReloadOK: f.NewGauge(prometheus.GaugeOpts{Name: p + "last_reload_successful",
			Help: "1 if the last reload request succeeded, else 0."}),
		lastReloadTime: f.NewGauge(prometheus.GaugeOpts{Name: p + "last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful reload."}),
		lastConfigChange: f.NewGauge(prometheus.GaugeOpts{Name: p + "last_config_change_timestamp_seconds",
			Help: "Unix time at which a changed configuration (rendered config or rule files) was last seen."}),
	}
}

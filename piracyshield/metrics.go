package piracyshield

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports the connector's work to Prometheus. Register it with
// the process's registry (writ serve does).
type Metrics struct {
	polls         *prometheus.CounterVec
	checksumFails prometheus.Counter
	malformed     prometheus.Counter
	orders        *prometheus.CounterVec
	reports       *prometheus.CounterVec
	reportSeconds *prometheus.HistogramVec
	alerts        prometheus.Counter
	items         *prometheus.GaugeVec
	atRisk        prometheus.Gauge
	overdue       prometheus.Gauge
	lastSuccess   prometheus.Gauge
}

func newMetrics() *Metrics {
	return &Metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_piracyshield_polls_total",
			Help: "Polls of the Piracy Shield platform, by result (ok, error).",
		}, []string{"result"}),
		checksumFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writ_piracyshield_checksum_mismatches_total",
			Help: "Text lists that did not match their checksum twice in a row; the poll was abandoned.",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writ_piracyshield_malformed_items_total",
			Help: "Items or tickets the platform listed that fail its own validation rules; skipped.",
		}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_piracyshield_order_changes_total",
			Help: "Changes the connector recorded in writ, by kind (order, amendment, release, renewal).",
		}, []string{"kind"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_piracyshield_reports_total",
			Help: "Item reports sent to the platform, by status (processed, unprocessed) and result (ok, error).",
		}, []string{"status", "result"}),
		reportSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "writ_piracyshield_time_to_report_seconds",
			Help:    "Time from an item's notification (its ticket's creation) to its first report, by status.",
			Buckets: []float64{1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600},
		}, []string{"status"}),
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writ_piracyshield_deadline_alerts_total",
			Help: "Items still unreported when the alert threshold passed: their thirty-minute deadline is at risk.",
		}),
		items: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "writ_piracyshield_items",
			Help: "Items listed for this provider, by state: awaiting (not yet reported), processed, unprocessed, unreported (listed too long before writ saw them to be reported).",
		}, []string{"state"}),
		atRisk: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "writ_piracyshield_items_at_risk",
			Help: "Unreported items older than the alert threshold.",
		}),
		overdue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "writ_piracyshield_items_overdue",
			Help: "Unreported items older than the thirty-minute deadline.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "writ_piracyshield_last_success_timestamp_seconds",
			Help: "Unix time of the last poll the platform answered in full.",
		}),
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.polls, m.checksumFails, m.malformed, m.orders, m.reports, m.reportSeconds,
		m.alerts, m.items, m.atRisk, m.overdue, m.lastSuccess}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

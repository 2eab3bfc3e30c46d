package registry

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// Metrics exports the registry's state to Prometheus.
type Metrics struct {
	r              *Registry
	submitted      atomic.Uint64
	compileSeconds prometheus.Histogram
	// enforceSeconds is the time from an order's deadline start to each
	// enforcement point's first receipt that includes it.
	enforceSeconds *prometheus.HistogramVec
}

func newMetrics(r *Registry) *Metrics {
	return &Metrics{
		r: r,
		compileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "writ_policy_compile_seconds",
			Help:    "Time to compile and publish a policy snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		enforceSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "writ_time_to_enforce_seconds",
			Help:    "Time from an order's receipt (or effective time) to each enforcement point's first receipt that includes it.",
			Buckets: []float64{.001, .01, .1, .5, 1, 2, 5, 10, 30, 60, 300, 900, 1800, 3600},
		}, []string{"point"}),
	}
}

func (m *Metrics) observeEnforcement(point string, d time.Duration) {
	m.enforceSeconds.WithLabelValues(point).Observe(max(d, 0).Seconds())
}

var (
	descVersion   = prometheus.NewDesc("writ_policy_version", "Store version of the published policy snapshot.", nil, nil)
	descNames     = prometheus.NewDesc("writ_policy_names", "Distinct blocked names in the published policy.", nil, nil)
	descPrefixes  = prometheus.NewDesc("writ_policy_prefixes", "Distinct blocked IP prefixes in the published policy.", nil, nil)
	descOrders    = prometheus.NewDesc("writ_orders", "Orders on record, by status.", []string{"status"}, nil)
	descSubmitted = prometheus.NewDesc("writ_orders_submitted_total", "Orders accepted since start.", nil, nil)
	descBlocks    = prometheus.NewDesc("writ_order_blocks_total", "Answers blocked, by order.", []string{"order"}, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVersion, descNames, descPrefixes, descOrders, descSubmitted, descBlocks} {
		ch <- d
	}
	m.compileSeconds.Describe(ch)
	m.enforceSeconds.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	snap := m.r.holder.Load()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descVersion, float64(snap.Version()))
	gauge(descNames, float64(snap.Names()))
	gauge(descPrefixes, float64(snap.Prefixes()))
	counts := map[order.Status]int{}
	now := m.r.clock.Now()
	for _, o := range m.r.Orders() {
		counts[o.StatusAt(now)]++
	}
	for _, st := range order.Statuses {
		gauge(descOrders, float64(counts[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(descSubmitted, prometheus.CounterValue, float64(m.submitted.Load()))
	m.r.counters.Each(func(id string, c *policy.Counters) {
		ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.CounterValue, float64(c.Blocks.Load()), id)
	})
	m.compileSeconds.Collect(ch)
	m.enforceSeconds.Collect(ch)
}

package httpgate

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-project/writ/jurisdiction"
)

// The ways a request reaches the gate, for writ_gate_requests_total.
const (
	endpointMiddleware  = iota // the middleware or the standalone proxy
	endpointAuth               // nginx auth_request
	endpointForwardAuth        // Caddy forward_auth
	endpointTLS                // a TLS connection passed through
	endpoints
)

var endpointNames = [endpoints]string{"proxy", "auth_request", "forward_auth", "tls_passthrough"}

// Metrics counts what the gate does. Counters are atomics updated on the
// request path and read by Prometheus at scrape time through Collect.
type Metrics struct {
	policy        Policy
	requests      [endpoints]atomic.Uint64
	blocks        atomic.Uint64
	blocksByScope [256]atomic.Uint64
	blocksByKind  [4]atomic.Uint64
	originErrors  atomic.Uint64
	propagation   prometheus.Histogram
}

func newMetrics(p Policy) *Metrics {
	return &Metrics{
		policy: p,
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "writ_gate_order_propagation_seconds",
			Help:    "Time from an order's acknowledgement (the API's 201) to the first request the HTTP gate blocked for it.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
	}
}

func (m *Metrics) countBlock(d Decision) {
	m.blocks.Add(1)
	m.blocksByScope[d.Scope].Add(1)
	m.blocksByKind[d.Target].Add(1)
}

// Blocks returns the number of requests blocked so far.
func (m *Metrics) Blocks() uint64 { return m.blocks.Load() }

// Requests returns the number of requests decided so far, every way.
func (m *Metrics) Requests() uint64 {
	var n uint64
	for i := range m.requests {
		n += m.requests[i].Load()
	}
	return n
}

var (
	descRequests = prometheus.NewDesc("writ_gate_requests_total", "Requests decided by the HTTP gate, by how they reached it.", []string{"endpoint"}, nil)
	descBlocks   = prometheus.NewDesc("writ_gate_blocks_total", "Requests the HTTP gate blocked, by the client's jurisdiction (scope).", []string{"scope"}, nil)
	descKinds    = prometheus.NewDesc("writ_gate_blocks_by_target_total", "Requests the HTTP gate blocked, by the kind of target that matched (name, url, address).", []string{"target"}, nil)
	descOrigin   = prometheus.NewDesc("writ_gate_origin_errors_total", "Allowed requests the origin could not answer (502 sent).", nil, nil)
	descVersion  = prometheus.NewDesc("writ_gate_policy_version", "Version of the policy snapshot the HTTP gate decides with.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descBlocks, descKinds, descOrigin, descVersion} {
		ch <- d
	}
	m.propagation.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for i, name := range endpointNames {
		counter(descRequests, m.requests[i].Load(), name)
	}
	for i := range m.blocksByScope {
		if v := m.blocksByScope[i].Load(); v > 0 {
			name := jurisdiction.Code(i).String()
			if name == "" {
				name = "unknown"
			}
			counter(descBlocks, v, name)
		}
	}
	for _, k := range []Target{TargetName, TargetURL, TargetAddr} {
		counter(descKinds, m.blocksByKind[k].Load(), k.String())
	}
	counter(descOrigin, m.originErrors.Load())
	ch <- prometheus.MustNewConstMetric(descVersion, prometheus.GaugeValue, float64(m.policy.Load().Version()))
	m.propagation.Collect(ch)
}

package dnsserver

import (
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-project/writ/jurisdiction"
)

// Metrics counts what the server does. Counters are plain atomics
// updated on the query path; Prometheus reads them at scrape time
// through Collect, so counting never takes a lock.
type Metrics struct {
	queriesUDP, queriesTCP atomic.Uint64
	rcodes                 [24]atomic.Uint64
	blocks                 atomic.Uint64
	blocksByScope          [256]atomic.Uint64
	answerBlocks           atomic.Uint64
	cacheHits, cacheMisses atomic.Uint64
	upstreamErrors         atomic.Uint64
	staleAnswers           atomic.Uint64
	// rateLimited counts responses the rate limit truncated (rateSlip)
	// or dropped (rateDrop).
	rateLimited [3]atomic.Uint64
	// truncated counts UDP responses sent truncated for their size.
	truncated atomic.Uint64
	// tcpOpen is the number of open TCP connections; tcpRejected counts
	// those closed at once for the total and the per-client limit;
	// tcpSlow those closed for sending a query too slowly.
	tcpOpen     atomic.Int64
	tcpRejected [2]atomic.Uint64
	tcpSlow     atomic.Uint64

	propagation prometheus.Histogram
}

func newMetrics() *Metrics {
	return &Metrics{
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "writ_order_propagation_seconds",
			Help:    "Time from an order's acknowledgement (the API's 201) to the first answer this DNS server blocked for it.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
	}
}

func (m *Metrics) countQuery(udp bool) {
	if udp {
		m.queriesUDP.Add(1)
	} else {
		m.queriesTCP.Add(1)
	}
}

func (m *Metrics) countRcode(rcode int) {
	if rcode >= 0 && rcode < len(m.rcodes) {
		m.rcodes[rcode].Add(1)
	}
}

func (m *Metrics) countBlock(c jurisdiction.Code) {
	m.blocks.Add(1)
	m.blocksByScope[c].Add(1)
}

// queryStats counts what one UDP reading goroutine answered since it last
// added its counts to Metrics, which it does after each batch of queries:
// counting every query in the shared counters would have the processors
// contend for their cache lines at every query.
type queryStats struct {
	queries, hits, answerBlocks uint64
	// dropped and slipped count rate-limited responses; truncated the
	// responses truncated for their size (slipped ones apart).
	dropped, slipped, truncated uint64
	rcodes                      [16]uint64
	// blocks by jurisdiction: a batch sees few of them.
	scopes [4]scopeCount
}

type scopeCount struct {
	code jurisdiction.Code
	n    uint64
}

// block counts a block for a client in c.
func (q *queryStats) block(c jurisdiction.Code, m *Metrics) {
	for i := range q.scopes {
		sc := &q.scopes[i]
		if sc.n == 0 {
			sc.code = c
		}
		if sc.code == c {
			sc.n++
			return
		}
	}
	m.countBlock(c) // more jurisdictions than slots: count it directly
}

// add adds q's counts to m and zeroes q.
func (m *Metrics) add(q *queryStats) {
	if q.queries == 0 {
		return
	}
	m.queriesUDP.Add(q.queries)
	if q.hits > 0 {
		m.cacheHits.Add(q.hits)
	}
	if q.answerBlocks > 0 {
		m.answerBlocks.Add(q.answerBlocks)
	}
	if q.dropped > 0 {
		m.rateLimited[rateDrop].Add(q.dropped)
	}
	if q.slipped > 0 {
		m.rateLimited[rateSlip].Add(q.slipped)
	}
	if q.truncated > 0 {
		m.truncated.Add(q.truncated)
	}
	for i, n := range q.rcodes {
		if n > 0 {
			m.rcodes[i].Add(n)
		}
	}
	for _, sc := range q.scopes {
		if sc.n > 0 {
			m.blocks.Add(sc.n)
			m.blocksByScope[sc.code].Add(sc.n)
		}
	}
	*q = queryStats{}
}

// Blocks returns the number of blocked answers so far.
func (m *Metrics) Blocks() uint64 { return m.blocks.Load() }

var (
	descQueries   = prometheus.NewDesc("writ_dns_queries_total", "DNS queries received, by transport.", []string{"transport"}, nil)
	descResponses = prometheus.NewDesc("writ_dns_responses_total", "DNS responses sent, by response code.", []string{"rcode"}, nil)
	descBlocks    = prometheus.NewDesc("writ_dns_blocks_total", "Answers blocked by an order, by the client's jurisdiction (scope).", []string{"scope"}, nil)
	descAnswer    = prometheus.NewDesc("writ_dns_answer_blocks_total", "Blocks decided on the upstream answer (a blocked address or CNAME target), not the query name.", nil, nil)
	descCache     = prometheus.NewDesc("writ_dns_cache_lookups_total", "Response cache lookups, by result.", []string{"result"}, nil)
	descUpstream  = prometheus.NewDesc("writ_dns_upstream_errors_total", "Failed attempts at an upstream resolver (timeouts, errors, garbage, mismatched answers, SERVFAIL, REFUSED).", nil, nil)
	descStale     = prometheus.NewDesc("writ_dns_stale_answers_total", "Answers served from expired cache entries because no upstream answered (RFC 8767).", nil, nil)
	descLimited   = prometheus.NewDesc("writ_dns_rate_limited_total", "UDP responses withheld by the rate limit, by action: truncated (sent with TC and no records) or dropped.", []string{"action"}, nil)
	descTruncated = prometheus.NewDesc("writ_dns_truncated_total", "UDP responses sent truncated (TC) because they exceeded the client's buffer, dns.max_udp_size or the amplification bound.", nil, nil)
	descTCPOpen   = prometheus.NewDesc("writ_dns_tcp_connections", "Open TCP connections.", nil, nil)
	descTCPReject = prometheus.NewDesc("writ_dns_tcp_rejected_total", "TCP connections closed at once, by the limit reached: total or client.", []string{"limit"}, nil)
	descTCPSlow   = prometheus.NewDesc("writ_dns_tcp_slow_clients_total", "TCP connections closed because a query or an answer did not pass within dns.tcp.read_timeout.", nil, nil)
)

// Indexes of Metrics.tcpRejected.
const (
	rejectTotal = iota
	rejectClient
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueries, descResponses, descBlocks, descAnswer, descCache, descUpstream,
		descStale, descLimited, descTruncated, descTCPOpen, descTCPReject, descTCPSlow} {
		ch <- d
	}
	m.propagation.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descQueries, m.queriesUDP.Load(), "udp")
	counter(descQueries, m.queriesTCP.Load(), "tcp")
	for i := range m.rcodes {
		if v := m.rcodes[i].Load(); v > 0 {
			counter(descResponses, v, dns.RcodeToString[i])
		}
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
	counter(descAnswer, m.answerBlocks.Load())
	counter(descCache, m.cacheHits.Load(), "hit")
	counter(descCache, m.cacheMisses.Load(), "miss")
	counter(descUpstream, m.upstreamErrors.Load())
	counter(descStale, m.staleAnswers.Load())
	counter(descLimited, m.rateLimited[rateSlip].Load(), "truncated")
	counter(descLimited, m.rateLimited[rateDrop].Load(), "dropped")
	counter(descTruncated, m.truncated.Load())
	ch <- prometheus.MustNewConstMetric(descTCPOpen, prometheus.GaugeValue, float64(m.tcpOpen.Load()))
	counter(descTCPReject, m.tcpRejected[rejectTotal].Load(), "total")
	counter(descTCPReject, m.tcpRejected[rejectClient].Load(), "client")
	counter(descTCPSlow, m.tcpSlow.Load())
	m.propagation.Collect(ch)
}

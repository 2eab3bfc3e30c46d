package piracyshield

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/writ-project/writ/order"
)

// Connector applies the platform's tickets through writ and reports back.
// Sync and Report do one round each; Run repeats them until its context
// ends.
type Connector struct {
	cfg     Config
	client  *Client
	writ    Writ
	log     *slog.Logger
	metrics *Metrics

	// delegatedHold is the reason writ's intake gives targets it holds
	// only because a delegated reporter ordered them.
	delegatedHold string

	mu        sync.Mutex // one round at a time
	st        *State
	authority order.RegisteredAuthority
	// orders indexes the authority's orders by ticket for one sync, read
	// the first time a ticket without a recorded order is met.
	orders map[string]*order.Order
	// warned remembers the one-time warnings given.
	warned map[string]bool
}

// New returns a connector driving w, with the state of cfg.StateFile.
func New(cfg Config, w Writ) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := NewClient(cfg.URL, cfg.Email, cfg.Password, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	client.now = cfg.Now
	st, err := LoadState(cfg.StateFile)
	if err != nil {
		return nil, err
	}
	return &Connector{cfg: cfg, client: client, writ: w, log: cfg.Logger, metrics: newMetrics(),
		delegatedHold: order.DelegatedReviewReason, st: st, warned: map[string]bool{}}, nil
}

// Metrics returns the connector's Prometheus collector.
func (c *Connector) Metrics() *Metrics { return c.metrics }

// Run polls the platform every PollInterval (backing off after errors)
// and reports as soon as writ's enforcement points have applied what it
// recorded, until ctx ends.
func (c *Connector) Run(ctx context.Context) error {
	var next time.Time
	failures := 0
	var quick time.Duration
	for {
		now := c.cfg.Now()
		polled := !now.Before(next)
		if polled {
			if err := c.Sync(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failures++
				wait := backoff(c.cfg.PollInterval, failures, c.cfg.MaxBackoff)
				c.log.Warn("piracy shield poll failed", "err", err, "failures", failures, "retry_in", wait)
				next = now.Add(wait)
			} else {
				failures = 0
				next = now.Add(c.cfg.PollInterval)
			}
		}
		waiting, err := c.report(ctx, polled)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("piracy shield reporting failed; retrying", "err", err)
		}
		wait := next.Sub(c.cfg.Now())
		if waiting > 0 || err != nil {
			// Receipts usually follow within milliseconds: look again
			// soon, then less and less often.
			quick = min(max(2*quick, 5*time.Millisecond), 2*time.Second)
			wait = min(wait, quick)
		} else {
			quick = 0
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is the wait after failures consecutive errors: the interval,
// doubled at each failure, at most limit (but never under the interval).
func backoff(interval time.Duration, failures int, limit time.Duration) time.Duration {
	d := interval
	for i := 0; i < failures && d < limit; i++ {
		d *= 2
	}
	return max(min(d, limit), interval)
}

// Summary counts the connector's items.
type Summary struct {
	Tickets     int `json:"tickets"`
	Awaiting    int `json:"awaiting"`
	Processed   int `json:"processed"`
	Unprocessed int `json:"unprocessed"`
	// Unreported items were listed for longer than the platform's
	// reporting window when first seen: applied, never reported.
	Unreported int `json:"unreported"`
	// LastSuccess is when the platform last answered a whole poll.
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// Summary returns the counts of the connector's state.
func (c *Connector) Summary() Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Summary{Tickets: len(c.st.Tickets), LastSuccess: c.st.LastSuccess}
	for _, rec := range c.st.Tickets {
		for _, it := range rec.Items {
			switch stateOf(it) {
			case string(Processed):
				s.Processed++
			case string(Unprocessed):
				s.Unprocessed++
			case "unreported":
				s.Unreported++
			default:
				s.Awaiting++
			}
		}
	}
	return s
}

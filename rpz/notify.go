package rpz

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Notification attempts: a secondary that does not answer is told again
// after 0.5 s, 1 s, 2 s and 4 s, then left to its SOA refresh timer.
const (
	notifyAttempts = 5
	notifyTimeout  = time.Second
	notifyBackoff  = 500 * time.Millisecond
)

// notifier sends NOTIFY (RFC 1996) to the secondaries. A newer serial of
// a zone supersedes the retries of an older one.
type notifier struct {
	ctx     context.Context
	targets []string
	local   *net.UDPAddr // source address, so that secondaries see the primary's
	log     *slog.Logger
	mu      sync.Mutex
	pending map[string]context.CancelFunc // by zone and target
	wg      sync.WaitGroup
}

func newNotifier(ctx context.Context, targets, listen []string, log *slog.Logger) *notifier {
	n := &notifier{ctx: ctx, targets: targets, log: log, pending: map[string]context.CancelFunc{}}
	// Secondaries accept NOTIFY from their primaries' addresses: send from
	// the first listen address unless it is a wildcard.
	if len(listen) > 0 {
		if host, _, err := net.SplitHostPort(listen[0]); err == nil {
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				n.local = &net.UDPAddr{IP: ip}
			}
		}
	}
	return n
}

// notify tells every secondary that zone is now at soa's serial.
func (n *notifier) notify(zone string, soa *dns.SOA) {
	for _, t := range n.targets {
		key := zone + " " + t
		ctx, cancel := context.WithCancel(n.ctx)
		n.mu.Lock()
		if prev := n.pending[key]; prev != nil {
			prev()
		}
		n.pending[key] = cancel
		n.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer cancel()
			n.send(ctx, zone, soa, t)
		}()
	}
}

func (n *notifier) send(ctx context.Context, zone string, soa *dns.SOA, target string) {
	serial := soa.Serial
	m := new(dns.Msg)
	m.SetNotify(zone)
	m.Answer = []dns.RR{soa}
	c := &dns.Client{Net: "udp", Timeout: notifyTimeout}
	if n.local != nil {
		c.Dialer = &net.Dialer{Timeout: notifyTimeout, LocalAddr: n.local}
	}
	wait := notifyBackoff
	var err error
	for attempt := 1; attempt <= notifyAttempts; attempt++ {
		var resp *dns.Msg
		resp, _, err = c.ExchangeContext(ctx, m, target)
		if ctx.Err() != nil {
			return
		}
		if err == nil && resp.Opcode == dns.OpcodeNotify {
			n.log.Debug("rpz notify acknowledged", "zone", zone, "serial", serial, "secondary", target, "rcode", dns.RcodeToString[resp.Rcode])
			return
		}
		if err == nil {
			err = fmt.Errorf("answer with opcode %s", dns.OpcodeToString[resp.Opcode])
		}
		if attempt == notifyAttempts {
			break
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait *= 2
	}
	n.log.Warn("rpz notify unanswered; the secondary will catch up at its SOA refresh", "zone", zone, "serial", serial, "secondary", target, "attempts", notifyAttempts, "err", err)
}

// wait returns when every notification has ended; the context given to
// newNotifier must be cancelled first.
func (n *notifier) wait() { n.wg.Wait() }

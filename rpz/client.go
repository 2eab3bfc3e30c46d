package rpz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Client fetches policy zones from a primary: writ's RPZ endpoint, or any
// server that transfers them.
type Client struct {
	// Server is the primary's address, host:port.
	Server string
	// Key, if set, signs the requests; the answers must then be signed too.
	Key *TSIGKey
	// Timeout bounds each exchange. Default 10 s.
	Timeout time.Duration
}

// Transferred is the answer to a transfer request.
type Transferred struct {
	// SOA is the zone's SOA at the serial transferred.
	SOA *dns.SOA
	// Incremental is true when the primary sent the changes since the
	// serial asked for (Removed, Added) rather than the whole zone
	// (Records). An incremental answer with no changes means the serial
	// asked for is current.
	Incremental bool
	// Records is the whole zone after its SOA, for a full transfer.
	Records []dns.RR
	// Removed and Added are the records the changes removed and added, in
	// order, for an incremental transfer.
	Removed, Added []dns.RR
}

// SOA asks the primary for the zone's SOA record.
func (c *Client) SOA(ctx context.Context, zone string) (*dns.SOA, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	msgs, err := c.exchange(ctx, m, false)
	if err != nil {
		return nil, err
	}
	for _, rr := range msgs[0].Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa, nil
		}
	}
	return nil, fmt.Errorf("%s: no SOA for %s in the answer", c.Server, zone)
}

// AXFR transfers the whole zone.
func (c *Client) AXFR(ctx context.Context, zone string) (*Transferred, error) {
	m := new(dns.Msg)
	m.SetAxfr(dns.Fqdn(zone))
	return c.transfer(ctx, m)
}

// IXFR asks for the changes since serial; the primary may answer with the
// whole zone instead (Transferred.Incremental is then false).
func (c *Client) IXFR(ctx context.Context, zone string, serial uint32) (*Transferred, error) {
	m := new(dns.Msg)
	m.SetIxfr(dns.Fqdn(zone), serial, ".", ".")
	return c.transfer(ctx, m)
}

func (c *Client) transfer(ctx context.Context, q *dns.Msg) (*Transferred, error) {
	msgs, err := c.exchange(ctx, q, true)
	if err != nil {
		return nil, err
	}
	var rrs []dns.RR
	for _, m := range msgs {
		rrs = append(rrs, m.Answer...)
	}
	return parseTransfer(rrs)
}

// parseTransfer reads a transfer's record stream (RFC 1995, RFC 5936).
func parseTransfer(rrs []dns.RR) (*Transferred, error) {
	if len(rrs) == 0 {
		return nil, errors.New("empty transfer")
	}
	first, ok := rrs[0].(*dns.SOA)
	if !ok {
		return nil, errors.New("transfer does not start with a SOA record")
	}
	t := &Transferred{SOA: first}
	if len(rrs) == 1 {
		// The serial asked for is current.
		t.Incremental = true
		return t, nil
	}
	if _, ok := rrs[1].(*dns.SOA); !ok {
		t.Records = rrs[1 : len(rrs)-1]
		return t, nil
	}
	t.Incremental = true
	adding := true // the first SOA starts the removals
	for _, rr := range rrs[1 : len(rrs)-1] {
		if _, ok := rr.(*dns.SOA); ok {
			adding = !adding
			continue
		}
		if adding {
			t.Added = append(t.Added, rr)
		} else {
			t.Removed = append(t.Removed, rr)
		}
	}
	return t, nil
}

// complete reports whether a transfer's record stream has ended: the
// current SOA alone, or the current SOA again where a change or the end
// may start.
func complete(rrs []dns.RR, ixfr bool) bool {
	if len(rrs) == 0 {
		return false
	}
	first, ok := rrs[0].(*dns.SOA)
	if !ok {
		return true // an error, which parseTransfer reports
	}
	if len(rrs) == 1 {
		return ixfr
	}
	if _, ok := rrs[1].(*dns.SOA); !ok || !ixfr {
		last, ok := rrs[len(rrs)-1].(*dns.SOA)
		return ok && last.Serial == first.Serial
	}
	// Incremental: SOA(new), then (SOA(old) removed… SOA(next) added…)*,
	// then SOA(new) where the next change's SOA(old) would be.
	soas := 0
	for i, rr := range rrs[1:] {
		soa, ok := rr.(*dns.SOA)
		if !ok {
			continue
		}
		if soas%2 == 0 && soa.Serial == first.Serial {
			return i == len(rrs)-2
		}
		soas++
	}
	return false
}

// exchange sends q and reads every message of the answer, checking their
// signatures when the client has a key.
func (c *Client) exchange(ctx context.Context, q *dns.Msg, stream bool) ([]*dns.Msg, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", c.Server)
	if err != nil {
		return nil, fmt.Errorf("rpz server %s: %w", c.Server, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	co := &dns.Conn{Conn: conn}

	var mac string
	if c.Key != nil {
		alg, err := tsigAlgorithm(c.Key.Algorithm)
		if err != nil {
			return nil, err
		}
		q.SetTsig(dns.Fqdn(strings.ToLower(c.Key.Name)), alg, 300, time.Now().Unix())
		var b []byte
		b, mac, err = dns.TsigGenerate(q, c.Key.Secret, "", false)
		if err != nil {
			return nil, fmt.Errorf("signing the request: %w", err)
		}
		if _, err := co.Write(b); err != nil {
			return nil, fmt.Errorf("rpz server %s: %w", c.Server, err)
		}
	} else if err := co.WriteMsg(q); err != nil {
		return nil, fmt.Errorf("rpz server %s: %w", c.Server, err)
	}

	var (
		msgs []*dns.Msg
		rrs  []dns.RR
		buf  = make([]byte, dns.MaxMsgSize)
		ixfr = q.Question[0].Qtype == dns.TypeIXFR
	)
	for {
		n, err := co.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("rpz server %s: %w", c.Server, err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			return nil, fmt.Errorf("rpz server %s: %w", c.Server, err)
		}
		if m.Id != q.Id {
			return nil, fmt.Errorf("rpz server %s: answer to another query", c.Server)
		}
		if c.Key != nil {
			t := m.IsTsig()
			if t == nil {
				return nil, fmt.Errorf("rpz server %s: unsigned answer (%s) to a signed request", c.Server, dns.RcodeToString[m.Rcode])
			}
			if t.Error != 0 {
				return nil, fmt.Errorf("rpz server %s: %s, TSIG error %s", c.Server, dns.RcodeToString[m.Rcode], dns.RcodeToString[int(t.Error)])
			}
			if err := dns.TsigVerify(buf[:n], c.Key.Secret, mac, len(msgs) > 0); err != nil {
				return nil, fmt.Errorf("rpz server %s: bad signature on the answer: %w", c.Server, err)
			}
			mac = t.MAC
		}
		if m.Rcode != dns.RcodeSuccess {
			return nil, fmt.Errorf("rpz server %s: %s %s: %s", c.Server, dns.TypeToString[q.Question[0].Qtype], q.Question[0].Name, dns.RcodeToString[m.Rcode])
		}
		msgs = append(msgs, m)
		if !stream {
			return msgs, nil
		}
		rrs = append(rrs, m.Answer...)
		if complete(rrs, ixfr) {
			return msgs, nil
		}
	}
}

// Prefixes returns the prefixes of the rpz-ip triggers among the records
// of zone: the CNAME records whose owner ends in "rpz-ip.<zone>".
func Prefixes(zone string, records []dns.RR) []netip.Prefix {
	suffix := "." + ipLabel + "." + dns.Fqdn(strings.ToLower(zone))
	var out []netip.Prefix
	for _, rr := range records {
		if rr.Header().Rrtype != dns.TypeCNAME {
			continue
		}
		owner := strings.ToLower(rr.Header().Name)
		rel, ok := strings.CutSuffix(owner, suffix)
		if !ok {
			continue
		}
		if p, err := ParseIPTrigger(rel); err == nil {
			out = append(out, p)
		}
	}
	return out
}

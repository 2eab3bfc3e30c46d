package rpz

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/policy"
)

// orderLabel is the label under a policy zone's origin that mirrors the
// triggers with TXT records naming the orders behind them. A DNS name
// cannot hold a CNAME and other data, so the order records cannot sit at
// the trigger itself; under "_orders" they are triggers for names in a
// top-level domain that cannot exist, so they never rewrite a real
// answer, and an in-scope client can ask its resolver for them.
const orderLabel = "_orders"

// Action is what a resolver answers to a query that hits a trigger.
type Action string

// Actions. Each is a CNAME record, as draft-vixie-dnsop-dns-rpz defines.
const (
	// NXDomain answers NXDOMAIN ("CNAME .").
	NXDomain Action = "nxdomain"
	// NoData answers NOERROR with no records ("CNAME *.").
	NoData Action = "nodata"
	// WalledGarden answers a CNAME to an information page's name.
	WalledGarden Action = "cname"
)

// ParseAction parses an action name: nxdomain, nodata or cname.
func ParseAction(s string) (Action, error) {
	switch a := Action(strings.ToLower(s)); a {
	case NXDomain, NoData, WalledGarden:
		return a, nil
	}
	return "", fmt.Errorf("%q is not an RPZ action: want nxdomain, nodata or cname", s)
}

// rule is one trigger of a policy zone: its owner name relative to the
// origin and the ids of the orders that put it there, sorted.
type rule struct {
	owner string
	ids   []string
}

// ownerRoom is the longest trigger owner, relative to the origin, whose
// records fit in the zones named by template: the order records' owner,
// trigger + "._orders." + origin, must stay within the 255 octets of a
// domain name (254 characters written with its final dot). Every
// jurisdiction's origin has the same length.
func ownerRoom(template string) int {
	return 254 - len("."+orderLabel+".") - len(ZoneName(template, jurisdiction.MustParse("FR")))
}

// nameTrigger reports whether name can be published as a name trigger
// of owner length at most room. A name whose last label is one by which
// RPZ marks address and name-server triggers (rpz-ip, rpz-nsip,
// rpz-nsdname, rpz-client-ip) would be read as such a trigger, and no
// such top-level domain exists. A longer name would make the zone
// unloadable, and every transfer of it fail for all of the
// jurisdiction's orders; such a name (over about 230 octets) is left to
// writ's own enforcement points.
func nameTrigger(name string, room int) bool {
	if len(name) > room {
		return false
	}
	switch name[strings.LastIndexByte(name, '.')+1:] {
	case ipLabel, "rpz-nsip", "rpz-nsdname", "rpz-client-ip":
		return false
	}
	return true
}

// buildRules lists the triggers of each jurisdiction's zone, sorted by
// owner name, in one pass over the snapshot: every name blocked there
// (exact, and "*." for its subdomains) and every prefix blocked there.
// room is the longest owner the zones can hold (ownerRoom).
func buildRules(s *policy.Snapshot, codes []jurisdiction.Code, room int) map[jurisdiction.Code][]rule {
	out := make(map[jurisdiction.Code][]rule, len(codes))
	// Most rules share their order set: one slice per distinct set.
	interned := map[string][]string{}
	add := func(owner string, orders []*policy.OrderRef) {
		for _, c := range codes {
			ids := idsFor(orders, c)
			if ids == nil {
				continue
			}
			key := strings.Join(ids, " ")
			if same, ok := interned[key]; ok {
				ids = same
			} else {
				interned[key] = ids
			}
			out[c] = append(out[c], rule{owner: owner, ids: ids})
		}
	}
	s.EachName(func(name string, self, below []*policy.OrderRef) bool {
		name = strings.ToLower(name)
		if nameTrigger(name, room) {
			add(name, self)
		}
		if len(below) > 0 && nameTrigger("*."+name, room) {
			add("*."+name, below)
		}
		return true
	})
	s.EachPrefix(func(p netip.Prefix, orders []*policy.OrderRef) bool {
		add(IPTrigger(p), orders)
		return true
	})
	for c, rules := range out {
		slices.SortFunc(rules, func(a, b rule) int { return cmp.Compare(a.owner, b.owner) })
		out[c] = rules
	}
	return out
}

// idsFor returns the sorted, distinct ids of the orders whose scope
// includes c, or nil.
func idsFor(orders []*policy.OrderRef, c jurisdiction.Code) []string {
	var ids []string
	for _, o := range orders {
		if o.Scope.Has(c) {
			ids = append(ids, o.ID)
		}
	}
	if ids == nil {
		return nil
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// change is one rule's part in a delta: the trigger itself (when the
// rule appears or disappears) and order ids gained or lost.
type change struct {
	rule
	trigger bool
}

// delta turns the zone at serial from into the zone at serial to.
type delta struct {
	from, to         uint32
	removed, added   []change
	removedN, addedN int // records, for logs
}

// diff compares two sorted rule lists.
func diff(old, cur []rule) (removed, added []change) {
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || (i < len(old) && old[i].owner < cur[j].owner):
			removed = append(removed, change{old[i], true})
			i++
		case i == len(old) || cur[j].owner < old[i].owner:
			added = append(added, change{cur[j], true})
			j++
		default:
			if gone := minus(old[i].ids, cur[j].ids); gone != nil {
				removed = append(removed, change{rule{old[i].owner, gone}, false})
			}
			if gained := minus(cur[j].ids, old[i].ids); gained != nil {
				added = append(added, change{rule{cur[j].owner, gained}, false})
			}
			i++
			j++
		}
	}
	return removed, added
}

// minus returns the elements of sorted a that are not in sorted b.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			out = append(out, s)
		}
	}
	return out
}

func equalRules(a, b []rule) bool {
	return slices.EqualFunc(a, b, func(x, y rule) bool { return x.owner == y.owner && slices.Equal(x.ids, y.ids) })
}

// version is one serial of a zone, immutable once published: transfers
// read it without a lock while the next one is built.
type version struct {
	serial uint32
	// covers is the newest policy version whose zone content this is:
	// later snapshots that leave the zone unchanged raise it, so that a
	// secondary holding this serial is known to enforce them too.
	covers atomic.Uint64
	rules  []rule
	// deltas lead to this serial, oldest first: the last one's to is
	// serial, and each one's from is the previous one's to.
	deltas []*delta
}

// since returns the deltas from serial to v's, and whether v can answer
// incrementally: false when serial is older than the history kept, or
// unknown. Equal serials give no deltas and true.
func (v *version) since(serial uint32) ([]*delta, bool) {
	if serial == v.serial {
		return nil, true
	}
	for i, d := range v.deltas {
		if d.from == serial {
			return v.deltas[i:], true
		}
	}
	return nil, false
}

// zone is the policy zone of one jurisdiction.
type zone struct {
	code   jurisdiction.Code
	origin string // fully qualified, lower case
	cur    atomic.Pointer[version]
}

// update publishes rules as the zone's next serial, keeping at most
// history deltas, unless they equal the current rules. Only one goroutine
// updates a zone.
func (z *zone) update(rules []rule, history int, r *renderer) (*version, bool) {
	cur := z.cur.Load()
	if equalRules(cur.rules, rules) {
		return cur, false
	}
	d := &delta{from: cur.serial, to: cur.serial + 1}
	d.removed, d.added = diff(cur.rules, rules)
	for _, c := range d.removed {
		d.removedN += r.count(c)
	}
	for _, c := range d.added {
		d.addedN += r.count(c)
	}
	var deltas []*delta
	if history > 0 {
		keep := cur.deltas
		if len(keep) >= history {
			keep = keep[len(keep)-history+1:]
		}
		deltas = append(slices.Clip(keep), d)
	}
	next := &version{serial: d.to, rules: rules, deltas: deltas}
	z.cur.Store(next)
	return next, true
}

// renderer turns rules into resource records.
type renderer struct {
	target    string // the action's CNAME target
	ttl       uint32
	soa       dns.SOA // all but the name and serial
	recordURL func(id string) string
}

func (r *renderer) header(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: r.ttl}
}

// soaRR returns the zone's SOA record at serial.
func (r *renderer) soaRR(origin string, serial uint32) *dns.SOA {
	soa := r.soa
	soa.Hdr = r.header(origin, dns.TypeSOA)
	soa.Serial = serial
	return &soa
}

// apex returns the records at the origin other than the SOA.
func (r *renderer) apex(origin string) []dns.RR {
	// The NS record only makes the zone valid: policy zones are never
	// delegated, and "localhost." points nowhere else.
	return []dns.RR{&dns.NS{Hdr: r.header(origin, dns.TypeNS), Ns: "localhost."}}
}

// records appends the records of a change of zone origin to out.
func (r *renderer) records(out []dns.RR, origin string, c change) []dns.RR {
	if c.trigger {
		out = append(out, &dns.CNAME{Hdr: r.header(c.owner+"."+origin, dns.TypeCNAME), Target: r.target})
	}
	name := c.owner + "." + orderLabel + "." + origin
	for _, id := range c.ids {
		txt := []string{id}
		if r.recordURL != nil {
			txt = append(txt, r.recordURL(id))
		}
		out = append(out, &dns.TXT{Hdr: r.header(name, dns.TypeTXT), Txt: txt})
	}
	return out
}

// count is the number of records of a change.
func (r *renderer) count(c change) int {
	n := len(c.ids)
	if c.trigger {
		n++
	}
	return n
}

// eachRecord calls f for every record of version v of the zone at
// origin, SOA first and not repeated at the end, until f returns false.
func (r *renderer) eachRecord(origin string, v *version, f func(dns.RR) bool) {
	if !f(r.soaRR(origin, v.serial)) {
		return
	}
	for _, rr := range r.apex(origin) {
		if !f(rr) {
			return
		}
	}
	var buf []dns.RR
	for _, ru := range v.rules {
		buf = r.records(buf[:0], origin, change{ru, true})
		for _, rr := range buf {
			if !f(rr) {
				return
			}
		}
	}
}

// writeZone writes version v of the zone at origin as a zone file.
func (r *renderer) writeZone(w io.Writer, origin string, v *version, comment string) error {
	var err error
	if comment != "" {
		for _, line := range strings.Split(comment, "\n") {
			if _, err = fmt.Fprintf(w, "; %s\n", line); err != nil {
				return err
			}
		}
	}
	r.eachRecord(origin, v, func(rr dns.RR) bool {
		_, err = fmt.Fprintln(w, rr.String())
		return err == nil
	})
	return err
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/rpz"
)

func init() {
	register(command{name: "rpz", rank: 40, run: runRPZ,
		usage: []string{"writ rpz dump --scope CC        a jurisdiction's response policy zone, as a zone file"}})
	register(command{name: "ipset", rank: 41, run: runIPSet,
		usage: []string{"writ ipset --scope CC           the prefixes blocked in a jurisdiction, as nftables sets"}})
}

// defaultRPZServer is where the feed commands look for writ's feed: the
// address rpz/README.md and writ.example.yaml suggest for rpz.listen.
const defaultRPZServer = "127.0.0.1:5354"

// feedFlags are the flags of the commands that read writ's RPZ feed.
type feedFlags struct {
	server, zone, tsig, scope string
	template                  string
}

func addFeedFlags(fs *cmdFlags) *feedFlags {
	f := &feedFlags{}
	fs.StringVar(&f.scope, "scope", "", "jurisdiction whose zone to read (ISO 3166-1 alpha-2 `code`); required")
	fs.StringVar(&f.server, "server", envOr("WRIT_RPZ", defaultRPZServer), "writ's RPZ feed `address` (rpz.listen; env WRIT_RPZ)")
	fs.StringVar(&f.template, "zone-template", rpz.DefaultZoneTemplate, "zone name `template` of the server (rpz.zone); {scope} is the lower-case code")
	fs.StringVar(&f.zone, "zone", "", "zone `name` to read, instead of the one --zone-template gives")
	fs.StringVar(&f.tsig, "tsig", os.Getenv("WRIT_RPZ_TSIG"), "sign transfers with this key, `[algorithm:]name:secret` as dig -y takes it (env WRIT_RPZ_TSIG)")
	return f
}

// client returns the feed client and the zone the flags name.
func (f *feedFlags) client() (*rpz.Client, string, error) {
	if f.scope == "" && f.zone == "" {
		return nil, "", usageError("--scope is required (the jurisdiction whose zone to read, such as FR)")
	}
	zone := f.zone
	if zone == "" {
		code, err := jurisdiction.Parse(f.scope)
		if err != nil {
			return nil, "", usageError("--scope: %v", err)
		}
		zone = rpz.ZoneName(f.template, code)
	}
	c := &rpz.Client{Server: f.server}
	if f.tsig != "" {
		parts := strings.Split(f.tsig, ":")
		switch len(parts) {
		case 2:
			c.Key = &rpz.TSIGKey{Name: parts[0], Secret: parts[1]}
		case 3:
			c.Key = &rpz.TSIGKey{Algorithm: parts[0], Name: parts[1], Secret: parts[2]}
		default:
			return nil, "", usageError("--tsig: want [algorithm:]name:secret, such as hmac-sha256:writ-xfr:c2VjcmV0")
		}
	}
	return c, dns.Fqdn(zone), nil
}

const rpzHelp = `
Usage: writ rpz dump --scope CC [flags]

Transfers a jurisdiction's response policy zone from a running writ (its
RPZ feed, rpz.listen in the configuration) by AXFR, and writes it as a zone
file that BIND, Unbound and PowerDNS Recursor load as it is. This host must
be allowed to transfer (rpz.allow_transfer: loopback by default), with a
TSIG key if the server requires one.

Examples:
  writ rpz dump --scope FR > fr.rpz.writ.zone
  named-checkzone fr.rpz.writ fr.rpz.writ.zone
  writ rpz dump --scope FR --server 192.0.2.10:5354 --tsig hmac-sha256:writ-xfr:c2VjcmV0
`

func runRPZ(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, strings.TrimLeft(rpzHelp, "\n"))
		if len(args) == 0 {
			return usageError("rpz needs a subcommand: dump")
		}
		return nil
	}
	if args[0] != "dump" {
		return usageError("unknown rpz subcommand %q: want dump", args[0])
	}
	fs := newFlags("rpz dump", rpzHelp, stdout, stderr)
	feed := addFeedFlags(fs)
	if err := parseNoArgs(fs, args[1:], "rpz dump"); err != nil {
		return err
	}
	c, zone, err := feed.client()
	if err != nil {
		return err
	}
	t, err := c.AXFR(context.Background(), zone)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "; %s serial %d, transferred from writ at %s on %s\n", zone, t.SOA.Serial, c.Server, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintln(stdout, t.SOA.String())
	for _, rr := range t.Records {
		fmt.Fprintln(stdout, rr.String())
	}
	return nil
}

const ipsetHelp = `
Usage: writ ipset --scope CC --format nftables [flags]

Prints the IP prefixes blocked in a jurisdiction as an nftables script that
fills two interval sets (IPv4 and IPv6) of a table: "nft -f" applies it at
once, replacing the sets' content. The prefixes are those of the rpz-ip
triggers of the jurisdiction's zone, read from a running writ's RPZ feed
(see writ rpz dump); a prefix inside another blocked prefix is left out,
since an interval set cannot hold both.

With --follow, the command then stays, checks the zone's serial every
--interval, and prints for each change only "delete element" and
"add element" commands, one per line (fetched by IXFR).

The sets only list addresses. Which clients they apply to is your rule's
business: match the jurisdiction's client networks too, for example
  nft add rule inet writ forward ip saddr @fr_clients ip daddr @writ_fr_v4 reject

Examples:
  writ ipset --scope FR --format nftables | nft -f -
  writ ipset --scope FR --format nftables --follow |
    while IFS= read -r cmd; do case $cmd in '#'*) ;; *) nft "$cmd" ;; esac; done
`

func runIPSet(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ipset", ipsetHelp, stdout, stderr)
	feed := addFeedFlags(fs)
	format := fs.String("format", "nftables", "output `format`: nftables")
	table := fs.String("table", "inet writ", "nftables `family and table` holding the sets")
	set := fs.String("set", "", "set name `prefix`: the sets are PREFIX_v4 and PREFIX_v6 (default writ_<scope>)")
	follow := fs.Bool("follow", false, "stay, and print the changes as they happen")
	interval := fs.Duration("interval", 2*time.Second, "with --follow, how often to check the zone's serial")
	if err := parseNoArgs(fs, args, "ipset"); err != nil {
		return err
	}
	if *format != "nftables" {
		return usageError("--format %q: only nftables is supported", *format)
	}
	if len(strings.Fields(*table)) != 2 {
		return usageError("--table %q: want a family and a name, such as \"inet writ\"", *table)
	}
	if *interval <= 0 {
		return usageError("--interval must be positive")
	}
	c, zone, err := feed.client()
	if err != nil {
		return err
	}
	if *set == "" {
		name := feed.scope
		if name == "" {
			name, _, _ = strings.Cut(zone, ".")
		}
		*set = "writ_" + strings.ToLower(name)
	}
	nft := nftSets{table: strings.Join(strings.Fields(*table), " "), v4: *set + "_v4", v6: *set + "_v6"}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t, err := c.AXFR(ctx, zone)
	if err != nil {
		return err
	}
	triggers := map[netip.Prefix]bool{}
	for _, p := range rpz.Prefixes(zone, t.Records) {
		triggers[p] = true
	}
	serial := t.SOA.Serial
	current := covering(triggers)
	nft.full(stdout, zone, serial, current)
	if !*follow {
		return nil
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		soa, err := c.SOA(ctx, zone)
		if err != nil {
			fmt.Fprintln(stderr, "writ ipset:", err)
			continue
		}
		if soa.Serial == serial {
			continue
		}
		t, err := c.IXFR(ctx, zone, serial)
		if err != nil {
			fmt.Fprintln(stderr, "writ ipset:", err)
			continue
		}
		if t.Incremental {
			for _, p := range rpz.Prefixes(zone, t.Removed) {
				delete(triggers, p)
			}
			for _, p := range rpz.Prefixes(zone, t.Added) {
				triggers[p] = true
			}
		} else {
			clear(triggers)
			for _, p := range rpz.Prefixes(zone, t.Records) {
				triggers[p] = true
			}
		}
		serial = t.SOA.Serial
		next := covering(triggers)
		nft.changes(stdout, current, next)
		current = next
	}
}

// covering returns the prefixes not inside another one, sorted.
func covering(set map[netip.Prefix]bool) []netip.Prefix {
	all := make([]netip.Prefix, 0, len(set))
	for p := range set {
		all = append(all, p)
	}
	slices.SortFunc(all, func(a, b netip.Prefix) int { return a.Compare(b) })
	var out []netip.Prefix
	for _, p := range all {
		// Sorted by address then length, a prefix inside another comes
		// after it, with no prefix outside it in between.
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// nftSets writes nftables commands for a jurisdiction's two sets.
type nftSets struct {
	table, v4, v6 string
}

func (n nftSets) setOf(p netip.Prefix) string {
	if p.Addr().Is4() {
		return n.v4
	}
	return n.v6
}

// full writes the script that creates the sets if need be and replaces
// their content with prefixes.
func (n nftSets) full(w io.Writer, zone string, serial uint32, prefixes []netip.Prefix) {
	fmt.Fprintf(w, "# prefixes blocked by %s serial %d, from writ\n", zone, serial)
	fmt.Fprintf(w, "add table %s\n", n.table)
	fmt.Fprintf(w, "add set %s %s { type ipv4_addr; flags interval; }\n", n.table, n.v4)
	fmt.Fprintf(w, "add set %s %s { type ipv6_addr; flags interval; }\n", n.table, n.v6)
	fmt.Fprintf(w, "flush set %s %s\n", n.table, n.v4)
	fmt.Fprintf(w, "flush set %s %s\n", n.table, n.v6)
	n.elements(w, "add", prefixes)
}

// changes writes the commands that turn the sets from old into cur.
func (n nftSets) changes(w io.Writer, old, cur []netip.Prefix) {
	var gone, added []netip.Prefix
	for _, p := range old {
		if _, found := slices.BinarySearchFunc(cur, p, netip.Prefix.Compare); !found {
			gone = append(gone, p)
		}
	}
	for _, p := range cur {
		if _, found := slices.BinarySearchFunc(old, p, netip.Prefix.Compare); !found {
			added = append(added, p)
		}
	}
	// Deletions first: an added prefix may cover a deleted one.
	n.elements(w, "delete", gone)
	n.elements(w, "add", added)
}

func (n nftSets) elements(w io.Writer, verb string, prefixes []netip.Prefix) {
	for _, set := range []string{n.v4, n.v6} {
		var list []string
		for _, p := range prefixes {
			if n.setOf(p) == set {
				list = append(list, p.String())
			}
		}
		if len(list) > 0 {
			fmt.Fprintf(w, "%s element %s %s { %s }\n", verb, n.table, set, strings.Join(list, ", "))
		}
	}
}

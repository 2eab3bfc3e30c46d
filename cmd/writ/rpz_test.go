package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/rpz"
)

// feedOrder is an active French order of the given targets.
func feedOrder(id string, targets ...order.Target) *order.Order {
	for i := range targets {
		targets[i].State = order.TargetActive
	}
	now := time.Now()
	return &order.Order{
		ID: id, Authority: order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"},
		Jurisdiction: []string{"FR"}, Effective: now.Add(-time.Hour), Expires: now.Add(time.Hour), Received: now.Add(-time.Hour),
		Targets: targets,
	}
}

// feed runs an RPZ feed in this process and returns its address.
func feed(t *testing.T, h *policy.Holder) string {
	t.Helper()
	s, err := rpz.New(rpz.Config{Listen: []string{"127.0.0.1:0"}, Scopes: []jurisdiction.Code{jurisdiction.MustParse("FR")}, FirstSerial: 7}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s.Addrs()[0].String()
}

func compile(orders ...*order.Order) *policy.Snapshot {
	return policy.Compile(orders, time.Now(), 1, nil)
}

func TestRPZDump(t *testing.T) {
	h := policy.NewHolder(compile(feedOrder("o1", order.Target{FQDN: "motogpstream.me", Subdomains: true}, order.Target{IP: "203.0.113.0/24"})))
	addr := feed(t, h)
	var out, errb bytes.Buffer
	if err := run([]string{"rpz", "dump", "--scope", "fr", "--server", addr}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, want := range []string{
		"; fr.rpz.writ. serial 7, transferred from writ at " + addr,
		"fr.rpz.writ.\t60\tIN\tSOA\tlocalhost. hostmaster.localhost. 7 ",
		"*.motogpstream.me.fr.rpz.writ.\t60\tIN\tCNAME\t.",
		"24.0.113.0.203.rpz-ip.fr.rpz.writ.\t60\tIN\tCNAME\t.",
		"motogpstream.me._orders.fr.rpz.writ.\t60\tIN\tTXT\t\"o1\"",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dump lacks %q:\n%s", want, out.String())
		}
	}
	checker, err := exec.LookPath("named-checkzone")
	if err != nil {
		t.Fatal("named-checkzone is missing: install Debian's bind9-utils (./test.sh does)")
	}
	file := filepath.Join(t.TempDir(), "fr.zone")
	os.WriteFile(file, out.Bytes(), 0o600)
	if b, err := exec.Command(checker, "-k", "fail", "fr.rpz.writ", file).CombinedOutput(); err != nil {
		t.Errorf("named-checkzone: %v\n%s", err, b)
	}
}

func TestFeedCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"rpz"}, "subcommand"},
		{[]string{"rpz", "load"}, `"load"`},
		{[]string{"rpz", "dump"}, "--scope"},
		{[]string{"rpz", "dump", "--scope", "XX"}, `"XX"`},
		{[]string{"rpz", "dump", "--scope", "FR", "--tsig", "secret"}, "--tsig"},
		{[]string{"ipset", "--scope", "FR", "--format", "iptables"}, `"iptables"`},
		{[]string{"ipset", "--scope", "FR", "--table", "writ"}, "--table"},
		{[]string{"ipset"}, "--scope"},
	} {
		var out, errb bytes.Buffer
		err := run(tc.args, &out, &errb)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%q: %v, want a usage error mentioning %s", tc.args, err, tc.mention)
		}
	}
	// Nothing listening: an error that says where it looked.
	var out, errb bytes.Buffer
	err := run([]string{"rpz", "dump", "--scope", "FR", "--server", "127.0.0.1:1"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("no server: %v", err)
	}
}

func TestCovering(t *testing.T) {
	set := map[netip.Prefix]bool{}
	for _, p := range []string{"203.0.113.0/24", "203.0.113.5/32", "198.51.100.128/25", "198.51.100.0/24", "192.0.2.1/32", "2001:db8::/32", "2001:db8:1::/48", "2001:db9::/48"} {
		set[netip.MustParsePrefix(p)] = true
	}
	var got []string
	for _, p := range covering(set) {
		got = append(got, p.String())
	}
	want := []string{"192.0.2.1/32", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "2001:db9::/48"}
	if !slices.Equal(got, want) {
		t.Errorf("covering = %v, want %v", got, want)
	}
}

func TestIPSet(t *testing.T) {
	h := policy.NewHolder(compile(feedOrder("o1", order.Target{IP: "203.0.113.0/24"}, order.Target{IP: "203.0.113.7/32"}, order.Target{IP: "2001:db8:1::/48"}, order.Target{FQDN: "a.example"})))
	addr := feed(t, h)
	var out, errb bytes.Buffer
	if err := run([]string{"ipset", "--scope", "FR", "--format", "nftables", "--server", addr}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	want := `# prefixes blocked by fr.rpz.writ. serial 7, from writ
add table inet writ
add set inet writ writ_fr_v4 { type ipv4_addr; flags interval; }
add set inet writ writ_fr_v6 { type ipv6_addr; flags interval; }
flush set inet writ writ_fr_v4
flush set inet writ writ_fr_v6
add element inet writ writ_fr_v4 { 203.0.113.0/24 }
add element inet writ writ_fr_v6 { 2001:db8:1::/48 }
`
	if out.String() != want {
		t.Errorf("ipset:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestIPSetFollow runs writ ipset --follow as a process and changes the
// policy under it: it prints only the changes.
func TestIPSetFollow(t *testing.T) {
	first := feedOrder("o1", order.Target{IP: "203.0.113.0/24"})
	h := policy.NewHolder(compile(first))
	addr := feed(t, h)
	cmd := exec.Command(writBin, "ipset", "--scope", "FR", "--format", "nftables", "--follow", "--interval", "20ms", "--server", addr, "--set", "blocked")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("writ ipset ended before printing %q: %s", want, stderr.String())
				}
				if l == want {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("writ ipset did not print %q: %s", want, stderr.String())
			}
		}
	}
	expect("add element inet writ blocked_v4 { 203.0.113.0/24 }")
	// A wider prefix replaces the narrower one; a new IPv6 prefix appears.
	h.Store(compile(first, feedOrder("o2", order.Target{IP: "203.0.112.0/23"}, order.Target{IP: "2001:db8::/32"})))
	expect("delete element inet writ blocked_v4 { 203.0.113.0/24 }")
	expect("add element inet writ blocked_v4 { 203.0.112.0/23 }")
	expect("add element inet writ blocked_v6 { 2001:db8::/32 }")
	// A revoke: the prefixes go.
	h.Store(compile(first))
	expect("delete element inet writ blocked_v4 { 203.0.112.0/23 }")
	expect("delete element inet writ blocked_v6 { 2001:db8::/32 }")
	expect("add element inet writ blocked_v4 { 203.0.113.0/24 }")
}

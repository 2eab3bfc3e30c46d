package main

// Integration tests of the RPZ feed with real resolvers: writ serve runs as
// a process with its feed on loopback, and Debian's Unbound and BIND 9
// transfer the French zone from it as secondaries, each mapping the client
// 127.0.0.2 to that zone (Unbound by access-control-tag, BIND by a view)
// and forwarding everything else to a local upstream. Their configurations
// are those of rpz/README.md.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/internal/localzone"
	"github.com/writ-project/writ/rpz"
)

// rpzKeySecret is the TSIG key BIND signs its transfers with. Unbound 1.17
// cannot sign transfers, so writ accepts unsigned ones from loopback.
const rpzKeySecret = "c2VjcmV0IGtleSBmb3IgdGhlIHRlc3RzIG9ubHkgMTIzNA=="

// secondary is a resolver running as a secondary of writ's feed.
type secondary struct {
	t      testing.TB
	name   string
	addr   string // where it answers clients, UDP and TCP
	cmd    *exec.Cmd
	done   chan struct{}
	output string // file of its standard output and error
	// xfrLog holds its transfer log, mainLog the rest; incremental and
	// full mark an incremental and a full transfer in xfrLog; loaded
	// matches the line saying it applied a serial.
	xfrLog, mainLog   string
	incremental, full string
	loaded            *regexp.Regexp
}

// freePort returns a loopback port free on UDP and TCP at the time of the
// call, for a server that must be named before it starts.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// daemon finds a resolver's program; the tests need them and never skip.
func daemon(t testing.TB, name, pkg string) string {
	t.Helper()
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s is missing: install Debian's %s package (./test.sh does)", name, pkg)
	return ""
}

// unboundConf is the Unbound configuration of rpz/README.md, with the
// paths and ports of a test.
var unboundConf = template.Must(template.New("unbound").Parse(`server:
  username: ""
  chroot: ""
  directory: "{{.Dir}}"
  pidfile: "{{.Dir}}/unbound.pid"
  use-syslog: no
  logfile: "{{.Dir}}/unbound.log"
  log-time-ascii: yes
  verbosity: {{.Verbosity}}
  interface: 127.0.0.1@{{.Port}}
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  # RPZ needs the respip module.
  module-config: "respip iterator"
  # Clients in France carry the tag "fr", which selects the zone below.
  define-tag: "fr"
  access-control-tag: 127.0.0.2/32 "fr"
remote-control:
  control-enable: no
rpz:
  name: fr.rpz.writ.
  primary: 127.0.0.1@{{.WritPort}}
  zonefile: "{{.Dir}}/fr.rpz.writ.zone"
  tags: "fr"
  rpz-log: yes
  rpz-log-name: "writ-fr"
forward-zone:
  name: "."
  forward-addr: {{.Upstream}}
`))

// namedConf is the BIND 9 configuration of rpz/README.md, with the paths
// and ports of a test.
var namedConf = template.Must(template.New("named").Parse(`options {
  directory "{{.Dir}}";
  pid-file "{{.Dir}}/named.pid";
  session-keyfile "{{.Dir}}/session.key";
  managed-keys-directory "{{.Dir}}";
  listen-on port {{.Port}} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion yes;
  allow-query { 127.0.0.0/8; };
  allow-recursion { 127.0.0.0/8; };
  dnssec-validation no;
  forward only;
  forwarders { {{.UpstreamHost}} port {{.UpstreamPort}}; };
  notify no;
  # BIND releases the SOA checks that NOTIFY triggers at ticks of
  # 10 / serial-query-rate seconds: 500 ms at the default rate of 20.
  serial-query-rate 1000;
};
controls { };
logging {
  channel main { file "{{.Dir}}/named.log"; severity info; print-time yes; print-category yes; };
  channel xfer { file "{{.Dir}}/xfer.log"; severity debug 3; print-time yes; };
  category default { main; };
  category notify { main; };
  category rpz { main; };
  category xfer-in { main; xfer; };
  category lame-servers { null; };
};
key "writ-xfr" {
  algorithm hmac-sha256;
  secret "{{.Secret}}";
};
# Clients in France see the zone's policy.
view "fr" {
  match-clients { 127.0.0.2/32; };
  zone "fr.rpz.writ" {
    type secondary;
    primaries port {{.WritPort}} { 127.0.0.1 key "writ-xfr"; };
    file "fr.rpz.writ.db";
  };
  response-policy { zone "fr.rpz.writ" log yes min-update-interval 0; };
};
# Everyone else: no policy. The zone is shared with this view so that
# writ's NOTIFY, which comes from writ's address and so lands here, is
# heard.
view "default" {
  match-clients { any; };
  zone "fr.rpz.writ" { in-view "fr"; };
};
`))

type resolverConf struct {
	Dir            string
	Port, WritPort int
	Verbosity      int
	Upstream       string
	UpstreamHost   string
	UpstreamPort   string
	Secret         string
}

// startSecondary runs name ("unbound" or "named") on port as a secondary
// of writ's feed at writPort.
func startSecondary(t testing.TB, name string, port, writPort int, upstream string, verbosity int) *secondary {
	t.Helper()
	dir := t.TempDir()
	host, uport, _ := net.SplitHostPort(upstream)
	c := resolverConf{Dir: dir, Port: port, WritPort: writPort, Verbosity: verbosity,
		Upstream: host + "@" + uport, UpstreamHost: host, UpstreamPort: uport, Secret: rpzKeySecret}
	s := &secondary{t: t, name: name, addr: fmt.Sprintf("127.0.0.1:%d", port), done: make(chan struct{}), output: filepath.Join(dir, "output")}
	var (
		tmpl *template.Template
		args []string
		conf = filepath.Join(dir, name+".conf")
	)
	switch name {
	case "unbound":
		tmpl = unboundConf
		args = []string{daemon(t, "unbound", "unbound"), "-d", "-c", conf}
		s.xfrLog, s.mainLog = filepath.Join(dir, "unbound.log"), filepath.Join(dir, "unbound.log")
		s.incremental, s.full = "last IXFR packet", "last AXFR packet"
		s.loaded = regexp.MustCompile(`auth zone fr\.rpz\.writ\. updated to serial (\d+)`)
	case "named":
		tmpl = namedConf
		// Debug level 3 lets the transfer log say whether a transfer was
		// incremental.
		args = []string{daemon(t, "named", "bind9"), "-f", "-d", "3", "-c", conf}
		s.xfrLog, s.mainLog = filepath.Join(dir, "xfer.log"), filepath.Join(dir, "named.log")
		s.incremental, s.full = "got incremental response", "got nonincremental response"
		s.loaded = regexp.MustCompile(`transferred serial (\d+)`)
	}
	f, err := os.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := tmpl.Execute(f, c); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s.cmd = exec.Command(args[0], args[1:]...)
	// named writes its debug output (named.run) to its working directory.
	s.cmd.Dir = dir
	out, err := os.Create(s.output)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the process has its own copy
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

func readText(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func (s *secondary) logs() string {
	b, _ := os.ReadFile(s.xfrLog)
	text := string(b)
	if s.mainLog != s.xfrLog {
		m, _ := os.ReadFile(s.mainLog)
		text += string(m)
	}
	return text
}

// count returns how many lines of the transfer log contain marker.
func (s *secondary) count(marker string) int {
	b, _ := os.ReadFile(s.xfrLog)
	return strings.Count(string(b), marker)
}

// waitSerial polls the secondary's log until it has applied serial.
func (s *secondary) waitSerial(serial uint32) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, m := range s.loaded.FindAllStringSubmatch(s.logs(), -1) {
			if m[1] == strconv.FormatUint(uint64(serial), 10) {
				return
			}
		}
		select {
		case <-s.done:
			s.t.Fatalf("%s exited: %s\n%s", s.name, readText(s.output), s.logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s has not loaded serial %d after 20s:\n%s\n%s", s.name, serial, readText(s.output), s.logs())
		}
	}
}

// resolve asks the secondary for name from a loopback source address.
func (s *secondary) resolve(from, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}}
	r, _, err := c.Exchange(m, s.addr)
	return r, err
}

// until polls the secondary until name, asked from from, gets want
// (an address or an rcode name), and returns how long that took.
func (s *secondary) until(from, name, want string) time.Duration {
	s.t.Helper()
	d, err := s.poll(from, name, want)
	if err != nil {
		s.t.Fatalf("%v\n%s", err, s.logs())
	}
	return d
}

// poll is until for any goroutine: it returns an error instead of failing.
func (s *secondary) poll(from, name, want string) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	last := ""
	for {
		r, err := s.resolve(from, name, dns.TypeA)
		if err == nil {
			if last = answer(r); last == want {
				return time.Since(start), nil
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: %s from %s still answers %s after 20s, want %s", s.name, name, from, last, want)
		}
		// A short pause keeps the poll from loading the resolver.
		time.Sleep(2 * time.Millisecond)
	}
}

// rpzNode starts writ with its feed and returns it with the feed's port.
func rpzNode(t testing.TB, upstream string, notify ...int) (*node, int) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "writ.yaml")
	var targets []string
	for _, p := range notify {
		targets = append(targets, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", p)))
	}
	yaml := fmt.Sprintf(`rpz:
  listen: ["127.0.0.1:0"]
  notify: [%s]
  tsig_keys: [{name: writ-xfr, algorithm: hmac-sha256, secret: %q}]
`, strings.Join(targets, ", "), rpzKeySecret)
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, filepath.Join(dir, "data"), "--config", conf, "--upstream", upstream, "--scope", "FR="+frClient+"/32")
	m := regexp.MustCompile(`"msg":"rpz listening","net":"tcp","addr":"127\.0\.0\.1:(\d+)"`).FindStringSubmatch(n.logText())
	if m == nil {
		t.Fatalf("writ did not log its RPZ address:\n%s", n.logText())
	}
	port, _ := strconv.Atoi(m[1])
	return n, port
}

// rpzSerial returns the serial of the French zone at writ's feed.
func rpzSerial(t testing.TB, writPort int) uint32 {
	t.Helper()
	c := &rpz.Client{Server: fmt.Sprintf("127.0.0.1:%d", writPort)}
	soa, err := c.SOA(context.Background(), "fr.rpz.writ.")
	if err != nil {
		t.Fatal(err)
	}
	return soa.Serial
}

// nextSerial waits until the French zone's serial differs from serial:
// writ rebuilds its zones just after the API's answer.
func nextSerial(t testing.TB, writPort int, serial uint32) uint32 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s := rpzSerial(t, writPort); s != serial {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the French zone is still at serial %d after 10s", serial)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRPZSecondaries(t *testing.T) {
	up, err := localzone.Start("127.0.0.1:0",
		"www.motogpstream.me. 300 IN A 198.51.100.7",
		"live.mirror.example.com. 300 IN A 198.51.100.9",
		"cdn.hosting.example. 300 IN A 203.0.113.7",
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	ubPort, bindPort := freePort(t), freePort(t)
	n, writPort := rpzNode(t, up.Addr(), ubPort, bindPort)
	secs := []*secondary{
		startSecondary(t, "unbound", ubPort, writPort, up.Addr(), 4),
		startSecondary(t, "named", bindPort, writPort, up.Addr(), 0),
	}
	serial := rpzSerial(t, writPort)
	for _, s := range secs {
		s.waitSerial(serial)
		for _, from := range []string{frClient, outsideClient} {
			s.until(from, "www.motogpstream.me", "198.51.100.7")
		}
	}

	// An order: blocked in scope at both resolvers, within seconds.
	o := sampleOrder(t, time.Now().Add(time.Hour))
	o["targets"] = []map[string]any{{"fqdn": "motogpstream.me", "subdomains": true}, {"ip": "203.0.113.0/24"}}
	var first orderResp
	if code := n.api("POST", "/v1/orders", o, &first); code != http.StatusCreated || first.Status != "active" {
		t.Fatalf("submit: %d %+v", code, first)
	}
	acked := time.Now()
	for _, s := range secs {
		s.until(frClient, "www.motogpstream.me", "NXDOMAIN")
		t.Logf("%s: 201 to the first blocked answer: %v", s.name, time.Since(acked))
		// A response IP trigger: the name is not ordered, its address is.
		s.until(frClient, "cdn.hosting.example", "NXDOMAIN")
		s.until(outsideClient, "www.motogpstream.me", "198.51.100.7")
		s.until(outsideClient, "cdn.hosting.example", "203.0.113.7")
	}

	// An amendment, adding a mirror: the change arrives by IXFR.
	check := func(what string, apply func()) {
		t.Helper()
		before := map[string][2]int{}
		for _, s := range secs {
			before[s.name] = [2]int{s.count(s.incremental), s.count(s.full)}
		}
		serial := rpzSerial(t, writPort)
		apply()
		serial = nextSerial(t, writPort, serial)
		for _, s := range secs {
			s.waitSerial(serial)
			inc, full := s.count(s.incremental)-before[s.name][0], s.count(s.full)-before[s.name][1]
			if inc < 1 || full != 0 {
				t.Errorf("%s: %s arrived by %d incremental and %d full transfers, want IXFR only; its log:\n%s", s.name, what, inc, full, s.logs())
			}
		}
	}
	var mirror orderResp
	check("an amendment", func() {
		a := map[string]any{"add": []map[string]any{{"fqdn": "mirror.example.com", "subdomains": true}}, "note": "ARCOM notice 14"}
		if code := n.api("POST", "/v1/orders/"+first.ID+"/amendments", a, &mirror); code != http.StatusOK {
			t.Fatalf("amend: %d %+v", code, mirror)
		}
	})
	for _, s := range secs {
		s.until(frClient, "live.mirror.example.com", "NXDOMAIN")
		s.until(outsideClient, "live.mirror.example.com", "198.51.100.9")
		// An in-scope client can ask its resolver which order blocks a
		// name, and where its public record is.
		r, err := s.resolve(frClient, "live.mirror.example.com._orders", dns.TypeTXT)
		if err != nil || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), mirror.ID) || !strings.Contains(r.Answer[0].String(), "/orders/"+mirror.ID) {
			t.Errorf("%s: the order record of the mirror: %v %v", s.name, r, err)
		}
	}

	// writ rpz dump prints what the secondaries transferred, signed with
	// the key as BIND's transfers are, in a form BIND's checker accepts.
	out, err := exec.Command(writBin, "rpz", "dump", "--scope", "FR", "--server", fmt.Sprintf("127.0.0.1:%d", writPort),
		"--tsig", "hmac-sha256:writ-xfr:"+rpzKeySecret).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "*.mirror.example.com.fr.rpz.writ.\t60\tIN\tCNAME\t.") {
		t.Fatalf("writ rpz dump: %v\n%s", err, out)
	}
	zoneFile := filepath.Join(t.TempDir(), "fr.rpz.writ.zone")
	if err := os.WriteFile(zoneFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(daemon(t, "named-checkzone", "bind9-utils"), "-k", "fail", "fr.rpz.writ", zoneFile).CombinedOutput(); err != nil {
		t.Errorf("named-checkzone on writ rpz dump: %v\n%s", err, b)
	}

	// The secondaries' transfers are receipts for the order, within the
	// thirty-minute deadline. A point is a secondary's address and zone;
	// both secondaries here transfer from 127.0.0.1, so they share one.
	var receipts struct {
		Points []struct {
			Point string
			Met   bool
		}
	}
	n.api("GET", "/v1/orders/"+first.ID+"/receipts", nil, &receipts)
	rpzPoints := 0
	for _, p := range receipts.Points {
		if strings.HasPrefix(p.Point, "rpz:") {
			rpzPoints++
			if !p.Met {
				t.Errorf("receipt %s did not meet the deadline", p.Point)
			}
		}
	}
	if rpzPoints != 1 {
		t.Errorf("receipts: %+v, want one for the secondaries' address and the zone", receipts.Points)
	}

	// A revoke lifts the block, also by IXFR.
	check("a revoke", func() {
		if code := n.api("POST", "/v1/orders/"+first.ID+"/revoke", map[string]string{"reason": "test"}, &first); code != http.StatusOK {
			t.Fatalf("revoke: %d %+v", code, first)
		}
	})
	for _, s := range secs {
		s.until(frClient, "www.motogpstream.me", "198.51.100.7")
		s.until(frClient, "cdn.hosting.example", "203.0.113.7")
		s.until(frClient, "live.mirror.example.com", "198.51.100.9")
	}
}

// BenchmarkRPZPropagation measures the time from the API's 201 for a new
// order to the first blocked answer at each secondary (Unbound, BIND 9),
// both polled at once from an in-scope client every 2 ms. Each iteration orders a new
// name; at most 500 iterations (the names the upstream knows).
func BenchmarkRPZPropagation(b *testing.B) {
	const names = 500
	var records []string
	for i := range names {
		records = append(records, fmt.Sprintf("www.prop%d.example.com. 300 IN A 198.51.100.%d", i, 1+i%250))
	}
	up, err := localzone.Start("127.0.0.1:0", records...)
	if err != nil {
		b.Fatal(err)
	}
	defer up.Close()
	ubPort, bindPort := freePort(b), freePort(b)
	n, writPort := rpzNode(b, up.Addr(), ubPort, bindPort)
	secs := []*secondary{
		startSecondary(b, "unbound", ubPort, writPort, up.Addr(), 1),
		startSecondary(b, "named", bindPort, writPort, up.Addr(), 0),
	}
	// Unbound logs no serial below verbosity 4: wait for an answer.
	secs[1].waitSerial(rpzSerial(b, writPort))
	for _, s := range secs {
		s.until(outsideClient, "www.prop0.example.com", "198.51.100.1")
	}
	lat := map[string][]time.Duration{}
	i := 0
	for b.Loop() {
		if i == names {
			b.Fatalf("more than %d iterations: use -benchtime %dx or fewer", names, names)
		}
		name := fmt.Sprintf("prop%d.example.com", i)
		i++
		o := sampleOrder(n.t, time.Now().Add(time.Hour))
		o["targets"] = []map[string]any{{"fqdn": name, "subdomains": true}}
		var got orderResp
		if code := n.api("POST", "/v1/orders", o, &got); code != http.StatusCreated {
			b.Fatalf("submit: %d %+v", code, got)
		}
		// Both resolvers are polled at once, each from the 201 on.
		var wg sync.WaitGroup
		took := make([]time.Duration, len(secs))
		errs := make([]error, len(secs))
		for i, s := range secs {
			wg.Go(func() { took[i], errs[i] = s.poll(frClient, "www."+name, "NXDOMAIN") })
		}
		wg.Wait()
		for i, s := range secs {
			if errs[i] != nil {
				b.Fatal(errs[i])
			}
			lat[s.name] = append(lat[s.name], took[i])
		}
	}
	for _, s := range secs {
		l := lat[s.name]
		slices.Sort(l)
		b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, s.name+"-p50-ms")
		b.ReportMetric(float64(l[len(l)*99/100].Microseconds())/1000, s.name+"-p99-ms")
	}
}

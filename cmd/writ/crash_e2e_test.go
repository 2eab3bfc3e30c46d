package main

// kill -9 durability, end to end: writ serve runs as a real process, a
// burst of order submissions from several goroutines is cut short by
// SIGKILL at a random moment, and the restarted process must hold every
// acknowledged order whole, enforce it, and serve a ledger that still
// extends the checkpoint a verifier saved before the kill. Damaged
// database files must stop writ at start, naming the file.
//
// The random moments come from a seeded source; the seed is logged, and
// WRIT_CRASH_SEED=<seed> replays a run.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/ledger"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/store"
)

// crashSeed returns the seed of this run's random choices, logged so
// that a failure can be replayed with WRIT_CRASH_SEED.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WRIT_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WRIT_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("random seed %d (replay with WRIT_CRASH_SEED=%d)", seed, seed)
	return seed
}

// eventRef is an event as the API shows it, by what identifies it.
type eventRef struct {
	Seq  uint64 `json:"seq"`
	Kind string `json:"kind"`
}

// crashOrder is an order as the API answers it.
type crashOrder struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Targets []struct {
		FQDN       string `json:"fqdn"`
		Subdomains bool   `json:"subdomains"`
		State      string `json:"state"`
	} `json:"targets"`
	Events []eventRef `json:"events"`
}

// attempt is one submission of the burst and what came of it.
type attempt struct {
	name   string // the order's only target, with its subdomains
	status int    // 0: no answer (the process died under the request)
	order  crashOrder
	err    error
}

// crashClient submits orders from several goroutines. Unlike node.api it
// never calls t.Fatal: a request cut off by the kill is an outcome.
type crashClient struct {
	base, token string
	template    map[string]any // a valid order; targets are set per request
	http        *http.Client
}

func (c *crashClient) submit(name string) attempt {
	o := maps.Clone(c.template)
	// The shared address is held for review: the order is recorded with
	// two events in one write, received and held, which a crash must not
	// split.
	o["targets"] = []map[string]any{{"fqdn": name, "subdomains": true}, {"ip": "1.1.1.1"}}
	a := attempt{name: name}
	body, err := json.Marshal(o)
	if err != nil {
		a.err = err
		return a
	}
	req, err := http.NewRequest(http.MethodPost, c.base+"/v1/orders", bytes.NewReader(body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		// The status came, the body did not: the answer was cut off.
		a.err = err
		return a
	}
	a.status = resp.StatusCode
	if a.status == http.StatusCreated {
		a.err = json.Unmarshal(data, &a.order)
	} else {
		a.err = fmt.Errorf("%d %s", resp.StatusCode, data)
	}
	return a
}

// burst submits orders from workers goroutines, each up to perWorker,
// and kills the node when the random moment comes: once killAt requests
// have been sent, or once killAt have been acknowledged. It returns every
// attempt.
func burst(t *testing.T, n *node, c *crashClient, round, workers, perWorker int, killAt int64, onAck bool) []attempt {
	t.Helper()
	var (
		sent, acked atomic.Int64
		stop        atomic.Bool
		kill        = make(chan struct{})
		killOnce    sync.Once
		mu          sync.Mutex
		attempts    []attempt
		wg          sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				if stop.Load() {
					return
				}
				if !onAck && sent.Add(1) == killAt {
					killOnce.Do(func() { close(kill) })
				}
				a := c.submit(fmt.Sprintf("r%d-w%d-%d.crash.example", round, w, i))
				mu.Lock()
				attempts = append(attempts, a)
				mu.Unlock()
				if a.status == http.StatusCreated && onAck && acked.Add(1) == killAt {
					killOnce.Do(func() { close(kill) })
				}
				if a.status == 0 {
					return // the process is gone
				}
			}
		})
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-kill:
		n.kill()
	case <-allDone:
		t.Fatalf("the burst ended before its kill at request %d", killAt)
	}
	stop.Store(true)
	<-allDone
	return attempts
}

// checkStoreWhole opens the data directory's store while no writ runs
// and checks that no order is half there: every order has its events,
// received first and a held event for each held target, and every event
// belongs to an order on record. It returns the orders by the name they
// block.
func checkStoreWhole(t *testing.T, dir string) map[string]*order.Order {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "writ.db"))
	if err != nil {
		t.Fatalf("the store after kill -9: %v", err)
	}
	defer st.Close()
	orders, version, err := st.Orders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, err := st.EventsSince(ctx, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	byOrder := map[string][]order.Event{}
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: the event log has a gap", i, e.Seq)
		}
		byOrder[e.OrderID] = append(byOrder[e.OrderID], e)
	}
	if len(events) > 0 && events[len(events)-1].Seq != version {
		t.Errorf("store version %d, last event %d", version, events[len(events)-1].Seq)
	}
	byName := map[string]*order.Order{}
	for _, o := range orders {
		evs := byOrder[o.ID]
		held, heldEvents := 0, 0
		for _, tg := range o.Targets {
			if tg.State == order.TargetHeld {
				held++
			}
			if tg.FQDN != "" {
				byName[tg.FQDN] = o
			}
		}
		for _, e := range evs {
			if e.Kind == order.EventHeld {
				heldEvents++
			}
		}
		if len(evs) == 0 || evs[0].Kind != order.EventReceived || held != heldEvents {
			t.Errorf("order %s with %d held targets is on record with the events %v: half applied", o.ID, held, evs)
		}
		delete(byOrder, o.ID)
	}
	for id, evs := range byOrder {
		t.Errorf("%d events of order %s, which is not on record: half applied", len(evs), id)
	}
	return byName
}

func eventKinds(evs []eventRef) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

// checkEnforced checks that an active order blocking name (and its
// subdomains) blocks it for the French client only.
func checkEnforced(t *testing.T, n *node, name, id string) {
	t.Helper()
	if by := blockedBy(n.query(frClient, "www."+name)); by != id {
		t.Errorf("order %s on %s: the French client is not blocked by it (blocked by %q)", id, name, by)
	}
	if m := n.query(outsideClient, "www."+name); blockedBy(m) != "" || m.Rcode != dns.RcodeNameError {
		t.Errorf("order %s on %s: the client outside France did not get the upstream's NXDOMAIN:\n%v", id, name, m)
	}
}

func TestKill9DuringBurst(t *testing.T) {
	const (
		workers   = 4
		perWorker = 40
	)
	rounds := 4 // WRIT_CRASH_ROUNDS=100 for a longer run
	if s := os.Getenv("WRIT_CRASH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("WRIT_CRASH_ROUNDS=%q: want a number of rounds, 1 or more", s)
		}
		rounds = n
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(crashSeed(t), 9))
	up := upstream(t)
	dir := t.TempDir()
	args := []string{"--upstream", up.Addr(), "--scope", "FR=" + frClient + "/32"}
	pub := filepath.Join(dir, ledger.PublicKeyFile)
	template := sampleOrder(t, time.Now().Add(30*24*time.Hour))

	// Every order on record after each restart, by target name, and
	// the orders the API acknowledged.
	committed := map[string]string{}
	acknowledged := map[string]bool{}
	var saved string    // the checkpoint saved before the last kill
	var events []string // the kinds of the events of a new order

	n := startNode(t, dir, args...)
	for round := 0; ; round++ {
		if round > 0 {
			// Everything acknowledged is there, whole, and enforced.
			for id := range acknowledged {
				var got crashOrder
				if code := n.api("GET", "/v1/orders/"+id, nil, &got); code != http.StatusOK || got.Status != "active" {
					t.Fatalf("order %s, acknowledged before a kill, is %d %+v after restart", id, code, got)
				}
				if kinds := eventKinds(got.Events); len(kinds) < len(events) || !slices.Equal(kinds[:len(events)], events) {
					t.Fatalf("order %s, acknowledged before a kill, has the events %v after restart; a new order has %v", id, got.Events, events)
				}
			}
			ids := slices.Collect(maps.Values(committed))
			for name, id := range committed {
				checkEnforced(t, n, name, id)
			}
			// The ledger catches up and still extends the checkpoint
			// saved before the kill.
			n.awaitLedger(ids...)
			out, ok := n.verify("--key", pub, "--checkpoint", saved)
			if !ok || !strings.Contains(out, "extends the checkpoint saved in "+saved) {
				t.Fatalf("round %d: after kill -9 and restart the ledger does not verify against the checkpoint saved before:\n%s", round, out)
			}
			if t.Failed() {
				return
			}
		}
		if round == rounds {
			break
		}

		// A reference order, acknowledged while nothing else happens:
		// the events every submission of the burst must have.
		c := &crashClient{base: n.httpURL, token: n.token(), template: template, http: &http.Client{Timeout: 30 * time.Second}}
		ref := c.submit(fmt.Sprintf("r%d-reference.crash.example", round))
		if ref.status != http.StatusCreated {
			t.Fatalf("reference order: %d %v", ref.status, ref.err)
		}
		if events == nil {
			var got crashOrder
			n.api("GET", "/v1/orders/"+ref.order.ID, nil, &got)
			if events = eventKinds(got.Events); len(events) < 2 {
				t.Fatalf("a new order with a held target has the events %v", got.Events)
			}
			t.Logf("a new order is recorded with the events %v", events)
		}
		committed[ref.name], acknowledged[ref.order.ID] = ref.order.ID, true
		n.awaitLedger(ref.order.ID)
		saved = filepath.Join(t.TempDir(), fmt.Sprintf("checkpoint-%d", round))
		if out, ok := n.verify("--key", pub, "--save", saved); !ok {
			t.Fatalf("round %d: the ledger does not verify before the burst:\n%s", round, out)
		}

		onAck := rng.IntN(2) == 0
		killAt := 1 + rng.Int64N(workers*perWorker/4)
		attempts := burst(t, n, c, round, workers, perWorker, killAt, onAck)
		what := "sent"
		if onAck {
			what = "acknowledged"
		}

		byName := checkStoreWhole(t, dir)
		var acks, lost, kept int
		for _, a := range attempts {
			o, there := byName[a.name]
			switch {
			case a.status == http.StatusCreated:
				if a.err != nil {
					t.Fatalf("201 for %s with a body that does not decode: %v", a.name, a.err)
				}
				acks++
				if !there || o.ID != a.order.ID {
					t.Fatalf("order %s on %s was acknowledged, then lost to kill -9", a.order.ID, a.name)
				}
				committed[a.name], acknowledged[a.order.ID] = o.ID, true
			case a.status != 0:
				t.Fatalf("submission of %s answered %d: %v", a.name, a.status, a.err)
			case there:
				// Recorded, but the answer was lost with the process: it
				// must be whole all the same (checkStoreWhole), and it is
				// enforced like any other.
				kept++
				committed[a.name] = o.ID
			default:
				lost++
			}
		}
		t.Logf("round %d: killed after %d requests %s; %d attempts: %d acknowledged, %d recorded without an answer, %d not recorded",
			round, killAt, what, len(attempts), acks, kept, lost)
		n = startNode(t, dir, args...)
	}
	t.Logf("%d rounds of kill -9 in %v", rounds, time.Since(start).Round(time.Millisecond))
}

// serveRefuses runs writ serve on dir and returns its output once it
// exits; the test fails if it gets ready instead.
func serveRefuses(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, writBin, append([]string{"serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	ready := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), `"msg":"writ ready"`) {
			ready = true
			cmd.Process.Kill()
		}
	}
	err = cmd.Wait()
	switch {
	case ready:
		t.Fatalf("writ served from damaged files:\n%s", out.String())
	case ctx.Err() != nil:
		t.Fatalf("writ neither failed nor got ready in 30s:\n%s", out.String())
	case err == nil:
		t.Fatalf("writ exited with status 0:\n%s", out.String())
	}
	return out.String()
}

// TestDamagedFilesRefusedAtStart damages the store and the ledger of a
// stopped writ and checks that writ serve refuses to start, naming the
// file. (store/corrupt_test.go checks the store's own detection in more
// ways; this is the process that must not serve.)
func TestDamagedFilesRefusedAtStart(t *testing.T) {
	rng := rand.New(rand.NewPCG(crashSeed(t), 1))
	up := upstream(t)
	args := []string{"--upstream", up.Addr(), "--scope", "FR=" + frClient + "/32"}
	dir := t.TempDir()
	n := startNode(t, dir, args...)
	var ids []string
	for i := range 40 {
		ids = append(ids, n.submit(fmt.Sprintf("mirror%d.damage.example", i)))
	}
	n.awaitLedger(ids...)
	// A clean stop folds the write-ahead logs into the files, so that
	// damaging a file damages the data.
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-n.exited
	for _, f := range []string{"writ.db", ledger.DatabaseFile} {
		if _, err := os.Stat(filepath.Join(dir, f+"-wal")); err == nil {
			t.Fatalf("%s-wal is left after a clean stop", f)
		}
	}

	const page = 4096
	overwrite := func(t *testing.T, path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		pages := fi.Size() / page
		if pages < 3 {
			t.Fatalf("%s has %d pages", path, pages)
		}
		// Page 1 holds the header and schema; damage a data page.
		at := (1 + rng.Int64N(pages-1)) * page
		garbage := make([]byte, page)
		for i := range garbage {
			garbage[i] = byte(rng.Uint32())
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(garbage, at); err != nil {
			t.Fatal(err)
		}
		t.Logf("overwrote bytes %d to %d of %s", at, at+page, filepath.Base(path))
	}
	truncate := func(t *testing.T, path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, file string
		damage     func(t *testing.T, path string)
	}{
		{"writ.db truncated", "writ.db", truncate},
		{"writ.db page overwritten", "writ.db", overwrite},
		{"ledger.db truncated", ledger.DatabaseFile, truncate},
		{"ledger.db page overwritten", ledger.DatabaseFile, overwrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caseDir := t.TempDir()
			copyDir(t, dir, caseDir)
			path := filepath.Join(caseDir, tc.file)
			tc.damage(t, path)
			out := serveRefuses(t, caseDir, args...)
			if !strings.Contains(out, path) || !strings.Contains(out, "corrupt") {
				t.Errorf("writ refused to start but did not say that %s is corrupt:\n%s", path, out)
			}
		})
	}
}

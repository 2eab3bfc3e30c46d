package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/api"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/piracyshield/pstest"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/scope"
	"github.com/writ-project/writ/store"
)

// connectServer is a writ API on a registry whose DNS point applies every
// policy at once, with AGCOM registered, and the token of an authority
// principal acting for it.
func connectServer(t *testing.T) (*registry.Registry, string, string) {
	t.Helper()
	ctx := t.Context()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.Open(ctx, st, registry.Options{
		Intake: order.Intake{ReviewDelegated: true, Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	follow, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { followReceipts(follow, reg, "dns", quiet); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	sc, err := scope.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{PublicURL: "http://writ.example", Logger: quiet}, reg, sc)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	op := access.Principal{ID: "operator", Role: access.Operator}
	if _, err := reg.RegisterAuthority(ctx, order.RegisteredAuthority{
		Authority: order.Authority{ID: "agcom", Name: "AGCOM", Kind: order.DelegatedReporter, Jurisdiction: "IT"}, DeadlineSeconds: 1800}, op); err != nil {
		t.Fatal(err)
	}
	token, err := reg.CreatePrincipal(ctx, access.Principal{ID: "agcom-connector", Role: access.Authority, Authority: "agcom"}, op)
	if err != nil {
		t.Fatal(err)
	}
	return reg, srv.URL, token
}

func TestConnectPiracyShieldOnce(t *testing.T) {
	cliEnv(t)
	t.Setenv("WRIT_REVIEWER_TOKEN", "")
	reg, base, token := connectServer(t)
	ps, err := pstest.Start(pstest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	dir := t.TempDir()
	password := filepath.Join(dir, "ps-password")
	os.WriteFile(password, []byte(ps.Password()), 0o600)
	if _, err := ps.Publish(pstest.Ticket{FQDN: []string{"calcio-live.example.com"}, IPv4: []string{"104.16.1.1"}}); err != nil {
		t.Fatal(err)
	}
	args := []string{"connect", "piracyshield", "--once", "--api", base, "--token", token, "--data-dir", dir,
		"--url", ps.URL(), "--email", ps.Email(), "--password-file", password, "--review", "all"}
	// Review all: every target waits for a reviewer, and is reported so.
	stdout, stderr, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "1 tickets; items: 0 processed, 2 unprocessed, 0 awaiting receipts") {
		t.Errorf("summary %q", stdout)
	}
	orders := reg.Orders()
	if len(orders) != 1 || orders[0].Authority.ID != "agcom" || orders[0].JurisdictionString() != "IT" {
		t.Fatalf("orders %+v", orders)
	}
	if _, err := os.Stat(filepath.Join(dir, "piracyshield-state.json")); err != nil {
		t.Errorf("no state file: %v", err)
	}
	// A reviewer releases the name; the next run reports it processed,
	// once the DNS point has applied it, and nothing else again.
	alice := access.Principal{ID: "alice", Role: access.Reviewer}
	if _, err := reg.Release(t.Context(), orders[0].ID, "calcio-live.example.com", "a streaming site", alice); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "items: 1 processed, 1 unprocessed, 0 awaiting receipts") {
		t.Errorf("summary %q", stdout)
	}
	if r := ps.Reports(); len(r) != 3 || r[2].Value != "calcio-live.example.com" || r[2].Status != pstest.StatusProcessed {
		t.Errorf("reports %+v", r)
	}
}

func TestConnectUsage(t *testing.T) {
	cliEnv(t)
	for _, tc := range []struct {
		args    []string
		code    int
		mention string
	}{
		{[]string{"connect"}, 2, "piracyshield"},
		{[]string{"connect", "sky-shield"}, 2, `unknown platform "sky-shield"`},
		{[]string{"connect", "piracyshield", "extra"}, 2, "takes no arguments"},
		{[]string{"connect", "piracyshield", "--token", "t", "--data-dir", t.TempDir()}, 1, "piracyshield.url"},
		{[]string{"connect", "piracyshield", "--token", "t", "--data-dir", t.TempDir(), "--url", "https://p.example/api/v1", "--email", "a@b.it"}, 1, "piracyshield.password_file"},
		{[]string{"connect", "piracyshield", "--token", "t", "--review", "never", "--data-dir", t.TempDir()}, 1, "piracyshield.review"},
	} {
		_, _, err := runCLI(t, tc.args...)
		if exitCode(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("writ %s: exit %d, %v; want %d mentioning %q", strings.Join(tc.args, " "), exitCode(err), err, tc.code, tc.mention)
		}
	}
	stdout, _, err := runCLI(t, "connect", "piracyshield", "--help")
	if exitCode(err) != 0 || !strings.Contains(stdout, "Usage: writ connect piracyshield") || !strings.Contains(stdout, "-reviewer-token") {
		t.Errorf("help: %v\n%s", err, stdout)
	}
	if stdout, _, _ := runCLI(t, "help"); !strings.Contains(stdout, "writ connect piracyshield") {
		t.Errorf("writ help does not list connect:\n%s", stdout)
	}
}

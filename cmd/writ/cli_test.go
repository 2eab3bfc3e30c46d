package main

// Tests of the command line, calling run directly: help that teaches,
// usage errors with exit status 2, and the API client commands against
// an in-process API.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/api"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/scope"
	"github.com/writ-project/writ/store"
)

// unreachableAPI is an address where no writ server listens.
const unreachableAPI = "http://127.0.0.1:1"

// runCLI runs writ with args and returns what it printed.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// cliEnv clears the environment the client commands read, so that the
// tests do not depend on the caller's.
func cliEnv(t *testing.T) {
	t.Setenv("WRIT_API", "")
	t.Setenv("WRIT_TOKEN", "")
}

// exitCode returns the exit status run's error leads to: 0 for none or
// for --help, the *exitError's code, or 1.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

func TestHelpTeaches(t *testing.T) {
	cliEnv(t)
	usageText := []string{"Usage:", "writ serve", "writ order add FILE", "writ order list", "writ order revoke ID",
		"writ check NAME --client IP", "writ version", "Try it:", "writ serve --demo", `"writ help COMMAND"`}
	serveText := []string{"Usage: writ serve", "Examples:", "writ serve --demo", "--scope FR=192.0.2.0/24",
		"writ serve --config", "writ.example.yaml", "Flags:", "-upstream", "-scope", "-config", "-data-dir", "-http", "-token-file"}
	orderText := []string{"writ order add FILE", "writ order list", "writ order show ID", "writ order revoke ID",
		"Examples:", "writ order add testdata/orders-fr-motogp-2025.json", "--reason", "held for review"}
	checkText := []string{"Usage: writ check NAME", "Examples:", "writ check www.motogpstream.me --client 127.0.0.2",
		"--scope IT", "Flags:", "-client", "-scope", "-api", "-json"}
	for _, tc := range []struct {
		args    []string
		wantErr error
		text    []string
	}{
		{[]string{"help"}, nil, usageText},
		{[]string{"--help"}, nil, usageText},
		{[]string{"-h"}, nil, usageText},
		{[]string{"help", "serve"}, flag.ErrHelp, serveText},
		{[]string{"serve", "--help"}, flag.ErrHelp, serveText},
		{[]string{"serve", "-h"}, flag.ErrHelp, serveText},
		{[]string{"order", "--help"}, nil, orderText},
		{[]string{"help", "order"}, nil, orderText},
		{[]string{"order", "add", "--help"}, flag.ErrHelp, append(orderText, "Flags:", "-api", "-token", "-token-file", "WRIT_TOKEN")},
		{[]string{"order", "list", "--help"}, flag.ErrHelp, []string{"writ order list", "-status"}},
		{[]string{"order", "revoke", "--help"}, flag.ErrHelp, []string{"writ order revoke ID", "-reason"}},
		{[]string{"check", "--help"}, flag.ErrHelp, checkText},
		{[]string{"help", "check"}, flag.ErrHelp, checkText},
		{[]string{"help", "help"}, nil, usageText},
		{[]string{"--help", "--help"}, nil, usageText},
		{[]string{"order", "-help"}, nil, orderText},
		{[]string{"version"}, nil, []string{"writ " + version + "\n"}},
		{[]string{"--version"}, nil, []string{"writ " + version + "\n"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, err := runCLI(t, tc.args...)
			if err != tc.wantErr {
				t.Fatalf("run: %v, want %v", err, tc.wantErr)
			}
			if code := exitCode(err); code != 0 {
				t.Errorf("exit status %d", code)
			}
			// Help that was asked for goes to standard output, so that it
			// can be paged; nothing goes to standard error.
			if stderr != "" {
				t.Errorf("help wrote to stderr:\n%s", stderr)
			}
			for _, want := range tc.text {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}

// The files the help refers to exist.
func TestHelpRefersToRealFiles(t *testing.T) {
	for _, text := range []string{serveHelp, orderHelp, usage()} {
		for _, f := range regexp.MustCompile(`[\w./-]+\.(?:json|yaml)`).FindAllString(text, -1) {
			if filepath.IsAbs(f) {
				continue // an operator's path, such as /etc/writ/writ.yaml
			}
			if _, err := os.Stat(filepath.Join("../..", f)); err != nil {
				t.Errorf("help refers to %s: %v", f, err)
			}
		}
	}
}

// splitArgs splits an example command line as a shell would, for the
// double quotes the examples use.
func splitArgs(line string) []string {
	var out []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case r == ' ' && !inQuote:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
			}
			inWord = false
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// The client examples in the help are valid command lines: run against an
// address where no server listens, each fails only for want of a server.
func TestHelpExamplesParse(t *testing.T) {
	cliEnv(t)
	var examples int
	for _, text := range []string{orderHelp, checkHelp} {
		_, ex, ok := strings.Cut(text, "Examples:\n")
		if !ok {
			t.Fatal("help without examples")
		}
		for _, line := range strings.Split(strings.TrimSpace(ex), "\n") {
			args := splitArgs(strings.TrimSpace(line))
			if len(args) < 2 || args[0] != "writ" {
				t.Fatalf("example %q is not a writ command", line)
			}
			for i, a := range args {
				if strings.HasPrefix(a, "testdata/") {
					args[i] = filepath.Join("../..", a)
				}
			}
			examples++
			args = append(args[1:], "--api", unreachableAPI, "--token", "x")
			_, _, err := runCLI(t, args...)
			if err == nil || !strings.Contains(err.Error(), "cannot reach the writ server") {
				t.Errorf("example %q: %v, want only a connection failure", line, err)
			}
		}
	}
	if examples < 5 {
		t.Errorf("only %d examples found", examples)
	}
}

func TestUsageErrors(t *testing.T) {
	cliEnv(t)
	orderFile := filepath.Join(t.TempDir(), "order.json")
	if err := os.WriteFile(orderFile, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		mention []string // in the error
		usage   bool     // the general usage is printed to stderr
	}{
		{nil, []string{"no command"}, true},
		{[]string{"frob"}, []string{`"frob"`}, true},
		{[]string{"--frob"}, []string{`"--frob"`}, true},
		{[]string{"help", "frob"}, []string{`"frob"`}, true},
		{[]string{"order"}, []string{"subcommand", "add, list, show, revoke, amend"}, false},
		{[]string{"order", "frob"}, []string{`"frob"`, "add, list, show, revoke, amend"}, false},
		{[]string{"order", "add"}, []string{"order add", "1 argument", "got 0"}, false},
		{[]string{"order", "add", orderFile, orderFile}, []string{"order add", "got 2"}, false},
		{[]string{"order", "show"}, []string{"order show"}, false},
		{[]string{"order", "revoke"}, []string{"order revoke"}, false},
		{[]string{"order", "list", "extra"}, []string{"order list", "0 argument"}, false},
		{[]string{"order", "list", "--frob"}, []string{"frob"}, false},
		{[]string{"order", "add", "--reason", "x", orderFile}, []string{"reason"}, false},
		{[]string{"order", "list", "--api", "://nowhere"}, []string{"--api", "://nowhere"}, false},
		{[]string{"check"}, []string{"one name"}, false},
		{[]string{"check", "a.example", "b.example", "--scope", "FR"}, []string{"one name"}, false},
		{[]string{"check", "x.example"}, []string{"--client", "--scope"}, false},
		{[]string{"check", "x.example", "--client", "192.0.2.1", "--scope", "FR"}, []string{"exactly one of --client and --scope"}, false},
		{[]string{"serve", "extra-arg"}, []string{`"extra-arg"`, "no arguments"}, false},
		{[]string{"serve", "--frob"}, []string{"frob"}, false},
		{[]string{"serve", "--scope", "XX=1.2.3.0/24"}, []string{"XX", "--scope"}, false},
		{[]string{"serve", "--scope", "FR"}, []string{"--scope", "CC=prefix"}, false},
	} {
		name := strings.ReplaceAll(strings.Join(tc.args, " "), orderFile, "FILE")
		if name == "" {
			name = "no arguments"
		}
		t.Run(name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, tc.args...)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 {
				t.Fatalf("run: %v (%T), want an exit status 2 error", err, err)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if tc.usage && !strings.Contains(stderr, "Usage:") {
				t.Errorf("no usage on stderr:\n%s", stderr)
			}
			if tc.usage && stdout != "" {
				t.Errorf("usage error printed to stdout: %q", stdout)
			}
		})
	}
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	cliEnv(t)
	dir := t.TempDir()
	badKey := filepath.Join(dir, "writ.yaml")
	if err := os.WriteFile(badKey, []byte("dns:\n  upstream: [9.9.9.9]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		mention []string
	}{
		{[]string{"--config", "/nonexistent.yaml"}, []string{"/nonexistent.yaml"}},
		{[]string{"--config", badKey}, []string{badKey, "upstream"}},
		// Resolved before anything is opened or listened on.
		{[]string{"--data-dir", filepath.Join(dir, "data"), "--log-level", "loud", "--upstream", "127.0.0.1"}, []string{"configuration", "log.level", "loud"}},
		{[]string{"--data-dir", filepath.Join(dir, "data"), "--http", "localhost"}, []string{"http.listen", "upstreams"}},
		{[]string{"--data-dir", filepath.Join(dir, "data"), "--block-mode", "drop", "--upstream", "127.0.0.1"}, []string{"dns.block_mode", "drop"}},
	} {
		t.Run(strings.ReplaceAll(strings.Join(tc.args, " "), dir, "DIR"), func(t *testing.T) {
			_, _, err := runCLI(t, append([]string{"serve"}, tc.args...)...)
			if err == nil {
				t.Fatal("serve started")
			}
			if exitCode(err) == 0 {
				t.Errorf("exit status 0 for %v", err)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused configuration created the data directory: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	cliEnv(t)
	orderFile := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(orderFile, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, _, err := runCLI(t, "order", "list", "--api", unreachableAPI)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the writ server at "+unreachableAPI) || !strings.Contains(err.Error(), "--api") {
		t.Errorf("order list without a server: %v", err)
	}
	if exitCode(err) != 1 {
		t.Errorf("exit status %d for an unreachable server, want 1", exitCode(err))
	}

	_, _, err = runCLI(t, "order", "add", orderFile, "--token-file", "/nonexistent", "--api", unreachableAPI)
	if err == nil {
		t.Fatal("order add without a token succeeded")
	}
	for _, m := range []string{"needs the API token", "--token", "WRIT_TOKEN", "--token-file", "/nonexistent"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}

	_, _, err = runCLI(t, "order", "add", filepath.Join(t.TempDir(), "missing.json"), "--token", "x", "--api", unreachableAPI)
	if err == nil || !strings.Contains(err.Error(), "reading the order") || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("order add of a missing file: %v", err)
	}
}

// startAPI serves the real API in-process, as the client commands see it.
func startAPI(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := registry.Open(ctx, st, registry.Options{
		Intake: order.Intake{Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}},
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	nets, err := scope.ParseMapping("FR=127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := scope.New(nets, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.EnsurePrincipal(t.Context(), access.Principal{ID: "operator", Name: "operator", Role: access.Operator}, "secret"); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{PublicURL: "http://writ.example", BlockAnswer: "REFUSED with EDE 16 (Censored)", Logger: log}, reg, resolver)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// writeOrderFile writes the sample order, edited by edit, to a file.
func writeOrderFile(t *testing.T, edit func(m map[string]any)) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/orders-fr-motogp-2025.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "order.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func inForceNow(m map[string]any) {
	now := time.Now().UTC()
	m["effective"] = now.Add(-time.Hour).Format(time.RFC3339)
	m["expires"] = now.Add(time.Hour).Format(time.RFC3339)
}

func TestClientCommands(t *testing.T) {
	cliEnv(t)
	base := startAPI(t)
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	if err := os.WriteFile(tokenFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) {
		t.Helper()
		stdout, _, err := runCLI(t, append(args, "--api", base, "--token-file", tokenFile)...)
		return stdout, err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("writ %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	contains := func(what, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", what, w, out)
			}
		}
	}

	out := must("order", "add", writeOrderFile(t, inForceNow))
	m := regexp.MustCompile(`^order (\d{8}-[0-9a-f]{8}) recorded: active\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("order add printed:\n%s", out)
	}
	id := m[1]
	contains("order add", out, "public record: http://writ.example/orders/"+id)

	out = must("order", "add", writeOrderFile(t, nil))
	contains("order add (expired)", out, "recorded: expired", "note: the order expired on 2025-11-30")

	_, err := cli("order", "add", writeOrderFile(t, func(m map[string]any) {
		inForceNow(m)
		m["jurisdiction"] = []any{"XX"}
		m["targets"] = []any{map[string]any{"fqdn": "com"}}
	}))
	if err == nil {
		t.Fatal("a bad order was accepted")
	}
	contains("order add (bad)", err.Error(), "nothing was recorded", `jurisdiction[0]: "XX"`, `targets[0].fqdn: "com"`)

	_, _, err = runCLI(t, "order", "add", writeOrderFile(t, inForceNow), "--api", base, "--token", "wrong")
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("order add with a wrong token: %v", err)
	}

	out = must("order", "list")
	contains("order list", out, "ID", "STATUS", "JURISDICTION", id, "active", "Tribunal judiciaire de Paris")
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("order list: %d lines, want a header and 2 orders:\n%s", n, out)
	}
	out = must("order", "list", "--status", "expired")
	if strings.Contains(out, id) || strings.Count(out, "\n") != 2 {
		t.Errorf("order list --status expired:\n%s", out)
	}
	out = must("order", "list", "--json")
	var list struct {
		Orders []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"orders"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Orders) != 2 {
		t.Errorf("order list --json: %v\n%s", err, out)
	}

	out = must("order", "show", id)
	contains("order show", out, "Order "+id+" — active", "Tribunal judiciaire de Paris (court, FR)", "Canal+ v. Cloudflare",
		"motogpstream.me (and subdomains)", "history:", "received", "public record: http://writ.example/orders/"+id)

	out = must("check", "www.motogpstream.me", "--client", "127.0.0.2")
	contains("check (France)", out, "BLOCKED", "jurisdiction FR, from network", "REFUSED with EDE 16", "order "+id, "applies to this client")
	out = must("check", "www.motogpstream.me", "--client", "127.0.0.1")
	contains("check (outside)", out, "ALLOWED", "does not apply to this client")
	out = must("check", "example.org", "--scope", "FR")
	contains("check (unblocked)", out, "ALLOWED", "no order blocks this name anywhere")
	out = must("check", "www.motogpstream.me", "--scope", "FR", "--json")
	var d api.Decision
	if err := json.Unmarshal([]byte(out), &d); err != nil || !d.Blocked || d.Scope != "FR" {
		t.Errorf("check --json: %+v, %v", d, err)
	}
	if _, err := cli("check", "www.motogpstream.me", "--scope", "XX"); err == nil || !strings.Contains(err.Error(), "XX") {
		t.Errorf("check --scope XX: %v", err)
	}

	out = must("order", "revoke", id, "--reason", "judgment overturned on appeal")
	contains("order revoke", out, "order "+id+" revoked")
	out = must("order", "show", id)
	contains("order show (revoked)", out, "— revoked", "judgment overturned on appeal")
	if _, err := cli("order", "revoke", id); err == nil || !strings.Contains(err.Error(), "already revoked") {
		t.Errorf("second revocation: %v", err)
	}
	if _, err := cli("order", "show", "20990101-00000000"); err == nil || !strings.Contains(err.Error(), "20990101-00000000: not found") {
		t.Errorf("order show of an unknown id: %v", err)
	}

	// Enforcement points: two send receipts, one is taken out of service.
	for _, p := range []string{"dns@edge-1", "gate@edge-2"} {
		req, _ := http.NewRequest("POST", base+"/v1/receipts", strings.NewReader(`{"point": "`+p+`", "version": 1}`))
		req.Header.Set("Authorization", "Bearer secret")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("receipt of %s: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
	out = must("point", "list")
	contains("point list", out, "POINT", "dns@edge-1", "gate@edge-2")
	out = must("point", "retire", "gate@edge-2")
	contains("point retire", out, "enforcement point gate@edge-2 retired")
	out = must("point", "list")
	contains("point list (retired)", out, "dns@edge-1", "gate@edge-2", "retired by operator")
	if _, err := cli("point", "retire", "gate@edge-2"); err == nil || !strings.Contains(err.Error(), "not in service") {
		t.Errorf("second retirement: %v", err)
	}
	if _, err := cli("point", "retire"); err == nil || !strings.Contains(err.Error(), "one point name") {
		t.Errorf("point retire without a name: %v", err)
	}
}

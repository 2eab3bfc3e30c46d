package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLedgerCommandErrors(t *testing.T) {
	cliEnv(t)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		args    []string
		code    int
		mention []string
	}{
		{[]string{"ledger"}, 2, []string{"subcommand", "verify"}},
		{[]string{"ledger", "audit"}, 2, []string{`"audit"`, "verify"}},
		{[]string{"ledger", "verify", "extra"}, 2, []string{`"extra"`, "no arguments"}},
		{[]string{"ledger", "verify", "--frob"}, 2, []string{"frob"}},
		{[]string{"ledger", "verify", "--from", unreachableAPI, "--checkpoint", missing}, 1, []string{"--checkpoint", missing}},
		{[]string{"ledger", "verify", "--from", unreachableAPI, "--key", missing}, 1, []string{"--key", missing}},
		{[]string{"ledger", "verify", "--from", unreachableAPI}, 1, []string{"could not verify the ledger at " + unreachableAPI, "cannot reach"}},
		{[]string{"ledger", "verify", "--from", unreachableAPI, "--key", "not+a+key"}, 1, []string{"could not verify", "not+a+key"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := runCLI(t, tc.args...)
			if code := exitCode(err); code != tc.code {
				t.Fatalf("exit status %d (%v), want %d", code, err, tc.code)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestLedgerHelp(t *testing.T) {
	cliEnv(t)
	stdout, _, err := runCLI(t, "ledger", "verify", "--help")
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{"Usage: writ ledger verify", "Examples:", "--checkpoint", "--save", "-key", "-from", "Pin the key", "ledger-key.pub"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	usage, _, _ := runCLI(t, "help")
	if !strings.Contains(usage, "writ ledger verify --from URL") {
		t.Error("writ help does not list writ ledger verify")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cp")
	for _, content := range []string{"first\n", "second\n"} {
		if err := writeFileAtomic(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != content {
			t.Fatalf("file holds %q, want %q", b, content)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

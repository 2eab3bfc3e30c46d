package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeWorkflow runs the README's workflow section, as written, with
// bash against a real writ process, then checks the record it leaves.
func TestReadmeWorkflow(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- workflow:start -->")
	if ok {
		block, _, ok = strings.Cut(block, "<!-- workflow:end -->")
	}
	if !ok {
		t.Fatal("README.md has no workflow section between its markers")
	}
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sh")
	block = strings.TrimSuffix(block, "```")

	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	order, err := os.ReadFile("../../testdata/workflow-order.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "testdata", "workflow-order.json"), order, 0o644); err != nil {
		t.Fatal(err)
	}
	up := upstream(t)
	n := startNode(t, filepath.Join(work, "writ-data"), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32")

	script := filepath.Join(work, "workflow.sh")
	// Echo each command, so that a failure shows which one.
	if err := os.WriteFile(script, []byte("set -euo pipefail\nset -x\n"+block), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "bash", script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(writBin)+":"+os.Getenv("PATH"), "WRIT_API="+n.httpURL, "WRIT_TOKEN=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's workflow failed: %v\n%s\n--- server log ---\n%s", err, out.String(), n.logText())
	}
	text := out.String()
	for _, want := range []string{
		"www.motogpstream.me for client 127.0.0.2 (jurisdiction FR, from network): BLOCKED",
		"104.16.1.1/32", "overlaps shared infrastructure",
		"rejected 104.16.1.1/32 (now rejected)",
		"suspended bakery.example (now suspended)",
		"upheld", "dns", "met",
		"amended", "contest_decided",
		"revoked: it no longer blocks anywhere",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("workflow output lacks %q:\n%s", want, text)
		}
	}

	var list struct{ Orders []orderResp }
	n.api("GET", "/v1/orders", nil, &list)
	if len(list.Orders) != 1 {
		t.Fatalf("%d orders", len(list.Orders))
	}
	var o struct {
		Status  string `json:"status"`
		Targets []struct {
			FQDN, IP, State string
		} `json:"targets"`
		Events []struct{ Kind, Principal string } `json:"events"`
	}
	n.api("GET", "/v1/orders/"+list.Orders[0].ID, nil, &o)
	states := map[string]string{}
	for _, tg := range o.Targets {
		states[tg.FQDN+tg.IP] = tg.State
	}
	want := map[string]string{"motogpstream.me": "active", "bakery.example": "removed", "motogpstream2.me": "active", "104.16.1.1/32": "rejected"}
	if o.Status != "revoked" || fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("after the workflow: status %s, targets %v", o.Status, states)
	}
	var kinds []string
	for _, e := range o.Events {
		kinds = append(kinds, e.Kind+"/"+e.Principal)
	}
	got := strings.Join(kinds, " ")
	for _, k := range []string{"received/authority:paris-clerk", "amended/authority:arcom-agent", "held/writ", "rejected/reviewer:alice",
		"contested/public", "suspended/operator:operator", "contest_decided/reviewer:alice", "revoked/authority:paris-clerk"} {
		if !strings.Contains(got, k) {
			t.Errorf("history lacks %s: %s", k, got)
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writ-project/writ/api"
	"github.com/writ-project/writ/internal/config"
	"github.com/writ-project/writ/order"
)

// client talks to a writ server's API.
type client struct {
	base      string
	token     string
	tokenFile string
	http      *http.Client
}

// clientFlags adds the flags every API command shares.
func clientFlags(fs *cmdFlags) *client {
	c := &client{http: &http.Client{Timeout: 2 * time.Minute}}
	fs.StringVar(&c.base, "api", envOr("WRIT_API", "http://"+config.DefaultHTTPListen), "writ server `URL` (env WRIT_API)")
	fs.StringVar(&c.token, "token", os.Getenv("WRIT_TOKEN"), "API `token` for changes (env WRIT_TOKEN; default: read from --token-file)")
	fs.StringVar(&c.tokenFile, "token-file", filepath.Join(config.DefaultDataDir, "api-token"), "`file` holding the API token, as written by writ serve")
	return c
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (c *client) authToken() (string, error) {
	if c.token != "" {
		return c.token, nil
	}
	b, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return "", fmt.Errorf("this command needs the API token: pass --token, set WRIT_TOKEN, or point --token-file at the file writ serve created (%v)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// do sends a request and decodes a JSON answer into out. An error answer
// becomes an error carrying the server's message and field list.
func (c *client) do(method, path string, body []byte, auth bool, out any) error {
	req, err := http.NewRequest(method, strings.TrimSuffix(c.base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return usageError("--api %q: %v", c.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		t, err := c.authToken()
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the writ server at %s (is writ serve running? see --api): %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error  string             `json:"error"`
			Fields []order.FieldError `json:"fields"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		msg := e.Error
		for _, f := range e.Fields {
			msg += "\n  " + f.Error()
		}
		return errors.New(msg)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// orderOut is an order as the API returns it.
type orderOut struct {
	order.Order
	Status    order.Status  `json:"status"`
	Enforced  bool          `json:"enforced"`
	RecordURL string        `json:"record_url"`
	Events    []order.Event `json:"events"`
	Warnings  []string      `json:"warnings"`
}

func init() {
	register(command{name: "order", rank: 10, run: runOrder, usage: []string{
		`writ order add FILE             submit an order (JSON; "-" reads standard input)`,
		"writ order list                 list orders",
		"writ order show ID              show one order and its history",
		"writ order revoke ID            revoke an order: it stops blocking at once",
		"writ order amend|hold|release|reject|suspend|reinstate|queue|receipts",
		"                                due process on an order (writ order --help)",
	}})
	register(command{name: "check", rank: 20, run: runCheck,
		usage: []string{"writ check NAME --client IP     would NAME be blocked for this client, and why?"}})
}

const orderHelp = `
Usage:
  writ order add FILE         submit an order (JSON; "-" reads standard input)
  writ order list             list orders, newest first
  writ order show ID          show one order and its history
  writ order revoke ID        revoke an order: it stops blocking at once
  writ order amend ID         add or remove targets (--add, --add-all, --remove)
  writ order queue            the held targets waiting for a reviewer
  writ order hold ID          take an active target out of enforcement for review
  writ order release ID       let a held target be enforced (reviewer)
  writ order reject ID        refuse a held target for good (reviewer)
  writ order suspend ID       pause an order or one target, e.g. while contested
  writ order reinstate ID     end a suspension
  writ order receipts ID      when each enforcement point applied the order

The order format is that of testdata/orders-fr-motogp-2025.json: authority,
legal_basis, jurisdiction (ISO 3166-1 codes or EU), effective and expires
(RFC 3339), and targets ({"fqdn": "...", "subdomains": true}, {"ip": "..."}
or {"url": "..."}). An order with any invalid field is rejected whole, with
every problem listed; risky targets (shared infrastructure, wide prefixes)
are accepted but held for review.

Examples:
  writ order add testdata/orders-fr-motogp-2025.json
  writ order list --status active
  writ order revoke 20261123-3f9a1c2e --reason "judgment overturned on appeal"
`

func runOrder(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, strings.TrimLeft(orderHelp, "\n"))
		if len(args) == 0 {
			return usageError("order needs a subcommand: add, list, show, revoke, amend, hold, release, reject, suspend, reinstate, queue or receipts")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	if run, ok := orderDueCommands[sub]; ok {
		return run(sub, args, stdout, stderr)
	}
	fs := newFlags("order "+sub, orderHelp, stdout, stderr)
	c := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the server's JSON answer")
	quiet := fs.Bool("quiet", false, "print only the order id (for scripts)")
	var status, reason *string
	switch sub {
	case "list":
		status = fs.String("status", "", "only orders with this status: held, scheduled, active, expired, revoked")
	case "revoke":
		reason = fs.String("reason", "", "why the order is revoked (recorded in its public history)")
	case "add", "show":
	default:
		return usageError("unknown order subcommand %q: want add, list, show, revoke, amend, hold, release, reject, suspend, reinstate, queue or receipts", sub)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"add": 1, "list": 0, "show": 1, "revoke": 1}[sub]
	if len(pos) != want {
		return usageError("order %s takes %d argument(s), got %d (see writ order --help)", sub, want, len(pos))
	}

	var out orderOut
	switch sub {
	case "add":
		var body []byte
		if pos[0] == "-" {
			body, err = io.ReadAll(os.Stdin)
		} else {
			body, err = os.ReadFile(pos[0])
		}
		if err != nil {
			return fmt.Errorf("reading the order: %w", err)
		}
		if err := c.do("POST", "/v1/orders", body, true, &out); err != nil {
			return err
		}
	case "show":
		if err := c.do("GET", "/v1/orders/"+url.PathEscape(pos[0]), nil, false, &out); err != nil {
			return err
		}
	case "revoke":
		body, _ := json.Marshal(map[string]string{"reason": *reason})
		if err := c.do("POST", "/v1/orders/"+url.PathEscape(pos[0])+"/revoke", body, true, &out); err != nil {
			return err
		}
	case "list":
		path := "/v1/orders"
		if *status != "" {
			path += "?status=" + url.QueryEscape(*status)
		}
		var list struct {
			Orders []orderOut `json:"orders"`
		}
		if err := c.do("GET", path, nil, false, &list); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tJURISDICTION\tAUTHORITY\tTARGETS\tEXPIRES")
		for _, o := range list.Orders {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", o.ID, o.Status, o.JurisdictionString(), o.Authority.Name, len(o.Targets), o.Expires.Format("2006-01-02"))
		}
		return tw.Flush()
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	if *quiet {
		fmt.Fprintln(stdout, out.ID)
		return nil
	}
	switch sub {
	case "add":
		fmt.Fprintf(stdout, "order %s recorded: %s\n", out.ID, out.Status)
		for _, w := range out.Warnings {
			fmt.Fprintln(stdout, "  note:", w)
		}
		fmt.Fprintln(stdout, "  public record:", out.RecordURL)
	case "revoke":
		fmt.Fprintf(stdout, "order %s revoked: it no longer blocks anywhere\n", out.ID)
	case "show":
		printOrder(stdout, &out)
	}
	return nil
}

func printOrder(w io.Writer, o *orderOut) {
	fmt.Fprintf(w, "Order %s — %s\n", o.ID, o.Status)
	fmt.Fprintf(w, "  authority:    %s (%s, %s)\n", o.Authority.Name, o.Authority.Kind, o.Authority.Jurisdiction)
	fmt.Fprintf(w, "  legal basis:  %s\n", o.LegalBasis)
	fmt.Fprintf(w, "  jurisdiction: %s\n", o.JurisdictionString())
	fmt.Fprintf(w, "  effective:    %s\n  expires:      %s\n", o.Effective.Format(time.RFC3339), o.Expires.Format(time.RFC3339))
	if o.Disposition != "" {
		fmt.Fprintf(w, "  %s:      %s %s\n", o.Disposition, o.DispositionAt.Format(time.RFC3339), o.DispositionReason)
	}
	fmt.Fprintln(w, "  targets:")
	for _, t := range o.Targets {
		line := fmt.Sprintf("    %-40s %s", t.String(), t.State)
		if t.HoldReason != "" {
			line += ": " + t.HoldReason
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "  history:")
	for _, e := range o.Events {
		fmt.Fprintf(w, "    %s  %-9s %s %s\n", e.At.Format(time.RFC3339), e.Kind, e.Principal, e.Detail)
	}
	fmt.Fprintln(w, "  public record:", o.RecordURL)
}

const checkHelp = `
Usage: writ check NAME (--client IP | --scope CC) [flags]

Asks the running writ server what its DNS server answers for NAME (a domain
name, or an IP address found in answers) to a client, and lists every order
that blocks NAME anywhere, saying which of them apply to this client.

Examples:
  writ check www.motogpstream.me --client 127.0.0.2
  writ check www.motogpstream.me --scope IT
  writ check 203.0.113.7 --scope FR
`

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", checkHelp, stdout, stderr)
	c := clientFlags(fs)
	clientIP := fs.String("client", "", "client IP `address`; its jurisdiction comes from the server's scope mapping")
	scopeCode := fs.String("scope", "", "decide for a client in this jurisdiction (ISO 3166-1 alpha-2 `code`)")
	asJSON := fs.Bool("json", false, "print the server's JSON answer")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("check takes one name (see writ check --help)")
	}
	if (*clientIP == "") == (*scopeCode == "") {
		return usageError("check needs exactly one of --client and --scope")
	}
	q := url.Values{"name": {pos[0]}}
	if *clientIP != "" {
		q.Set("client", *clientIP)
	} else {
		q.Set("scope", *scopeCode)
	}
	var d api.Decision
	if err := c.do("GET", "/v1/check?"+q.Encode(), nil, false, &d); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, d)
	}
	who := "a client in " + d.Scope
	if d.Client != "" {
		who = fmt.Sprintf("client %s (jurisdiction %s, from %s)", d.Client, d.Scope, d.ScopeSource)
	}
	verdict := "ALLOWED"
	if d.Blocked {
		verdict = "BLOCKED"
	}
	fmt.Fprintf(stdout, "%s for %s: %s\n  DNS answer: %s\n  policy version: %d\n", d.Name, who, verdict, d.Answer, d.PolicyVersion)
	if len(d.Orders) == 0 {
		fmt.Fprintln(stdout, "  no order blocks this name anywhere")
	}
	for _, o := range d.Orders {
		applies := "does not apply to this client"
		if o.InScope {
			applies = "applies to this client"
		}
		fmt.Fprintf(stdout, "  order %s (%s) — %s\n    %s, %s; target %s\n    %s\n", o.ID, o.Jurisdiction, applies, o.Authority.Name, o.LegalBasis, o.Target, o.RecordURL)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writ-project/writ/order"
)

// Due process from the command line: authorities and credentials,
// amendments, review, suspension, contests and receipts.

func init() {
	register(command{name: "authority", rank: 30, run: runAuthority, usage: []string{
		"writ authority add ID           register an authority (operator)",
		"writ authority list             the registered authorities",
	}})
	register(command{name: "principal", rank: 31, run: runPrincipal, usage: []string{
		"writ principal add ID --role R  create credentials and print the token (operator)",
		"writ principal list|disable|enable",
	}})
	register(command{name: "contest", rank: 32, run: runContest, usage: []string{
		"writ contest file ORDER         contest an order or a target (anyone)",
		"writ contest list|show|decide   review contests (decide: reviewer)",
	}})
	register(command{name: "events", rank: 40, run: runEvents, usage: []string{
		"writ events                     follow the event stream",
	}})
}

// orderDueCommands are the due-process subcommands of writ order.
var orderDueCommands = map[string]func(sub string, args []string, stdout, stderr io.Writer) error{
	"amend":     runOrderAmend,
	"hold":      runOrderDecision,
	"release":   runOrderDecision,
	"reject":    runOrderDecision,
	"suspend":   runOrderDecision,
	"reinstate": runOrderDecision,
	"queue":     runOrderQueue,
	"receipts":  runOrderReceipts,
}

const orderDueHelp = `
Usage:
  writ order amend ID [--add NAME|IP|URL]… [--add-all NAME]… [--remove TARGET]… [--note TEXT]
  writ order amend ID --file AMENDMENT.json
      Add targets to an order, or remove some, under its legal basis: how a
      regulator extends a court's order to new mirror sites. --add-all adds a
      name with all its subdomains. Added targets pass the same checks and
      safeguards as an order's.
  writ order hold ID --target TARGET --reason TEXT        (operator, reviewer)
  writ order release ID --target TARGET --reason TEXT     (reviewer)
  writ order reject ID --target TARGET --reason TEXT      (reviewer)
  writ order suspend ID [--target TARGET] --reason TEXT   (operator, reviewer)
  writ order reinstate ID [--target TARGET] --reason TEXT (operator, reviewer)
      Without --target, suspend and reinstate act on the whole order.
  writ order queue
      Every held target, with its reason and how long it has waited.
  writ order receipts ID
      When each enforcement point began enforcing the order, and whether it
      met the authority's deadline.

Examples:
  writ order amend 20261123-3f9a1c2e --add-all motogpstream2.me --note "ARCOM notice 14"
  writ order release 20261123-3f9a1c2e --target 203.0.113.0/24 --reason "dedicated hosting, checked"
  writ order suspend 20261123-3f9a1c2e --target bakery.example --reason "contest 3 under examination"
`

func runOrderAmend(sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("order amend", orderDueHelp, stdout, stderr)
	c := clientFlags(fs)
	var add, addAll, remove listFlag
	fs.Var(&add, "add", "add a `target` (name, address, prefix or URL; repeatable)")
	fs.Var(&addAll, "add-all", "add a `name` and all its subdomains (repeatable)")
	fs.Var(&remove, "remove", "remove a `target` (repeatable)")
	note := fs.String("note", "", "why, as the amending authority states it (public)")
	file := fs.String("file", "", "read the amendment from a JSON `file` ({\"add\": [...], \"remove\": [...], \"note\": ...})")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("order amend takes one order id")
	}
	var body []byte
	if *file != "" {
		if len(add)+len(addAll)+len(remove) > 0 {
			return usageError("give either --file or --add/--add-all/--remove")
		}
		if body, err = os.ReadFile(*file); err != nil {
			return err
		}
	} else {
		a := order.Amendment{Note: *note}
		for _, v := range add {
			a.Add = append(a.Add, targetArg(v, false))
		}
		for _, v := range addAll {
			a.Add = append(a.Add, targetArg(v, true))
		}
		for _, v := range remove {
			a.Remove = append(a.Remove, targetArg(v, false))
		}
		if len(a.Add)+len(a.Remove) == 0 {
			return usageError("order amend needs --add, --add-all, --remove or --file")
		}
		body, _ = json.Marshal(a)
	}
	var out orderOut
	if err := c.do("POST", "/v1/orders/"+url.PathEscape(pos[0])+"/amendments", body, true, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "order %s amended (amendment %d): %s\n", out.ID, out.Amendments, out.Status)
	for _, t := range out.Targets {
		if t.Amendment == out.Amendments && t.State == order.TargetHeld {
			fmt.Fprintf(stdout, "  held for review: %s: %s\n", t, t.HoldReason)
		}
	}
	return nil
}

// targetArg turns a command-line target into a submitted one by its
// shape: a URL, an address or prefix, else a name.
func targetArg(v string, subdomains bool) order.SubmittedTarget {
	if strings.Contains(v, "://") {
		return order.SubmittedTarget{URL: v}
	}
	if _, err := netip.ParsePrefix(v); err == nil {
		return order.SubmittedTarget{IP: v}
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return order.SubmittedTarget{IP: v}
	}
	return order.SubmittedTarget{FQDN: v, Subdomains: subdomains}
}

func runOrderDecision(sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("order "+sub, orderDueHelp, stdout, stderr)
	c := clientFlags(fs)
	target := fs.String("target", "", "the `target` concerned, as the order names it")
	reason := fs.String("reason", "", "why (recorded in the order's public history; required)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("order %s takes one order id", sub)
	}
	if *reason == "" {
		return usageError("order %s needs --reason: every decision is recorded with its reason", sub)
	}
	if *target == "" && sub != "suspend" && sub != "reinstate" {
		return usageError("order %s needs --target", sub)
	}
	body, _ := json.Marshal(map[string]string{"target": *target, "reason": *reason})
	var out orderOut
	if err := c.do("POST", "/v1/orders/"+url.PathEscape(pos[0])+"/"+sub, body, true, &out); err != nil {
		return err
	}
	what := "the whole order"
	if *target != "" {
		what = *target
		if t, ok := out.Order.FindTarget(*target); ok {
			what = fmt.Sprintf("%s (now %s)", t, t.State)
		}
	}
	fmt.Fprintf(stdout, "order %s: %s %s; order %s\n", out.ID, pastTense(sub), what, out.Status)
	return nil
}

func pastTense(verb string) string {
	switch verb {
	case "hold":
		return "held"
	case "reinstate", "release":
		return verb + "d"
	}
	return verb + "ed"
}

func runOrderQueue(sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("order queue", orderDueHelp, stdout, stderr)
	c := clientFlags(fs)
	if err := parseNoArgs(fs, args, "order queue"); err != nil {
		return err
	}
	var list struct {
		Orders []orderOut `json:"orders"`
	}
	if err := c.do("GET", "/v1/orders", nil, false, &list); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tAUTHORITY\tTARGET\tWAITING\tREASON")
	n := 0
	for _, o := range list.Orders {
		for _, t := range o.Targets {
			if t.State != order.TargetHeld || o.Status == order.StatusExpired || o.Status == order.StatusRevoked {
				continue
			}
			n++
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.ID, o.Authority.ID, t, time.Since(o.Received).Round(time.Minute), t.HoldReason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(stdout, "no held targets")
	}
	return nil
}

func runOrderReceipts(sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("order receipts", orderDueHelp, stdout, stderr)
	c := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the server's JSON answer")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("order receipts takes one order id")
	}
	var rep struct {
		OrderID         string    `json:"order_id"`
		InForce         bool      `json:"in_force"`
		DeadlineStart   time.Time `json:"deadline_start"`
		DeadlineSeconds int       `json:"deadline_seconds"`
		Points          []struct {
			Point   string     `json:"point"`
			Version uint64     `json:"version"`
			Applied *time.Time `json:"applied"`
			Seconds float64    `json:"seconds"`
			Met     bool       `json:"met"`
			Pending bool       `json:"pending"`
			Overdue bool       `json:"overdue"`
		} `json:"points"`
	}
	if err := c.do("GET", "/v1/orders/"+url.PathEscape(pos[0])+"/receipts", nil, false, &rep); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	if !rep.InForce {
		fmt.Fprintf(stdout, "order %s has not been in force: nothing to enforce yet\n", rep.OrderID)
		return nil
	}
	deadline := time.Duration(rep.DeadlineSeconds) * time.Second
	fmt.Fprintf(stdout, "order %s: deadline %s from %s\n", rep.OrderID, deadline, rep.DeadlineStart.Format(time.RFC3339))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POINT\tVERSION\tAPPLIED\tAFTER\tDEADLINE")
	for _, p := range rep.Points {
		switch {
		case p.Pending:
			verdict := "pending"
			if p.Overdue {
				verdict = "MISSED (still pending)"
			}
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\n", p.Point, verdict)
		default:
			verdict := "met"
			if !p.Met {
				verdict = "MISSED"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.Point, p.Version, p.Applied.Format(time.RFC3339), time.Duration(p.Seconds*float64(time.Second)).Round(time.Millisecond), verdict)
		}
	}
	return tw.Flush()
}

const authorityHelp = `
Usage:
  writ authority add ID --name NAME --kind KIND --jurisdiction CC [--deadline 30m]
  writ authority list

Registers an authority (operator credentials): a court, a regulator, or a
delegated reporter (a rights holder reporting under a law such as Italy's
Piracy Shield), with its jurisdiction and the time within which its orders
must be enforced (default 30 minutes). Orders cite the authority as
registered. Create credentials for it with writ principal add.

Examples:
  writ authority add arcom --name ARCOM --kind regulator --jurisdiction FR
  writ authority add agcom --name AGCOM --kind regulator --jurisdiction IT --deadline 30m
`

func runAuthority(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, strings.TrimLeft(authorityHelp, "\n"))
		if len(args) == 0 {
			return usageError("authority needs a subcommand: add or list")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags("authority "+sub, authorityHelp, stdout, stderr)
	c := clientFlags(fs)
	switch sub {
	case "add":
		name := fs.String("name", "", "the authority's name, as orders cite it")
		kind := fs.String("kind", "", "court, regulator or delegated_reporter")
		juris := fs.String("jurisdiction", "", "ISO 3166-1 alpha-2 `code` (or EU) where its orders apply")
		deadline := fs.Duration("deadline", 30*time.Minute, "time allowed from receipt to enforcement at every enforcement point")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("authority add takes one id")
		}
		body, _ := json.Marshal(order.RegisteredAuthority{Authority: order.Authority{ID: pos[0], Name: *name, Kind: order.AuthorityKind(*kind), Jurisdiction: *juris},
			DeadlineSeconds: int(deadline.Seconds())})
		var out order.RegisteredAuthority
		if err := c.do("POST", "/v1/authorities", body, true, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "authority %s registered: %s (%s, %s), deadline %s\n", out.ID, out.Name, out.Kind, out.Jurisdiction, out.Deadline())
		return nil
	case "list":
		if _, err := parse(fs, args); err != nil {
			return err
		}
		var out struct{ Authorities []order.RegisteredAuthority }
		if err := c.do("GET", "/v1/authorities", nil, false, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tKIND\tJURISDICTION\tDEADLINE")
		for _, a := range out.Authorities {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, a.Kind, a.Jurisdiction, a.Deadline())
		}
		return tw.Flush()
	}
	return usageError("unknown authority subcommand %q: want add or list", sub)
}

const principalHelp = `
Usage:
  writ principal add ID --role ROLE [--authority ID] [--name NAME]
  writ principal list
  writ principal disable ID
  writ principal enable ID

Manages API credentials (operator credentials needed). Roles: authority
(submits and amends the orders of one registered authority, within its
jurisdiction), reviewer (releases or rejects held targets, decides
contests), operator (authorities, credentials, suspension). The token is
printed once; writ keeps only its hash. Reading the record and filing
contests need no credentials.

Examples:
  writ principal add paris-clerk --role authority --authority tj-paris
  writ principal add alice --role reviewer --name "Alice Martin"
  writ principal disable paris-clerk
`

func runPrincipal(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, strings.TrimLeft(principalHelp, "\n"))
		if len(args) == 0 {
			return usageError("principal needs a subcommand: add, list, disable or enable")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags("principal "+sub, principalHelp, stdout, stderr)
	c := clientFlags(fs)
	switch sub {
	case "add":
		role := fs.String("role", "", "authority, reviewer or operator")
		authority := fs.String("authority", "", "for the authority role, the registered authority `id` it acts for")
		name := fs.String("name", "", "a name for people (default: the id)")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("principal add takes one id")
		}
		body, _ := json.Marshal(map[string]string{"id": pos[0], "role": *role, "authority": *authority, "name": *name})
		var out struct {
			Token string `json:"token"`
		}
		if err := c.do("POST", "/v1/principals", body, true, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", out.Token)
		fmt.Fprintf(stderr, "credentials %s created (%s); the token above is shown only now: give it to its holder\n", pos[0], *role)
		return nil
	case "list":
		if _, err := parse(fs, args); err != nil {
			return err
		}
		var out struct {
			Principals []struct {
				ID, Name, Role, Authority string
				Created                   time.Time
				Disabled                  bool
			}
		}
		if err := c.do("GET", "/v1/principals", nil, true, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tAUTHORITY\tNAME\tCREATED\tSTATE")
		for _, p := range out.Principals {
			state := "enabled"
			if p.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Role, p.Authority, p.Name, p.Created.Format("2006-01-02"), state)
		}
		return tw.Flush()
	case "disable", "enable":
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("principal %s takes one id", sub)
		}
		if err := c.do("POST", "/v1/principals/"+url.PathEscape(pos[0])+"/"+sub, nil, true, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "credentials %s %sd\n", pos[0], sub)
		return nil
	}
	return usageError("unknown principal subcommand %q: want add, list, disable or enable", sub)
}

const contestHelp = `
Usage:
  writ contest file ORDER --grounds TEXT --name NAME --email ADDRESS [--target TARGET]
  writ contest list [--status pending|upheld|dismissed]
  writ contest show ID
  writ contest decide ID (--upheld | --dismissed) --reason TEXT

Anyone affected by an order may contest it, or one of its targets; no
credentials are needed. The grounds and the decision are public; the name
and e-mail address are seen only by reviewers. A reviewer decides: upheld,
the contested target is lifted (a contest against a whole order revokes
it); dismissed, a suspension of what was contested ends.

Examples:
  writ contest file 20261123-3f9a1c2e --target bakery.example \
      --grounds "This is a bakery's site; it never streamed anything." \
      --name "Marie Dupont" --email marie@bakery.example
  writ contest decide 3 --upheld --reason "an ordinary bakery, wrongly listed"
`

func runContest(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, strings.TrimLeft(contestHelp, "\n"))
		if len(args) == 0 {
			return usageError("contest needs a subcommand: file, list, show or decide")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags("contest "+sub, contestHelp, stdout, stderr)
	c := clientFlags(fs)
	type contestOut struct {
		order.Contest
		Contact   *order.ContestFiler `json:"contact"`
		RecordURL string              `json:"record_url"`
	}
	show := func(x contestOut) {
		what := "the whole order"
		if x.Target != "" {
			what = x.Target
		}
		fmt.Fprintf(stdout, "contest %d against %s of order %s: %s\n  filed %s\n  grounds: %s\n", x.ID, what, x.OrderID, x.Status, x.Filed.Format(time.RFC3339), x.Grounds)
		if x.Contact != nil {
			fmt.Fprintf(stdout, "  filed by: %s <%s>\n", x.Contact.Name, x.Contact.Email)
		}
		if x.Decided != nil {
			fmt.Fprintf(stdout, "  decided %s: %s\n", x.Decided.Format(time.RFC3339), x.Decision)
		}
	}
	switch sub {
	case "file":
		grounds := fs.String("grounds", "", "why the order or target is wrong")
		name := fs.String("name", "", "your name (seen by reviewers only)")
		email := fs.String("email", "", "your e-mail `address` (seen by reviewers only)")
		target := fs.String("target", "", "the contested `target`; omit to contest the whole order")
		quiet := fs.Bool("quiet", false, "print only the contest id (for scripts)")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("contest file takes one order id")
		}
		body, _ := json.Marshal(order.ContestSubmission{Target: *target, Grounds: *grounds, Contact: order.ContestFiler{Name: *name, Email: *email}})
		var out contestOut
		if err := c.do("POST", "/v1/orders/"+url.PathEscape(pos[0])+"/contests", body, false, &out); err != nil {
			return err
		}
		if *quiet {
			fmt.Fprintln(stdout, out.ID)
			return nil
		}
		fmt.Fprintf(stdout, "contest %d filed; a reviewer will decide, and the decision will be public at %s\n", out.ID, out.RecordURL)
		return nil
	case "list":
		status := fs.String("status", "", "only contests with this status: pending, upheld, dismissed")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		path := "/v1/contests"
		if *status != "" {
			path += "?status=" + url.QueryEscape(*status)
		}
		var out struct{ Contests []contestOut }
		if err := c.do("GET", path, nil, c.token != "" || fileExists(c.tokenFile), &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tORDER\tTARGET\tSTATUS\tFILED")
		for _, x := range out.Contests {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", x.ID, x.OrderID, x.Target, x.Status, x.Filed.Format(time.RFC3339))
		}
		return tw.Flush()
	case "show":
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("contest show takes one contest id")
		}
		var out contestOut
		if err := c.do("GET", "/v1/contests/"+url.PathEscape(pos[0]), nil, c.token != "" || fileExists(c.tokenFile), &out); err != nil {
			return err
		}
		show(out)
		return nil
	case "decide":
		upheld := fs.Bool("upheld", false, "the contest is right: lift the contested target (or revoke the order)")
		dismissed := fs.Bool("dismissed", false, "the contest is wrong: keep the block, end any suspension")
		reason := fs.String("reason", "", "the decision's reasons (public; required)")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("contest decide takes one contest id")
		}
		if *upheld == *dismissed {
			return usageError("contest decide needs exactly one of --upheld and --dismissed")
		}
		outcome := "upheld"
		if *dismissed {
			outcome = "dismissed"
		}
		body, _ := json.Marshal(map[string]string{"outcome": outcome, "reason": *reason})
		var out contestOut
		if err := c.do("POST", "/v1/contests/"+url.PathEscape(pos[0])+"/decision", body, true, &out); err != nil {
			return err
		}
		show(out)
		return nil
	}
	return usageError("unknown contest subcommand %q: want file, list, show or decide", sub)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

const eventsHelp = `
Usage: writ events [--after SEQ]

Follows the event stream of a writ server: every event after SEQ (default:
from the start), then each new one as it is recorded, one JSON object a
line, until interrupted. For operators' tooling: alerts, tickets, mirrors.

Example:
  writ events --after 120 | jq 'select(.kind == "held")'
`

func runEvents(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("events", eventsHelp, stdout, stderr)
	c := clientFlags(fs)
	after := fs.Uint64("after", 0, "start after this event `seq`")
	if err := parseNoArgs(fs, args, "events"); err != nil {
		return err
	}
	req, err := http.NewRequest("GET", strings.TrimSuffix(c.base, "/")+fmt.Sprintf("/v1/events?after=%d", *after), nil)
	if err != nil {
		return usageError("--api %q: %v", c.base, err)
	}
	client := &http.Client{} // no timeout: the stream is long-lived
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the writ server at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("events: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			fmt.Fprintln(stdout, data)
		}
	}
	return sc.Err()
}

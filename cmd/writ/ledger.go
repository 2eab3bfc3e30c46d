package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/writ-project/writ/internal/config"
	"github.com/writ-project/writ/ledger"
	"github.com/writ-project/writ/publicrecord"
)

func init() {
	register(command{name: "ledger", rank: 30, run: runLedger, usage: []string{
		"writ ledger verify --from URL   check that a writ server's public ledger was never rewritten",
	}})
}

const ledgerHelp = `
Usage: writ ledger verify [--from URL] [--key KEY] [--checkpoint FILE] [--save FILE]

Fetches the transparency ledger of a writ server (every order event since
the first), recomputes its Merkle tree from the entries, checks the
signature of the server's checkpoint and, with --checkpoint, that the log
still extends a checkpoint saved earlier. It prints what it checked and,
if anything is wrong, each problem with the entries concerned, and exits
with status 1.

The checkpoint's signing key comes from the server unless --key is given.
That proves the log is consistent with itself only. Pin the key the
operator published (the ledger-key.pub file of its data directory, or
the line GET /v1/ledger/key answered when you first trusted it) to prove
that the log is the operator's; save a checkpoint with --save and check
the next run against it with --checkpoint to prove that nothing was
changed, removed or reordered in between.

Examples:
  writ ledger verify --from https://writ.isp.example --save writ.checkpoint
  writ ledger verify --from https://writ.isp.example --key ledger-key.pub \
      --checkpoint writ.checkpoint --save writ.checkpoint
`

func runLedger(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, strings.TrimLeft(ledgerHelp, "\n"))
		if len(args) == 0 {
			return usageError("ledger needs a subcommand: verify")
		}
		return nil
	}
	if args[0] != "verify" {
		return usageError("unknown ledger subcommand %q: want verify", args[0])
	}
	flags := newFlags("ledger verify", ledgerHelp, stdout, stderr)
	from := flags.String("from", envOr("WRIT_API", "http://"+config.DefaultHTTPListen), "writ server `URL` whose ledger to verify (env WRIT_API)")
	key := flags.String("key", "", "the operator's verifier `key`, or a file holding it (default: ask the server)")
	saved := flags.String("checkpoint", "", "`file` with a checkpoint saved earlier, which the log must extend")
	save := flags.String("save", "", "write the verified checkpoint to `file` (only when everything verified)")
	timeout := flags.Duration("timeout", 5*time.Minute, "give up after this `duration`")
	if err := parseNoArgs(flags, args[1:], "ledger verify"); err != nil {
		return err
	}
	opts := ledger.VerifyOptions{Client: &http.Client{Timeout: 2 * time.Minute}}
	if *key != "" {
		// A verifier key is "<name>+<hash>+<key>"; anything else is a file.
		b, err := os.ReadFile(*key)
		switch {
		case err == nil:
			opts.Key = strings.TrimSpace(string(b))
		case errors.Is(err, fs.ErrNotExist) && strings.Count(*key, "+") >= 2:
			opts.Key = *key
		default:
			return fmt.Errorf("--key: %w", err)
		}
	}
	if *saved != "" {
		var err error
		if opts.Saved, err = os.ReadFile(*saved); err != nil {
			return fmt.Errorf("--checkpoint: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r, err := ledger.Verify(ctx, *from, opts)
	if err != nil {
		return fmt.Errorf("could not verify the ledger at %s: %w", *from, err)
	}
	if !r.OK() {
		fmt.Fprintf(stdout, "ledger at %s: FAILED, the record does not verify\n", *from)
		for _, p := range r.Problems {
			fmt.Fprintf(stdout, "  - %s\n", p)
		}
		return &exitError{code: 1, err: fmt.Errorf("ledger verification failed: %d problem(s)", len(r.Problems))}
	}
	cp := r.Checkpoint
	fmt.Fprintf(stdout, "ledger at %s: VERIFIED\n", *from)
	fmt.Fprintf(stdout, "  origin:     %s\n  tree size:  %d\n  root hash:  %s\n", cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Root))
	if r.KeyFromServer {
		fmt.Fprintf(stdout, "  signature:  valid, by the key the server gave (%s); pin the operator's published key with --key for an independent check\n", r.Key)
	} else {
		fmt.Fprintf(stdout, "  signature:  valid, by the pinned key %s\n", r.Key)
	}
	fmt.Fprintf(stdout, "  entries:    %d fetched; their Merkle tree hash is the signed root\n", r.Entries)
	if r.CheckSaved {
		fmt.Fprintf(stdout, "  history:    extends the checkpoint saved in %s (size %d): nothing before it was changed, removed or reordered\n", *saved, r.SavedSize)
	}
	if *save != "" {
		if err := writeFileAtomic(*save, r.Signed); err != nil {
			return fmt.Errorf("--save: %w", err)
		}
		fmt.Fprintf(stdout, "  saved:      checkpoint of size %d in %s\n", cp.Size, *save)
	}
	return nil
}

// publicRecordHandler serves the ledger (/v1/ledger/…) and the public
// record (the pages "/" and "/orders/{id}", /v1/report and the exports
// /v1/orders/{id}/lumen and /dsa) in front of the API, which answers
// everything else.
func publicRecordHandler(api http.Handler, led *ledger.Ledger, docs ledger.Documents, record *publicrecord.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/ledger/", led.Handler(docs))
	for _, route := range publicrecord.Routes() {
		mux.Handle(route, record)
	}
	mux.Handle("/", api)
	return mux
}

// writeFileAtomic replaces path with data, so that a crash leaves either
// the old checkpoint or the new one, never half of one.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".checkpoint-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Command writ receives legal blocking orders, enforces them at its DNS
// server only for clients in the issuing jurisdiction, and keeps a public
// record of every order.
//
// Run `writ help` for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/writ-project/writ/internal/config"
	"io"
	"os"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// command is one subcommand of writ. Each registers itself from the file
// that implements it, so that adding a command touches no other file.
type command struct {
	name string
	// rank orders the usage listing; lines are "writ …  what it does".
	rank  int
	usage []string
	run   func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

func init() {
	register(command{name: "version", rank: 100, usage: []string{"writ version                    print the version"},
		run: func(_ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "writ", version)
			return nil
		}})
}

// usage is the help of writ itself, listing every command.
func usage() string {
	var b strings.Builder
	b.WriteString("writ — legal blocking orders, enforced only where the law applies, on the record.\n\nUsage:\n")
	list := make([]command, 0, len(commands))
	for _, c := range commands {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].rank != list[j].rank {
			return list[i].rank < list[j].rank
		}
		return list[i].name < list[j].name
	})
	for _, c := range list {
		for _, line := range c.usage {
			b.WriteString("  " + line + "\n")
		}
	}
	b.WriteString(`
Try it:
  writ serve --demo               runs with a sample court order and prints two dig
                                  commands: one blocked, one not

Run "writ help COMMAND" or "writ COMMAND --help" for a command's flags and examples.
`)
	return b.String()
}

// exitError carries the process exit status of a failed command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// usageError is a mistake in the command line: exit status 2.
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	fmt.Fprintln(os.Stderr, "writ:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return usageError("no command given")
	}
	name, rest := args[0], args[1:]
	if name == "--version" {
		name = "version"
	}
	if isHelp(name) {
		if len(rest) > 0 && !isHelp(rest[0]) {
			return run([]string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage())
		return nil
	}
	if c, ok := commands[name]; ok {
		return c.run(rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usage())
	return usageError("unknown command %q", name)
}

func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// newFlags returns a flag set whose --help prints text, then the flags.
// Help asked for goes to stdout (so that it can be paged); the usage
// printed after a mistake goes to stderr with the error.
func newFlags(name, text string, stdout, stderr io.Writer) *cmdFlags {
	fs := &cmdFlags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), stdout: stdout}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, strings.TrimLeft(text, "\n"))
		fmt.Fprintln(out, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// cmdFlags is a command's flag set and where its help goes.
type cmdFlags struct {
	*flag.FlagSet
	stdout io.Writer
}

// parse parses flags, allowing them after positional arguments too
// ("writ order revoke ID --reason x"), and returns the positionals.
func parse(fs *cmdFlags, args []string) ([]string, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(fs.stdout)
			fs.Usage()
			return nil, flag.ErrHelp
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitError{code: 2, err: err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// parseNoArgs parses the flags of a command that takes no arguments.
func parseNoArgs(fs *cmdFlags, args []string, command string) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("%s takes no arguments, got %q (flags start with --; see writ %s --help)", command, pos[0], command)
	}
	return nil
}

// loadConfig returns the defaults, overlaid by the file at path if any.
func loadConfig(path string) (config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// setIf sets *dst to v unless v is empty: a flag given overrides the file.
func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"dht/app"
	"dht/internal/udpio"
)

// The longest durations the flags take: the protocol doubles and adds
// them (a timeout is twice --rto, a backoff four times it), and a day's
// wait is already no wait a user means; past them the sums would
// overflow (a review: --rto 1300000h made the first query timeout 0).
const (
	maxRTO  = time.Minute
	maxWait = 24 * time.Hour
)

// usageError is a command line the user got wrong: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// env is what a command reads and writes besides its flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// checkedWriter keeps the first error a write returned, for output
// whose writes are not checked one by one (fmt.Fprint*, help, --version):
// a command whose output was lost (a full disk) does not exit 0.
type checkedWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (c *checkedWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// check is err, or else the first write's error.
func (c *checkedWriter) check(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		return c.err
	}
	return err
}

// run is main without os.Exit: 0 normal, 2 usage errors, 1 runtime failures.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := newApp(env{stdin: stdin, stdout: stdout, stderr: stderr})
	help := &checkedWriter{w: stdout} // help and --version
	a.Writer = help
	args = helpAnywhere(args, a)
	err := decimalFlags(args, a)
	if err == nil {
		err = help.check(a.Run(args))
	}
	if err == nil {
		return 0
	}
	if m := noHelpTopic.FindStringSubmatch(err.Error()); m != nil {
		// urfave/cli's words, status 3, for a word after --help.
		err = usagef("no help for %q: --help takes no arguments (see 'dht help COMMAND')", m[1])
	}
	fmt.Fprintf(stderr, "dht: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

func newApp(e env) *cli.App {
	a := &cli.App{
		Name:  "dht",
		Usage: "a distributed hash table on a ring overlay, over UDP",
		Description: "One always-on server keeps the registry of users; peers build a ring, spread the\n" +
			"StatsCountry dataset round it, answer queries by walking the ring, take members in\n" +
			"and let them leave, and heal round a member that dies. Results go to stdout, the\n" +
			"trace of every datagram to stderr.",
		Reader:          e.stdin,
		Writer:          e.stdout,
		ErrWriter:       e.stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		Version:         version(),
		OnUsageError: func(c *cli.Context, err error, sub bool) error {
			return usagef("%s (see 'dht --help')", flagError(err, nil))
		},
		Commands: []*cli.Command{serverCommand(e), peerCommand(e), inspectCommand(e), demoCommand(e), playCommand(e), benchCommand(e), benchFloorCommand(e), diagramCommand(e), ringCommand(e), versionCommand(e)},
		Action: func(c *cli.Context) error {
			if c.Args().First() == "help" { // as git and go have it: dht help [COMMAND]
				return helpCommand(c)
			}
			if c.NArg() > 0 {
				return usagef("unknown command %q (see 'dht --help')", c.Args().First())
			}
			// No command: a usage error, naming the commands; dht --help
			// and dht help show the whole help.
			var names []string
			for _, cmd := range c.App.VisibleCommands() {
				names = append(names, cmd.Name)
			}
			return usagef("no command given: one of %s (see 'dht --help')", strings.Join(names, ", "))
		},
	}
	for _, cmd := range a.Commands {
		cmd.OnUsageError = func(c *cli.Context, err error, sub bool) error {
			return usagef("%s (see 'dht %s --help')", flagError(err, cmd.Flags), cmd.Name)
		}
		cmd.Before = flagsFirst(cmd)
	}
	return a
}

// noHelpTopic is urfave/cli's error for a word after --help.
var noHelpTopic = regexp.MustCompile(`^No help topic for '(.*)'$`)

// The errors of package flag, which urfave/cli passes on: they name a flag
// with one dash, and a value they cannot parse as a "parse error".
var (
	flagUnknown = regexp.MustCompile(`^flag provided but not defined: -+(\S+)$`)
	flagInvalid = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-+([^:\s]+): .*$`)
)

// flagError says what is wrong with a flag as the help names it (--name),
// and what its value must look like.
func flagError(err error, flags []cli.Flag) string {
	msg := err.Error()
	if m := flagUnknown.FindStringSubmatch(msg); m != nil {
		if _, err := strconv.Atoi(m[1]); err == nil {
			// "-1" where a port or a number goes: taken for a flag.
			return fmt.Sprintf("-%s is not a flag, and no argument here takes a negative number", m[1])
		}
		if len(m[1]) == 1 {
			return "unknown flag -" + m[1] // as typed: a letter takes one dash
		}
		return "unknown flag --" + m[1]
	}
	m := flagInvalid.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	need := ""
	for _, f := range flags {
		if !slices.Contains(f.Names(), m[2]) {
			continue
		}
		switch f.(type) {
		case *cli.DurationFlag:
			need = ": need a duration, e.g. 200ms, 15s or 2m"
		case *cli.IntFlag, *cli.UintFlag, *cli.Uint64Flag, *cli.Int64Flag:
			need = ": need a whole number"
		case *cli.Float64Flag:
			need = ": need a number, e.g. 0.1"
		case *cli.BoolFlag:
			need = ": need true or false"
		}
	}
	return fmt.Sprintf("invalid value %s for --%s%s", m[1], m[2], need)
}

// helpAnywhere: a command's --help (or -h) typed anywhere among its
// arguments, as 'dht peer 127.0.0.1 4000 --help', shows the command's help,
// as it does before them, rather than a complaint about where it goes.
func helpAnywhere(args []string, a *cli.App) []string {
	if len(args) < 3 || a.Command(args[1]) == nil {
		return args
	}
	for _, arg := range args[2:] {
		if arg == "--" {
			break
		}
		if arg == "--help" || arg == "-h" {
			return []string{args[0], args[1], "--help"}
		}
	}
	return args
}

// decimalFlags refuses, before urfave/cli parses them, a number flag's
// value written other than in decimal. Package flag, which parses them,
// takes 046040 for octal (19488), 0x46 for hex, 0b11 and 1_0 too, and
// hex floats, where the ports and ring sizes given as arguments refuse
// even a leading zero: a user who typed one got another port than asked.
// It refuses a flag that takes a value given twice too: package flag
// keeps the last and drops the other unsaid (a new user's review drew
// two --query of dht ring and got one walk).
func decimalFlags(args []string, a *cli.App) error {
	if len(args) < 2 {
		return nil
	}
	cmd := a.Command(args[1])
	if cmd == nil {
		return nil
	}
	type kind int
	const (
		takesNone kind = iota + 1
		other          // takes a value, not a number
		whole
		real
	)
	kinds := map[string]kind{}
	canonical := map[string]string{} // a name or alias: the flag's name
	for _, f := range cmd.Flags {
		k := other
		switch f.(type) {
		case *cli.IntFlag, *cli.UintFlag, *cli.Uint64Flag, *cli.Int64Flag:
			k = whole
		case *cli.Float64Flag:
			k = real
		case *cli.BoolFlag:
			k = takesNone
		}
		for _, n := range f.Names() {
			kinds[n], canonical[n] = k, f.Names()[0]
		}
	}
	given := map[string]string{} // a flag's name: its first value
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		arg := rest[i]
		if arg == "--" || len(arg) < 2 || arg[0] != '-' {
			return nil // the arguments: flags go before them
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		k := kinds[name]
		if k == 0 || k == takesNone {
			continue // unknown (urfave/cli says so), or a switch
		}
		if !hasVal {
			if i+1 == len(rest) {
				return nil
			}
			i++
			val = rest[i]
		}
		if before, ok := given[canonical[name]]; ok {
			return usagef("--%s is given twice (%q, then %q): it takes one value (see 'dht %s --help')", canonical[name], before, val, cmd.Name)
		}
		given[canonical[name]] = val
		// Only what package flag would take otherwise than as written: the
		// rest gets the flag's own words.
		switch {
		case k == other:
		case k == whole && !wholeDecimal.MatchString(val) && parsesAsInt(val):
			hint := ""
			if t := strings.TrimLeft(val, "0"); t != val && wholeDecimal.MatchString(t) {
				hint = fmt.Sprintf(" (%s)", t)
			}
			return usagef("invalid value %q for --%s: need a whole number in decimal, without leading zeros%s (see 'dht %s --help')", val, name, hint, cmd.Name)
		case k == real && strings.ContainsAny(val, "xX_") && parsesAsFloat(val):
			return usagef("invalid value %q for --%s: need a number in decimal, e.g. 0.1 (see 'dht %s --help')", val, name, cmd.Name)
		}
	}
	return nil
}

var wholeDecimal = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

func parsesAsInt(v string) bool {
	_, err := strconv.ParseInt(v, 0, 64)
	_, uerr := strconv.ParseUint(v, 0, 64)
	return err == nil || uerr == nil
}

func parsesAsFloat(v string) bool {
	_, err := strconv.ParseFloat(v, 64)
	return err == nil
}

// helpCommand is "dht help [COMMAND]": the same text as "dht --help" or
// "dht COMMAND --help". The help command urfave/cli would add is hidden,
// as its list of commands would name it beside the real ones.
func helpCommand(c *cli.Context) error {
	// --help after the command named, as 'dht help peer --help', asks
	// for the same help.
	var args []string
	for _, arg := range c.Args().Tail() {
		if arg != "--help" && arg != "-h" || len(args) == 0 {
			args = append(args, arg)
		}
	}
	switch {
	case len(args) == 0, len(args) == 1 && (args[0] == "help" || args[0] == "--help" || args[0] == "-h"): // dht help help, as git has it
		return cli.ShowAppHelp(c)
	case len(args) > 1:
		return usagef("help takes at most one command (see 'dht --help')")
	}
	cmd := c.App.Command(args[0])
	if cmd == nil || cmd.Hidden {
		return usagef("unknown command %q (see 'dht --help')", args[0])
	}
	return cli.ShowCommandHelp(c, cmd.Name)
}

// flagsFirst refuses a flag written after the positional arguments (the
// flag parser stops at the first argument, so it would be taken as one).
func flagsFirst(cmd *cli.Command) cli.BeforeFunc {
	return func(c *cli.Context) error {
		for _, arg := range c.Args().Slice() {
			if _, err := strconv.Atoi(arg); err == nil {
				continue // a negative number: the argument's own check refuses it
			}
			if len(arg) > 1 && arg[0] == '-' {
				what := cmd.ArgsUsage
				if what == "" {
					what = "the arguments"
				}
				return usagef("flags go before %s: %s (see 'dht %s --help')", what, arg, cmd.Name)
			}
		}
		return nil
	}
}

// version is the module's version ("(devel)" for a build from a checkout,
// then with the commit when the build recorded it) and the Go release that
// built the binary.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" {
		return "(unknown) " + runtime.Version()
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" && !strings.Contains(v, rev[:min(12, len(rev))]) {
		v += fmt.Sprintf(" (commit %.12s%s)", rev, modified)
	}
	return v + " " + runtime.Version()
}

func versionCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the module version and the Go version (as dht --version does)",
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("version takes no arguments (see 'dht version --help')")
			}
			cli.VersionPrinter(c)
			return nil
		},
	}
}

// faultFlags are the testing flags that make a process's socket lossy, after
// the help flag: urfave/cli lists a command whose flags have categories by
// category, from the flags given here, and would leave out the one it adds.
func faultFlags() []cli.Flag {
	return []cli.Flag{
		cli.HelpFlag,
		&cli.Float64Flag{Name: "fault-loss", Usage: "testing: drop this fraction, in [0,1), of the datagrams this process sends", Category: "testing"},
		&cli.Float64Flag{Name: "fault-dup", Usage: "testing: send this fraction, in [0,1], of the datagrams twice", Category: "testing"},
		&cli.Uint64Flag{Name: "fault-seed", Usage: "testing: seed of the fault injection (0: from the clock)", Category: "testing"},
	}
}

func faultsFrom(c *cli.Context) (*app.Faults, error) {
	loss, dup := c.Float64("fault-loss"), c.Float64("fault-dup")
	switch { // written so that NaN is out of range
	case !(loss >= 0 && loss < 1):
		return nil, usagef("--fault-loss must be in [0,1), got %g", loss)
	case !(dup >= 0 && dup <= 1):
		return nil, usagef("--fault-dup must be in [0,1], got %g", dup)
	}
	if loss == 0 && dup == 0 {
		return nil, nil
	}
	seed := c.Uint64("fault-seed")
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	return &app.Faults{Loss: loss, Dup: dup, Rand: rand.New(rand.NewPCG(seed, 7))}, nil
}

// traceLogger builds the stderr trace (nil writer or quiet: discard).
func traceLogger(c *cli.Context, w io.Writer, node string) *slog.Logger {
	if c.Bool("quiet") {
		return slog.New(slog.DiscardHandler)
	}
	l := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if node != "" {
		l = l.With(slog.String("node", node))
	}
	return l
}

// clusterTrace is the trace of every process dht demo or dht play runs, to
// w (nil: none); one handler, so that lines of different processes never
// interleave.
func clusterTrace(w io.Writer) *slog.Logger {
	if w == nil {
		return nil
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func quietFlag() cli.Flag {
	return &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "do not write the datagram trace to stderr"}
}

// signalContext is cancelled on SIGINT, SIGTERM or SIGHUP (the terminal
// closed): the process stops as it does on Ctrl-C, its file closed.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
}

func parsePort(s string) (uint16, error) {
	p, why := app.ParsePort(s)
	if why != "" {
		return 0, usagef("%s", why)
	}
	return p, nil
}

// parseIPv4 parses one host's IPv4 address (see app.NotUnicast); with
// anyOK, 0.0.0.0 too, for a socket that listens on every interface.
func parseIPv4(s string, anyOK bool) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, usagef("invalid IPv4 address %q: %s", s, app.IPv4Syntax(s, "dotted decimal, e.g. 127.0.0.1"))
	}
	if anyOK && ip.IsUnspecified() {
		return ip, nil
	}
	if why := app.NotUnicast(ip); why != "" {
		return netip.Addr{}, usagef("invalid IPv4 address %q: %s; need one host's address, e.g. 127.0.0.1", s, why)
	}
	if err := udpio.NetBroadcastOf(ip); err != nil {
		return netip.Addr{}, usagef("invalid IPv4 address %q: %v", s, err)
	}
	return ip, nil
}

// strongRand is the randomness of a server or a peer: ChaCha8 seeded from
// the system's cryptographic source, so that what it draws (a peer's
// request ids, which a forged FAILURE would have to match) cannot be
// guessed from what it drew before.
func strongRand() *rand.Rand {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // Read never fails on the systems Go supports
	}
	return rand.New(rand.NewChaCha8(seed))
}

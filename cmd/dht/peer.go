package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"

	"dht/app"
	"dht/app/state"
	"dht/store"
)

// peerPrompt is shown, on stderr, when stdin is a terminal and the peer is ready
// for the next command.
const peerPrompt = "dht> "

// longNamePrompt asks, the same way, for the Long Name of a query-dht typed
// without one.
const longNamePrompt = "Long Name: "

func peerCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "peer",
		Usage:     "run a user process: commands from stdin, the ring protocol over UDP",
		ArgsUsage: "SERVER_IPV4 SERVER_PORT",
		Description: "Reads commands from standard input, one per line. When stdin is a terminal it\n" +
			"shows a prompt (on stderr) and a hint to type help; piped input gets neither.\n\n" +
			app.HelpText() + "\n\n" +
			"The peer binds IPV4:PORT when it registers and sends everything from there. Its\n" +
			"local table lives in the bbolt file --db. It keeps running at end of input while\n" +
			"registered (it says so on stderr); exits after deregister, or on SIGINT, SIGTERM, SIGHUP.\n" +
			"Started on a --db file that holds a registration, it resumes it first: it binds that\n" +
			"address, rejoins the server and prints resume SUCCESS or resume FAILURE (so give\n" +
			"--db to resume: the default dht-peer-NAME.db is named only once NAME registers); a --db\n" +
			"file it cannot open (damaged, foreign, in use) fails there, with exit status 1;\n" +
			"a --data file that cannot be read or does not load stops it at start (status 1),\n" +
			"and is read again at each setup-dht.\n" +
			"A query-dht typed without its Long Name asks the server first: after SUCCESS the next\n" +
			"line (blank and # lines skipped, as everywhere) is the Long Name, trimmed of white space\n" +
			"(at a terminal the peer asks for it), after FAILURE it is a command of its own. A line\n" +
			"over 1 MiB is refused as a whole (a FAILURE line).",
		Flags: append([]cli.Flag{
			dataFlag("the dataset this peer spreads when it leads a ring"),
			&cli.StringFlag{Name: "db", Usage: "bbolt file of the local table (default: dht-peer-NAME.db, named at register)"},
			&cli.DurationFlag{Name: "rto", Value: app.DefaultRTO, Usage: fmt.Sprintf("retransmission timeout until round trips are measured, at most %v (then measured, at least %v; doubles on each retry, up to %v, %v to the server, or 4 x the measured timeout)", maxRTO, app.DefaultMinRTO, app.DefaultMaxRTO, app.ServerMaxRTO)},
			&cli.DurationFlag{Name: "give-up", Value: app.DefaultGiveUp, Usage: "declare a neighbour, or the server, gone after retransmitting to it for this long (longer than --rto, at most " + maxWait.String() + ")"},
			&cli.IntFlag{Name: "window", Value: app.DefaultWindow, Usage: "most unacknowledged ring messages to one neighbour, 1-1024"},
			&cli.DurationFlag{Name: "query-timeout", Value: app.DefaultQueryTimeout, Usage: "give up on a query the ring has not answered after this long, once the server named a member to ask (the server's answer follows --give-up; asked again for a member that never acknowledged the query, within this limit; at most " + maxWait.String() + ")"},
			quietFlag(),
			traceJSONFlag(),
		}, append(faultFlags(), benchFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("peer takes two arguments, SERVER_IPV4 SERVER_PORT (see 'dht peer --help')")
			}
			ip, err := parseIPv4(c.Args().Get(0), false)
			if err != nil {
				return err
			}
			port, err := parsePort(c.Args().Get(1))
			if err != nil {
				return err
			}
			switch rto, giveUp, w := c.Duration("rto"), c.Duration("give-up"), c.Int("window"); {
			case rto <= 0 || rto > maxRTO:
				return usagef("--rto must be positive and at most %s, got %s", maxRTO, rto)
			case giveUp > maxWait:
				return usagef("--give-up must be at most %s, got %s", maxWait, giveUp)
			case giveUp <= rto:
				// A peer that gives up before its first retransmission
				// gives up on every datagram lost once.
				return usagef("--give-up must be longer than --rto (%s), got %s", rto, giveUp)
			case w < 1 || w > 1024:
				return usagef("--window must be 1-1024, got %d", w)
			case c.Duration("query-timeout") <= 0 || c.Duration("query-timeout") > maxWait:
				return usagef("--query-timeout must be positive and at most %s, got %s", maxWait, c.Duration("query-timeout"))
			}
			faults, err := faultsFrom(c)
			if err != nil {
				return err
			}
			data, err := loadData(c.String("data"), e.stderr)
			if err != nil {
				return fmt.Errorf("peer: %w", err)
			}
			dbPath := c.String("db")
			if c.IsSet("db") && dbPath == "" {
				return usagef("--db needs a file name (without --db the peer's file is dht-peer-NAME.db, named at register)")
			}
			core := app.NewPeer(app.PeerConfig{
				Server:   netip.AddrPortFrom(ip, port),
				LoadData: data,
				Rand:     strongRand(),
				Link: app.LinkConfig{
					Retry:  app.Retry{RTO: c.Duration("rto"), GiveUp: c.Duration("give-up")},
					Window: c.Int("window"),
				},
				RequestTimeout: c.Duration("give-up"),
				QueryTimeout:   c.Duration("query-timeout"),
			})
			// openTrace checks --trace-json against --db before it makes
			// the file; a --db not made yet is checked once it is (below).
			tr := c.String("trace-json")
			// The profile is checked before the trace is made: a refused
			// command empties no file.
			if err := checkOutputs([]output{{"trace-json", tr, outTrace}, {"cpuprofile", c.String("cpuprofile"), outProfile}}, dbPath); err != nil {
				return err
			}
			traceIsNew := newFile(tr)
			log, traceOut, err := openTrace(c, e.stderr, "") // the runner names the node once it knows the user
			if err != nil {
				return err
			}
			if dbPath != "" && tr != "" && samePath(dbPath, tr) {
				// A --db not made yet, named otherwise (a symbolic link):
				// the trace just made is that file, which goes again, as
				// it was not there before.
				traceOut.Close()
				if traceIsNew {
					_ = os.Remove(tr)
				}
				return sameAsRead("trace-json", tr, outTrace)
			}
			stopProfile, err := startProfile(c)
			if err != nil {
				// Refused: the trace just made goes again.
				traceOut.Close()
				if traceIsNew {
					_ = os.Remove(tr)
				}
				return err
			}
			defer traceOut.Close()
			defer stopProfile()
			ctx, cancel := signalContext()
			defer cancel()
			stdin, restore := pollable(e.stdin)
			defer restore()
			// A read error ends the input as its end does, and is said.
			in := &readErrNote{r: stdin, w: e.stderr, terminal: isTerminal(e.stdin)}
			var ap *atPrompt // at a terminal: keeps what is written off the prompt's line
			if in.terminal {
				// Set before LinesFrom starts the goroutine that reads.
				ap = &atPrompt{w: e.stderr}
				in.typed, in.ended = ap.typed, ap.end
				traceOut.setNote(offPrompt{ap, e.stderr})
			}
			stdout, restoreOut := pollableOut(e.stdout)
			defer restoreOut()
			out := &writeErrNote{w: stdout, note: e.stderr}
			r := &app.PeerRunner{
				Core:   core,
				Lines:  app.LinesFrom(in, ctx.Done()),
				Out:    out,
				Notes:  e.stderr,
				Log:    log,
				Faults: faults,
				OpenStore: func(name string) (app.PeerStore, error) {
					path := dbPath
					if path == "" {
						path = fmt.Sprintf("dht-peer-%s.db", name)
						// Named only now: the trace, made at the start,
						// may be that file (--db was checked then).
						if tr != "" && samePath(path, tr) {
							return nil, fmt.Errorf("%s is this peer's --trace-json file: name the table with --db, or send the trace elsewhere", path)
						}
						if pr := c.String("cpuprofile"); pr != "" && samePath(path, pr) {
							return nil, fmt.Errorf("%s is this peer's --cpuprofile file: name the table with --db, or send the profile elsewhere", path)
						}
					}
					st, err := openPeerFile(e, path)
					if err != nil {
						return nil, err
					}
					return st, nil
				},
			}
			if dbPath != "" {
				// A file that holds a registration is resumed. One that is
				// there but cannot be opened or read (damaged, foreign, a
				// server's, held by another process) fails at once: the
				// peer would open the same path for any register.
				if exists, err := dbPathProblem("peer", dbPath, "made at register", ", or of the file to resume"); err != nil {
					return err
				} else if exists { // else it is made at the first register
					st, err := openPeerFile(e, dbPath)
					if err == nil {
						var id state.Identity
						if id, err = st.Identity(); err != nil {
							err = errors.Join(err, st.Close())
						} else if id.Name != "" {
							r.Resume, r.Store = &id, st
						} else if err := st.Close(); err != nil {
							return fmt.Errorf("peer: %w", err)
						}
					}
					if errors.Is(err, store.ErrNotDHT) || errors.Is(err, store.ErrWrongKind) {
						// No peer's file: it holds no registration, so there
						// is no resume to fail.
						return fmt.Errorf("peer: --db %s is no peer's file (%w): give the path of a peer's file to resume, or of a new one", dbPath, err)
					}
					if err != nil && unregisteredFile(dbPath, err) {
						return fmt.Errorf("peer: cannot open the table file: %w (it holds no registration: nothing to resume)", err)
					}
					if err != nil {
						fmt.Fprintf(stdout, "resume FAILURE: cannot open the table file: %v\n", err)
						return fmt.Errorf("peer: cannot open the table file: %w", err)
					}
				}
			}
			if isTerminal(e.stdin) {
				// Results only on stdout: the prompt and the hint go to stderr.
				prompted := 0
				if r.Resume != nil {
					// The prompt follows the resume's line, not the hint:
					// the first idle, once the resume is done, shows it.
					fmt.Fprint(e.stderr, "type help for commands\n")
					prompted = -1
				} else {
					ap.show("type help for commands\n" + peerPrompt)
				}
				prompt := func(text string) func(int) {
					return func(linesRead int) {
						if linesRead > prompted || ap.wasInterrupted() {
							prompted = max(prompted, linesRead)
							ap.show(text)
						}
					}
				}
				r.Idle, r.WantsLine = prompt(peerPrompt), prompt(longNamePrompt)
				// What comes while a prompt waits (Ctrl-D leaves the cursor
				// after it) starts a line of its own.
				r.Out, r.Notes = offPrompt{ap, r.Out}, offPrompt{ap, e.stderr}
			}
			err = r.Run(ctx)
			if werr := out.failed(); werr != nil {
				err = errors.Join(err, fmt.Errorf("peer: results could not be written to standard output: %w", werr))
			}
			return errors.Join(err, traceOut.Failed(), writeStats(c, &r.Traffic, core.Stats()))
		},
	}
}

// unregisteredFile reports whether the peer file at path, which could not
// be opened for writing (err: a read-only disk, its mode), holds no
// registration when read: then there is no resume to fail.
func unregisteredFile(path string, err error) bool {
	if errors.Is(err, store.ErrLocked) {
		return false // in use: what it holds is its process's
	}
	rep, ierr := store.Inspect(path, 0)
	pr, ok := rep.(*store.PeerReport)
	return ierr == nil && ok && pr.Name == ""
}

// readErrNote reads from r and, at the first error other than the end of
// input, writes a line saying so to w (stdin cannot be read: a folder, a
// device that fails); the peer takes it as the end of its input.
type readErrNote struct {
	r        io.Reader
	w        io.Writer
	terminal bool // stdin is a terminal
	failed   bool
	typed    func([]byte) // if set, given what is read
	ended    func()       // if set, called when the input ends
}

func (n *readErrNote) Read(b []byte) (int, error) {
	k, err := n.r.Read(b)
	if k > 0 && n.typed != nil {
		n.typed(b[:k])
	}
	if n.terminal && errors.Is(err, syscall.EIO) {
		// The terminal hung up (its window closed, the pseudo-terminal's
		// other end gone): a read waiting then sees the end of input, one
		// begun after it EIO. Either is the end of input, and no error.
		err = io.EOF
	}
	// os.ErrClosed: the peer closed its stdin as it exits (rawpipe's
	// Restore), under a read still waiting.
	if err != nil && err != io.EOF && !errors.Is(err, os.ErrClosed) && !n.failed {
		n.failed = true
		fmt.Fprintf(n.w, "dht: peer: standard input cannot be read, taken as its end: %v\n", err)
	}
	if err != nil && n.ended != nil {
		n.ended()
	}
	return k, err
}

// writeErrNote writes the peer's results to w and, at the first write that
// fails (a full disk, a device that fails), says so on note, once: the peer
// goes on serving its ring, and exits with status 1 (a new user's review:
// every result of a peer whose stdout was /dev/full was lost, unsaid, and
// it exited 0). A reader that went away (EPIPE: dht peer | head -1) is
// not an error: what it no longer reads, it did not want
// (TestBinaryPeerOutlivesItsStdoutReader).
type writeErrNote struct {
	w    io.Writer
	note io.Writer
	mu   sync.Mutex
	err  error // the first
}

func (n *writeErrNote) Write(b []byte) (int, error) {
	k, err := n.w.Write(b)
	n.mu.Lock()
	defer n.mu.Unlock()
	// os.ErrClosed: the peer closed its stdout itself as it exits, the
	// grace after a signal past (restoreOut), under a write still pending:
	// the documented drop, not a failure.
	if err != nil && n.err == nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
		n.err = err
		fmt.Fprintf(n.note, "dht: peer: results cannot be written to standard output (%v): they are lost; the peer goes on serving its ring, and exits with status 1\n", err)
	}
	return k, err
}

// failed is the first write's error, if one failed.
func (n *writeErrNote) failed() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// atPrompt keeps what the peer writes at a terminal off its prompt's
// line. Written while the prompt waits for a line (a heal's or a resume's
// result, the note that input ended), it starts a line of its own, and
// the prompt is shown again once the peer is idle (a new user's review: a
// heal's result was printed after "dht> " as if typed, and no prompt
// followed); written once a line was typed (its Enter ended the prompt's
// line: a wait's note), it follows at once, with no blank line.
type atPrompt struct {
	mu          sync.Mutex
	w           io.Writer // where the prompt goes: stderr
	shown       bool      // the prompt ends the terminal's last line
	interrupted bool      // something was written after a prompt: show it again
	ended       bool      // the input ended: no line will be read, so no prompt
}

func (a *atPrompt) show(text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended {
		return
	}
	fmt.Fprint(a.w, text)
	a.shown, a.interrupted = true, false
}

// end: the input ended (Ctrl-D, a hang-up, a read error): a prompt would
// ask for a line the peer no longer reads.
func (a *atPrompt) end() {
	a.mu.Lock()
	a.ended = true
	a.mu.Unlock()
}

// typed: b was read from the terminal; a line ends the prompt's.
func (a *atPrompt) typed(b []byte) {
	if bytes.IndexByte(b, '\n') >= 0 {
		a.mu.Lock()
		a.shown = false
		a.mu.Unlock()
	}
}

// before: something is about to be written.
func (a *atPrompt) before() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.shown {
		_, _ = io.WriteString(a.w, "\n")
		a.shown, a.interrupted = false, true
	}
}

func (a *atPrompt) wasInterrupted() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.interrupted
}

// offPrompt writes to w, off the prompt's line.
type offPrompt struct {
	a *atPrompt
	w io.Writer
}

func (o offPrompt) Write(b []byte) (int, error) {
	o.a.before()
	return o.w.Write(b)
}

// openPeerFile opens the peer's table file, and says on stderr when the
// open rolled back a last commit that did not reach the disk whole.
func openPeerFile(e env, path string) (*store.PeerDB, error) {
	st, err := store.OpenPeer(path)
	if err != nil {
		return nil, damagedAdvice(err, "restore a copy of it, or start the peer on a new --db and register anew")
	}
	if note := st.RolledBack(); note != "" {
		fmt.Fprintln(e.stderr, note)
	}
	return st, nil
}

// damagedAdvice adds to the refusal of a damaged file what to do, in
// brackets: the store's message says what is wrong, not what next (an
// operator's review).
func damagedAdvice(err error, what string) error {
	if errors.Is(err, store.ErrDamaged) {
		return fmt.Errorf("%w (%s)", err, what)
	}
	return err
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"dht/app"
	"dht/internal/cluster"
	"dht/internal/loopback"
)

const playSyntax = `A scenario is a text file, one line at a time:

  alice: register alice 127.0.0.1 ${PORT:alice}
  alice: expect SUCCESS
  alice: setup-dht 4 alice
  alice: expect SUCCESS ring of 4: alice carol dave erin
  bob: query-dht bob Kingdom of Atlantis
  bob: expect FAILURE not found
  sleep 100ms

USER: LINE types LINE at USER's peer, started on first use (USER is a label
for a terminal; it is usually the name the peer registers). play waits until
that peer has finished the command (its result lines are printed) before it
reads the next line, so a scenario runs the same way every time. A query-dht
with no Long Name waits for the server's answer only: after SUCCESS the
peer's next line is its Long Name, and the query's result lines, which an
expect checks, come after that line; after FAILURE it is a command of its
own.

USER: expect SUCCESS|FAILURE [TEXT] checks USER's last command: SUCCESS if
it printed at least one result line and no FAILURE, FAILURE if one of its
result lines says FAILURE; TEXT, if given, must appear in one of the lines it
printed. A failed expect stops the play: exit status 1, with FILE:LINE and
what was printed.

sleep DURATION pauses the play itself (USER: sleep DURATION pauses that
peer). seed N, before every other line, seeds the server's random choices
(ring members, the node a query starts at) unless --seed is given: the same
seed builds the same rings. Blank lines and lines starting with # are
skipped.

${PORT:KEY} is replaced by a UDP port on 127.0.0.1 that was free when the
play started, the same port for the same KEY, a different one for each KEY:
scenarios never clash with each other or with other programs over ports.
Fixed ports work too.`

func playCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "play",
		Usage:     "run a scenario file: several peers typed at in one process, with expectations",
		ArgsUsage: "FILE",
		Description: "Starts a server on 127.0.0.1 and one peer per user named in FILE, all in this\n" +
			"process, and runs FILE, printing each line typed (as USER> LINE) and what the\n" +
			"peer printed. The bbolt files are kept in --dir (or with --keep) for 'dht inspect'.\n\n" + playSyntax,
		Flags: append([]cli.Flag{
			dataFlag("the dataset the peers spread when they lead a ring"),
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seeds the server's choices (ring members, the node a query starts at), so a play is repeatable; overrides the file's seed line", DefaultText: "the file's seed line, or 1 without one"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Minute, Usage: "fail a command that has not finished after this long"},
			&cli.BoolFlag{Name: "trace", Usage: "write the datagram trace of every process to stderr"},
		}, workDirFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("play takes one argument, FILE (see 'dht play --help')")
			}
			if c.Duration("timeout") <= 0 {
				return usagef("--timeout must be positive")
			}
			path := c.Args().First()
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sc, err := parseScenario(path, src)
			if err != nil {
				return err
			}
			seed := c.Uint64("seed")
			if sc.seed != nil && !c.IsSet("seed") {
				seed = *sc.seed
			}
			wd, err := openWorkDir(c, "dht-play-")
			if err != nil {
				return err
			}
			var trace io.Writer
			if c.Bool("trace") {
				trace = e.stderr
			}
			out := &checkedWriter{w: e.stdout}
			n, err := playIn(c, wd.path, sc, seed, trace, out, e.stderr)
			where, derr := wd.done()
			if err != nil {
				if wd.keep && !c.IsSet("dir") {
					// --keep's folder is named nowhere else.
					return fmt.Errorf("%w (%s)", err, where)
				}
				return err
			}
			if derr != nil {
				return derr
			}
			plural := "s"
			if n == 1 {
				plural = ""
			}
			fmt.Fprintf(out, "# %s: %d expectation%s met; %s\n", path, n, plural, where)
			return out.check(nil)
		},
	}
}

// playIn runs a scenario with its files in dir and returns how many
// expectations were met; notes takes what loadData says.
func playIn(c *cli.Context, dir string, sc *playScenario, seed uint64, trace, stdout, notes io.Writer) (int, error) {
	data, err := loadData(c.String("data"), notes)
	if err != nil {
		return 0, fmt.Errorf("play: %w", err)
	}
	ports, err := loopback.FreePorts(len(sc.keys))
	if err != nil {
		return 0, err
	}
	portOf := map[string]uint16{}
	for i, k := range sc.keys {
		portOf[k] = ports[i]
	}
	ctx, cancel := signalContext()
	defer cancel()
	cl, err := cluster.Start(cluster.Config{Dir: dir, Data: data, Seed: seed, Log: clusterTrace(trace), Ctx: ctx})
	if err != nil {
		return 0, err
	}
	n, err := play(cl, sc.steps, portOf, c.Duration("timeout"), stdout)
	if serr := cl.Stop(); err == nil && serr != nil {
		err = serr
	}
	return n, err
}

// workDir is the folder where dht demo and dht play keep their bbolt files:
// the one --dir names, kept, or a new one under $TMPDIR, removed at the end
// unless --keep.
type workDir struct {
	path string
	keep bool
}

// workDirFlags are --dir and --keep.
func workDirFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "dir", Usage: "new or empty folder for the bbolt files, kept afterwards", DefaultText: "a new folder under $TMPDIR, removed at the end"},
		&cli.BoolFlag{Name: "keep", Usage: "keep the new folder under $TMPDIR (and say where it is) for 'dht inspect'"},
	}
}

func openWorkDir(c *cli.Context, prefix string) (workDir, error) {
	// A reader that goes away (dht demo | head) fails the writes to stdout
	// rather than killing the process before it removes its folder.
	signal.Ignore(syscall.SIGPIPE)
	if dir := c.String("dir"); dir != "" {
		if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
			return workDir{}, fmt.Errorf("--dir %s is a file, not a folder: give a new or empty folder", dir)
		}
		return workDir{path: dir, keep: true}, nil
	}
	dir, err := os.MkdirTemp("", prefix)
	return workDir{path: dir, keep: c.Bool("keep")}, err
}

// done removes the folder unless it is kept, and returns how to say where
// the files are.
func (w workDir) done() (string, error) {
	if w.keep {
		return "bbolt files in " + w.path, nil
	}
	if err := os.RemoveAll(w.path); err != nil {
		return "", fmt.Errorf("remove %s: %w", w.path, err)
	}
	return "bbolt files removed (--keep or --dir keeps them)", nil
}

type playStepKind uint8

const (
	playStepType   playStepKind = iota + 1 // type a line at a peer
	playStepExpect                         // check a peer's last command
	playStepSleep                          // pause the play
)

// playStep is one meaningful line of a scenario.
type playStep struct {
	pos  string // FILE:LINE
	kind playStepKind
	user string
	text string // playStepType: the line, placeholders not yet replaced; playStepExpect: TEXT
	want string // playStepExpect: SUCCESS or FAILURE
	d    time.Duration
}

var (
	playUserLine    = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_-]*):\s*(.*)$`)
	playPlaceholder = regexp.MustCompile(`\$\{PORT:([A-Za-z0-9_-]+)\}`)
)

// playScenario is a parsed play file.
type playScenario struct {
	steps []playStep
	keys  []string // placeholder keys in order of first use
	seed  *uint64  // from a seed line
}

// maxPlayLabel is the longest user label a play file may use.
const maxPlayLabel = 64

// quoteShort quotes s, or its first 80 bytes and its length if longer: an
// error names the line, not a page of it.
func quoteShort(s string) string {
	if len(s) <= 80 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:80]), len(s))
}

// parseScenario reads the whole file before anything runs, so a mistake on
// its last line costs nothing.
func parseScenario(path string, src []byte) (*playScenario, error) {
	sc := &playScenario{}
	seen := map[string]bool{}
	// placeholders notes the keys of text's placeholders, in order of
	// first use; false if text holds one that is not ${PORT:KEY}.
	placeholders := func(text string) bool {
		if strings.Count(text, "${") != len(playPlaceholder.FindAllString(text, -1)) {
			return false
		}
		for _, pm := range playPlaceholder.FindAllStringSubmatch(text, -1) {
			if !seen[pm[1]] {
				seen[pm[1]] = true
				sc.keys = append(sc.keys, pm[1])
			}
		}
		return true
	}
	lines := bufio.NewScanner(bytes.NewReader(src))
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	n := 1
	for ; lines.Scan(); n++ {
		pos := path + ":" + strconv.Itoa(n)
		line := strings.TrimSpace(lines.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if n == 1 {
			// A byte-order mark some editors write: no part of the text.
			line = strings.TrimSpace(strings.TrimPrefix(line, "\ufeff"))
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
		}
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%s: %s", pos, fmt.Sprintf(format, a...))
		}
		m := playUserLine.FindStringSubmatch(line)
		if m == nil {
			f := strings.Fields(line)
			switch f[0] {
			case "seed":
				if len(sc.steps) > 0 || sc.seed != nil {
					return nil, bad("seed must come once, before every other line")
				}
				v, err := strconv.ParseUint(strings.Join(f[1:], " "), 10, 64)
				if err != nil {
					return nil, bad("want seed N (a whole number), got %s", quoteShort(line))
				}
				sc.seed = &v
			case "sleep":
				d, err := playSleepArg(f)
				if err != nil {
					return nil, bad("%v", err)
				}
				sc.steps = append(sc.steps, playStep{pos: pos, kind: playStepSleep, d: d})
			default:
				return nil, bad("want USER: LINE, USER: expect SUCCESS|FAILURE [TEXT], sleep DURATION or seed N, got %s", quoteShort(line))
			}
			continue
		}
		user, rest := m[1], m[2]
		if len(user) > maxPlayLabel {
			// It names the user's table file, dht-peer-USER.db.
			return nil, bad("a user label is at most %d characters, got %s", maxPlayLabel, quoteShort(user))
		}
		if rest == "" {
			return nil, bad("nothing to type after %q", user+":")
		}
		if f := strings.Fields(rest); f[0] == "expect" {
			if len(f) < 2 || (f[1] != "SUCCESS" && f[1] != "FAILURE") {
				return nil, bad("want expect SUCCESS|FAILURE [TEXT], got %s", quoteShort(rest))
			}
			text := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(rest, "expect")), f[1]))
			if !placeholders(text) {
				return nil, bad("unknown placeholder in %s: the only one is ${PORT:KEY}", quoteShort(text))
			}
			sc.steps = append(sc.steps, playStep{pos: pos, kind: playStepExpect, user: user, want: f[1], text: text})
			continue
		}
		if !placeholders(rest) {
			return nil, bad("unknown placeholder in %s: the only one is ${PORT:KEY}", quoteShort(rest))
		}
		sc.steps = append(sc.steps, playStep{pos: pos, kind: playStepType, user: user, text: rest})
	}
	if err := lines.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("%s:%d: a line longer than 1 MiB", path, n)
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

func playSleepArg(f []string) (time.Duration, error) {
	if len(f) != 2 {
		return 0, fmt.Errorf("want sleep DURATION, e.g. sleep 200ms")
	}
	d, err := time.ParseDuration(f[1])
	if err != nil || d < 0 || d > time.Hour {
		return 0, fmt.Errorf("invalid duration %q: e.g. 200ms or 2s (at most 1h)", f[1])
	}
	return d, nil
}

// playPorts is s with each ${PORT:KEY} replaced by KEY's port.
func playPorts(s string, ports map[string]uint16) string {
	return playPlaceholder.ReplaceAllStringFunc(s, func(ph string) string {
		return strconv.Itoa(int(ports[playPlaceholder.FindStringSubmatch(ph)[1]]))
	})
}

// playOutcome sums up what a command printed: SUCCESS, FAILURE, or "" when
// it printed no result line.
func playOutcome(printed []app.Result) string {
	res := ""
	for _, r := range printed {
		switch {
		case !r.OK:
			return "FAILURE"
		default:
			res = "SUCCESS"
		}
	}
	return res
}

// playLines is what the results look like on stdout, line by line.
func playLines(printed []app.Result) []string {
	var lines []string
	for _, r := range printed {
		lines = append(lines, strings.Split(r.String(), "\n")...)
	}
	return lines
}

// play runs the steps and returns how many expectations were met.
func play(cl *cluster.Cluster, steps []playStep, ports map[string]uint16, timeout time.Duration, out io.Writer) (int, error) {
	type last struct {
		line    string
		printed []app.Result
	}
	lastOf := map[string]*last{}
	met := 0
	for _, s := range steps {
		switch s.kind {
		case playStepSleep:
			if err := cl.Sleep(s.d); err != nil {
				return met, fmt.Errorf("%s: %w", s.pos, err)
			}
		case playStepType:
			line := playPorts(s.text, ports)
			fmt.Fprintf(out, "%s> %s\n", s.user, line)
			l := lastOf[s.user]
			if l == nil || !cl.Peer(s.user).WantsLongName() {
				l = &last{line: line}
				lastOf[s.user] = l
			} else {
				l.line += " / " + line
			}
			ctx, cancel := context.WithTimeoutCause(context.Background(), timeout, fmt.Errorf("no result within %v", timeout))
			printed, err := cl.Peer(s.user).Do(ctx, line)
			cancel()
			for _, r := range printed {
				fmt.Fprintln(out, r.String())
			}
			l.printed = append(l.printed, printed...)
			if err != nil {
				return met, fmt.Errorf("%s: %s> %s: %w", s.pos, s.user, line, err)
			}
		case playStepExpect:
			l := lastOf[s.user]
			if l == nil {
				return met, fmt.Errorf("%s: %s: expect before %s typed anything", s.pos, s.user, s.user)
			}
			got := playOutcome(l.printed)
			ok := got == s.want
			text := playPorts(s.text, ports)
			if ok && text != "" {
				ok = slices.ContainsFunc(playLines(l.printed), func(line string) bool { return strings.Contains(line, text) })
			}
			if !ok {
				want := s.want
				if text != "" {
					want += " with " + strconv.Quote(text)
				}
				return met, fmt.Errorf("%s: %s: expected %s from %q, which printed:\n%s", s.pos, s.user, want, l.line, playIndent(playLines(l.printed)))
			}
			met++
		}
	}
	return met, nil
}

func playIndent(lines []string) string {
	if len(lines) == 0 {
		return "    (nothing)"
	}
	return "    " + strings.Join(lines, "\n    ")
}

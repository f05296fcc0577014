package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/urfave/cli/v2"

	"dht/diagram"
)

func diagramCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "diagram",
		Usage:     "draw a time-space diagram from --trace-json files of one run",
		ArgsUsage: "TRACE.jsonl...",
		Description: "Reads the structured traces that `dht server` and `dht peer` write with\n" +
			"--trace-json (a file of its own for each process: one opened by two is garbled)\n" +
			"and draws the run as a sequence diagram: one lifeline per process, every datagram\n" +
			"an arrow in causal order, actions (commands typed, results printed, changes\n" +
			"persisted, drops) as notes. The server comes first, then the ring's members by\n" +
			"id, then the others.\n" +
			"Acks are folded into the messages they acknowledge, and runs of store traffic\n" +
			"into one arrow per edge. Writes Mermaid sequenceDiagram text (to stdout, or\n" +
			"--mermaid FILE) and, with --svg, an SVG image.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mermaid", TakesFile: true, Usage: "write the Mermaid text to `FILE` (default: stdout, unless the SVG goes there: --svg - or /dev/stdout)"},
			&cli.StringFlag{Name: "svg", TakesFile: true, Usage: "write the SVG image to `FILE` (- for stdout)"},
			&cli.StringFlag{Name: "title", Usage: "title drawn above the diagram"},
			&cli.StringFlag{Name: "from", Usage: "start at the event matching `PROCESS:DIR:WHAT[@N]` (DIR send, recv or event; WHAT a message type or event name; empty parts match anything; @N the N-th match), e.g. carol:send:flush"},
			&cli.IntFlag{Name: "fold", Value: diagram.DefaultFold, Usage: "fold runs of at least `N` stores and store acks into one arrow per edge (0: never)"},
			&cli.StringFlag{Name: "acks", Value: diagram.AcksFold.String(), Usage: "`MODE` of the acks of ring messages: fold (a message whose ack came back ends its label with \"· acked\"), show (each ack a light arrow) or hide"},
			&cli.StringFlag{Name: "order", Value: diagram.OrderRing.String(), Usage: "`ORDER` of the lifelines: ring (the server, the ring's members by id, then the others) or appearance (the server, then order of first appearance)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("diagram takes one or more trace files (see 'dht diagram --help')")
			}
			opt := diagram.Options{Title: c.String("title"), Fold: c.Int("fold")}
			if opt.Fold < 0 {
				return usagef("--fold must be 0 or more")
			}
			if toStdout(e, c.String("mermaid")) && toStdout(e, c.String("svg")) {
				return usagef("--mermaid - and --svg - would both write to stdout: give one of them a FILE")
			}
			if opt.Fold == 0 {
				opt.Fold = -1
			}
			var err error
			if opt.Acks, err = diagram.ParseAckMode(c.String("acks")); err != nil {
				return usagef("--acks: %v", err)
			}
			if opt.Order, err = diagram.ParseOrder(c.String("order")); err != nil {
				return usagef("--order: %v", err)
			}
			if s := c.String("from"); s != "" {
				m, err := diagram.ParseMatch(s)
				if err != nil {
					return usagef("--from: %v", err)
				}
				opt.From = m
			}
			mmdOut, err := stdoutDash(e, "mermaid", c.String("mermaid"), outMermaid, c.Args().Slice())
			if err != nil {
				return err
			}
			svgOut, err := stdoutDash(e, "svg", c.String("svg"), outSVG, c.Args().Slice())
			if err != nil {
				return err
			}
			if err := checkOutputs([]output{{"mermaid", mmdOut, outMermaid}, {"svg", svgOut, outSVG}}, c.Args().Slice()...); err != nil {
				return err
			}
			args := c.Args().Slice()
			for i, path := range args {
				for _, before := range args[:i] {
					if samePath(before, path) {
						// Its events would be drawn twice.
						return usagef("%s is given twice (as %s too): give each process's trace once", path, before)
					}
				}
			}
			var files [][]diagram.Event
			for _, path := range args {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				evs, err := diagram.Read(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				files = append(files, evs)
			}
			d, err := diagram.Build(files, opt)
			if err != nil {
				return err
			}
			mmd, svg := c.String("mermaid"), c.String("svg")
			if mmd == "" && !toStdout(e, svg) {
				mmd = "-" // Mermaid to stdout unless the SVG goes there
			}
			// Every output is opened before any is written: one that
			// cannot be fails the command with nothing written.
			var outs []*outFile
			for _, o := range []struct {
				path string
				b    func() []byte
			}{{mmd, d.Mermaid}, {svg, d.SVG}} {
				if o.path == "" {
					continue
				}
				f, err := openOut(e, o.path)
				if err != nil {
					for _, f := range outs {
						f.abandon()
					}
					return err
				}
				f.b = o.b
				outs = append(outs, f)
			}
			for i, f := range outs {
				if err := f.write(e); err != nil {
					for _, f := range outs[i+1:] {
						f.abandon()
					}
					return err
				}
			}
			return nil
		},
	}
}

// toStdout reports whether path names this process's stdout: "-", or the
// file stdout is (/dev/stdout, /proc/self/fd/1, the terminal's device).
func toStdout(e env, path string) bool {
	if path == "-" {
		return true
	}
	f, ok := e.stdout.(*os.File)
	if path == "" || !ok {
		return false
	}
	pi, err := os.Stat(path)
	if err != nil {
		return false
	}
	si, err := f.Stat()
	return err == nil && os.SameFile(pi, si)
}

// stdoutDash is path as checkOutput is to judge it: "-" for any other
// name of stdout (/dev/stdout), which openOut writes through the
// descriptor stdout has, opening nothing again, so that it empties nothing
// (>> FILE appends); still refused if it is a file the command reads.
func stdoutDash(e env, flag, path string, kind outKind, reads []string) (string, error) {
	if path == "-" || !toStdout(e, path) {
		return path, nil
	}
	for _, r := range reads {
		if r != "" && samePath(path, r) {
			return "", sameAsRead(flag, path, kind)
		}
	}
	return "-", nil
}

// outFile is an output opened, not yet written: a file, or stdout ("-").
type outFile struct {
	path string
	f    *os.File
	made bool // the open made the file
	b    func() []byte
}

// openOut opens path for writing without emptying it, or stdout for "-"
// or another name of stdout (/dev/stdout): written through the descriptor
// it has, not opened again, so that '>> FILE' appends and what went to
// stdout before stays.
func openOut(e env, path string) (*outFile, error) {
	o := &outFile{path: path}
	if toStdout(e, path) {
		return o, nil
	}
	_, err := os.Lstat(path)
	o.made = errors.Is(err, fs.ErrNotExist)
	if o.f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644); err != nil {
		return nil, err
	}
	return o, nil
}

// write writes the output whole, in place of what a regular file held (a
// device or a pipe, /dev/stdout say, cannot be truncated, nor need be); a
// file the open made goes again if the write fails.
func (o *outFile) write(e env) error {
	b := o.b()
	if o.f == nil {
		_, err := e.stdout.Write(b)
		return err
	}
	var err error
	if fi, serr := o.f.Stat(); serr != nil {
		err = serr
	} else if fi.Mode().IsRegular() {
		err = o.f.Truncate(0)
	}
	if err == nil {
		_, err = o.f.Write(b)
	}
	if err = errors.Join(err, o.f.Close()); err != nil && o.made {
		os.Remove(o.path)
	}
	return err
}

// abandon closes an output never written; a file it made goes.
func (o *outFile) abandon() {
	if o.f != nil {
		o.f.Close()
		if o.made {
			os.Remove(o.path)
		}
	}
}

// writeOut writes b to path, or to stdout for "-".
func writeOut(e env, path string, b []byte) error {
	o, err := openOut(e, path)
	if err != nil {
		return err
	}
	o.b = func() []byte { return b }
	return o.write(e)
}

package main

import (
	"fmt"
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
			&cli.StringFlag{Name: "mermaid", TakesFile: true, Usage: "write the Mermaid text to `FILE` (default: stdout, unless --svg -)"},
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
			if c.String("mermaid") == "-" && c.String("svg") == "-" {
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
			if err := checkOutputs([]output{{"mermaid", c.String("mermaid"), outMermaid}, {"svg", c.String("svg"), outSVG}}, c.Args().Slice()...); err != nil {
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
			if mmd == "" && svg != "-" {
				mmd = "-" // Mermaid to stdout unless the SVG goes there
			}
			if mmd != "" {
				if err := writeOut(e, mmd, d.Mermaid()); err != nil {
					return err
				}
			}
			if svg != "" {
				return writeOut(e, svg, d.SVG())
			}
			return nil
		},
	}
}

// writeOut writes b to path, or to stdout for "-".
func writeOut(e env, path string, b []byte) error {
	if path == "-" {
		_, err := e.stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"dht/store"
)

func inspectCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show what a server or peer bbolt file holds",
		ArgsUsage: "FILE",
		Description: "Opens FILE read-only and never changes it. A server file shows the registered\n" +
			"users and the DHT state; a peer file its identity, neighbours and local table\n" +
			"slot by slot. A file held by a running process is reported as such after --wait.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object (invalid UTF-8 in records becomes U+FFFD)"},
			&cli.DurationFlag{Name: "wait", Value: 500 * time.Millisecond, Usage: "how long to wait for a file held by a running process (0: try once)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("inspect takes one argument, FILE (see 'dht inspect --help')")
			}
			if c.Duration("wait") < 0 {
				return usagef("--wait must not be negative, got %s (0 tries once)", c.Duration("wait"))
			}
			rep, err := store.Inspect(c.Args().First(), c.Duration("wait"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(e.stdout)
				enc.SetEscapeHTML(false)
				return enc.Encode(rep)
			}
			switch r := rep.(type) {
			case *store.ServerReport:
				return r.WriteText(e.stdout)
			case *store.PeerReport:
				return r.WriteText(e.stdout)
			}
			return fmt.Errorf("inspect: unknown report %T", rep)
		},
	}
}

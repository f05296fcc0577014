package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"dht/app"
	"dht/internal/udpio"
	"dht/store"
)

func serverCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "server",
		Usage:     "run the always-on registry server",
		ArgsUsage: "PORT",
		Description: "Listens on UDP ADDR:PORT and answers the ten commands (register, setup-dht,\n" +
			"dht-complete, query-dht, leave-dht, join-dht, dht-rebuilt, deregister, teardown-dht,\n" +
			"teardown-complete). Registrations and the DHT state live in the bbolt file --db;\n" +
			"a restart on the same file continues where the server was, a wait included.\n" +
			"Registered peers send alive every --dead-after/10 (at most every hour), as the server\n" +
			"tells them; a user silent for --dead-after is offline: setup-dht and join-dht neither\n" +
			"pick nor accept it.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "db", Value: "dht-server.db", Usage: "bbolt file holding the registry"},
			&cli.StringFlag{Name: "addr", Value: "0.0.0.0", Usage: "IPv4 address to bind: one of this host's, or 0.0.0.0 for every interface"},
			&cli.DurationFlag{Name: "dead-after", Value: app.DefaultDeadAfter, Usage: "a registered user silent this long is offline (" + app.MinDeadAfter.String() + " to " + maxWait.String() + ")"},
			&cli.DurationFlag{Name: "op-timeout", Value: app.DefaultOpTimeout, Usage: "end a setup, leave, join, teardown or heal whose initiator or leader has not finished it within this time: a leave or a join heals round its leaver or joiner while another member is online, anything else dissolves the DHT (" + app.MinOpTimeout.String() + " to " + maxWait.String() + ")"},
			quietFlag(),
			traceJSONFlag(),
		}, append(faultFlags(), benchFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("server takes one argument, PORT (see 'dht server --help')")
			}
			port, err := parsePort(c.Args().First())
			if err != nil {
				return err
			}
			ip, err := parseIPv4(c.String("addr"), true)
			if err != nil {
				return err
			}
			if d := c.Duration("op-timeout"); d < app.MinOpTimeout || d > maxWait {
				return usagef("--op-timeout must be %s to %s, got %s", app.MinOpTimeout, maxWait, d)
			}
			if d := c.Duration("dead-after"); d < app.MinDeadAfter || d > maxWait {
				return usagef("--dead-after must be %s to %s, got %s", app.MinDeadAfter, maxWait, d)
			}
			if c.String("db") == "" {
				return usagef("--db needs a file name (without --db the server's file is dht-server.db)")
			}
			// Every output is checked before the first is made: a refused
			// command empties no file.
			if err := checkOutputs([]output{{"trace-json", c.String("trace-json"), outTrace}, {"cpuprofile", c.String("cpuprofile"), outProfile}}, c.String("db")); err != nil {
				return err
			}
			traceIsNew := newFile(c.String("trace-json"))
			faults, err := faultsFrom(c)
			if err != nil {
				return err
			}
			existed, err := dbPathProblem("server", c.String("db"), "made at start", "")
			if err != nil {
				return err
			}
			// The socket first: a server that cannot have its port creates
			// no file.
			conn, err := udpio.Listen(netip.AddrPortFrom(ip, port))
			if errors.Is(err, syscall.EADDRNOTAVAIL) {
				return fmt.Errorf("server: %w (%s is not an address of this host)", err, ip)
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("server: %w (another process has port %d: stop it, or give the server another PORT)", err, port)
			}
			if err != nil {
				return fmt.Errorf("server: %w", err)
			}
			defer conn.Close()
			// Who is silent is judged as of when a request came, not when
			// it is read: a server stopped a while reads requests that came
			// before the alives behind them (Server.StepDatagram). Without
			// it the server works, judging as of each read.
			if err := conn.Stamp(); err != nil {
				fmt.Fprintf(e.stderr, "dht: server: %v: who is silent is judged as of each datagram's read\n", err)
			}
			db, err := store.OpenServer(c.String("db"))
			if errors.Is(err, store.ErrWrongKind) || errors.Is(err, store.ErrNotDHT) {
				return fmt.Errorf("%w: give the server its own file (--db), or the path of a new one", err)
			}
			if err != nil {
				return damagedAdvice(err, "restore a copy of it, or give the server a new --db (every user then registers anew)")
			}
			defer db.Close()
			if note := db.RolledBack(); note != "" {
				fmt.Fprintln(e.stderr, note)
			}
			st, replies, err := db.Load()
			if err != nil {
				return err
			}
			// A file made just now is taken back when the command is
			// refused after all: a refused command changes nothing.
			refused := func(err error) error {
				if !existed {
					err = errors.Join(err, db.Close(), os.Remove(c.String("db")))
				}
				return err
			}
			log, traceOut, err := openTrace(c, e.stderr, "server")
			if err != nil {
				return refused(err)
			}
			defer traceOut.Close()
			stopProfile, err := startProfile(c)
			if err != nil {
				// Refused: the trace just made goes again.
				traceOut.Close()
				if traceIsNew {
					_ = os.Remove(c.String("trace-json"))
				}
				return refused(err)
			}
			defer stopProfile()
			log.Info("listening", "addr", conn.LocalAddr().String(), "db", c.String("db"), "users", len(st.Users), "dht", st.DHT.Phase.String())
			core := app.NewServer(app.ServerConfig{OpTimeout: c.Duration("op-timeout"), DeadAfter: c.Duration("dead-after"),
				Started: time.Now(), Rand: strongRand()}, st, replies)
			ctx, cancel := signalContext()
			defer cancel()
			r := &app.ServerRunner{Conn: conn, Core: core, Store: db, Log: log, Faults: faults}
			err = r.Run(ctx)
			return errors.Join(err, traceOut.Failed(), writeStats(c, &r.Traffic, app.Stats{}))
		},
	}
}

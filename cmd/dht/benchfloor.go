package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	"dht/app"
	"dht/internal/bench"
	"dht/internal/loopback"
)

// benchFloorCommand is the other end of the floors dht bench --processes
// measures: the same binary, a process of its own. Not for users: hidden.
//
//	dht bench-floor relay   binds a UDP socket on 127.0.0.1, prints its
//	                        address, reads the next one from stdin, then
//	                        writes every datagram it reads on to it
//	dht bench-floor echo    copies stdin to stdout, line by line
//
// Either ends when stdin does.
func benchFloorCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "bench-floor",
		Hidden:    true,
		Usage:     "a process of the floors dht bench --processes measures (relay or echo)",
		ArgsUsage: "relay|echo",
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "relay":
				return relay(e)
			case "echo":
				return echo(e)
			}
			return usagef("bench-floor takes relay or echo")
		},
	}
}

func relay(e env) error {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback.Addr, 0)))
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintln(e.stdout, conn.LocalAddr().String())
	in := bufio.NewReader(e.stdin)
	line, err := in.ReadString('\n')
	if err != nil {
		return fmt.Errorf("bench-floor relay: no next address: %w", err)
	}
	next, err := netip.ParseAddrPort(line[:len(line)-1])
	if err != nil {
		return fmt.Errorf("bench-floor relay: %w", err)
	}
	go func() {
		io.Copy(io.Discard, in)
		conn.Close()
	}()
	buf := make([]byte, 2048)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil // stdin ended and closed the socket
		}
		if _, err := conn.WriteToUDPAddrPort(buf[:n], next); err != nil {
			return nil
		}
	}
}

func echo(e env) error {
	in := bufio.NewReader(e.stdin)
	out := bufio.NewWriter(e.stdout)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			out.Write(line)
			if err := out.Flush(); err != nil {
				return err
			}
		}
		if err != nil {
			return nil
		}
	}
}

// benchFlags are the hidden flags dht bench --processes gives the server
// and the peers it runs: a CPU profile of the process, and its counters
// written at exit.
func benchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write a CPU profile of the process to this file"},
		&cli.StringFlag{Name: "stats", Hidden: true, Usage: "write the process's traffic counters to this file (JSON) at exit"},
	}
}

// startProfile starts the CPU profile --cpuprofile asks for; the returned
// function stops it.
func startProfile(c *cli.Context) (stop func(), err error) {
	path := c.String("cpuprofile")
	if path == "" {
		return func() {}, nil
	}
	if err := checkOutput("cpuprofile", path, outProfile, c.String("db")); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeStats writes --stats, if asked.
func writeStats(c *cli.Context, t *app.Traffic, s app.Stats) error {
	path := c.String("stats")
	if path == "" {
		return nil
	}
	b, err := json.Marshal(bench.ProcStats{
		Datagrams: t.Datagrams.Load(), Bytes: t.Bytes.Load(), Stores: t.Stores.Load(),
		Retransmits: s.Retransmits, DupsSuppressed: s.DupsSuppressed, GaveUp: s.GaveUp,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Command dht is a distributed hash table on a ring overlay over UDP: an
// always-on registry server, peers that build a ring and answer queries, and
// tools to inspect their files.
package main

import (
	"os"
	"runtime"

	"dht/store"
)

func main() {
	oneProc(os.Args)
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// oneProc runs a server or a peer on one P unless GOMAXPROCS says
// otherwise, its file committed with raw system calls (store.RawCalls). Either does its work one datagram or line at a time under one
// lock, so a second P buys it nothing, and costs it: every goroutine made
// ready (the socket's reader, the printer, the timer) wakes another thread
// to look for work, a futex wake-up and context switches a datagram, which
// with a process per node is most of what a datagram costs (perf,
// --processes: a third fewer context switches a query). Its commits keep
// the P while the disk works (no other goroutine of it had anything to do
// meanwhile), instead of waking the runtime's monitor to hand it over.
func oneProc(args []string) {
	if len(args) < 2 {
		return
	}
	switch args[1] {
	case "server", "peer":
		store.RawCalls(true)
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.GOMAXPROCS(1)
		}
	}
}

// Command dht is a distributed hash table on a ring overlay over UDP: an
// always-on registry server, peers that build a ring and answer queries, and
// tools to inspect their files.
package main

import (
	"os"
	"runtime"
)

func main() {
	oneProc(os.Args)
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// oneProc runs a server or a peer on one P unless GOMAXPROCS says
// otherwise. Either does its work one datagram or line at a time under one
// lock, so a second P buys it nothing, and costs it: every goroutine made
// ready (the socket's reader, the printer, the timer) wakes another thread
// to look for work, a futex wake-up and context switches a datagram, which
// with a process per node is most of what a datagram costs (perf,
// --processes: a third fewer context switches a query). A commit blocking
// in fdatasync still gives its P to another thread (the runtime takes it
// back from a blocked system call).
func oneProc(args []string) {
	if len(args) < 2 || os.Getenv("GOMAXPROCS") != "" {
		return
	}
	switch args[1] {
	case "server", "peer":
		runtime.GOMAXPROCS(1)
	}
}

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
// otherwise, its file committed with raw system calls (store.RawCalls), its
// heap warmed (warmHeap). The bench's floor relays get the warm heap too:
// a floor is measured the way the nodes run. Either does its work one datagram or line at a time under one
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
		warmHeap()
	case "bench-floor":
		warmHeap()
	}
}

// warmBytes is the Go heap's first goal (4 MiB at GOGC=100): until the
// first collection the heap grows into pages the process has never
// touched.
const warmBytes = 4 << 20

// warmHeap touches warmBytes of heap once and collects it, so that the
// heap's first warmBytes are pages already in memory, free for the
// allocations that follow. Otherwise a server or a peer takes a page fault
// for every new page its first few dozen commands allocate (the collector
// runs once or twice in 30 setups and teardowns, at 4 MiB): 440 faults
// over the 9 processes of a fresh setup of 8, 220 in each later one, each
// a trap to the kernel and, where the page was first read as the shared
// zero page, a TLB shootdown of every CPU. Warmed: 130-170 and 70-90.
func warmHeap() {
	touch(warmBytes)
	runtime.GC()
}

//go:noinline
func touch(n int) {
	b := make([]byte, n)
	for i := 0; i < len(b); i += os.Getpagesize() {
		b[i] = 1
	}
	runtime.KeepAlive(b)
}

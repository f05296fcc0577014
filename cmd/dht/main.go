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

// warmHeap touches warmBytes of heap, makes a few hundred spans of the
// small size classes (warmClasses), and collects it all, twice (as it was
// measured), so that the heap's first warmBytes are pages already in
// memory, free for the allocations that follow, and so is what the runtime
// keeps beside the heap for the spans: their records and mark bits, the
// span sets' blocks. Otherwise a server or a peer takes a page fault for
// each of those the first time its commands need one: over the 9 processes of a fresh setup of 8, 440
// faults with nothing warmed, 80-130 with the heap touched (the span
// sets' blocks, mark bits, interface tables), 2-20 with both (and 55-60 a
// later setup, 5-7); each a trap to the kernel, 10-20 µs of CPU on this
// virtual machine. The classes' objects reuse the touched pages: a heap
// warmed past its goal would have its runtime return the rest to the
// system, page by page, during the first commands.
func warmHeap() {
	touch(warmBytes)
	warmClasses()
	runtime.GC()
	runtime.GC()
}

// warmClasses allocates 16 KiB (or two objects) of each size from 8 bytes
// to 32 KiB, each size an eighth larger than the last, with pointers and
// without (the runtime keeps the two apart), about 2.9 MiB all live at
// once, then lets them go: a few hundred spans, whose records the runtime
// keeps for the next.
func warmClasses() {
	var (
		plain [][]byte
		ptrs  [][]*byte
	)
	for size := 8; size <= 32<<10; size += size / 8 {
		for range max(2, 16<<10/size) {
			plain = append(plain, make([]byte, size))
			ptrs = append(ptrs, make([]*byte, size/8))
		}
	}
	runtime.KeepAlive(plain)
	runtime.KeepAlive(ptrs)
}

//go:noinline
func touch(n int) {
	b := make([]byte, n)
	for i := 0; i < len(b); i += os.Getpagesize() {
		b[i] = 1
	}
	runtime.KeepAlive(b)
}

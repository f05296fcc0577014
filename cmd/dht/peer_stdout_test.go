package main

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A peer whose results cannot be written (stdout on a full disk, closed)
// says so on stderr, once, and exits with status 1: every result was
// lost, unsaid, and it exited 0 (a new user's review).
func TestAPeerWhoseStdoutFailsSaysSo(t *testing.T) {
	var stderr strings.Builder
	code := run([]string{"dht", "peer", "--quiet", "127.0.0.1", "4000"}, strings.NewReader("help\nhelp\n"), fullWriter{}, &stderr)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if n := strings.Count(stderr.String(), "results cannot be written to standard output"); n != 1 {
		t.Errorf("said %d times, want once: %q", n, stderr.String())
	}
	if !strings.Contains(stderr.String(), "results could not be written to standard output: "+syscall.ENOSPC.Error()) {
		t.Errorf("no error at exit: %q", stderr.String())
	}
	n := &writeErrNote{w: fullWriter{}, note: &strings.Builder{}}
	if _, err := n.Write([]byte("x")); !errors.Is(err, syscall.ENOSPC) || !errors.Is(n.failed(), syscall.ENOSPC) {
		t.Errorf("the write's error %v, kept %v", err, n.failed())
	}
}

// Output the peer drops as it stops (its stdout closed by the peer itself
// once the 2 s grace after a signal has passed, a write still pending) is
// the documented drop: no note promising "goes on serving its ring, and
// exits with status 1", which is not what happens (it exits 0).
func TestAPeerStoppingDropsItsOutputUnsaid(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.Close() // as restoreOut does at exit, under a pending write
	var note strings.Builder
	n := &writeErrNote{w: w, note: &note}
	n.Write([]byte("query-dht SUCCESS\n"))
	if note.Len() != 0 || n.failed() != nil {
		t.Errorf("note %q, failed %v; want none", note.String(), n.failed())
	}
}

// A --trace-json write that blocks (a pipe whose reader stalls, a hung
// disk) holds up neither Failed nor Close: a process stopped by a signal
// gives its trace up after its grace, then reads Failed for its exit
// status and closes the file (a review: the peer hung there for good). The
// write that Close ends is no failure to report: the status is decided.
func TestATraceWriteThatBlocksHoldsUpNoExit(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var note strings.Builder
	tf := &traceFile{f: w, path: "pipe", note: &note}
	wrote := make(chan error, 1)
	go func() { _, err := tf.Write(make([]byte, 1<<20)); wrote <- err }() // more than a pipe holds
	// A byte read: the write is under way, and blocks.
	if _, err := r.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() { answered <- tf.Failed() }()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("Failed: %v", err)
		}
	case <-time.After(30 * time.Second): // a guard, not a measure: Failed takes no time
		t.Fatal("Failed waits for the blocked write: a process stopped by a signal never exits")
	}
	if err := tf.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err == nil {
		t.Fatal("the write Close ended reports no error")
	}
	if note.Len() != 0 || tf.Failed() != nil {
		t.Errorf("the write Close ended is noted as a failure: %q, %v", note.String(), tf.Failed())
	}
}

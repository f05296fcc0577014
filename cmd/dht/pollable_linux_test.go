package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"dht/internal/rawpipe"
)

// A piped stdin is read through the runtime's poller: the reader pollable
// returns takes a read deadline (only a polled file does) and reads what
// the pipe brings, while the shell's pipe stays blocking, before restore
// and after. A regular file is returned as it is.
func TestPollableStdin(t *testing.T) {
	// Blocking, as a shell makes a pipe to a command's stdin (os.Pipe's
	// are non-blocking).
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(fds[0]), "stdin"), os.NewFile(uintptr(fds[1]), "pipe")
	defer r.Close()
	defer w.Close()
	if err := r.SetReadDeadline(time.Now().Add(time.Minute)); err == nil {
		t.Fatal("a blocking pipe takes a read deadline: the test proves nothing")
	}
	in, restore := pollable(r)
	f, ok := in.(*rawpipe.Pipe)
	if !ok {
		t.Fatalf("pollable gave %T, want a *rawpipe.Pipe", in)
	}
	if err := f.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("the piped stdin is not polled: %v", err)
	}
	if fl, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("the shell's pipe became non-blocking: flags %#x, %v", fl, err)
	}
	if _, err := w.WriteString("register alice 127.0.0.1 5000\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := f.Read(buf); err != nil || string(buf[:n]) != "register alice 127.0.0.1 5000\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	restore()
	if fl, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("after restore the pipe is non-blocking: flags %#x, %v", fl, err)
	}

	path := filepath.Join(t.TempDir(), "script.txt")
	if err := os.WriteFile(path, []byte("help\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if in, restore := pollable(file); in != file {
		t.Fatalf("a regular file was replaced by %v", in)
	} else {
		restore()
	}
}

// A piped stdout is written through the poller: a write larger than the
// pipe holds waits (in the poller, not in the kernel) until the reader
// drains it, and arrives whole, in order; the pipe is blocking after
// restore. The end of a pipe reads as io.EOF.
func TestPollableStdout(t *testing.T) {
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(fds[0]), "reader"), os.NewFile(uintptr(fds[1]), "stdout")
	defer r.Close()
	out, restore := pollableOut(w)
	if _, ok := out.(*rawpipe.Pipe); !ok {
		t.Fatalf("pollableOut gave %T, want a *rawpipe.Pipe", out)
	}
	want := make([]byte, 1<<20) // 16 times a pipe's 64 KiB
	for i := range want {
		want[i] = byte(i * 7)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	if n, err := out.Write(want); n != len(want) || err != nil {
		t.Fatalf("write: %d of %d, %v", n, len(want), err)
	}
	restore()
	if fl, err := unix.FcntlInt(uintptr(fds[1]), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("after restore the pipe is non-blocking: flags %#x, %v", fl, err)
	}
	w.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("read %d bytes, not what was written (%d)", len(b), len(want))
	}

	// The reading side: what is written, then the end.
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "stdin"), os.NewFile(uintptr(fds[1]), "pipe")
	defer r.Close()
	in, restoreIn := pollable(r)
	defer restoreIn()
	if _, err := w.WriteString("help\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if b, err := io.ReadAll(in); err != nil || string(b) != "help\n" {
		t.Fatalf("read %q, %v; want the line, then the end", b, err)
	}
}

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A piped stdin is read through the runtime's poller: the file pollable
// returns takes a read deadline (only a polled file does), reads what the
// pipe brings, and restore makes the pipe blocking again. A regular file
// is returned as it is.
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
	f, ok := in.(*os.File)
	if !ok || f == r {
		t.Fatalf("pollable gave %T, the same file: %v", in, f == r)
	}
	if err := f.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("the piped stdin is not polled: %v", err)
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

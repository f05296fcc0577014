package rawpipe

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// blockingPipe is a pipe as a shell makes one for a command: both ends
// blocking (os.Pipe's are not).
func blockingPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
}

// nonblocking reports f's non-blocking flag, read without f.Fd (which would
// make the descriptor blocking itself).
func nonblocking(t *testing.T, f *os.File) bool {
	t.Helper()
	sc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fl int
	var ferr error
	if err := sc.Control(func(fd uintptr) { fl, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
		t.Fatalf("F_GETFL: %v %v", err, ferr)
	}
	return fl&unix.O_NONBLOCK != 0
}

// A pipe's two ends, each as a Pipe: what one writes the other reads, a
// read waits in the poller (a deadline ends it, which only a polled file
// takes), a write larger than the pipe waits for the reader, and the end
// of the writer is io.EOF. The caller's descriptors stay blocking all the
// while: the Pipe has a description of its own, so nothing else writing to
// or reading from the same pipe finds it non-blocking.
func TestPipeCarriesLinesThroughThePoller(t *testing.T) {
	r, w := blockingPipe(t)
	defer r.Close()
	defer w.Close()
	pr, pw := Of(r), Of(w)
	if pr == nil || pw == nil {
		t.Fatal("Of refused a pipe")
	}
	if pr.shared || pw.shared {
		t.Fatal("the pipe was not opened again: its Pipes share the caller's descriptions")
	}
	if nonblocking(t, r) || nonblocking(t, w) {
		t.Fatal("the caller's descriptors became non-blocking")
	}
	if _, err := pw.Write([]byte("setup-dht 3 alice\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := pr.Read(buf)
	if err != nil || string(buf[:n]) != "setup-dht 3 alice\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if err := pr.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a read of an empty pipe past its deadline: %v, want the deadline", err)
	}
	if err := pr.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	done := make(chan error, 1)
	go func() {
		_, err := pw.Write(big)
		pw.Restore()
		w.Close() // the last writer: the reader sees the end
		done <- err
	}()
	got, err := io.ReadAll(pr)
	if err != nil || len(got) != len(big) {
		t.Fatalf("read %d bytes, %v; want %d and the end of the pipe", len(got), err, len(big))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pr.Restore()
	if nonblocking(t, r) {
		t.Fatal("the caller's descriptor is non-blocking after Restore")
	}
}

// Where the pipe cannot be opened again (no /proc mounted, say), Of falls
// back to a duplicate, non-blocking until Restore puts the shared flag
// back.
func TestOfFallsBackToADuplicate(t *testing.T) {
	defer func(f func(int, int) (int, error)) { openAgain = f }(openAgain)
	openAgain = func(int, int) (int, error) { return -1, unix.ENOENT }
	r, w := blockingPipe(t)
	defer r.Close()
	defer w.Close()
	p := Of(w)
	if p == nil {
		t.Fatal("Of refused a pipe it could not open again")
	}
	if !p.shared || !nonblocking(t, w) {
		t.Fatalf("shared %v, the caller's descriptor non-blocking %v: want a non-blocking duplicate", p.shared, nonblocking(t, w))
	}
	if _, err := p.Write([]byte("help\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "help\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	p.Restore()
	if nonblocking(t, w) {
		t.Fatal("Restore left the shared flag non-blocking")
	}
}

// A regular file is no pipe: Of leaves it to its caller.
func TestOfRefusesAFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Of(f) != nil {
		t.Fatal("Of took a regular file")
	}
	if Of(io.Discard) != nil {
		t.Fatal("Of took a writer that is no file")
	}
}

// A read waiting in the poller when Restore closes the Pipe fails with an
// error matching os.ErrClosed, as os.File's does: a peer that closes its
// stdin as it exits is not told its input failed.
func TestReadUnderwayWhenRestoredFailsAsClosed(t *testing.T) {
	r, w := blockingPipe(t)
	defer r.Close()
	defer w.Close()
	p := Of(r)
	if p == nil {
		t.Fatal("no Pipe of a pipe")
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 16))
		done <- err
	}()
	// The read waits in the poller: nothing was written. Restore ends it
	// whether it is waiting yet or not.
	p.Restore()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read under way: %v; want os.ErrClosed", err)
	}
}

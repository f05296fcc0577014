package rawpipe

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A pipe's two ends, each as a Pipe: what one writes the other reads, a
// read waits in the poller (a deadline ends it, which only a polled file
// takes), the end of the writer is io.EOF, and Restore leaves the
// caller's descriptor blocking again and open.
func TestPipeCarriesLinesThroughThePoller(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	pr, pw := Of(r), Of(w)
	if pr == nil || pw == nil {
		t.Fatal("Of refused a pipe")
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
	// A write bigger than the pipe holds waits for the reader.
	big := make([]byte, 1<<20)
	done := make(chan error, 1)
	go func() {
		_, err := pw.Write(big)
		pw.Restore()
		w.Close()
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
	// Not r.Fd(), which would make the descriptor blocking itself.
	sc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fl int
	if err := sc.Control(func(fd uintptr) { fl, err = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || fl < 0 {
		t.Fatalf("the caller's descriptor: %v", err)
	}
	if fl&unix.O_NONBLOCK != 0 {
		t.Fatal("the caller's descriptor is still non-blocking")
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

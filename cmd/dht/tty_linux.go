package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"

	"dht/internal/rawpipe"
)

// isTerminal reports whether r is a terminal (not a pipe, a file or
// /dev/null, which a character-device test would take for one).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var terr error
	if err := sc.Control(func(fd uintptr) { _, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); err != nil {
		return false
	}
	return terr == nil
}

// pollable returns stdin as a reader the runtime's poller wakes when it
// is a pipe (a FIFO), and a function that puts it back: a blocking read of
// a pipe parks a thread in the kernel, and every line then costs a thread
// hand-off; a non-blocking one is woken by the poller with the sockets. A
// terminal or a regular file is left as it is.
func pollable(r io.Reader) (io.Reader, func()) {
	p := rawpipe.Of(r)
	if p == nil {
		return r, func() {}
	}
	return p, p.Restore
}

// pollableOut is pollable for stdout: a pipe is written without blocking,
// and a full one waits in the poller.
func pollableOut(w io.Writer) (io.Writer, func()) {
	p := rawpipe.Of(w)
	if p == nil {
		return w, func() {}
	}
	return p, p.Restore
}

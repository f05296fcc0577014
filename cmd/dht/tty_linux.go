package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
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

// pollable returns stdin as a file the runtime's poller reads when it is
// a pipe (a FIFO), and a function that puts it back: a blocking read of a
// pipe parks a thread in the kernel, and every line then costs a thread
// hand-off; a non-blocking one is woken by the poller with the sockets. A
// terminal or a regular file is left as it is.
func pollable(r io.Reader) (io.Reader, func()) {
	f, ok := r.(*os.File)
	if !ok {
		return r, func() {}
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return r, func() {}
	}
	// A file of its own (a duplicate of the descriptor): the runtime's
	// file closes its descriptor when it is collected, which must never
	// be the caller's (in a test, that number may belong to another file
	// by then).
	sc, err := f.SyscallConn()
	if err != nil {
		return r, func() {}
	}
	fd := -1
	if err := sc.Control(func(orig uintptr) { fd, err = unix.Dup(int(orig)) }); err != nil || fd < 0 {
		return r, func() {}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return r, func() {}
	}
	nb := os.NewFile(uintptr(fd), f.Name())
	return nb, func() {
		_ = unix.SetNonblock(fd, false) // shared with the caller's descriptor
		nb.Close()
	}
}

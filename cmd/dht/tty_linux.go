package main

import (
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"

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

// pollable returns stdin as a reader the runtime's poller wakes when it
// is a pipe (a FIFO), and a function that puts it back: a blocking read of
// a pipe parks a thread in the kernel, and every line then costs a thread
// hand-off; a non-blocking one is woken by the poller with the sockets. A
// terminal or a regular file is left as it is.
func pollable(r io.Reader) (io.Reader, func()) {
	p := rawPipeOf(r)
	if p == nil {
		return r, func() {}
	}
	return p, p.restore
}

// pollableOut is pollable for stdout: a pipe is written without blocking,
// and a full one waits in the poller.
func pollableOut(w io.Writer) (io.Writer, func()) {
	p := rawPipeOf(w)
	if p == nil {
		return w, func() {}
	}
	return p, p.restore
}

// rawPipe is a pipe read or written through the runtime's poller with raw
// system calls. os.File's Read and Write are Syscall: each tells the
// runtime it enters a system call, which wakes its sysmon thread from its
// sleep whenever the process was idle, and sysmon then polls every 20 µs
// for a while; with one process per node, that was about three sysmon
// wake-ups a query in every peer. The descriptor is non-blocking, so a
// raw call never blocks: it returns EAGAIN and the poller waits.
type rawPipe struct {
	f  *os.File
	rc syscall.RawConn
	fd int
}

// rawPipeOf makes a rawPipe of a duplicate of v's descriptor if v is a
// pipe, else nil. A descriptor of its own: the runtime's file closes its
// descriptor when it is collected, which must never be the caller's (in a
// test, that number may belong to another file by then).
func rawPipeOf(v any) *rawPipe {
	f, ok := v.(*os.File)
	if !ok {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return nil
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	if err := sc.Control(func(orig uintptr) { fd, err = unix.Dup(int(orig)) }); err != nil || fd < 0 {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	nb := os.NewFile(uintptr(fd), f.Name())
	rc, err := nb.SyscallConn()
	if err != nil {
		nb.Close()
		return nil
	}
	return &rawPipe{f: nb, rc: rc, fd: fd}
}

func (p *rawPipe) restore() {
	_ = unix.SetNonblock(p.fd, false) // shared with the caller's descriptor
	p.f.Close()
}

// SetReadDeadline is the file's: the poller's wait ends at it.
func (p *rawPipe) SetReadDeadline(t time.Time) error { return p.f.SetReadDeadline(t) }

func (p *rawPipe) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := p.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			if errno != unix.EINTR {
				return errno != unix.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &os.PathError{Op: "read", Path: p.f.Name(), Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

func (p *rawPipe) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		var n uintptr
		var errno syscall.Errno
		err := p.rc.Write(func(fd uintptr) bool {
			for {
				n, _, errno = unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[done])), uintptr(len(b)-done))
				if errno != unix.EINTR {
					return errno != unix.EAGAIN
				}
			}
		})
		switch {
		case err != nil:
			return done, err
		case errno != 0:
			return done, &os.PathError{Op: "write", Path: p.f.Name(), Err: errno}
		}
		done += int(n)
	}
	return done, nil
}

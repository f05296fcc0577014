// Package rawpipe reads and writes a pipe through the runtime's poller
// with raw system calls, for the processes of a ring: dht peer's stdin and
// stdout, and the bench's ends of its children's.
package rawpipe

import (
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Pipe is a pipe read or written through the runtime's poller with raw
// system calls. os.File's Read and Write are Syscall: each tells the
// runtime it enters a system call, which wakes its sysmon thread from its
// sleep whenever the process was idle, and sysmon then polls every 20 µs
// for a while; with one process per node, that was about three sysmon
// wake-ups a query in every peer. The descriptor is non-blocking, so a
// raw call never blocks: it returns EAGAIN and the poller waits.
type Pipe struct {
	f  *os.File
	rc syscall.RawConn
	fd int
}

// Of makes a Pipe of a duplicate of v's descriptor if v is a
// pipe, else nil. A descriptor of its own: the runtime's file closes its
// descriptor when it is collected, which must never be the caller's (in a
// test, that number may belong to another file by then).
func Of(v any) *Pipe {
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
	return &Pipe{f: nb, rc: rc, fd: fd}
}

// Restore puts the caller's descriptor back to blocking (the two share
// the flag) and closes the duplicate.
func (p *Pipe) Restore() {
	_ = unix.SetNonblock(p.fd, false) // shared with the caller's descriptor
	p.f.Close()
}

// SetReadDeadline is the file's: the poller's wait ends at it.
func (p *Pipe) SetReadDeadline(t time.Time) error { return p.f.SetReadDeadline(t) }

func (p *Pipe) Read(b []byte) (int, error) {
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

func (p *Pipe) Write(b []byte) (int, error) {
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

// Package rawpipe reads and writes a pipe through the runtime's poller
// with raw system calls, for the processes of a ring: dht peer's stdin and
// stdout, and the bench's ends of its children's.
package rawpipe

import (
	"io"
	"os"
	"strconv"
	"sync/atomic"
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
	// shared: the descriptor is a duplicate of the caller's, whose
	// non-blocking flag it shares (the pipe could not be opened again).
	shared bool
	// restored: Restore closed it; a read or write under way then fails
	// with os.ErrClosed, as os.File's do.
	restored atomic.Bool
}

// Of makes a Pipe of v if v is a pipe, else nil. The pipe is opened again
// through /proc/self/fd, which gives a description of its own: its
// non-blocking flag is not the caller's, which stays as it was (a shell's
// pipe is blocking, and so is whatever else writes to it, such as a
// command run after dht in the same pipeline, even if dht is killed).
// Where that open fails (no /proc mounted, say) it falls back to a duplicate of the caller's descriptor, made non-blocking
// until Restore. A descriptor of its own either way: the runtime's file
// closes its descriptor when it is collected, which must never be the
// caller's (in a test, that number may belong to another file by then).
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
	fd, shared := -1, false
	var cerr error
	err = sc.Control(func(orig uintptr) {
		var fl int
		if fl, cerr = unix.FcntlInt(orig, unix.F_GETFL, 0); cerr != nil {
			return
		}
		if fd, cerr = openAgain(int(orig), fl&unix.O_ACCMODE|unix.O_NONBLOCK|unix.O_CLOEXEC); cerr == nil {
			return
		}
		shared = true
		if fd, cerr = unix.Dup(int(orig)); cerr != nil {
			return
		}
		unix.CloseOnExec(fd)
		if cerr = unix.SetNonblock(fd, true); cerr != nil {
			unix.Close(fd)
			fd = -1
		}
	})
	if err != nil || cerr != nil || fd < 0 {
		return nil
	}
	nb := os.NewFile(uintptr(fd), f.Name())
	rc, err := nb.SyscallConn()
	if err != nil {
		nb.Close()
		return nil
	}
	return &Pipe{f: nb, rc: rc, fd: fd, shared: shared}
}

// openAgain opens the file of descriptor fd again, a description of its
// own; tests make it fail.
var openAgain = func(fd, flags int) (int, error) {
	return unix.Open("/proc/self/fd/"+strconv.Itoa(fd), flags, 0)
}

// Restore closes the Pipe's descriptor; a duplicate's shared flag is put
// back to blocking first.
func (p *Pipe) Restore() {
	if p.shared {
		_ = unix.SetNonblock(p.fd, false)
	}
	p.restored.Store(true)
	p.f.Close()
}

// closedErr is err, a failure of the poller's, as os.ErrClosed once the
// Pipe is closed (the poller's own error says "use of closed file" and
// matches nothing exported).
func (p *Pipe) closedErr(op string, err error) error {
	if p.restored.Load() {
		return &os.PathError{Op: op, Path: p.f.Name(), Err: os.ErrClosed}
	}
	return err
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
		return 0, p.closedErr("read", err)
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
			return done, p.closedErr("write", err)
		case errno != 0:
			return done, &os.PathError{Op: "write", Path: p.f.Name(), Err: errno}
		}
		done += int(n)
	}
	return done, nil
}

//go:build linux && (amd64 || arm64)

package store

import (
	"hash/crc32"
	"os"
	"reflect"
	"syscall"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// rawFile makes a file's commits and checks with raw system calls
// (RawSyscall), which leave the Go runtime out of them.
//
// A system call made the usual way (Syscall: entersyscall) wakes the
// runtime's sysmon thread when it sleeps, and sysmon then wakes every 20 µs
// for as long as the process is not idle; and while the call lasts longer
// than that, sysmon hands the process's P to another thread, which wakes to
// find nothing to do. dht's processes run on one P, and a commit is two
// fdatasyncs of 0.1 to several milliseconds: between processes, those
// wake-ups were a quarter of a node's CPU in a setup. A raw call keeps its
// thread and its P, and wakes nobody; the process reads no datagram during a
// commit either way (it commits on the goroutine that handles them).
//
// A raw call keeps its P for as long as the disk takes, so it is for a
// process with one file that commits (dht server, dht peer: RawCalls): in
// a process where several files commit at once (an in-process cluster),
// syncs holding every P would stop the others in their tracks.
//
// bbolt makes its writes through a hook of its own (DB.ops.writeAt, set to
// the file's WriteAt when it opens) and syncs unless DB.NoSync. rawFile
// sets the hook to a raw pwrite and NoSync, and makes a commit with one
// fdatasync: the pages a commit writes, the meta page (pages 0 and 1) with
// a record of those pages (commitrec.go), and, once Commit returns,
// fdatasync (sync, which update calls before it reports the change done).
// The record lets an open tell a commit the disk did not take whole, and
// roll it back. A commit whose pages do not fit in the record syncs them
// before its meta page, as bbolt does. A bbolt whose DB has no such hook
// (not the version go.mod names) is left as it is: newRawFile returns nil.
type rawFile struct {
	fd   int
	path string
	meta int64     // offsets below it are bbolt's meta pages
	rec  commitRec // of the commit under way
	// The open file's device and inode, which do not change while it is
	// open, and path as the system call takes it: a check is then one
	// stat of the path.
	dev, ino uint64
	cpath    *byte
	// lastSum: a CRC-32C of the first sector of the last meta page
	// written, record included but for its own checksum (metaSumEnd), if
	// its record names pages (see rawIO.metaSum).
	lastSum   uint32
	lastSumOK bool
	// lastRuns and lastRunsCRC: the pages the last commit wrote and their
	// CRC-32C, when its record could not name them (rawIO.pagesSum).
	lastRuns    []pageRun
	lastRunsCRC uint32
}

// The raw calls, variables so that tests can watch and fail them. They
// return a syscall.Errno.
var (
	rawPwrite    = pwrite
	rawFdatasync = fdatasync
)

func newRawFile(db *bolt.DB, f *os.File) rawIO {
	ops := reflect.ValueOf(db).Elem().FieldByName("ops")
	if !ops.IsValid() || ops.Kind() != reflect.Struct {
		return nil
	}
	hook := ops.FieldByName("writeAt")
	var writeAt func([]byte, int64) (int, error)
	if !hook.IsValid() || hook.Type() != reflect.TypeOf(writeAt) {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	ps := db.Info().PageSize
	r := &rawFile{fd: -1, path: f.Name(), meta: 2 * int64(ps)}
	if err := rc.Control(func(fd uintptr) { r.fd = int(fd) }); err != nil || r.fd < 0 {
		return nil
	}
	var open syscall.Stat_t
	if err := syscall.Fstat(r.fd, &open); err != nil {
		return nil
	}
	r.dev, r.ino = uint64(open.Dev), uint64(open.Ino)
	if r.cpath, err = syscall.BytePtrFromString(r.path); err != nil {
		return nil
	}
	writeAt = func(b []byte, off int64) (int, error) {
		if off < r.meta && len(b) >= recEnd {
			// The meta page names the pages just written, and carries
			// their record; too many runs for it, they go to disk first.
			r.lastRuns = r.lastRuns[:0]
			if !r.rec.fits() {
				if err := rawFdatasync(r.fd); err != nil {
					return 0, &os.PathError{Op: "fdatasync", Path: r.path, Err: err}
				}
				r.lastRuns, r.lastRunsCRC = append(r.lastRuns, r.rec.runs...), r.rec.crc
				r.rec.reset()
			}
			r.rec.txid = native.Uint64(b[pageHeaderSize+metaTxid:])
			r.rec.put(b) // bbolt's buffer, made for this write
			r.lastSum, r.lastSumOK = crc32.Checksum(b[:metaSumEnd], castagnoli), len(r.rec.runs) > 0
		}
		n, err := rawPwrite(r.fd, b, off)
		if err != nil {
			return n, &os.PathError{Op: "write", Path: r.path, Err: err}
		}
		if off >= r.meta {
			r.rec.wrote(uint64(off/int64(ps)), b, ps)
		}
		return n, nil
	}
	reflect.NewAt(hook.Type(), unsafe.Pointer(hook.UnsafeAddr())).Elem().Set(reflect.ValueOf(writeAt))
	db.NoSync = true
	return r
}

// begin starts a commit's record.
func (r *rawFile) begin() { r.rec.reset(); r.lastSumOK, r.lastRuns = false, r.lastRuns[:0] }

func (r *rawFile) metaSum() (uint32, bool) { return r.lastSum, r.lastSumOK }

func (r *rawFile) pagesSum() ([]pageRun, uint32) { return r.lastRuns, r.lastRunsCRC }

// sync puts the last commit on disk: its pages and its meta page.
func (r *rawFile) sync() error {
	if err := rawFdatasync(r.fd); err != nil {
		return &os.PathError{Op: "fdatasync", Path: r.path, Err: err}
	}
	return nil
}

// stat reports whether path names the open file, and that file's size:
// one stat of path, compared with the open file's device and inode (if
// path names another file, its size does not matter).
func (r *rawFile) stat(path string) (same bool, size, mtime int64, err error) {
	p := r.cpath
	if path != r.path {
		if p, err = syscall.BytePtrFromString(path); err != nil {
			return false, 0, 0, &os.PathError{Op: "stat", Path: path, Err: err}
		}
	}
	var named syscall.Stat_t
	const atFDCWD = ^uintptr(99) // -100
	if _, _, e := syscall.RawSyscall6(sysFstatat, atFDCWD, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&named)), 0, 0, 0); e != 0 {
		return false, 0, 0, &os.PathError{Op: "stat", Path: path, Err: e}
	}
	if uint64(named.Dev) != r.dev || uint64(named.Ino) != r.ino {
		return false, 0, 0, nil
	}
	return true, named.Size, named.Mtim.Nano(), nil
}

func pwrite(fd int, b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		r, _, e := syscall.RawSyscall6(syscall.SYS_PWRITE64, uintptr(fd), uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n), uintptr(off+int64(n)), 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e != 0:
			return n, e
		case r == 0:
			return n, syscall.EIO // a regular file takes every byte or fails
		}
		n += int(r)
	}
	return n, nil
}

func fdatasync(fd int) error {
	for {
		_, _, e := syscall.RawSyscall(syscall.SYS_FDATASYNC, uintptr(fd), 0, 0)
		switch e {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		}
		return e
	}
}

package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// rawCalls: see RawCalls.
var rawCalls atomic.Bool

// RawCalls says whether the files opened from now on commit, and check
// that they are still in place, with raw system calls (on Linux; see
// rawio_linux.go). They save a process on one P the runtime's wake-ups
// around every call, but keep the P while the disk works: for a process
// with one file that commits, not for one where several do at once.
func RawCalls(on bool) { rawCalls.Store(on) }

// openTimeout bounds the wait for another process's file lock.
const openTimeout = time.Second

// fileVersion is the layout version written under meta/"version", by
// kind: a server's is 2 and a peer's 3 since every value they hold carries
// a checksum (seal; a peer's records since version 2, appendRecord).
func fileVersion(kind string) byte {
	if kind == kindPeer {
		return 3
	}
	return 2
}

// unsealedVersion is the version before fileVersion, whose values other
// than a peer's records carry no checksum: such a file is read as it is
// (inspect), and sealed when a process opens it to write (upgrade).
func unsealedVersion(kind string) byte { return fileVersion(kind) - 1 }

// sealedValues reports whether the values of tx, a dht file of the
// current or the unsealed version (checkMeta), carry their checksums.
func sealedValues(tx *bolt.Tx) bool {
	meta := tx.Bucket(bucketMeta)
	return meta != nil && bytes.Equal(meta.Get(keyVersion), []byte{fileVersion(string(meta.Get(keyKind)))})
}

const (
	kindServer = "server"
	kindPeer   = "peer"
)

var (
	bucketMeta     = []byte("meta")
	bucketUsers    = []byte("users")
	bucketDHT      = []byte("dht")
	bucketReplies  = []byte("replies")
	bucketIdentity = []byte("identity")

	keyKind     = []byte("kind")
	keyVersion  = []byte("version")
	keyState    = []byte("state")
	keyIdentity = []byte("identity")
)

// openErr turns an error from bolt.Open into one of ours.
func openErr(path string, err error, running string, timeout time.Duration) error {
	var (
		pe *fs.PathError
		ke *kindError
	)
	switch {
	case errors.As(err, &ke):
		return err // from file.opener: already says what is wrong
	case errors.Is(err, berrors.ErrTimeout):
		held := fmt.Sprintf("lock not released within %v", timeout)
		if timeout <= 0 {
			held = "its lock held, tried once"
		}
		return &kindError{
			msg:  fmt.Sprintf("store: %s is in use by %s (%s)", path, running, held),
			kind: ErrLocked,
		}
	case errors.As(err, &pe):
		return fmt.Errorf("store: %w", err) // the PathError names the path
	default:
		// bbolt's ErrInvalid, ErrChecksum, ErrVersionMismatch, "file size
		// too small", …: the bytes are not a bbolt database we can read.
		return notDHT(path, "not a bbolt database", err)
	}
}

// damaged is the error for a dht file that cannot be used as it is; what
// names its kind ("server file") if it is known.
func damaged(path, what, why string, cause error) error {
	if what == "" {
		what = "file"
	}
	msg := fmt.Sprintf("store: %s %s is damaged: %s", what, path, why)
	if cause != nil {
		msg += " (" + cause.Error() + ")"
	}
	return &kindError{msg: msg, kind: ErrDamaged, cause: cause}
}

// inconsistent is the error for a dht file whose values all decode but do
// not agree with each other.
func inconsistent(path, what, why string) error {
	return &kindError{msg: fmt.Sprintf("store: %s %s is inconsistent: %s", what, path, why), kind: ErrDamaged}
}

func notDHT(path, why string, cause error) error {
	msg := fmt.Sprintf("store: %s is not a dht database file: %s", path, why)
	if cause != nil {
		msg += " (" + cause.Error() + ")"
	}
	return &kindError{msg: msg, kind: ErrNotDHT, cause: cause}
}

// checkMeta reports the kind written in a dht file, or an error when tx is
// not a dht file of a version we know. A bbolt file with no buckets at all,
// or only the spare pages of a creation that stopped halfway (open),
// returns "" (a fresh file).
func checkMeta(path string, tx *bolt.Tx) (string, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if hasBuckets(tx, bucketSpare) {
			return "", notDHT(path, "bbolt database without dht meta bucket", nil)
		}
		return "", nil
	}
	kind := string(meta.Get(keyKind))
	if kind != kindServer && kind != kindPeer {
		return "", notDHT(path, fmt.Sprintf("unknown kind %q", kind), nil)
	}
	if v := meta.Get(keyVersion); !bytes.Equal(v, []byte{fileVersion(kind)}) && !bytes.Equal(v, []byte{unsealedVersion(kind)}) {
		what, hint := fmt.Sprintf("a version of %d bytes", len(v)), ""
		if len(v) == 1 {
			what = fmt.Sprintf("version %d", v[0])
		}
		switch {
		case len(v) != 1:
		case kind == kindPeer && v[0] == 1:
			hint = " (written by an earlier dht, whose records carry no checksum: start the peer on a new --db, and register again)"
		case v[0] > fileVersion(kind):
			hint = " (written by a later dht: run that one on it)"
		}
		return "", &kindError{
			msg:  fmt.Sprintf("store: %s: %s file of %s, this program reads versions %d and %d%s", path, kind, what, unsealedVersion(kind), fileVersion(kind), hint),
			kind: ErrVersion,
		}
	}
	return kind, nil
}

// upgrade seals every value of tx, a file of kind's unsealed version
// (checkMeta), and writes the current version. A file that the open would
// refuse (a value that does not decode, a state that breaks the rules) is
// refused as it is, unchanged: sealed, its damage would pass for data.
func upgrade(path string, tx *bolt.Tx, kind string) error {
	if kind == kindServer {
		st, _, err := loadServer(tx)
		if err := refuse(path, kind, err, st.Check()); err != nil {
			return err
		}
	} else {
		id, recs, err := loadPeer(tx, func(int, int) {})
		if err := refuse(path, kind, err, checkPeer(id, recs)); err != nil {
			return err
		}
	}
	for _, name := range sealedBuckets[kind] {
		b := tx.Bucket(name)
		if b == nil {
			return damaged(path, kind+" file", "a bucket is missing", nil)
		}
		var all []kv
		if err := b.ForEach(func(k, v []byte) error {
			all = append(all, kv{string(k), seal(bytes.Clone(v))})
			return nil
		}); err != nil {
			return err
		}
		for _, e := range all {
			if err := b.Put([]byte(e.k), e.v); err != nil {
				return fmt.Errorf("store: seal %s/%s: %w", name, quote(e.k), err)
			}
		}
	}
	if err := tx.Bucket(bucketMeta).Put(keyVersion, []byte{fileVersion(kind)}); err != nil {
		return fmt.Errorf("store: put version: %w", err)
	}
	return nil
}

// sealedBuckets are, by kind, the buckets whose values seal checksums
// (a peer's records carry their own, appendRecord).
var sealedBuckets = map[string][][]byte{
	kindServer: {bucketUsers, bucketDHT, bucketReplies},
	kindPeer:   {bucketIdentity},
}

// hasBuckets reports whether tx holds a bucket other than except.
func hasBuckets(tx *bolt.Tx, except []byte) bool {
	c := tx.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if !bytes.Equal(k, except) {
			return true
		}
	}
	return false
}

// bucketSpare holds, for one commit while a file is created, spareBytes
// that the next commit deletes: the file's first commits then reuse those
// pages instead of adding pages past bbolt's last. A commit that adds
// pages makes bbolt fstat the file (DB.fileSize, through os.File.Stat: a
// system call that wakes the runtime's sysmon, which then polls every 20 µs
// through the commit's syncs), and without spare pages a node's first
// commits all do.
var bucketSpare = []byte("spare")

const spareBytes = 256 << 10

// fileErr says what failed on the file at path, naming the path once: an
// *fs.PathError names it already.
func fileErr(what, path string, err error) error {
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe) && pe.Op == what:
		return fmt.Errorf("store: %w", err)
	case errors.As(err, &pe):
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return fmt.Errorf("store: %s %s: %w", what, path, err)
}

// open opens (creating if needed) a dht file of the given kind and makes sure
// the buckets exist. The file's pages are checked before bbolt reads them
// (file.opener), and an existing file must hold exactly the buckets of its
// kind (checkLayout). A file it creates and cannot finish (a full disk) it
// removes again.
func open(path, kind string, buckets ...[]byte) (*bolt.DB, *file, error) {
	h := &file{path: path}
	var db *bolt.DB
	var sizeWas int64 // of the file that was there, which a refused open leaves so
	if fi, err := os.Stat(path); err == nil {
		sizeWas = fi.Size()
	}
	err := h.guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, OpenFile: h.opener(true, openTimeout), InitialMmapSize: preallocSize})
		if err != nil {
			db = nil
			if err = openErr(path, err, "another process", openTimeout); errors.Is(err, ErrLocked) {
				// A dht file is open in one process at a time.
				err = fmt.Errorf("%w: a dht server or peer runs on it already; stop that one first, or give this one a file of its own", err)
			}
			return err
		}
		var (
			got    string
			sealed bool
		)
		err = db.View(func(tx *bolt.Tx) error {
			var err error
			if got, err = checkMeta(path, tx); err != nil {
				return err
			}
			if got != "" && got != kind {
				return &kindError{
					msg:  fmt.Sprintf("store: %s is a %s file, not a %s file", path, got, kind),
					kind: ErrWrongKind,
				}
			}
			if got != "" {
				sealed = sealedValues(tx)
				return checkLayout(path, tx, kind)
			}
			return nil
		})
		if err != nil || got != "" && sealed {
			return err
		}
		if got != "" {
			err := db.Update(func(tx *bolt.Tx) error { return upgrade(path, tx, kind) })
			if ke := (*kindError)(nil); err != nil && !errors.As(err, &ke) {
				// The commit failed (a full or failing disk): bbolt wrote
				// the meta page last, so the file is whole either way.
				err = fmt.Errorf("store: %s: cannot seal its values for file version %d: %w; the file is whole, at version %d or %d: open it again once the disk is fixed",
					path, fileVersion(kind), err, unsealedVersion(kind), fileVersion(kind))
			}
			return err
		}
		// A fresh file (we hold its lock): make it a dht file of this
		// kind, with spare pages. Stopped between the two commits, it is
		// still a fresh file to the next open.
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketSpare)
			if err != nil {
				return fmt.Errorf("store: create spare pages: %w", err)
			}
			if err := b.Put(bucketSpare, make([]byte, spareBytes)); err != nil {
				return fmt.Errorf("store: create spare pages: %w", err)
			}
			return nil
		}); err != nil {
			return err
		}
		return db.Update(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketSpare); err != nil {
				return fmt.Errorf("store: free spare pages: %w", err)
			}
			meta, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return fmt.Errorf("store: create meta bucket: %w", err)
			}
			if err := meta.Put(keyKind, []byte(kind)); err != nil {
				return fmt.Errorf("store: put kind: %w", err)
			}
			if err := meta.Put(keyVersion, []byte{fileVersion(kind)}); err != nil {
				return fmt.Errorf("store: put version: %w", err)
			}
			for _, b := range buckets {
				if _, err := tx.CreateBucket(b); err != nil {
					return fmt.Errorf("store: create bucket %s: %w", b, err)
				}
			}
			return nil
		})
	})
	if err == nil {
		keep := sizeWas
		if h.created {
			keep = 0
		}
		err = preallocate(db, path, preallocSize, keep)
	}
	if err == nil {
		if rawCalls.Load() {
			h.raw = newRawFile(db, h.f)
		}
		var txid uint64
		if err = db.View(func(tx *bolt.Tx) error { txid = uint64(tx.ID()); return nil }); err == nil {
			err = h.check(txid)
		}
	}
	if err != nil {
		err = h.refused(err)
		_ = h.close(db)
		if h.created {
			// Made by this open and never finished (a full disk): leave
			// nothing behind.
			_ = os.Remove(path)
		}
		return nil, nil, err
	}
	return db, h, nil
}

// preallocSize is how much of a file is written once, with zeros, when it
// is not yet. bbolt grows a file by truncating it, which leaves a hole:
// every commit that then writes into the hole makes the filesystem allocate
// blocks and journal that, and bbolt's growth costs an fsync of its own.
// Overwriting blocks already written costs a commit only the data flushes,
// and a ring's setup is a handful of commits in a row. bbolt maps that
// much from the open (InitialMmapSize): it maps a new file's first 32 KiB
// otherwise, and the first commits that go past the map remap it, each an
// munmap (a TLB shootdown of every CPU), an mmap and an fstat. (Mapped
// that far, bbolt's first commit truncates a new file to preallocSize:
// the hole the zeros then fill.)
const preallocSize = 1 << 20

// writeAt is (*os.File).WriteAt; tests make it fail as a full disk does.
var writeAt = (*os.File).WriteAt

// preallocate writes zeros from the end of db's pages to size, and syncs
// them, unless the file at path has that much written already. bbolt
// neither reads nor writes past its last page until it grows, so the
// region is free to write while bbolt has the file open. If it fails (a
// full disk), it cuts the file back to the end of db's pages, or to keep
// if larger: the size a file that was there had before the open (zero for
// one the open made, which it then removes), so that a refused start
// leaves such a file as it was (an operator's review: a sparse file of
// 1 MiB was cut to 284 KiB).
func preallocate(db *bolt.DB, path string, size, keep int64) (err error) {
	var pages int64
	if err := db.View(func(tx *bolt.Tx) error { pages = tx.Size(); return nil }); err != nil {
		return fileErr("preallocate", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fileErr("preallocate", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileErr("preallocate", path, err)
	}
	if written(st) >= size || pages >= size {
		return nil
	}
	defer func() {
		if err != nil {
			_ = f.Truncate(max(keep, pages))
		}
	}()
	if _, err = writeAt(f, make([]byte, size-pages), pages); err == nil {
		err = f.Sync()
	}
	if err != nil {
		if keep > 0 {
			return fmt.Errorf("%w (a dht file is written out to %d KiB, and this one is not yet: free that much on its disk)", fileErr("preallocate", path, err), size>>10)
		}
		return fmt.Errorf("%w (a dht file is written out to %d KiB when made)", fileErr("preallocate", path, err), size>>10)
	}
	return f.Close()
}

// dbErr maps bbolt's error for a closed database to ErrClosed.
func dbErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// file is a dht file as this package holds it: bbolt works on the
// *os.File that opener opened, locked and checked, and every commit checks
// that the path still names that file, at least as long as it was.
type file struct {
	path string
	f    *os.File // bbolt's own: closed by bolt.DB.Close
	// created: opener made the file (it was not there), so an open that
	// fails may remove it.
	created bool
	// rolledBack: the transaction of the commit the open rolled back, as
	// one that did not reach the disk whole; 0 if none. undoAt and
	// undoSum: the meta page whose checksum the roll-back cleared, and
	// that checksum (refused).
	rolledBack uint64
	undoAt     int64
	undoSum    []byte

	// raw makes the commits' writes and syncs, and the checks, without
	// the Go runtime (rawio_linux.go); nil: bbolt's and os's own calls.
	raw rawIO
	// io is held by update and taken by close: raw works on the file's
	// descriptor, which must not be closed (and its number reused) under it.
	io     sync.RWMutex
	closed bool
	// commits is held by update from its first check to its last: the
	// check before a commit reads the file's time, which a commit under
	// way moves.
	commits sync.Mutex

	mu     sync.Mutex
	size   int64 // after the last check: bbolt never shrinks a file
	broken error // a panic or fault in bbolt, or a failed sync: see guard
	// txid and mtime: the transaction this process's last commit (or its
	// open) left the file at, and the file's modification time after it.
	// Another program's write (a copy over the file, which keeps it and
	// its size) moves the time: the check before a commit then reads the
	// meta page in use, which must still be that transaction's.
	txid  uint64
	mtime int64
	// sum: the fingerprint of the file after that commit: a copy of a
	// file at the same transaction (a member of the same ring, whose
	// commits were the same in number) differs from it there. With
	// metaOnly, that of the meta page alone, which the raw calls keep as
	// they write it (rawIO.metaSum): a commit reads nothing back.
	sum      uint32
	metaOnly bool
	// pages and pagesCRC: the pages that commit wrote and their CRC-32C,
	// when its record could not name them (rawIO.pagesSum): the check
	// reads them back, which tells a file laid out alike from this one.
	pages    []pageRun
	pagesCRC uint32
}

// rawIO is what rawFile does for a file.
type rawIO interface {
	// begin starts a commit.
	begin()
	// sync puts the last commit on disk.
	sync() error
	// stat reports whether path names the open file, its size and its
	// modification time (Unix nanoseconds).
	stat(path string) (same bool, size, mtime int64, err error)
	// metaSum is a CRC-32C of the first sector of the meta page the last
	// commit wrote, its record included but for the record's own checksum
	// (as verifier.fingerprint reads it back); false if that record names no
	// pages (a commit with too many runs for it), and there is then no
	// telling two files at the same transaction apart by it.
	metaSum() (uint32, bool)
	// pagesSum is, when the last commit's record could not name its pages
	// (metaSum false), those pages and their CRC-32C; none otherwise.
	pagesSum() ([]pageRun, uint32)
}

// opener is bbolt's OpenFile. It takes bbolt's lock first, so that no other
// process writes the file while it is read, then checks the pages
// (verifyFile) before bbolt trusts them. An existing empty file is refused:
// bbolt would initialise it, and a dht file is never empty unless it was
// truncated.
func (h *file) opener(exclusive bool, timeout time.Duration) func(string, int, os.FileMode) (*os.File, error) {
	return func(name string, flag int, mode os.FileMode) (*os.File, error) {
		created := false
		f, err := os.OpenFile(name, flag&^os.O_CREATE, mode)
		if errors.Is(err, fs.ErrNotExist) && flag&os.O_CREATE != 0 {
			f, err = os.OpenFile(name, flag|os.O_EXCL, mode)
			created = err == nil
			if errors.Is(err, fs.ErrExist) { // another process made it just now
				f, err = os.OpenFile(name, flag&^os.O_CREATE, mode)
			}
		}
		if err != nil {
			if to, lerr := os.Readlink(name); lerr == nil && errors.Is(err, fs.ErrNotExist) {
				return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("a symbolic link to %s, which is not there", to)}
			}
			return nil, err
		}
		if err := h.verifySafely(f, exclusive, timeout, created); err != nil {
			f.Close()
			return nil, err
		}
		h.f, h.created = f, created
		return f, nil
	}
}

// verifySafely is verify, a panic in which (a check's own fault, on pages
// no test foresaw) refuses the file as damaged and lets it go: reaching
// guard's recover instead, the file was said to have made bbolt fail, and
// stayed open and locked, so that the next open in the process found it
// "in use by another process" (a mutation review).
func (h *file) verifySafely(f *os.File, exclusive bool, timeout time.Duration, created bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damaged(h.path, "", fmt.Sprint("checking its pages failed: ", p), nil)
		}
	}()
	if verifyHook != nil {
		verifyHook()
	}
	return h.verify(f, exclusive, timeout, created)
}

// verifyHook, if set, runs before each check of a file's pages. For the
// tests.
var verifyHook func()

func (h *file) verify(f *os.File, exclusive bool, timeout time.Duration, created bool) error {
	if err := lockFile(f, exclusive, timeout); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return notDHT(h.path, "not a regular file", nil)
	}
	if fi.Size() == 0 {
		if created {
			return nil
		}
		return notDHT(h.path, "empty file (a dht file never is, unless it was truncated)", nil)
	}
	// A torn last commit is rolled back, but only once the file as it
	// would then be has been checked: a file refused is not written to
	// (each open of a damaged file would otherwise damage it further).
	off, txid, torn, err := tornCommit(f, fi.Size())
	if errors.Is(err, errRecDamaged) {
		return damaged(h.path, "", fmt.Sprintf("the commit record of its last commit (transaction %d) is damaged: whether that commit reached the disk whole cannot be told", txid), nil)
	}
	if err != nil {
		return fmt.Errorf("store: read %s: %w", h.path, err)
	}
	if txid, lost, err := lostCommit(f, fi.Size()); err != nil {
		return fmt.Errorf("store: read %s: %w", h.path, err)
	} else if lost {
		return damaged(h.path, "", lostWhy(txid), nil)
	}
	var view io.ReaderAt = f
	if torn {
		view = rolledBackView{f, off}
	}
	var ve *verifyError
	switch err := verifyFile(view, fi.Size()); {
	case errors.Is(err, errNoMeta):
		return notDHT(h.path, "not a bbolt database", nil)
	case errors.As(err, &ve):
		return damaged(h.path, "", ve.why, nil)
	case err != nil:
		return fmt.Errorf("store: read %s: %w", h.path, err)
	case torn && !exclusive:
		return damaged(h.path, "", fmt.Sprintf("%s; dht server or dht peer rolls it back when it opens the file", tornWhy(txid)), nil)
	case torn:
		sum, err := rollBack(f, off)
		if err != nil {
			return fmt.Errorf("store: %s: roll back its last commit (transaction %d), which did not reach the disk whole: %w", h.path, txid, err)
		}
		h.rolledBack, h.undoAt, h.undoSum = txid, off, sum
	}
	return nil
}

// refused is err, the reason the open refuses the file's values, for a
// file whose torn last commit the open rolled back: the pages are checked
// before the roll-back, the values only after it, through bbolt. The
// roll-back is undone (no commit has been made since), so the file is
// left as the open found it rather than with a cleared meta page that
// later opens would misread, and the error says both.
func (h *file) refused(err error) error {
	if h.rolledBack == 0 || h.f == nil || err == nil {
		return err
	}
	at := h.undoAt + pageHeaderSize + metaChecksum
	var cur [8]byte
	if _, rerr := h.f.ReadAt(cur[:], at); rerr != nil || cur != [8]byte{} {
		return err // written since: the roll-back stands
	}
	what := "the file is left as it was"
	if _, werr := h.f.WriteAt(h.undoSum, at); werr != nil {
		what = "the roll-back could not be undone: " + werr.Error()
	} else if serr := h.f.Sync(); serr != nil {
		what = "the undoing of the roll-back may not be on disk: " + serr.Error()
	}
	msg := fmt.Sprintf("%s; and %s: %s", err, tornWhy(h.rolledBack), what)
	if ke := (*kindError)(nil); errors.As(err, &ke) {
		return &kindError{msg: msg, kind: ke.kind, cause: ke.cause}
	}
	return errors.New(msg)
}

// rolledBackView reads a file as rollBack(at) would leave it, without
// writing it: the meta page at at reads with a cleared checksum.
type rolledBackView struct {
	r  io.ReaderAt
	at int64
}

func (v rolledBackView) ReadAt(b []byte, off int64) (int, error) {
	n, err := v.r.ReadAt(b, off)
	lo := v.at + pageHeaderSize + metaChecksum
	for i := max(lo, off); i < min(lo+8, off+int64(n)); i++ {
		b[i-off] = 0
	}
	return n, err
}

// rollbackNote says what the open did to a file whose last commit did not
// reach the disk whole, or "" if it found none: the process goes on from
// the commit before, and the person running it should know.
func (h *file) rollbackNote() string {
	if h.rolledBack == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s: rolled back to the commit before it", h.path, tornWhy(h.rolledBack))
}

// tornWhy says what a torn last commit is, for inspect and for the open
// that rolls it back alike.
func tornWhy(txid uint64) string {
	return fmt.Sprintf("its last commit (transaction %d) did not reach the disk whole (the machine stopped while it was written, or the file was damaged since)", txid)
}

// rollBack makes bbolt take the meta page before the one at off, whose
// commit did not reach the disk whole (tornCommit): it clears that meta
// page's checksum, and syncs. The next commit writes over it.
func rollBack(f *os.File, off int64) (cleared []byte, err error) {
	cleared = make([]byte, 8)
	if _, err := f.ReadAt(cleared, off+pageHeaderSize+metaChecksum); err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(make([]byte, 8), off+pageHeaderSize+metaChecksum); err != nil {
		return nil, err
	}
	return cleared, f.Sync()
}

// check reports whether the file is still the one at path, no shorter
// than it was at the last check, and, unless commit names the transaction
// this process just left it at, not written by another program since
// (txid). bbolt writes to the file it opened and reads it through a
// memory map: a file deleted or replaced takes commits that no later open
// will see, reading a page past the end of a truncated one is a SIGBUS,
// and a file copied over takes commits onto pages bbolt's memory says are
// free while the copy uses them.
func (h *file) check(commit uint64) error {
	same, size, mtime, err := h.stat()
	switch {
	case errors.Is(err, os.ErrClosed):
		return ErrClosed
	case errors.Is(err, fs.ErrNotExist):
		return gone(h.path, "was deleted or moved")
	case err != nil:
		return fmt.Errorf("store: %s: %w", h.path, err)
	case !same:
		return gone(h.path, "was replaced by another file")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if size < h.size {
		return gone(h.path, fmt.Sprintf("was truncated from %d to %d bytes", h.size, size))
	}
	h.size = size
	switch {
	case commit != 0:
		h.metaOnly, h.pages = false, h.pages[:0]
		if h.raw != nil {
			h.sum, h.metaOnly = h.raw.metaSum()
			runs, crc := h.raw.pagesSum()
			h.pages, h.pagesCRC = append(h.pages, runs...), crc
		}
		if !h.metaOnly {
			v := verifier{r: h.f, size: size}
			_, h.sum = v.fingerprint(false)
		}
		h.txid, h.mtime = commit, mtime
	case mtime != h.mtime && h.txid != 0:
		v := verifier{r: h.f, size: size}
		m, sum := v.fingerprint(h.metaOnly)
		same := m.valid && m.txid == h.txid && sum == h.sum
		if same && len(h.pages) > 0 {
			crc, whole, err := runsCRC(h.f, size, m.pageSize, m.pgid, h.pages)
			same = err == nil && whole && crc == h.pagesCRC
		}
		if !same {
			return gone(h.path, fmt.Sprintf("was written by another program (its last commit is no longer this process's, transaction %d)", h.txid))
		}
		h.mtime = mtime // touched, not written
	}
	return nil
}

// stat reports whether path still names the open file, its size and its
// modification time; an error wrapping os.ErrClosed once the file is
// closed, fs.ErrNotExist if nothing is at path.
func (h *file) stat() (same bool, size, mtime int64, err error) {
	if h.raw != nil {
		if h.closed {
			return false, 0, 0, os.ErrClosed
		}
		return h.raw.stat(h.path)
	}
	fi, err := h.f.Stat()
	if err != nil {
		return false, 0, 0, err
	}
	cur, err := os.Stat(h.path)
	if err != nil {
		return false, fi.Size(), 0, err
	}
	return os.SameFile(fi, cur), fi.Size(), fi.ModTime().UnixNano(), nil
}

func gone(path, what string) error {
	return &kindError{
		msg:  fmt.Sprintf("store: %s %s while in use: changes to it can no longer be read back", path, what),
		kind: ErrGone,
	}
}

// update runs fn in a read-write transaction, between two checks of the
// file: a change is reported done only once it is in the file at path.
func (h *file) update(db *bolt.DB, fn func(*bolt.Tx) error) error {
	h.io.RLock()
	defer h.io.RUnlock()
	h.commits.Lock()
	defer h.commits.Unlock()
	if err := h.failed(); err != nil {
		return err
	}
	if err := h.check(0); err != nil {
		return err
	}
	var txid uint64 // of this commit
	body := func(tx *bolt.Tx) error {
		if h.raw != nil {
			h.raw.begin() // under bbolt's lock: this commit's record, whatever the last did
		}
		txid = uint64(tx.ID())
		return fn(tx)
	}
	if err := h.guard(func() error { return db.Update(body) }); err != nil {
		return dbErr(err)
	}
	if h.raw != nil {
		if err := h.raw.sync(); err != nil {
			// The commit is in bbolt's map but maybe not on disk, and a
			// second fdatasync may succeed without writing what the first
			// failed to: no later change is made on top of it.
			err = fmt.Errorf("store: %w: the last change may not be on disk", err)
			h.mu.Lock()
			h.broken = err
			h.mu.Unlock()
			return err
		}
	}
	return h.check(txid)
}

// errPanic is the cause of an error made from a panic in bbolt.
var errPanic = errors.New("bbolt panicked")

// guard runs fn, turning a panic in it, or a memory fault in bbolt's map of
// the file (a page that is no longer there), into an error saying that the
// file is damaged. The file's pages are checked before bbolt reads them;
// this is for what happens to the file afterwards. bbolt may have been
// holding its locks when it stopped, so it is not called again: every later
// guard, and update, returns the same error, and close closes the file
// without bbolt.
func (h *file) guard(fn func() error) (err error) {
	if err := h.failed(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			why := fmt.Sprint("bbolt failed on it: ", p)
			if _, fault := p.(interface{ Addr() uintptr }); fault {
				why = "a page is no longer there (the file was cut short while in use?)"
			}
			err = damaged(h.path, "", why, errPanic)
			h.mu.Lock()
			h.broken = err
			h.mu.Unlock()
		}
	}()
	return fn()
}

// failed returns the error guard recovered from, if any.
func (h *file) failed() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.broken
}

// close closes db (nil: not open), or only the file under it if bbolt
// stopped halfway through something (guard).
func (h *file) close(db *bolt.DB) error {
	h.io.Lock()
	defer h.io.Unlock()
	h.closed = true
	switch {
	case h.failed() != nil && h.f != nil:
		_ = h.f.Close() // lets go of the lock; the map stays until the process ends
		return nil
	case db != nil:
		return db.Close()
	}
	return nil
}

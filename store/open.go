package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// openTimeout bounds the wait for another process's file lock.
const openTimeout = time.Second

// fileVersion is the layout version written under meta/"version".
const fileVersion = 1

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
	var pe *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return &kindError{
			msg:  fmt.Sprintf("store: %s is in use by %s (lock not released within %v)", path, running, timeout),
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

func notDHT(path, why string, cause error) error {
	msg := fmt.Sprintf("store: %s is not a dht database file: %s", path, why)
	if cause != nil {
		msg += " (" + cause.Error() + ")"
	}
	return &kindError{msg: msg, kind: ErrNotDHT, cause: cause}
}

// checkMeta reports the kind written in a dht file, or an error when tx is
// not a dht file of a version we know. A bbolt file with no buckets at all
// returns "" (a fresh file).
func checkMeta(path string, tx *bolt.Tx) (string, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if hasBuckets(tx) {
			return "", notDHT(path, "bbolt database without dht meta bucket", nil)
		}
		return "", nil
	}
	kind := string(meta.Get(keyKind))
	if kind != kindServer && kind != kindPeer {
		return "", notDHT(path, fmt.Sprintf("unknown kind %q", kind), nil)
	}
	if v := meta.Get(keyVersion); !bytes.Equal(v, []byte{fileVersion}) {
		return "", &kindError{
			msg:  fmt.Sprintf("store: %s: %s file version %v, this program reads version %d", path, kind, v, fileVersion),
			kind: ErrVersion,
		}
	}
	return kind, nil
}

func hasBuckets(tx *bolt.Tx) bool {
	k, _ := tx.Cursor().First()
	return k != nil
}

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
// the buckets exist.
// A file it creates and cannot finish (a full disk) it removes again.
func open(path, kind string, buckets ...[]byte) (*bolt.DB, error) {
	created, err := createNew(path)
	if err != nil {
		return nil, fileErr("open", path, err)
	}
	removeNew := func() {
		if created {
			_ = os.Remove(path)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		removeNew()
		return nil, openErr(path, err, "another process", openTimeout)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		got, err := checkMeta(path, tx)
		if err != nil {
			return err
		}
		if got != "" && got != kind {
			return &kindError{
				msg:  fmt.Sprintf("store: %s is a %s file, not a %s file", path, got, kind),
				kind: ErrWrongKind,
			}
		}
		if got == "" {
			meta, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return fmt.Errorf("store: create meta bucket: %w", err)
			}
			if err := meta.Put(keyKind, []byte(kind)); err != nil {
				return fmt.Errorf("store: put kind: %w", err)
			}
			if err := meta.Put(keyVersion, []byte{fileVersion}); err != nil {
				return fmt.Errorf("store: put version: %w", err)
			}
		}
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("store: create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err == nil {
		err = preallocate(path, preallocSize)
	}
	if err != nil {
		_ = db.Close()
		removeNew()
		return nil, err
	}
	return db, nil
}

// createNew creates an empty file at path, and reports whether it did:
// false when one is there already. (bbolt makes a database of an empty
// file.) Created here rather than by bolt.Open, so that a file this
// process did not create is never taken for its own and removed.
func createNew(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

// preallocSize is how much of a file is written once, with zeros, when it
// is smaller. bbolt grows a file by truncating it, which leaves a hole:
// every commit that then writes into the hole makes the filesystem allocate
// blocks and journal that, and bbolt's growth costs an fsync of its own.
// Overwriting blocks already written costs a commit only the data flushes,
// and a ring's setup is a handful of commits in a row.
const preallocSize = 1 << 20

// writeAt is (*os.File).WriteAt; tests make it fail as a full disk does.
var writeAt = (*os.File).WriteAt

// preallocate writes zeros from the end of the file at path to size, and
// syncs them. bbolt neither reads nor writes past its last page until it
// grows, so the region is free to write while bbolt has the file open. If
// it fails (a full disk), it cuts the file back to where it began.
func preallocate(path string, size int64) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fileErr("preallocate", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileErr("preallocate", path, err)
	}
	if st.Size() >= size {
		return nil
	}
	defer func() {
		if err != nil {
			_ = f.Truncate(st.Size())
		}
	}()
	if _, err := writeAt(f, make([]byte, size-st.Size()), st.Size()); err != nil {
		return fileErr("preallocate", path, err)
	}
	if err := f.Sync(); err != nil {
		return fileErr("preallocate", path, err)
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

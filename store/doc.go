// Package store keeps the server's registry and each peer's local hash table in
// bbolt files, and reads them back for `dht inspect`. The values it keeps
// are the protocol's (package state declares them); the layout below is
// this package's own.
//
// Every change the protocol core asks for is written in one bbolt read-write
// transaction (ServerDB.Save, PeerDB.Apply), so a crash leaves either the state
// before the change or the state after it. fsync stays on: in dht server and
// dht peer (RawCalls) the store makes bbolt's writes and syncs itself, with
// raw system calls, one fdatasync a commit; the commit's meta page records
// the pages it wrote (commitrec.go), and an open rolls back a commit the
// disk did not take whole. Files are opened with
// a lock timeout: bbolt's file lock is exclusive, and a second process opening
// the same file gets ErrLocked instead of hanging.
//
// # Server file
//
//	bucket   key         value
//	meta     "kind"      "server"
//	meta     "version"   one byte, 1
//	users    NAME        user
//	dht      "state"     dht
//	replies  "IP:PORT"   u32 message id, then the datagram last sent to IP:PORT
//
// # Peer file
//
//	bucket     key         value
//	meta       "kind"      "peer"
//	meta       "version"   one byte, 1
//	identity   "identity"  identity
//	slot/000   LONG NAME   record       (one bucket per non-empty slot,
//	…                                    "slot/000" to "slot/352": the
//	slot/352   LONG NAME   record        names sort by position)
//
// A slot bucket holds every record hashed to that position, keyed by the
// whole Long Name, so colliding records never shadow each other and a lookup
// compares the Long Name byte for byte.
//
// A new file is made in two commits: the first writes 256 KiB into a bucket
// "spare", the second deletes it and writes the meta bucket and the
// buckets above, so that the file's first commits reuse those pages. A file
// holding only "spare" is one whose creation stopped between the two; the
// next open makes it a dht file.
//
// # Values
//
// All integers are big-endian.
//
//	string    u16 length, then that many bytes (any bytes: invalid UTF-8 is kept)
//	addr      u8 length (0, 4 or 16), the IP address bytes, u16 port
//	user      u8 state (0 Free, 1 Leader, 2 InDHT), addr
//	dht       u8 phase (0 none, 1 building, 2 ready, 3 leaving, 4 tearing-down,
//	          5 joining), string leader, u16 count + that many strings (members
//	          in ring order, leader first), string leaver, u64 unix nanoseconds
//	          when the current wait started (0: no wait), then, only while a
//	          user joins, string joiner (a file without it has none)
//	member    string name, addr
//	identity  string name, addr, addr server, u8 in-ring (0 or 1), u32 id,
//	          u32 ring size, member left, member right
//	record    the nine fields in file order, each a string
//
// Values read back are checked: a short, long or malformed value is reported
// as ErrCorrupt, never a panic.
//
// # Damaged files
//
// bbolt trusts the pages of its file: a damaged one makes it panic, fault or
// fail an assertion, at open or at a later commit. So a file's pages are
// read and checked before bbolt is given the file (verify.go: what bbolt's
// own Check checks, every length bounded first), an existing file must hold
// exactly the buckets and keys of its kind, and OpenServer, OpenPeer and
// Inspect decode every value and check that the values agree with each
// other (the rules are the protocol's: state.ServerState.Check and
// state.Identity.Check). A file that fails is refused with ErrDamaged (or
// ErrNotDHT, for one that is no bbolt file at all); what still goes wrong
// inside bbolt is recovered and reported the same way.
//
// A file deleted, replaced or truncated while it is open is noticed at the
// next commit, before and again after it: the commit returns ErrGone
// instead of reporting success for a change that no later open would see.
// Reads of a file truncated under them return ErrDamaged, not a SIGBUS.
//
// MemServer and MemPeer are in-memory twins with the same behaviour (they keep
// the same encoded values in maps), for simulations that must not touch disk.
package store

import "errors"

// Errors returned by this package; match them with errors.Is.
var (
	// ErrLocked: the file is held by another process (or another open
	// handle in this one) and the lock was not released within the timeout.
	ErrLocked = errors.New("store: file in use")
	// ErrNotDHT: the file is not a bbolt file, or a bbolt file that dht did
	// not write.
	ErrNotDHT = errors.New("store: not a dht file")
	// ErrWrongKind: a server file opened as a peer file, or the reverse.
	ErrWrongKind = errors.New("store: wrong kind of dht file")
	// ErrVersion: the file was written by an unknown version of the layout.
	ErrVersion = errors.New("store: unknown file version")
	// ErrCorrupt: a stored value cannot be decoded.
	ErrCorrupt = errors.New("store: corrupt value")
	// ErrDamaged: the file is a dht file that cannot be used as it is: a
	// bbolt page is damaged or missing (truncated), a stored value does not
	// decode (the error matches ErrCorrupt too), a bucket is missing or
	// unknown, or the values contradict each other (a ring member that is
	// not registered, an InDHT user with no DHT, …).
	ErrDamaged = errors.New("store: damaged file")
	// ErrGone: the file was deleted, replaced or truncated while it was
	// open; the change asked for is not known to be in the file at its path.
	ErrGone = errors.New("store: file deleted, replaced or truncated while open")
	// ErrInvalid: the caller asked to store something the layout cannot hold
	// (an empty name or Long Name, a string longer than 65535 bytes, …).
	ErrInvalid = errors.New("store: invalid value")
	// ErrClosed: the store was used after Close.
	ErrClosed = errors.New("store: closed")
)

// kindError is an error with its own message that still matches a sentinel
// (and the underlying cause, if any) with errors.Is.
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

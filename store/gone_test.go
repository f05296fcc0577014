package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"dht/app/state"
	"dht/dataset"
)

// The ways a file can change under the process that has it open.
var fileChanges = []struct {
	name   string
	change func(t *testing.T, path string)
	// reopen is what opening the path again gives: nil (a usable file), or
	// the error it must match.
	reopen error
}{
	{"deleted", func(t *testing.T, path string) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}, nil},
	{"replaced", func(t *testing.T, path string) {
		other := path + ".new"
		if err := os.WriteFile(other, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, path); err != nil {
			t.Fatal(err)
		}
	}, ErrNotDHT}, // an empty file
	// A copy is no shorter: only the file's identity tells it from the
	// open one.
	{"replaced by a copy", func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		other := path + ".new"
		if err := os.WriteFile(other, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, path); err != nil {
			t.Fatal(err)
		}
	}, nil},
	// Written over in place (cp): the file keeps its identity and its
	// size, and another program's commits are in it (an operator's review:
	// a server acknowledged a join and a register into such a file, and
	// the file it left was refused as damaged at the next start).
	{"another file copied over it", func(t *testing.T, path string) {
		other := filepath.Join(t.TempDir(), "other.db")
		db, err := OpenServer(other)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 { // more commits than the open one had
			if err := db.Save(state.ServerState{}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(other)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil { // the same file, truncated and written
			t.Fatal(err)
		}
	}, nil}, // the other server's file, with no user
	{"truncated to 0", func(t *testing.T, path string) {
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
	}, ErrNotDHT},
	{"truncated to 8192", func(t *testing.T, path string) {
		if err := os.Truncate(path, 8192); err != nil {
			t.Fatal(err)
		}
	}, ErrDamaged},
}

// savedServer is a server file in a new folder, open, sampleState saved.
func savedServer(t *testing.T) (string, *ServerDB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "server.db")
	db, err := OpenServer(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Save(sampleState(), nil); err != nil {
		db.Close()
		t.Fatal(err)
	}
	return path, db
}

// mustBeGone checks that err reports the file at path gone from under us.
func mustBeGone(t *testing.T, path string, err error) {
	t.Helper()
	if !errors.Is(err, ErrGone) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want ErrGone naming %s", err, path)
	}
}

// TestServerFileChangedWhileOpen: a server file deleted, replaced or
// truncated while it is open fails the next Save with ErrGone (no SIGBUS,
// no success for a change no later open sees), and the path is not
// mistaken for the file afterwards.
func TestServerFileChangedWhileOpen(t *testing.T) {
	for _, c := range fileChanges {
		t.Run(c.name, func(t *testing.T) {
			path, db := savedServer(t)
			defer db.Close()
			st := sampleState()
			c.change(t, path)
			st.Users = append(st.Users, state.User{Name: "erin", Addr: ap("10.0.0.5:5005")})
			mustBeGone(t, path, db.Save(st, nil))
			mustBeGone(t, path, db.Save(st, nil)) // and every later one
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			again, err := OpenServer(path)
			if c.reopen != nil {
				if !errors.Is(err, c.reopen) {
					t.Fatalf("reopen: got %v, want %v", err, c.reopen)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			want := 0 // a new file
			if c.name == "replaced by a copy" {
				want = len(sampleState().Users) // without the change refused
			}
			if got, _ := mustLoadServer(t, again); len(got.Users) != want {
				t.Fatalf("the file at the path holds %+v, want %d users", got, want)
			}
		})
	}
}

// TestPeerFileChangedWhileOpen: the same for a peer file, whose reads of
// a truncated file fail too instead of faulting.
func TestPeerFileChangedWhileOpen(t *testing.T) {
	for _, c := range fileChanges {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "peer.db")
			db, err := OpenPeer(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			id := sampleIdentity()
			mustApply(t, db, state.Batch{Identity: &id, Put: []dataset.Record{aruba, civ}})
			if _, _, err := db.Lookup(aruba.LongName); err != nil { // keeps a read open
				t.Fatal(err)
			}
			c.change(t, path)
			mustBeGone(t, path, db.Apply(state.Batch{Put: []dataset.Record{zaf}}))
			if strings.HasPrefix(c.name, "truncated") {
				// bbolt reads the file through a memory map: a read of a
				// page that is gone faults, which is an error here, and
				// so is all that follows.
				for what, err := range map[string]error{
					"Lookup": func() error { _, _, err := db.Lookup(civ.LongName); return err }(),
					"Load":   func() error { _, _, err := db.Load(); return err }(),
					"Apply":  db.Apply(state.Batch{Put: []dataset.Record{zaf}}),
				} {
					if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "no longer there") {
						t.Errorf("%s: got %v, want ErrDamaged", what, err)
					}
				}
			}
			if err := db.Discard(); !errors.Is(err, ErrGone) && !errors.Is(err, ErrDamaged) {
				t.Fatalf("Discard: got %v, want ErrGone or ErrDamaged", err)
			}
			if _, err := os.Stat(path); c.name != "deleted" && err != nil {
				t.Fatalf("Discard removed the file now at the path: %v", err)
			}
		})
	}
}

// TestCommitToFileDeletedMeanwhile: a file deleted while a commit is under
// way (after the check before it) fails the commit: it went to a file no
// later open will see.
func TestCommitToFileDeletedMeanwhile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	db, err := OpenServer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.file.update(db.db, func(tx *bolt.Tx) error {
		if err := os.Remove(path); err != nil {
			return err
		}
		return tx.Bucket(bucketUsers).Put([]byte("erin"), seal([]byte{0, 4, 10, 0, 0, 5, 0x13, 0x8d}))
	})
	mustBeGone(t, path, err)
}

// TestTouchedFileGoesOn: a file whose times another program changed (a
// touch, a backup tool setting them back) but not its content takes the
// next commit: the check reads the meta page in use, which is still this
// process's last commit.
func TestTouchedFileGoesOn(t *testing.T) {
	path, db := savedServer(t)
	defer db.Close()
	st := sampleState()
	for i, at := range []time.Time{time.Now().Add(time.Hour), time.Unix(1e9, 0)} {
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
		st.Users = append(st.Users, state.User{Name: []string{"erin", "fred"}[i], Addr: ap(fmt.Sprintf("10.0.0.%d:5005", 50+i))})
		if err := db.Save(st, nil); err != nil {
			t.Fatalf("after a touch to %v: %v", at, err)
		}
	}
}

// TestConcurrentSavesAreThisProcesss: commits made at once through one
// ServerDB (safe for concurrent use) are each this process's: the check
// before one does not take the time another moved for another program's
// write.
func TestConcurrentSavesAreThisProcesss(t *testing.T) {
	db, err := OpenServer(filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := sampleState()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			for range 300 {
				if err := db.Save(st, nil); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A Long Name a live peer's file does not find is checked before the ring
// answers "not found": a record's checksum catches a changed value, but an
// earlier copy of the file written over it in place (cp), or a changed
// key, only read as a missing record, and a member of a settled ring makes
// no commit that would notice (an operator's review: a member answered 75
// of 241 Long Names "not found", and went on running).
func TestLookupOfAMissingNameChecksTheFile(t *testing.T) {
	lookup := func(t *testing.T, db *PeerDB, r dataset.Record) error {
		t.Helper()
		got, found, err := db.Lookup(r.LongName)
		if err == nil && (!found || got != r) {
			t.Fatalf("Lookup(%q): found %v, %+v", r.LongName, found, got)
		}
		return err
	}
	id := sampleIdentity()
	t.Run("an earlier copy written over it", func(t *testing.T) {
		path, db := openPeerIn(t)
		mustApply(t, db, state.Batch{Identity: &id, Put: []dataset.Record{aruba}})
		earlier, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, db, state.Batch{Identity: &id, Put: []dataset.Record{civ}})
		if err := lookup(t, db, aruba); err != nil { // a read open, as a member has
			t.Fatal(err)
		}
		if err := os.WriteFile(path, earlier, 0o600); err != nil { // in place, as cp does
			t.Fatal(err)
		}
		_, found, err := db.Lookup(civ.LongName)
		if err == nil {
			t.Fatalf("Lookup(%q) in the earlier copy: found %v, no error; want the file refused", civ.LongName, found)
		}
		if !errors.Is(err, ErrGone) && !errors.Is(err, ErrDamaged) {
			t.Fatalf("Lookup: %v; want ErrGone or ErrDamaged", err)
		}
	})
	// A ring's members make the same commits, so their files are at the
	// same transaction: another member's file copied over this one (an
	// operator's review: a member answered "not found" for its whole share
	// of the records, and a later commit damaged the file) is told by the
	// file's fingerprint, not by its transaction.
	t.Run("a sibling's file at the same transaction written over it", func(t *testing.T) {
		path, db := openPeerIn(t)
		siblingPath, sibling := openPeerIn(t)
		other := id
		other.Name, other.Addr, other.ID = "bob", ap("10.0.0.2:5002"), 1
		mustApply(t, db, state.Batch{Identity: &id, Put: []dataset.Record{aruba}})
		mustApply(t, sibling, state.Batch{Identity: &other, Put: []dataset.Record{civ}})
		if err := lookup(t, db, aruba); err != nil {
			t.Fatal(err)
		}
		copyOver(t, siblingPath, path)
		_, found, err := db.Lookup(aruba.LongName)
		if err == nil {
			t.Fatalf("Lookup(%q) in the sibling's file: found %v, no error; want the file refused", aruba.LongName, found)
		}
		if !errors.Is(err, ErrGone) {
			t.Fatalf("Lookup: %v; want ErrGone", err)
		}
	})
	t.Run("a key changed", func(t *testing.T) {
		path, db := openPeerIn(t)
		recs := synthetic(40, 7)
		mustApply(t, db, state.Batch{Identity: &id, Put: recs})
		victim := recs[17]
		if err := lookup(t, db, recs[3]); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		at := strings.Index(string(b), victim.LongName) // the key: a leaf holds it before its value
		if at < 0 {
			t.Fatalf("%q is not in the file", victim.LongName)
		}
		if _, err := f.WriteAt([]byte{b[at+1] ^ 0x20}, int64(at+1)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if _, found, err := db.Lookup(victim.LongName); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Lookup(%q) under a changed key: found %v, %v; want ErrCorrupt", victim.LongName, found, err)
		}
	})
}

// copyOver writes the file at from over the file at to, in place, as cp
// does: the file at to keeps its identity and its size.
func copyOver(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// openPeerIn opens a new peer file in a folder of t's, closed when t ends.
func openPeerIn(t *testing.T) (string, *PeerDB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peer.db")
	db, err := OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return path, db
}

package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/wire"

	bolt "go.etcd.io/bbolt"
)

func TestServerRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	db, err := OpenServer(path)
	if err != nil {
		t.Fatal(err)
	}
	st := sampleState()
	reply := state.CachedReply{Addr: ap("127.0.0.1:5001"), ID: 42, Datagram: []byte("reply")}
	// A deregister's reply keeps the secret of the user it removed.
	keyed := state.CachedReply{Addr: ap("127.0.0.1:5002"), ID: 43, Datagram: []byte("DH reply"), Key: wire.Key{0, 9, 8, 7}}
	for _, r := range []*state.CachedReply{&reply, &keyed} {
		if err := db.Save(st, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = OpenServer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, replies := mustLoadServer(t, db)
	st.Users = sortedUsers(st.Users)
	if !reflect.DeepEqual(got, st) || !reflect.DeepEqual(replies, []state.CachedReply{reply, keyed}) {
		t.Fatalf("after reopen: %+v %+v", got, replies)
	}
}

func TestPeerRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.db")
	db, err := OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.Identity(); err != nil || got != (state.Identity{}) {
		t.Fatalf("a new file's identity: %+v, %v; want none", got, err)
	}
	id := sampleIdentity()
	mustApply(t, db, state.Batch{Identity: &id, Put: []dataset.Record{aruba, arbua, civ, zaf}})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gotID, recs := mustLoadPeer(t, db)
	if gotID != id || !reflect.DeepEqual(recs, slotOrder(aruba, arbua, civ, zaf)) {
		t.Fatalf("after reopen: %+v %q", gotID, recs)
	}
	if got, err := db.Identity(); err != nil || got != id {
		t.Fatalf("Identity after reopen: %+v, %v; want %+v", got, err, id)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	server, peer := filepath.Join(dir, "server.db"), filepath.Join(dir, "peer.db")
	sdb, err := OpenServer(server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdb.Close() }) // not defer: the parallel subtests run after return
	pdb, err := OpenPeer(peer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pdb.Close() })

	cases := []struct {
		name string
		open func() error
		says string
	}{
		{"OpenServer", func() error { _, err := OpenServer(server); return err }, "in use by another process (lock not released within 1s): a dht server or peer runs on it already; stop that one first, or give this one a file of its own"},
		{"OpenPeer", func() error { _, err := OpenPeer(peer); return err }, "in use by another process"},
		{"Inspect server", func() error { _, err := Inspect(server, 100*time.Millisecond); return err }, "in use by a running process (lock not released within 100ms): stop it (SIGTERM or Ctrl-C) to read its file"},
		{"Inspect peer", func() error { _, err := Inspect(peer, 100*time.Millisecond); return err }, "in use by a running process"},
		// --wait 0: one try, not bbolt's wait for ever.
		{"Inspect, no wait", func() error { _, err := Inspect(peer, 0); return err }, "in use by a running process (its lock held, tried once)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			done := make(chan error, 1)
			go func() { done <- c.open() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				// A guard, not a timing: the wait each open has is in
				// its error's text.
				t.Fatal("no answer within a minute: waiting for the lock for ever")
			}
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, want ErrLocked saying %q", err, c.says)
			}
		})
	}
}

func TestOpenForeignFile(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	other := foreignBolt(t, dir)
	server := filepath.Join(dir, "server.db")
	db, err := OpenServer(server)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	for _, c := range []struct {
		name string
		open func() error
		want error
	}{
		{"text as server", func() error { _, err := OpenServer(text); return err }, ErrNotDHT},
		{"text as peer", func() error { _, err := OpenPeer(text); return err }, ErrNotDHT},
		{"other bbolt as server", func() error { _, err := OpenServer(other); return err }, ErrNotDHT},
		{"server as peer", func() error { _, err := OpenPeer(server); return err }, ErrWrongKind},
	} {
		if err := c.open(); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

// foreignBolt writes a valid bbolt file that dht did not write.
func foreignBolt(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "other.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("widgets"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// fullDisk makes the preallocation's write fail after half its bytes, as
// on a disk that fills up, until the test ends.
func fullDisk(t *testing.T) {
	t.Helper()
	writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		n, err := f.WriteAt(b[:len(b)/2], off)
		if err != nil {
			return n, err
		}
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	t.Cleanup(func() { writeAt = (*os.File).WriteAt })
}

// A preallocation that fails (a full disk) leaves nothing half written: a
// file the open created is removed, and one that was there is cut back to
// its size and stays a database that opens.
func TestFailedPreallocationLeavesNoPartialFile(t *testing.T) {
	t.Run("new file", func(t *testing.T) {
		dir := t.TempDir()
		for _, open := range []func(string) error{
			func(p string) error { _, err := OpenServer(p); return err },
			func(p string) error { _, err := OpenPeer(p); return err },
		} {
			path := filepath.Join(dir, "x.db")
			fullDisk(t)
			if err := open(path); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "preallocate") || !strings.Contains(err.Error(), "a dht file is written out to 1024 KiB when made") {
				t.Fatalf("open: %v, want the preallocation's ENOSPC", err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the file is still there (%v)", err)
			}
		}
	})
	t.Run("file that was there", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "small.db")
		db, err := bolt.Open(path, 0o600, nil) // a bbolt file smaller than preallocSize
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		fullDisk(t)
		if _, err := OpenPeer(path); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("open: %v, want the preallocation's ENOSPC", err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("the file that was there is gone: %v", err)
		}
		if fi.Size() >= preallocSize/2 {
			t.Fatalf("the file is %d bytes: the half-written preallocation is still there", fi.Size())
		}
		writeAt = (*os.File).WriteAt
		pdb, err := OpenPeer(path)
		if err != nil {
			t.Fatalf("the file does not open after the failure: %v", err)
		}
		if err := pdb.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sparse file that was there", func(t *testing.T) {
		// A dht file whose 1 MiB is mostly a hole (copied with holes, say):
		// a start refused for want of space leaves it as it was, 1 MiB,
		// and says what to free.
		path := filepath.Join(t.TempDir(), "server.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, preallocSize); err != nil {
			t.Fatal(err)
		}
		fullDisk(t)
		if _, err := OpenPeer(path); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "free that much on its disk") {
			t.Fatalf("open: %v, want the preallocation's ENOSPC, saying what to free", err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != preallocSize {
			t.Fatalf("after the refused start: %v, %v; want the file as it was, %d bytes", fi, err, preallocSize)
		}
	})
}

// Discard removes a file nothing was ever written to (opened for a register
// the server refused) and keeps, closed, one that holds an identity or
// records.
func TestDiscard(t *testing.T) {
	id := sampleIdentity()
	for _, c := range []struct {
		name  string
		batch *state.Batch
		kept  bool
	}{
		{"never written", nil, false},
		{"an identity", &state.Batch{Identity: &id}, true},
		{"records only", &state.Batch{Put: []dataset.Record{aruba}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dht-peer-zed.db")
			db, err := OpenPeer(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.batch != nil {
				mustApply(t, db, *c.batch)
			}
			if err := db.Discard(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); (err == nil) != c.kept {
				t.Fatalf("after Discard the file exists: %v, want %v", err == nil, c.kept)
			}
			if _, _, err := db.Lookup("Aruba"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Lookup after Discard: %v", err)
			}
			if !c.kept || c.batch.Identity == nil {
				return // records without a place are kept, and refused at the next open
			}
			db, err = OpenPeer(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			gotID, recs := mustLoadPeer(t, db)
			if c.batch.Identity != nil && gotID != id || c.batch.Put != nil && len(recs) != 1 {
				t.Fatalf("kept file holds %+v, %d records", gotID, len(recs))
			}
		})
	}
}

// Lookup keeps a read transaction open between writes. A write ends it
// first: the next Lookup sees what was written, and a write that grows the
// file well past its mapping does not wait for the reader (it would, for
// ever: bbolt cannot remap under an open reader). Close ends it too.
func TestLookupReadsAfterEachWrite(t *testing.T) {
	db, err := OpenPeer(filepath.Join(t.TempDir(), "peer.db"))
	if err != nil {
		t.Fatal(err)
	}
	recs := synthetic(30000, 7)
	id := sampleIdentity()
	mustApply(t, db, state.Batch{Identity: &id, Put: recs[:100]})
	lookup := func(r dataset.Record, want bool) {
		t.Helper()
		got, ok, err := db.Lookup(r.LongName)
		if err != nil || ok != want || (want && got != r) {
			t.Fatalf("Lookup(%q) = %v, %v; want found %v", r.LongName, ok, err, want)
		}
	}
	lookup(recs[0], true)
	lookup(recs[150], false)
	// 30,000 records are several MB: far past the 1 MiB the file starts
	// with, so the commit grows the file and its mapping.
	done := make(chan error, 1)
	go func() { done <- db.Apply(state.Batch{Put: recs[100:]}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a write that grows the file waited 30 s for the kept reader")
	}
	lookup(recs[150], true)
	lookup(recs[29999], true)
	mustApply(t, db, state.Batch{Identity: &id, Clear: true})
	lookup(recs[0], false)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Lookup(recs[0].LongName); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lookup after Close: %v, want ErrClosed", err)
	}
}

// A reply written before replies could carry a key (the id, then the
// datagram) reads as it did; a key cut short is a corrupt file.
func TestCachedReplyKeys(t *testing.T) {
	for _, v := range [][]byte{{0, 0, 0, 42, 'D', 'H'}, {0, 0, 0, 42, replyKeyMark, 1, 2}} {
		r, err := decodeReply("127.0.0.1:5001", v)
		switch {
		case v[4] == 'D' && (err != nil || r.ID != 42 || string(r.Datagram) != "DH" || !r.Key.IsZero()):
			t.Errorf("a reply written without a key: %+v, %v", r, err)
		case v[4] == replyKeyMark && !errors.Is(err, ErrCorrupt):
			t.Errorf("a key cut short: %+v, %v; want ErrCorrupt", r, err)
		}
	}
}

// A path that is a symbolic link to a file that is not there is refused
// saying so, for a server's file and a peer's: the open made with O_EXCL
// (so that two processes never both make the file) found the link there
// and its target not, and said "no such file or directory" of a path that
// is there (an operator's review).
func TestOpenDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	path, target := filepath.Join(dir, "link.db"), filepath.Join(dir, "moved.db")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	want := "open " + path + ": a symbolic link to " + target + ", which is not there"
	if _, err := OpenServer(path); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("OpenServer: %v; want %q", err, want)
	}
	if _, err := OpenPeer(path); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("OpenPeer: %v; want %q", err, want)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the target: %v; want it not made", err)
	}
}

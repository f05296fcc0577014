//go:build linux && (amd64 || arm64)

package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"dht/app/state"
	"dht/dataset"
)

// rawCall is one raw system call a commit made: a write at off, or an
// fdatasync (off -1).
type rawCall struct {
	op  string
	off int64
}

// watchRaw records the raw calls made until the test ends, passing each to
// the real one unless fail says to fail it (with EIO) instead: fail sees
// the call and how many were made before it.
func watchRaw(t *testing.T, fail func(c rawCall, before int) bool) *[]rawCall {
	t.Helper()
	useRaw(t)
	var calls []rawCall
	pw, fs := rawPwrite, rawFdatasync
	t.Cleanup(func() { rawPwrite, rawFdatasync = pw, fs })
	rawPwrite = func(fd int, b []byte, off int64) (int, error) {
		c := rawCall{"write", off}
		calls = append(calls, c)
		if fail != nil && fail(c, len(calls)-1) {
			return 0, syscall.EIO
		}
		return pw(fd, b, off)
	}
	rawFdatasync = func(fd int) error {
		c := rawCall{"fdatasync", -1}
		calls = append(calls, c)
		if fail != nil && fail(c, len(calls)-1) {
			return syscall.EIO
		}
		return fs(fd)
	}
	return &calls
}

// useRaw makes the files the test opens use the raw calls.
func useRaw(t *testing.T) {
	RawCalls(true)
	t.Cleanup(func() { RawCalls(false) })
}

// mustBeOneSyncCommit checks that calls are one commit with one sync: its
// pages written, the meta page (offset below meta), fdatasync; nothing
// else.
func mustBeOneSyncCommit(t *testing.T, calls []rawCall, meta int64) {
	t.Helper()
	n := len(calls)
	ok := n >= 3 &&
		calls[n-1].op == "fdatasync" &&
		calls[n-2].op == "write" && calls[n-2].off < meta &&
		!slices.ContainsFunc(calls[:n-2], func(c rawCall) bool { return c.op != "write" || c.off < meta })
	if !ok {
		t.Fatalf("one commit made %v; want its pages written, the meta page (offset < %d), fdatasync", calls, meta)
	}
}

// TestCommitsAreRawWithOneSync: a peer's and a server's commits go
// through the raw calls with one fdatasync each, bbolt's own syncs off,
// and what they wrote reads back after a reopen.
func TestCommitsAreRawWithOneSync(t *testing.T) {
	useRaw(t)
	dir := t.TempDir()
	recs := synthetic(30, 1)
	id := sampleIdentity()
	peerPath := filepath.Join(dir, "peer.db")
	p, err := OpenPeer(peerPath)
	if err != nil {
		t.Fatal(err)
	}
	if p.file.raw == nil || !p.db.NoSync {
		t.Fatalf("peer file: raw %v, bbolt's NoSync %v; want raw calls and bbolt's syncs off", p.file.raw, p.db.NoSync)
	}
	calls := watchRaw(t, nil)
	mustApply(t, p, state.Batch{Identity: &id, Clear: true, Put: recs})
	mustBeOneSyncCommit(t, *calls, int64(2*p.db.Info().PageSize))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	serverPath := filepath.Join(dir, "server.db")
	s, err := OpenServer(serverPath)
	if err != nil {
		t.Fatal(err)
	}
	if s.file.raw == nil || !s.db.NoSync {
		t.Fatalf("server file: raw %v, bbolt's NoSync %v", s.file.raw, s.db.NoSync)
	}
	*calls = nil
	st := sampleState()
	if err := s.Save(st, nil); err != nil {
		t.Fatal(err)
	}
	mustBeOneSyncCommit(t, *calls, int64(2*s.db.Info().PageSize))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	p, err = OpenPeer(peerPath)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	gotID, got := mustLoadPeer(t, p)
	if gotID != id || len(got) != len(recs) {
		t.Fatalf("peer file after reopen: %+v, %d records; want %+v, %d", gotID, len(got), id, len(recs))
	}
	s, err = OpenServer(serverPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gotState, _ := mustLoadServer(t, s)
	st.Users = sortedUsers(st.Users)
	if !reflect.DeepEqual(gotState, st) {
		t.Fatalf("server file after reopen: %+v, want %+v", gotState, st)
	}
}

// TestFailedRawCalls: a write or an fdatasync that fails fails the commit
// with an error naming the file; a commit whose pages or meta page were
// not written leaves the file as it was; a failed fdatasync stops the file
// taking changes, since what it wrote may not be on disk and another
// fdatasync would not say so. A commit with more runs of pages than its
// record holds syncs them before its meta page, as bbolt does, and a
// failure of that sync fails the commit and leaves the file as it was.
func TestFailedRawCalls(t *testing.T) {
	before, after := synthetic(5, 1), synthetic(30, 2)
	id := sampleIdentity()
	for _, tc := range []struct {
		name  string
		fail  func(calls []rawCall, c rawCall, meta int64) bool
		runs  int // the most runs a record holds
		stuck bool
		want  string
	}{
		{"a page's write", func(calls []rawCall, c rawCall, meta int64) bool {
			return c.op == "write" && c.off >= meta
		}, maxRuns, false, "write"},
		{"the meta page's write", func(calls []rawCall, c rawCall, meta int64) bool {
			return c.op == "write" && c.off < meta
		}, maxRuns, false, "write"},
		{"the sync before the meta page of a commit of many runs", func(calls []rawCall, c rawCall, meta int64) bool {
			return c.op == "fdatasync" && !slices.ContainsFunc(calls, func(c rawCall) bool { return c.op == "write" && c.off < meta })
		}, 0, false, "fdatasync"},
		{"the sync after the meta page", func(calls []rawCall, c rawCall, meta int64) bool {
			return c.op == "fdatasync" && slices.ContainsFunc(calls, func(c rawCall) bool { return c.op == "write" && c.off < meta })
		}, maxRuns, true, "the last change may not be on disk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			useRaw(t)
			recRuns = tc.runs
			t.Cleanup(func() { recRuns = maxRuns })
			path := filepath.Join(t.TempDir(), "peer.db")
			p, err := OpenPeer(path)
			if err != nil {
				t.Fatal(err)
			}
			mustApply(t, p, state.Batch{Identity: &id, Put: before})
			meta := int64(2 * p.db.Info().PageSize)
			var calls *[]rawCall
			calls = watchRaw(t, func(c rawCall, n int) bool { return tc.fail((*calls)[:n], c, meta) })
			err = p.Apply(state.Batch{Identity: &id, Clear: true, Put: after})
			if err == nil || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply with %s failing: %v; want EIO naming %s and saying %q", tc.name, err, path, tc.want)
			}
			*calls = nil
			if tc.stuck {
				again := p.Apply(state.Batch{Identity: &id, Put: before[:1]})
				if again == nil || again.Error() != err.Error() || len(*calls) != 0 {
					t.Fatalf("the change after it: %v, %d raw calls; want the same error, and none", again, len(*calls))
				}
				_ = p.Close() // on disk is either state, as after a crash
				return
			}
			// bbolt rolled the commit back: the file takes the next change.
			rawPwrite, rawFdatasync = pwrite, fdatasync
			mustTakeMore(t, p, path, id, len(before))
		})
	}
}

// TestRawCallsKeepTheFileContracts runs the tests of a file deleted,
// replaced, truncated or closed under its process, and of the files' round
// trips, with the raw calls on: the checks around a commit are made with
// them too.
func TestRawCallsKeepTheFileContracts(t *testing.T) {
	useRaw(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"server file changed", TestServerFileChangedWhileOpen},
		{"peer file changed", TestPeerFileChangedWhileOpen},
		{"deleted during a commit", TestCommitToFileDeletedMeanwhile},
		{"server contract", TestServerContract},
		{"peer contract", TestPeerContract},
		{"server restart", TestServerRestart},
		{"peer restart", TestPeerRestart},
		{"a missing name checks the file", TestLookupOfAMissingNameChecksTheFile},
		{"a touched file goes on", TestTouchedFileGoesOn},
		{"concurrent saves are this process's", TestConcurrentSavesAreThisProcesss},
	} {
		t.Run(tc.name, tc.test)
	}
}

// TestTornCommitRolledBack: a commit made with one sync whose pages did not
// all reach the disk (the machine stopped between the writes and the end of
// the fdatasync, and the disk kept the meta page but not a page) is told by
// its record: inspect, which writes nothing, reports it; the next open for
// writing rolls the file back to the commit before, which takes changes
// again. Without the record the open would take the torn commit's meta page
// and its stale pages.
func TestTornCommitRolledBack(t *testing.T) {
	useRaw(t)
	path := filepath.Join(t.TempDir(), "peer.db")
	id := sampleIdentity()
	before, torn := synthetic(5, 1), synthetic(30, 2)
	f, fi, ps := twoCommits(t, path, id, before, torn)
	// The newer meta page, its record, and a page it names: lost.
	rec, txid, ok := lastCommitRecord(t, f, ps)
	if !ok || rec.txid != txid || len(rec.runs) == 0 {
		t.Fatalf("the last commit's meta page carries %+v (ok %v); want a record of transaction %d naming its pages", rec, ok, txid)
	}
	if _, _, torn, err := tornCommit(f, fi.Size()); torn || err != nil {
		t.Fatalf("the file as written: torn %v, %v; want whole", torn, err)
	}
	lost := int64(rec.runs[len(rec.runs)-1].pgid) * ps
	if _, err := f.WriteAt(make([]byte, ps), lost); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := Inspect(path, time.Second); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "did not reach the disk whole") {
		t.Fatalf("inspect of the torn file: %v; want it reported as a commit that did not reach the disk whole", err)
	}
	p, err := OpenPeer(path)
	if err != nil {
		t.Fatalf("open of the torn file: %v; want the last commit rolled back", err)
	}
	if gotID, got := mustLoadPeer(t, p); gotID != id || len(got) != len(before) {
		t.Fatalf("after the roll back: %+v, %d records; want the commit before, %d records", gotID, len(got), len(before))
	}
	// The process says so (dht peer and dht server write it to stderr).
	if note := p.RolledBack(); !strings.Contains(note, path+": its last commit (transaction ") || !strings.Contains(note, "rolled back to the commit before it") {
		t.Fatalf("RolledBack() = %q; want it to name the file and the commit rolled back", note)
	}
	mustTakeMore(t, p, path, id, len(before))
}

// A file whose torn last commit an open rolled back, closed before any
// commit, opens again: the meta page the roll-back cleared (checksum 0)
// still carries the torn commit's record, and is not taken for a commit
// that reached the disk whole and was lost.
func TestRolledBackFileReopensBeforeACommit(t *testing.T) {
	useRaw(t)
	path := filepath.Join(t.TempDir(), "peer.db")
	id := sampleIdentity()
	before, torn := synthetic(5, 1), synthetic(30, 2)
	f, _, ps := twoCommits(t, path, id, before, torn)
	rec, _, _ := lastCommitRecord(t, f, ps)
	if _, err := f.WriteAt(make([]byte, ps), int64(rec.runs[len(rec.runs)-1].pgid)*ps); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p, err := OpenPeer(path)
	if err != nil {
		t.Fatalf("open of the torn file: %v; want the last commit rolled back", err)
	}
	if p.RolledBack() == "" {
		t.Fatal("the open rolled nothing back")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(path, time.Second); err != nil {
		t.Fatalf("inspect after the roll back: %v", err)
	}
	p, err = OpenPeer(path)
	if err != nil {
		t.Fatalf("reopen after the roll back: %v", err)
	}
	if gotID, got := mustLoadPeer(t, p); gotID != id || len(got) != len(before) {
		t.Fatalf("after the reopen: %+v, %d records; want the commit before, %d records", gotID, len(got), len(before))
	}
	p.Close()
}

// A torn last commit over a commit whose values are damaged too: the open
// checks the pages before it rolls the torn commit back, but the values only
// after, through bbolt. It refused the file, and left it rolled back, so
// that every later open, inspect and server or peer alike, called it "not a
// bbolt database" (an operator's review). The roll-back is undone: the file
// is as the open found it, and each open says the same of it.
func TestTornCommitOverADamagedOneIsLeftAsItWas(t *testing.T) {
	useRaw(t)
	path := filepath.Join(t.TempDir(), "peer.db")
	id := sampleIdentity()
	before, torn := synthetic(5, 1), synthetic(30, 2)
	f, _, ps := twoCommits(t, path, id, before, torn)
	rec, _, ok := lastCommitRecord(t, f, ps)
	if !ok || len(rec.runs) == 0 {
		t.Fatalf("the last commit's meta page carries no record naming its pages")
	}
	// A page of the last commit lost, and a value of the commit before changed.
	if _, err := f.WriteAt(make([]byte, ps), int64(rec.runs[len(rec.runs)-1].pgid)*ps); err != nil {
		t.Fatal(err)
	}
	v, err := appendRecord(nil, before[2])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, v)
	if at < 0 || bytes.Count(b, v) != 1 {
		t.Fatalf("the record is %d times in the file; want once", bytes.Count(b, v))
	}
	if _, err := f.WriteAt([]byte{b[at+len(v)-recordSum-2] ^ 0x20}, int64(at+len(v)-recordSum-2)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	found, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err := OpenPeer(path)
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "fails its checksum") || !strings.Contains(err.Error(), "did not reach the disk whole") || !strings.Contains(err.Error(), "the file is left as it was") {
			t.Fatalf("open %d: %v; want the file refused, saying both what is damaged and that the last commit is torn, and that the file is left as it was", i+1, err)
		}
		if now, rerr := os.ReadFile(path); rerr != nil || !bytes.Equal(now, found) {
			t.Fatalf("open %d changed the file it refused (%v)", i+1, rerr)
		}
		if _, err := Inspect(path, time.Second); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "did not reach the disk whole") {
			t.Fatalf("inspect after open %d: %v; want the torn commit reported", i+1, err)
		}
	}
}

// lastCommitRecord reads the commit record on the newer meta page of f
// (page size ps), and that page's transaction.
func lastCommitRecord(t *testing.T, f *os.File, ps int64) (commitRec, uint64, bool) {
	t.Helper()
	var newest []byte
	var txid uint64
	for _, off := range []int64{0, ps} {
		page := make([]byte, recEnd)
		if _, err := f.ReadAt(page, off); err != nil {
			t.Fatal(err)
		}
		if tx := native.Uint64(page[pageHeaderSize+48:]); tx > txid {
			newest, txid = page, tx
		}
	}
	rec, ok := readRec(newest)
	return rec, txid, ok
}

// twoCommits makes a peer file at path with two commits of id's table,
// before and then last, and opens it for reading and writing: the file, its
// size, and its page size.
func twoCommits(t *testing.T, path string, id state.Identity, before, last []dataset.Record) (*os.File, os.FileInfo, int64) {
	t.Helper()
	p, err := OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, p, state.Batch{Identity: &id, Clear: true, Put: before})
	mustApply(t, p, state.Batch{Identity: &id, Clear: true, Put: last})
	ps := int64(p.db.Info().PageSize)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, fi, ps
}

// TestDamagedLastMetaPageRefused: a byte of the last commit's meta page
// damaged after the commit reached the disk (its record, in the same
// sector, intact) made bbolt read the file from the meta page before it,
// silently without that commit, which had been reported done (an
// operator's review: a server file read back "building" after dht-complete,
// and rolled the setup back). Inspect and an open for writing refuse the
// file, saying so; the meta page the open of a torn commit clears
// (TestTornCommitRolledBack) is not taken for damage.
func TestDamagedLastMetaPageRefused(t *testing.T) {
	for _, at := range []int{pageHeaderSize, pageHeaderSize + 16, pageHeaderSize + metaTxid - 1, pageHeaderSize + metaChecksum + 3} {
		damageLastCommit(t, at, 0x20, "the meta page of its last commit (transaction %d) is damaged", func(f *os.File, size int64) {
			if _, lost, err := lostCommit(f, size); lost || err != nil {
				t.Fatalf("the file as written: lost %v, %v; want nothing lost", lost, err)
			}
		})
	}
}

// TestDamagedCommitRecordRefused: a byte of the last commit's record
// damaged after the commit (the record reaches the disk whole, with its
// meta page, so a torn write cannot do it) was taken for a torn commit,
// and the open rolled the file back past a commit reported done (an
// operator's review). The record's own checksum tells them apart: the file
// is refused, by inspect and by the open alike, and not rolled back.
func TestDamagedCommitRecordRefused(t *testing.T) {
	for _, at := range []int{recOff + 4, recOff + 12, recOff + recHeader + 3} { // its txid, its pages' CRC, a run
		damageLastCommit(t, at, 0x04, "the commit record of its last commit (transaction %d) is damaged", func(f *os.File, size int64) {
			if _, _, torn, err := tornCommit(f, size); torn || err != nil {
				t.Fatalf("the file as written: torn %v, %v; want whole", torn, err)
			}
		})
	}
}

// damageLastCommit makes a peer file of two commits (with the raw calls),
// has whole check it as written, flips the bits mask of byte at of the
// meta page of its last commit, and wants inspect and the open to refuse
// it, saying want (a format with the transaction's id).
func damageLastCommit(t *testing.T, at int, mask byte, want string, whole func(*os.File, int64)) {
	t.Helper()
	useRaw(t)
	path := filepath.Join(t.TempDir(), "peer.db")
	f, fi, ps := twoCommits(t, path, sampleIdentity(), synthetic(5, 1), synthetic(30, 2))
	whole(f, fi.Size())
	var newest int64
	var txid uint64
	for _, off := range []int64{0, ps} {
		b := make([]byte, pageHeaderSize+metaSize)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if tx := native.Uint64(b[pageHeaderSize+metaTxid:]); tx > txid {
			newest, txid = off, tx
		}
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, newest+int64(at)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b, newest+int64(at)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want = fmt.Sprintf(want, txid)
	if _, err := Inspect(path, time.Second); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), want) {
		t.Fatalf("byte %d flipped: inspect says %v; want %q", at, err, want)
	}
	if p, err := OpenPeer(path); err == nil || !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), want) {
		if p != nil {
			p.Close()
		}
		t.Fatalf("byte %d flipped: open says %v; want %q, the file neither taken nor rolled back", at, err, want)
	}
}

// mustTakeMore commits three more records to p, closes it, and checks
// that its file at path, reopened, holds them and the had it held before:
// the file takes changes again.
func mustTakeMore(t *testing.T, p *PeerDB, path string, id state.Identity, had int) {
	t.Helper()
	more := synthetic(3, 3)
	mustApply(t, p, state.Batch{Identity: &id, Put: more})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, got := mustLoadPeer(t, p); len(got) != had+len(more) {
		t.Fatalf("one more commit, reopened: %d records; want %d", len(got), had+len(more))
	}
	if note := p.RolledBack(); note != "" {
		t.Fatalf("a whole file, reopened, says %q", note)
	}
}

// TestARefusedFileIsNotWritten: a peer file cut short (its last commit's
// pages gone, and more) is refused at open, and the open writes nothing:
// rolling the torn commit back first left the file worse at every try,
// until nothing took it for a bbolt file. Every try, and inspect, give the
// same reason.
func TestARefusedFileIsNotWritten(t *testing.T) {
	useRaw(t)
	path := filepath.Join(t.TempDir(), "peer.db")
	id := sampleIdentity()
	p, err := OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		mustApply(t, p, state.Batch{Identity: &id, Clear: true, Put: synthetic(30, uint64(i+1))})
	}
	ps := int64(p.db.Info().PageSize)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 4*ps); err != nil {
		t.Fatal(err)
	}
	cut, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for range 3 {
		if _, err := OpenPeer(path); !errors.Is(err, ErrDamaged) {
			t.Fatalf("open of a file cut short: %v; want it refused as damaged", err)
		} else {
			reasons = append(reasons, err.Error())
		}
		if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, cut) {
			t.Fatalf("a refused open wrote to the file (%v)", err)
		}
	}
	if _, err := Inspect(path, time.Second); err == nil {
		t.Fatal("inspect took the file")
	} else {
		reasons = append(reasons, err.Error())
	}
	for _, r := range reasons[1:] {
		if r != reasons[0] {
			t.Fatalf("the reasons differ: %q", reasons)
		}
	}
}

// A commit whose pages make more runs than its record holds leaves no
// record to tell two files apart by: the sum of its pages, kept as they
// were written, is read back instead. Two files laid out alike (the same
// records, names of one length), one copied over the other in place, are
// told apart (a review: they passed with the meta page's and the root
// page's first sectors alike, and 39 of 40 commits of 250 records into a
// table of 10,000 were such commits).
func TestASiblingCopyIsToldWithoutARecord(t *testing.T) {
	useRaw(t)
	recRuns = 0
	t.Cleanup(func() { recRuns = maxRuns })
	path, db := openPeerIn(t)
	siblingPath, sibling := openPeerIn(t)
	id := sampleIdentity()
	other := id
	other.Name = "bobby" // as long as alice
	recs := synthetic(300, 1)
	mustApply(t, db, state.Batch{Identity: &id, Put: recs})
	mustApply(t, sibling, state.Batch{Identity: &other, Put: recs})
	if _, _, err := db.Lookup("missing"); err != nil {
		t.Fatal(err)
	}
	copyOver(t, siblingPath, path)
	if _, _, err := db.Lookup("missing too"); !errors.Is(err, ErrGone) {
		got, _ := db.Identity()
		t.Fatalf("Lookup after the sibling's copy: %v (the file says it is %q); want ErrGone", err, got.Name)
	}
	// And a touch alone still passes, after such a commit.
	path2, db2 := openPeerIn(t)
	mustApply(t, db2, state.Batch{Identity: &id, Put: recs})
	at := time.Now().Add(time.Hour)
	if err := os.Chtimes(path2, at, at); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db2.Lookup("missing"); err != nil {
		t.Fatalf("a touch after a commit without a record: %v", err)
	}
}

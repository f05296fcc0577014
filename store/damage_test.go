package store

// Damaged files: real server and peer files, written the way a server's and
// a peer's life write them, are damaged (bytes flipped, pages zeroed or
// filled with noise, the file cut short) and opened by every path that
// opens a file. None may panic or fault; each either refuses the file with
// a clean error or loads a state that keeps every rule, takes a commit and
// reads it back.

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"dht/app/state"
	"dht/dataset"
)

const testPageSize = 4096

// userName is the i-th of a series of distinct letters-only names.
func userName(i int) string {
	name := []byte("user")
	for {
		name = append(name, byte('a'+i%26))
		i /= 26
		if i == 0 {
			return string(name)
		}
	}
}

func userAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(5000+i))
}

// serverLife writes the commits of a server's life to db: 60 users
// register (each commit with its cached reply), a DHT of 5 is set up and
// completed, a member leaves, the ring is rebuilt, torn down and set up
// again. Enough users that the users and replies buckets take several
// pages under a branch page, and enough commits that pages are freed and
// reused.
func serverLife(t testing.TB, db *ServerDB) state.ServerState {
	t.Helper()
	var st state.ServerState
	id := uint32(0)
	save := func(who int) {
		t.Helper()
		id++
		dgram := bytes.Repeat([]byte{byte(id)}, 40+who%50)
		if err := db.Save(st, &state.CachedReply{Addr: userAddr(who), ID: id, Datagram: dgram}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 60 {
		st.Users = append(st.Users, state.User{Name: userName(i), Addr: userAddr(i)})
		save(i)
	}
	setup := func(leader int, members ...int) {
		st.DHT = state.DHT{Phase: state.PhaseBuilding, Leader: userName(leader), Since: 1_700_000_000_000_000_000 + int64(leader)}
		for _, m := range append([]int{leader}, members...) {
			st.DHT.Members = append(st.DHT.Members, userName(m))
			st.Users[m].State = state.InDHT
		}
		st.Users[leader].State = state.Leader
		save(leader)
		st.DHT.Phase, st.DHT.Since = state.PhaseReady, 0
		save(leader)
	}
	setup(3, 7, 11, 19, 42)
	st.DHT.Phase, st.DHT.Leaver, st.DHT.Since = state.PhaseLeaving, userName(11), 1_700_000_000_500_000_000
	save(11)
	st.DHT.Members = slices.DeleteFunc(st.DHT.Members, func(m string) bool { return m == userName(11) })
	st.Users[11].State = state.Free
	st.DHT.Phase, st.DHT.Leaver, st.DHT.Since = state.PhaseReady, "", 0
	save(11)
	st.DHT.Phase, st.DHT.Since = state.PhaseTearing, 1_700_000_001_000_000_000
	save(3)
	for _, m := range st.DHT.Members {
		st.Users[slices.IndexFunc(st.Users, func(u state.User) bool { return u.Name == m })].State = state.Free
	}
	st.DHT = state.DHT{}
	save(3)
	st.Users = slices.Delete(st.Users, 50, 60) // deregistered
	save(50)
	setup(8, 1, 2, 30, 31, 32, 33)
	return st
}

// peerLife writes the commits of a peer's life to db: it registers, joins a
// ring of 3 as id 1 and takes its records of 723 in three batches, the ring
// is rebuilt (the table cleared and filled again) as id 0 of 2 with its
// records of the first 400.
func peerLife(t testing.TB, db *PeerDB) state.Identity {
	t.Helper()
	id := state.Identity{Name: "alice", Addr: netip.MustParseAddrPort("127.0.0.1:5001"), Server: netip.MustParseAddrPort("127.0.0.1:4000")}
	apply := func(b state.Batch) {
		t.Helper()
		if err := db.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	apply(state.Batch{Identity: &id})
	recs := synthetic(723, 7)
	owned := func(recs []dataset.Record) []dataset.Record {
		return slices.DeleteFunc(slices.Clone(recs), func(r dataset.Record) bool { return r.Pos()%id.N != id.ID })
	}
	id.InRing, id.ID, id.N = true, 1, 3
	id.Left = state.Member{Name: "bob", Addr: netip.MustParseAddrPort("127.0.0.1:5002")}
	id.Right = state.Member{Name: "carol", Addr: netip.MustParseAddrPort("127.0.0.1:5003")}
	apply(state.Batch{Identity: &id, Put: owned(recs[:240])})
	apply(state.Batch{Identity: &id, Put: owned(recs[240:480])})
	apply(state.Batch{Identity: &id, Put: owned(recs[480:])})
	id.ID, id.N, id.Left = 0, 2, id.Right
	apply(state.Batch{Identity: &id, Clear: true, Put: owned(recs[:400])})
	return id
}

var updateDamage = flag.Bool("update-damage", false, "rewrite testdata/damage from serverLife and peerLife")

var (
	realFilesOnce sync.Once
	realServer    image
	realPeer      image
	realFilesErr  error
)

// realFiles returns the used pages of the server and the peer file in
// testdata/damage, and the size of such a file (preallocSize: the rest is
// zeros). serverLife and peerLife wrote them (-update-damage writes them
// again); they are kept rather than made at each run because bbolt lays out
// the pages of a commit in an order that changes from run to run, and a
// damage found by the fuzzer must hit the same page every time.
func realFiles(t testing.TB) (server, peer image, size int64) {
	t.Helper()
	realFilesOnce.Do(func() {
		if *updateDamage {
			if realFilesErr = writeRealFiles(t); realFilesErr != nil {
				return
			}
		}
		if realServer, realFilesErr = readRealFile(kindServer); realFilesErr == nil {
			realPeer, realFilesErr = readRealFile(kindPeer)
		}
	})
	if realFilesErr != nil {
		t.Fatal(realFilesErr)
	}
	return realServer, realPeer, preallocSize
}

func realFilePath(kind string) string {
	return filepath.Join("testdata", "damage", kind+".db.gz")
}

func readRealFile(kind string) (image, error) { return readImage(realFilePath(kind)) }

// readImage reads the used pages of a bbolt file, gzipped at path.
func readImage(path string) (image, error) {
	f, err := os.Open(path)
	if err != nil {
		return image{}, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return image{}, err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return image{}, err
	}
	if used, err := usedPages(data); err != nil || used*testPageSize != len(data) {
		return image{}, fmt.Errorf("%s: %d bytes, not the used pages of a bbolt file (%v)", path, len(data), err)
	}
	return image{data: data}, nil
}

func writeRealFiles(t testing.TB) error {
	dir, err := os.MkdirTemp("", "dht-damage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Dir(realFilePath(kindServer)), 0o755); err != nil {
		return err
	}
	for _, kind := range []string{kindServer, kindPeer} {
		path := filepath.Join(dir, kind+".db")
		if kind == kindServer {
			db, err := OpenServer(path)
			if err != nil {
				return err
			}
			serverLife(t, db)
			db.Close()
		} else {
			db, err := OpenPeer(path)
			if err != nil {
				return err
			}
			peerLife(t, db)
			db.Close()
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		used, err := usedPages(data)
		if err != nil {
			return err
		}
		if len(data) != preallocSize || !bytes.Equal(data[used*testPageSize:], make([]byte, len(data)-used*testPageSize)) {
			return fmt.Errorf("%s: %d bytes, not zeros after its %d used pages", path, len(data), used)
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(data[:used*testPageSize])
		if err := zw.Close(); err != nil {
			return err
		}
		if err := os.WriteFile(realFilePath(kind), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// usedPages is the high-water mark of a bbolt file: the pages that hold
// anything (the rest of the file is the preallocated zeros).
func usedPages(data []byte) (int, error) {
	var hwm uint64
	for _, off := range []int{0, testPageSize} {
		m := data[off+pageHeaderSize:]
		hwm = max(hwm, binary.NativeEndian.Uint64(m[40:]))
	}
	if hwm < 4 || hwm*testPageSize > uint64(len(data)) {
		return 0, fmt.Errorf("high-water mark %d in a file of %d bytes", hwm, len(data))
	}
	return int(hwm), nil
}

// A damage is one change to a file's bytes.
type damage struct {
	op  byte   // what, see apply
	at  uint32 // where: a byte offset or a page number, taken modulo the used part
	val byte
}

func (d damage) String() string {
	return fmt.Sprintf("{%d %d %#x}", d.op, d.at, d.val)
}

// An image is a file's used pages (the rest of a file is the preallocated
// zeros, written back as a hole) and whether it was cut short.
type image struct {
	data []byte
	cut  bool
}

// apply does the damage to a image of c.
func (d damage) apply(c image) image {
	c.data = bytes.Clone(c.data)
	span := uint32(len(c.data))
	if span < testPageSize {
		if span > 0 {
			c.data[d.at%span] ^= 0xff
		}
		return c
	}
	page := int(d.at % (span / testPageSize))
	switch d.op % 6 {
	case 0: // flip the bits of val in one byte (val 0 flips them all)
		v := d.val
		if v == 0 {
			v = 0xff
		}
		c.data[d.at%span] ^= v
	case 1: // set one byte
		c.data[d.at%span] = d.val
	case 2: // zero a whole page
		clear(c.data[page*testPageSize : (page+1)*testPageSize])
	case 3: // fill a page's body (not its header) with noise
		rng := rand.New(rand.NewPCG(uint64(d.at), uint64(d.val)))
		for i := page*testPageSize + pageHeaderSize; i < (page+1)*testPageSize; i++ {
			c.data[i] = byte(rng.Uint32())
		}
	case 4: // cut the file at a page boundary
		c.data, c.cut = c.data[:page*testPageSize], true
	case 5: // cut the file anywhere in its used part
		c.data, c.cut = c.data[:d.at%span], true
	}
	return c
}

// write writes c to path: its used pages, then, if it was not cut, a hole
// up to size.
func (c image) write(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.WriteFile(path, c.data, 0o600); err != nil {
		t.Fatal(err)
	}
	if !c.cut {
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
}

// mustRefuse checks that err is a clean refusal of a damaged file: one of
// the package's sentinels, naming the file, not a recovered bbolt panic.
func mustRefuse(t *testing.T, what, path string, err error) {
	t.Helper()
	clean := errors.Is(err, ErrDamaged) || errors.Is(err, ErrNotDHT) || errors.Is(err, ErrWrongKind) || errors.Is(err, ErrVersion)
	if !clean || errors.Is(err, errPanic) || !strings.Contains(err.Error(), path) {
		t.Fatalf("%s: got %v, want a clean refusal naming %s", what, err, path)
	}
}

// openDamaged writes c to a fresh file and opens it every way: Inspect
// (which must not change it), then OpenServer or OpenPeer. Both refuse it
// cleanly, or both accept it; an accepted file's state keeps every rule,
// takes a commit, and reads it back after a reopen. It reports whether the
// file was accepted.
func openDamaged(t *testing.T, dir, kind string, c image, size int64) bool {
	t.Helper()
	path := filepath.Join(dir, kind+".db")
	c.write(t, path, size)
	defer os.Remove(path)
	_, ierr := Inspect(path, 100*time.Millisecond)
	if ierr != nil {
		mustRefuse(t, "Inspect", path, ierr)
	}
	if got := usedPart(t, path, len(c.data)); !bytes.Equal(got, c.data) {
		t.Fatal("Inspect changed the file")
	}
	var err error
	if kind == kindServer {
		err = openDamagedServer(t, path)
	} else {
		err = openDamagedPeer(t, path)
	}
	if err != nil {
		mustRefuse(t, "open", path, err)
	}
	if (ierr == nil) != (err == nil) {
		t.Fatalf("Inspect says %v, open says %v", ierr, err)
	}
	return err == nil
}

// usedPart reads the first n bytes of the file at path.
func usedPart(t *testing.T, path string, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func openDamagedServer(t *testing.T, path string) error {
	t.Helper()
	db, err := OpenServer(path)
	if err != nil {
		return err
	}
	st, replies := mustLoadServer(t, db)
	if err := st.Check(); err != nil {
		t.Fatalf("opened an inconsistent state: %v", err)
	}
	// A commit that touches every bucket: a new user, the DHT state
	// rewritten, a reply replaced and one forgotten.
	st.Users = append(st.Users, state.User{Name: "newcomer", Addr: netip.MustParseAddrPort("192.0.2.1:9")})
	forget := []netip.AddrPort{}
	if len(replies) > 0 {
		forget = append(forget, replies[len(replies)-1].Addr)
	}
	reply := state.CachedReply{Addr: netip.MustParseAddrPort("192.0.2.1:9"), ID: 77, Datagram: []byte("welcome")}
	if err := db.Save(st, &reply, forget...); err != nil {
		t.Fatalf("commit to an accepted file: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = OpenServer(path)
	if err != nil {
		t.Fatalf("reopen after a commit: %v", err)
	}
	defer db.Close()
	got, gotReplies := mustLoadServer(t, db)
	st.Users = sortedUsers(st.Users)
	if !reflect.DeepEqual(got, st) || !slices.ContainsFunc(gotReplies, func(r state.CachedReply) bool { return reflect.DeepEqual(r, reply) }) {
		t.Fatalf("after reopen: %+v, want %+v", got, st)
	}
	return nil
}

func openDamagedPeer(t *testing.T, path string) error {
	t.Helper()
	db, err := OpenPeer(path)
	if err != nil {
		return err
	}
	id, recs := mustLoadPeer(t, db)
	if err := id.Check(); err != nil {
		t.Fatalf("opened an inconsistent identity: %v", err)
	}
	for _, r := range recs {
		got, ok, err := db.Lookup(r.LongName)
		if err != nil || !ok || got != r {
			t.Fatalf("Lookup(%q) = %v %v %v, want the loaded record", r.LongName, got, ok, err)
		}
	}
	var extra []dataset.Record // records its place owns: none outside a ring
	if id.InRing {
		extra = slices.DeleteFunc(synthetic(30, 99), func(r dataset.Record) bool { return r.Pos()%id.N != id.ID })
	}
	if err := db.Apply(state.Batch{Identity: &id, Put: extra}); err != nil {
		t.Fatalf("commit to an accepted file: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = OpenPeer(path)
	if err != nil {
		t.Fatalf("reopen after a commit: %v", err)
	}
	defer db.Close()
	for _, r := range extra {
		if got, ok, err := db.Lookup(r.LongName); err != nil || !ok || got != r {
			t.Fatalf("after reopen, Lookup(%q) = %v %v %v", r.LongName, got, ok, err)
		}
	}
	return nil
}

// TestDamagedFiles damages real files every systematic way (each used page
// zeroed, each page boundary a truncation, each meta field flipped) and
// then with seeded random flips and noise.
func TestDamagedFiles(t *testing.T) {
	server, peer, size := realFiles(t)
	random := 150
	if testing.Short() {
		random = 30
	}
	for _, c := range []struct {
		kind string
		file image
	}{{kindServer, server}, {kindPeer, peer}} {
		t.Run(c.kind, func(t *testing.T) {
			dir := t.TempDir()
			if !openDamaged(t, dir, c.kind, c.file, size) {
				t.Fatal("the undamaged file is refused")
			}
			used := len(c.file.data) / testPageSize
			var ds []damage
			for p := range used {
				ds = append(ds, damage{op: 2, at: uint32(p)}, damage{op: 4, at: uint32(p)})
			}
			// A byte of each field of both meta pages: the page header's
			// id and flags; magic, version, page size, flags, root,
			// sequence, freelist, pgid, txid and checksum.
			for _, base := range []uint32{0, testPageSize} {
				for _, off := range []uint32{0, 8, 16, 20, 24, 28, 32, 40, 48, 56, 64, 72} {
					ds = append(ds, damage{op: 0, at: base + off, val: 0x10})
				}
			}
			rng := rand.New(rand.NewPCG(12, 5))
			for range random {
				ds = append(ds, damage{op: byte(rng.IntN(6)), at: rng.Uint32(), val: byte(rng.Uint32())})
			}
			accepted := 0
			for _, d := range ds {
				if openDamaged(t, dir, c.kind, d.apply(c.file), size) {
					accepted++
				}
				if t.Failed() {
					t.Fatalf("damage %v", d)
				}
			}
			t.Logf("%d pages used; %d damaged copies, %d accepted", used, len(ds), accepted)
		})
	}
}

// A dht file whose two meta pages are both damaged (their checksums, or
// their magic numbers, flipped, or both pages zeroed) is a damaged file, not a file of another
// program: the peer and the server said "not a bbolt database" and asked
// for the path of their own file (a new user's review). A file whose
// first pages hold no bbolt meta page at all is still no dht file.
func TestBothMetaPagesDamaged(t *testing.T) {
	server, peer, size := realFiles(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		at   uint32 // in each meta page
		want string
	}{
		{"checksums", 16 + metaChecksum, "neither meta page's checksum holds"},
		{"magic numbers", 16, "neither meta page holds bbolt's magic number"},
		{"pages zeroed", 0, "neither meta page is valid (both are damaged), and the pages after them are bbolt's"},
	} {
		for _, f := range []struct {
			kind string
			file image
		}{{kindServer, server}, {kindPeer, peer}} {
			img := damage{op: 0, at: c.at, val: 0x10}.apply(damage{op: 0, at: testPageSize + c.at, val: 0x10}.apply(f.file))
			if c.at == 0 {
				// Page 2 too: a page after them continues a node, or
				// is gone with them.
				img = damage{op: 2, at: 0}.apply(damage{op: 2, at: 1}.apply(damage{op: 2, at: 2}.apply(f.file)))
			}
			path := filepath.Join(dir, f.kind+".db")
			img.write(t, path, size)
			_, ierr := Inspect(path, 100*time.Millisecond)
			var err error
			if f.kind == kindServer {
				_, err = OpenServer(path)
			} else {
				_, err = OpenPeer(path)
			}
			for _, e := range []error{ierr, err} {
				if !errors.Is(e, ErrDamaged) || !strings.Contains(e.Error(), c.want) {
					t.Errorf("%s file, both %s flipped: got %v, want ErrDamaged saying %q", f.kind, c.name, e, c.want)
				}
			}
		}
	}
	text := filepath.Join(dir, "text.db")
	if err := os.WriteFile(text, bytes.Repeat([]byte("not a database\n"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPeer(text); !errors.Is(err, ErrNotDHT) {
		t.Errorf("a text file: got %v, want ErrNotDHT", err)
	}
}

// FuzzDamagedFile applies up to four damages to a real server or peer file
// and opens it every way (openDamaged).
func FuzzDamagedFile(f *testing.F) {
	f.Add(false, []byte{0, 0, 0, 0, 40, 1})                    // a byte flipped in the first meta
	f.Add(true, []byte{2, 0, 0, 0, 3, 0})                      // a page zeroed
	f.Add(false, []byte{4, 0, 0, 0, 2, 0})                     // cut to two pages
	f.Add(true, []byte{3, 0, 0, 0, 9, 7, 0, 0, 0, 16, 200, 4}) // noise, then a flip
	f.Fuzz(func(t *testing.T, peer bool, ops []byte) {
		server, peerFile, size := realFiles(t)
		kind, c := kindServer, server
		if peer {
			kind, c = kindPeer, peerFile
		}
		for n := 0; len(ops) >= 6 && n < 4; n++ {
			c = damage{op: ops[0], at: binary.BigEndian.Uint32(ops[1:5]), val: ops[5]}.apply(c)
			ops = ops[6:]
		}
		openDamaged(t, t.TempDir(), kind, c, size)
	})
}

// A byte of a record changed on the disk after its commit (a page no later
// commit wrote, which nothing of bbolt's checks) is found by the record's
// checksum: inspect, the open and a lookup refuse the file, where the
// record was read back changed, and a query would have answered with it
// (an operator's review: "S11658" read back as "S11o58").
func TestRecordChangedOnTheDiskIsFound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.db")
	id := sampleIdentity()
	recs := synthetic(40, 7)
	p, err := OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, p, state.Batch{Identity: &id, Clear: true, Put: recs})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	victim := recs[17]
	v, err := appendRecord(nil, victim)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, v)
	if at < 0 || bytes.Count(b, v) != 1 {
		t.Fatalf("the record is %d times in the file; want once", bytes.Count(b, v))
	}
	b[at+len(v)-recordSum-2] ^= 0x20 // a byte of its last field
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	const want = "fails its checksum"
	if _, err := Inspect(path, time.Second); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), want) {
		t.Fatalf("inspect: %v; want the file damaged, a record failing its checksum", err)
	}
	if p, err := OpenPeer(path); err == nil {
		_, got, lerr := p.Load()
		r, _, qerr := p.Lookup(victim.LongName)
		p.Close()
		if lerr == nil || qerr == nil {
			t.Fatalf("open took the file: Load %d records, %v; Lookup %+v, %v; want the record refused", len(got), lerr, r, qerr)
		}
	} else if !strings.Contains(err.Error(), want) {
		t.Fatalf("open: %v; want a record failing its checksum", err)
	}
}

package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"dht/app/state"
	"dht/wire"
)

// TestValueChangedOnTheDiskIsFound flips one byte of a value in a closed
// file, the way a disk that rots does: a user's address, the DHT's state,
// a cached reply, a peer's identity. Each value carries a checksum, so
// inspect and the open refuse the file instead of reading a registry or a
// place that nobody wrote.
func TestValueChangedOnTheDiskIsFound(t *testing.T) {
	st := state.ServerState{
		Users: []state.User{
			{Name: "alice", Addr: ap("127.0.0.1:5001"), State: state.Leader, Secret: wire.Key{1, 2, 3}, Seq: 7},
			{Name: "bob", Addr: ap("127.0.0.1:5002"), State: state.InDHT, Secret: wire.Key{4, 5, 6}, Seq: 9},
			{Name: "carol", Addr: ap("127.0.0.1:5003"), Secret: wire.Key{7, 8, 9}, Seq: 11},
		},
		DHT: state.DHT{Phase: state.PhaseReady, Leader: "alice", Members: []string{"alice", "bob"}, Epoch: 3,
			KeyEpoch: 3, RingKey: wire.Key{9, 9, 9}},
	}
	reply := state.CachedReply{Addr: ap("127.0.0.1:5003"), ID: 77, Datagram: []byte("a reply datagram, as sent")}
	user, _ := encodeUser(st.Users[1])
	dht, _ := encodeDHT(st.DHT)
	_, rv, _ := encodeReply(reply)
	id := sampleIdentity()
	id.Secret, id.Epoch, id.KeyEpoch, id.RingKey = wire.Key{3, 1, 4}, 5, 5, wire.Key{2, 7, 1}
	identity, _ := encodeIdentity(id)

	cases := []struct {
		name, kind string
		value      []byte
		at         int // the byte of value to flip
		says       string
	}{
		{"a user's address", kindServer, user, 4, `user "bob" fails its checksum`},
		{"the dht's members", kindServer, dht, len(dht) - 20, "the dht state fails its checksum"},
		{"a cached reply", kindServer, rv, len(rv) - 3, "the reply cached for 127.0.0.1:5003 fails its checksum"},
		{"a peer's neighbour", kindPeer, identity, 40, "the identity fails its checksum"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), c.kind+".db")
			if c.kind == kindServer {
				writeServer(t, path, st, &reply)
			} else {
				p, err := OpenPeer(path)
				if err != nil {
					t.Fatal(err)
				}
				mustApply(t, p, state.Batch{Identity: &id, Clear: true, Put: synthetic(20, 3)})
				if err := p.Close(); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			v := seal(bytes.Clone(c.value))
			at := bytes.Index(b, v)
			if at < 0 || bytes.Count(b, v) != 1 {
				t.Fatalf("the sealed value is %d times in the file; want once", bytes.Count(b, v))
			}
			b[at+c.at] ^= 0x01
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, ierr := inspect(t, path)
			oerr := openAs(c.kind, path)
			for what, err := range map[string]error{"inspect": ierr, "open": oerr} {
				if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), path) {
					t.Errorf("%s: %v; want the file refused, saying %q", what, err, c.says)
				}
			}
		})
	}
}

// TestUnsealedFilesAreReadAndUpgraded opens files written by the dht
// before values carried checksums (server version 1, peer version 2, from
// the same lives as testdata/damage): inspect reads them as they are and
// leaves them so; a server or a peer that opens one seals every value and
// writes the current version in one commit, and reads what it read before.
func TestUnsealedFilesAreReadAndUpgraded(t *testing.T) {
	for _, c := range []struct{ kind, file string }{{kindServer, "server-v1.db.gz"}, {kindPeer, "peer-v2.db.gz"}} {
		t.Run(c.kind, func(t *testing.T) {
			img, err := readImage(filepath.Join("testdata", "upgrade", c.file))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), c.kind+".db")
			img.write(t, path, preallocSize)
			if v := fileVersionOf(t, path); v != unsealedVersion(c.kind) {
				t.Fatalf("testdata: version %d; want %d", v, unsealedVersion(c.kind))
			}
			before, err := inspect(t, path)
			if err != nil {
				t.Fatalf("inspect of the unsealed file: %v", err)
			}
			if text := reportText(t, before); !strings.HasSuffix(text, fmt.Sprintf("file version %d: its values carry no checksums; a %s that opens it seals them (version %d), and earlier builds then refuse it\n", unsealedVersion(c.kind), c.kind, fileVersion(c.kind))) {
				t.Fatalf("inspect of the unsealed file ends %q; want its version said", text[max(0, len(text)-200):])
			}
			var loaded any
			if c.kind == kindServer {
				db, err := OpenServer(path)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				st, replies, err := db.Load()
				db.Close()
				if err != nil || len(st.Users) == 0 || len(replies) == 0 {
					t.Fatalf("load after the upgrade: %d users, %d replies, %v", len(st.Users), len(replies), err)
				}
				loaded = st
			} else {
				db, err := OpenPeer(path)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				id, recs, err := db.Load()
				db.Close()
				if err != nil || id.Name == "" || len(recs) == 0 {
					t.Fatalf("load after the upgrade: identity %+v, %d records, %v", id, len(recs), err)
				}
				loaded = id
			}
			if v := fileVersionOf(t, path); v != fileVersion(c.kind) {
				t.Fatalf("after the open: version %d; want %d", v, fileVersion(c.kind))
			}
			sealedEverywhere(t, path, c.kind)
			after, err := inspect(t, path)
			if err != nil {
				t.Fatalf("inspect of the upgraded file: %v", err)
			}
			if text := reportText(t, after); !strings.HasSuffix(text, fmt.Sprintf("\nfile version %d (this build's for a %s file)\n", fileVersion(c.kind), c.kind)) {
				t.Fatalf("inspect of the upgraded file ends %q; want its version said", text[max(0, len(text)-200):])
			}
			// The same, but for the version --json says.
			bj, aj := jsonOf(t, before), jsonOf(t, after)
			wantB := fmt.Sprintf(`{"kind":%q,"version":%d,`, c.kind, unsealedVersion(c.kind))
			wantA := fmt.Sprintf(`{"kind":%q,"version":%d,`, c.kind, fileVersion(c.kind))
			if !strings.HasPrefix(bj, wantB) || !strings.HasPrefix(aj, wantA) {
				t.Fatalf("inspect --json before and after the upgrade begin %.40s and %.40s; want %s and %s", bj, aj, wantB, wantA)
			}
			if bj[len(wantB):] != aj[len(wantA):] {
				t.Fatalf("the upgrade changed what the file says:\nbefore %s\nafter  %s", bj, aj)
			}
			if loaded == nil {
				t.Fatal("nothing loaded")
			}
		})
	}
}

// TestUnsealedDamagedFileLeftAsItIs: an unsealed file whose value does
// not decode is refused by the open that would seal it, and left as it
// was: sealed, its damage would pass for data at the next open.
func TestUnsealedDamagedFileLeftAsItIs(t *testing.T) {
	img, err := readImage(filepath.Join("testdata", "upgrade", "server-v1.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "server.db")
	img.write(t, path, preallocSize)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).Put([]byte("dave"), []byte{7, 4, 10, 0, 0, 4, 0x13, 0x8c})
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := fileSum(t, path)
	if s, err := OpenServer(path); err == nil {
		s.Close()
		t.Fatal("open took a file with a user whose state does not decode")
	} else if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "a value does not decode") {
		t.Fatalf("open: %v; want the file refused, a value that does not decode", err)
	}
	if fileSum(t, path) != before || fileVersionOf(t, path) != unsealedVersion(kindServer) {
		t.Fatal("the refused open changed the file")
	}
}

func fileVersionOf(t *testing.T, path string) byte {
	t.Helper()
	var v []byte
	viewRaw(t, path, func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketMeta).Get(keyVersion))
		return nil
	})
	if len(v) != 1 {
		t.Fatalf("%s: version %v", path, v)
	}
	return v[0]
}

// sealedEverywhere checks that every value of the buckets that seal
// carries its checksum.
func sealedEverywhere(t *testing.T, path, kind string) {
	t.Helper()
	viewRaw(t, path, func(tx *bolt.Tx) error {
		for _, name := range sealedBuckets[kind] {
			n := 0
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				n++
				_, err := unseal(true, string(name)+"/"+string(k), v)
				return err
			})
			if err != nil || n == 0 {
				t.Errorf("bucket %s: %d values, %v; want every value sealed", name, n, err)
			}
		}
		return nil
	})
}

func viewRaw(t *testing.T, path string, f func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(f); err != nil {
		t.Fatal(err)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOtherVersionsRefused: a peer file of version 1 (records without
// checksums) is refused saying what to do; a version this program does
// not know, of either kind, is refused naming the versions it reads.
func TestOtherVersionsRefused(t *testing.T) {
	for _, c := range []struct {
		kind    string
		version byte
		says    string
	}{
		{kindPeer, 1, "peer file of version 1, this program reads versions 2 and 3 (written by an earlier dht, whose records carry no checksum: start the peer on a new --db"},
		{kindPeer, 4, "peer file of version 4, this program reads versions 2 and 3 (written by a later dht: run that one on it)"},
		{kindServer, 3, "server file of version 3, this program reads versions 1 and 2 (written by a later dht: run that one on it)"},
		{kindServer, 0, "server file of version 0, this program reads versions 1 and 2"},
	} {
		path := filepath.Join(t.TempDir(), c.kind+".db")
		if c.kind == kindServer {
			writeServer(t, path, state.ServerState{}, nil)
		} else {
			p, err := OpenPeer(path)
			if err != nil {
				t.Fatal(err)
			}
			p.Close()
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte{c.version}) }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, ierr := inspect(t, path)
		oerr := openAs(c.kind, path)
		for what, err := range map[string]error{"inspect": ierr, "open": oerr} {
			if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%s version %d, %s: %v; want it refused, saying %q", c.kind, c.version, what, err, c.says)
			}
		}
	}
}

// A file whose meta bucket names a kind that is neither a server's nor a
// peer's is no dht file (not a file of the wrong kind), whatever its
// version.
func TestUnknownKindRefused(t *testing.T) {
	for _, kind := range []string{kindServer, kindPeer} {
		path := filepath.Join(t.TempDir(), kind+".db")
		if err := openAs(kind, path); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyKind, []byte("client")) }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, ierr := inspect(t, path)
		oerr := openAs(kind, path)
		for what, err := range map[string]error{"inspect": ierr, "open": oerr} {
			if !errors.Is(err, ErrNotDHT) || !strings.Contains(err.Error(), `unknown kind "client"`) {
				t.Errorf("%s file of kind client, %s: %v; want ErrNotDHT saying unknown kind", kind, what, err)
			}
		}
	}
}

// openAs opens the file at path as a server's or a peer's file (kind),
// closes it if it opened, and returns the open's error.
func openAs(kind, path string) error {
	if kind == kindServer {
		db, err := OpenServer(path)
		if err == nil {
			db.Close()
		}
		return err
	}
	db, err := OpenPeer(path)
	if err == nil {
		db.Close()
	}
	return err
}

// reportText is an Inspect report's text form.
func reportText(t *testing.T, r any) string {
	t.Helper()
	var b strings.Builder
	var err error
	switch r := r.(type) {
	case *ServerReport:
		err = r.WriteText(&b)
	case *PeerReport:
		err = r.WriteText(&b)
	default:
		t.Fatalf("report %T", r)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

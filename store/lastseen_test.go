package store

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app/state"
)

var seenT = time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)

// A user's LastSeen is written only once known, after the address: a
// file written before liveness existed reads the same, and a zero written
// out is damage.
func TestUserLastSeenCodec(t *testing.T) {
	old := state.User{Name: "alice", Addr: ap("127.0.0.1:5001"), State: state.Free}
	b, err := encodeUser(old)
	if err != nil || !bytes.Equal(b, []byte{0, 4, 127, 0, 0, 1, 0x13, 0x89}) {
		t.Fatalf("user without LastSeen: %x %v, want the bytes of before", b, err)
	}
	base := len(b)
	seen := old
	seen.LastSeen = seenT.UnixNano()
	b, err = encodeUser(seen)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeUser("alice", b); err != nil || got != seen {
		t.Fatalf("decoded %+v %v, want %+v", got, err, seen)
	}
	if len(b) != base+8 {
		t.Fatalf("user with LastSeen is %d bytes, want %d", len(b), base+8)
	}
	zero := append(b[:base:base], make([]byte, 8)...)
	if _, err := decodeUser("alice", zero); err == nil {
		t.Error("a LastSeen of zero written out decodes")
	}
	if _, err := decodeUser("alice", b[:base+3]); err == nil {
		t.Error("a cut LastSeen decodes")
	}
}

// The last alive's number follows the sequence number, only once known:
// a file written before it existed reads the same, and a zero written out
// is damage.
func TestUserAliveSeqCodec(t *testing.T) {
	u := state.User{Name: "alice", Addr: ap("127.0.0.1:5001"), State: state.InDHT, LastSeen: seenT.UnixNano(), Secret: [16]byte{7}, Seq: 41}
	b, err := encodeUser(u)
	if err != nil {
		t.Fatal(err)
	}
	base := len(b)
	u.AliveSeq = 1 << 60
	b, err = encodeUser(u)
	if err != nil || len(b) != base+8 {
		t.Fatalf("user with AliveSeq: %d bytes, %v; want %d", len(b), err, base+8)
	}
	if got, err := decodeUser("alice", b); err != nil || got != u {
		t.Fatalf("decoded %+v %v, want %+v", got, err, u)
	}
	if got, err := decodeUser("alice", b[:base]); err != nil || got.AliveSeq != 0 || got.Seq != 41 {
		t.Fatalf("a user written without AliveSeq decodes as %+v %v", got, err)
	}
	if _, err := decodeUser("alice", append(b[:base:base], make([]byte, 8)...)); err == nil {
		t.Error("an AliveSeq of zero written out decodes")
	}
	if _, err := decodeUser("alice", b[:base+5]); err == nil {
		t.Error("a cut AliveSeq decodes")
	}
}

// The address a user wrote to follows the last alive's number (written,
// zero, when no alive came yet), only once known: a file written before
// it existed reads the same; an address no host has is damage.
func TestUserViaCodec(t *testing.T) {
	u := state.User{Name: "alice", Addr: ap("127.0.0.1:5001"), State: state.InDHT, LastSeen: seenT.UnixNano(), Secret: [16]byte{7}, Seq: 41}
	b, err := encodeUser(u)
	if err != nil {
		t.Fatal(err)
	}
	base := len(b)
	for _, alive := range []uint64{0, 1 << 60} {
		u.AliveSeq, u.Via = alive, netip.MustParseAddr("10.0.0.2")
		b, err = encodeUser(u)
		if err != nil || len(b) != base+12 {
			t.Fatalf("user with Via: %d bytes, %v; want %d", len(b), err, base+12)
		}
		if got, err := decodeUser("alice", b); err != nil || got != u {
			t.Fatalf("decoded %+v %v, want %+v", got, err, u)
		}
		if _, err := decodeUser("alice", b[:base+10]); err == nil {
			t.Error("a cut address decodes")
		}
		for _, bad := range [][4]byte{{224, 0, 0, 1}, {0, 0, 0, 0}, {255, 255, 255, 255}} {
			if _, err := decodeUser("alice", append(b[:base+8:base+8], bad[:]...)); err == nil {
				t.Errorf("address %v decodes", bad)
			}
			// Nor is one written: the file would not read back (a review).
			v := u
			v.Via = netip.AddrFrom4(bad)
			w, err := encodeUser(v)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := decodeUser("alice", w); err != nil || got.Via.IsValid() {
				t.Errorf("a user with address %v written decodes as %+v, %v", bad, got, err)
			}
		}
	}
}

func TestServerLastSeenRoundTrip(t *testing.T) {
	st := sampleState()
	for i := range st.Users {
		if st.Users[i].Name != "dave" {
			st.Users[i].LastSeen = seenT.Add(-time.Duration(i) * time.Second).UnixNano()
		}
	}
	path := filepath.Join(t.TempDir(), "server.db")
	writeServer(t, path, st, nil)
	db, err := OpenServer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mem := NewMemServer()
	if err := mem.Save(st, nil); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]interface {
		Load() (state.ServerState, []state.CachedReply, error)
	}{"bolt": db, "mem": mem} {
		got, _, err := s.Load()
		if err != nil || !slices.Equal(got.Users, sortedUsers(st.Users)) {
			t.Errorf("%s: loaded %+v %v, want %+v", name, got.Users, err, sortedUsers(st.Users))
		}
	}
}

// inspect shows each user's last sign of life the server wrote, and how
// long before the latest one in the file it was.
func TestInspectServerLiveness(t *testing.T) {
	st := sampleState()
	for i, u := range st.Users {
		switch u.Name {
		case "alice":
			st.Users[i].LastSeen = seenT.UnixNano()
		case "bob":
			st.Users[i].LastSeen = seenT.Add(-20 * time.Second).UnixNano()
		}
	}
	path := filepath.Join(t.TempDir(), "server.db")
	writeServer(t, path, st, nil)
	r, err := inspect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	rep := r.(*ServerReport)
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(text.String(), "\n")
	line := func(name string) string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == name {
				return strings.Join(f, " ")
			}
		}
		return ""
	}
	for name, want := range map[string]string{
		"alice": "alice 127.0.0.1:5001 Leader 2026-12-05T03:00:00Z 0s",
		"bob":   "bob 10.0.0.2:5002 InDHT 2026-12-05T02:59:40Z 20s",
		"carol": "carol 127.0.0.1:5003 InDHT - -",
	} {
		if got := line(name); got != want {
			t.Errorf("line of %s: %q, want %q\n%s", name, got, want, text.String())
		}
	}
	if !strings.Contains(text.String(), "LAST SEEN") || !strings.Contains(text.String(), "was offline then") {
		t.Errorf("text does not explain the liveness columns:\n%s", text.String())
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"name":"bob","ip":"10.0.0.2","port":5002,"state":"InDHT","last_seen":"2026-12-05T02:59:40Z"}`) ||
		strings.Contains(string(js), `"state":"InDHT","last_seen":""`) {
		t.Errorf("JSON: %s", js)
	}
}

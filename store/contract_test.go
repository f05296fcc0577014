package store

import (
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"dht/app/state"
	"dht/dataset"
)

// The contract tests run against the bbolt stores and their in-memory twins:
// app/ relies on the behaviour, not on the disk.

type serverStore interface {
	Load() (state.ServerState, []state.CachedReply, error)
	Save(state.ServerState, *state.CachedReply, ...netip.AddrPort) error
	Close() error
}

type peerStore interface {
	Apply(state.Batch) error
	Load() (state.Identity, []dataset.Record, error)
	Lookup(longName string) (dataset.Record, bool, error)
	Close() error
}

var (
	_ serverStore = (*ServerDB)(nil)
	_ serverStore = (*MemServer)(nil)
	_ peerStore   = (*PeerDB)(nil)
	_ peerStore   = (*MemPeer)(nil)
)

func serverImpls() []struct {
	name string
	open func(t *testing.T) serverStore
} {
	return []struct {
		name string
		open func(t *testing.T) serverStore
	}{
		{"bbolt", func(t *testing.T) serverStore {
			t.Helper()
			db, err := OpenServer(filepath.Join(t.TempDir(), "server.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}},
		{"mem", func(t *testing.T) serverStore { return NewMemServer() }},
	}
}

func peerImpls() []struct {
	name string
	open func(t *testing.T) peerStore
} {
	return []struct {
		name string
		open func(t *testing.T) peerStore
	}{
		{"bbolt", func(t *testing.T) peerStore {
			t.Helper()
			db, err := OpenPeer(filepath.Join(t.TempDir(), "peer.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}},
		{"mem", func(t *testing.T) peerStore { return NewMemPeer() }},
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// synthetic is the n made-up records of dataset.SyntheticSource{n, seed},
// in memory.
func synthetic(n int, seed uint64) []dataset.Record {
	src := dataset.SyntheticSource{N: n, Seed: seed}
	recs := make([]dataset.Record, n)
	for i := range recs {
		recs[i] = src.Record(i)
	}
	return recs
}

func sampleState() state.ServerState {
	return state.ServerState{
		Users: []state.User{
			{Name: "carol", Addr: ap("127.0.0.1:5003"), State: state.InDHT},
			{Name: "alice", Addr: ap("127.0.0.1:5001"), State: state.Leader},
			{Name: "bob", Addr: ap("10.0.0.2:5002"), State: state.InDHT},
			{Name: "dave", Addr: ap("10.0.0.4:5004"), State: state.Free},
		},
		DHT: state.DHT{
			Phase:   state.PhaseLeaving,
			Leader:  "alice",
			Members: []string{"alice", "bob", "carol"},
			Leaver:  "bob",
			Since:   1_700_000_000_123_456_789,
		},
	}
}

func sortedUsers(us []state.User) []state.User {
	us = slices.Clone(us)
	slices.SortFunc(us, func(a, b state.User) int { return strings.Compare(a.Name, b.Name) })
	return us
}

func mustLoadServer(t *testing.T, s serverStore) (state.ServerState, []state.CachedReply) {
	t.Helper()
	st, replies, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st, replies
}

func TestServerContract(t *testing.T) {
	for _, impl := range serverImpls() {
		t.Run(impl.name, func(t *testing.T) {
			t.Run("empty", func(t *testing.T) {
				st, replies := mustLoadServer(t, impl.open(t))
				if !reflect.DeepEqual(st, state.ServerState{}) || replies != nil {
					t.Fatalf("fresh store: got %+v %+v", st, replies)
				}
			})
			t.Run("round trip", func(t *testing.T) {
				s := impl.open(t)
				want := sampleState()
				if err := s.Save(want, nil); err != nil {
					t.Fatal(err)
				}
				got, _ := mustLoadServer(t, s)
				want.Users = sortedUsers(want.Users)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got  %+v\nwant %+v", got, want)
				}
			})
			t.Run("users removed", func(t *testing.T) {
				s := impl.open(t)
				st := sampleState()
				if err := s.Save(st, nil); err != nil {
					t.Fatal(err)
				}
				st.Users = []state.User{st.Users[3], {Name: "erin", Addr: ap("10.0.0.5:5005")}}
				st.Users[0].State = state.Leader
				st.DHT = state.DHT{}
				if err := s.Save(st, nil); err != nil {
					t.Fatal(err)
				}
				got, _ := mustLoadServer(t, s)
				if !reflect.DeepEqual(got, st) {
					t.Fatalf("got  %+v\nwant %+v", got, st)
				}
				if err := s.Save(state.ServerState{}, nil); err != nil {
					t.Fatal(err)
				}
				if got, _ := mustLoadServer(t, s); len(got.Users) != 0 {
					t.Fatalf("all users removed, still have %+v", got.Users)
				}
			})
			t.Run("reply cache", func(t *testing.T) {
				s := impl.open(t)
				st := sampleState()
				dgram := []byte{0x44, 0x48, 1, 2, 0, 0, 0, 7, 0, 0xAB}
				r1 := state.CachedReply{Addr: ap("127.0.0.1:5001"), ID: 7, Datagram: dgram}
				if err := s.Save(st, &r1); err != nil {
					t.Fatal(err)
				}
				dgram[0] = 0 // the store must have kept its own copy
				r2 := state.CachedReply{Addr: ap("10.0.0.2:5002"), ID: 1 << 31, Datagram: []byte("second")}
				if err := s.Save(st, &r2); err != nil {
					t.Fatal(err)
				}
				r1b := state.CachedReply{Addr: ap("127.0.0.1:5001"), ID: 8, Datagram: []byte("replaced")}
				if err := s.Save(st, &r1b); err != nil {
					t.Fatal(err)
				}
				if err := s.Save(st, nil); err != nil { // nil keeps the cache
					t.Fatal(err)
				}
				_, got := mustLoadServer(t, s)
				want := []state.CachedReply{r2, r1b} // sorted by "ip:port" text
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got  %+v\nwant %+v", got, want)
				}
				got[0].Datagram[0] = 'X' // nor may a caller change the store
				if _, again := mustLoadServer(t, s); !reflect.DeepEqual(again, want) {
					t.Fatalf("loaded slice aliases the store: %+v", again)
				}
			})
			t.Run("forget", func(t *testing.T) {
				// Forgotten replies are deleted with the change; one that
				// is saved in the same call is kept; unknown addresses are
				// no error.
				s := impl.open(t)
				st := sampleState()
				r1 := state.CachedReply{Addr: ap("127.0.0.1:5001"), ID: 1, Datagram: []byte("one")}
				r2 := state.CachedReply{Addr: ap("127.0.0.1:5002"), ID: 2, Datagram: []byte("two")}
				r3 := state.CachedReply{Addr: ap("127.0.0.1:5003"), ID: 3, Datagram: []byte("three")}
				for _, r := range []state.CachedReply{r1, r2, r3} {
					if err := s.Save(st, &r); err != nil {
						t.Fatal(err)
					}
				}
				r3b := state.CachedReply{Addr: r3.Addr, ID: 4, Datagram: []byte("three again")}
				if err := s.Save(st, &r3b, r1.Addr, r3.Addr, ap("10.9.9.9:9")); err != nil {
					t.Fatal(err)
				}
				if _, got := mustLoadServer(t, s); !reflect.DeepEqual(got, []state.CachedReply{r2, r3b}) {
					t.Fatalf("after forgetting %v: %+v", r1.Addr, got)
				}
				if err := s.Save(st, nil, r2.Addr); err != nil {
					t.Fatal(err)
				}
				if _, got := mustLoadServer(t, s); !reflect.DeepEqual(got, []state.CachedReply{r3b}) {
					t.Fatalf("after forgetting %v: %+v", r2.Addr, got)
				}
			})
			t.Run("invalid changes nothing", func(t *testing.T) {
				s := impl.open(t)
				st := sampleState()
				if err := s.Save(st, nil); err != nil {
					t.Fatal(err)
				}
				bad := []struct {
					name  string
					st    state.ServerState
					reply *state.CachedReply
				}{
					{"duplicate", state.ServerState{Users: []state.User{{Name: "x"}, {Name: "x"}}}, nil},
					{"empty name", state.ServerState{Users: []state.User{{Name: ""}}}, nil},
					{"bad state", state.ServerState{Users: []state.User{{Name: "x", State: 9}}}, nil},
					{"bad phase", state.ServerState{DHT: state.DHT{Phase: 9}}, nil},
					{"reply without addr", state.ServerState{}, &state.CachedReply{ID: 1}},
				}
				for _, b := range bad {
					if err := s.Save(b.st, b.reply); !errors.Is(err, ErrInvalid) {
						t.Errorf("%s: got %v, want ErrInvalid", b.name, err)
					}
				}
				got, replies := mustLoadServer(t, s)
				st.Users = sortedUsers(st.Users)
				if !reflect.DeepEqual(got, st) || replies != nil {
					t.Fatalf("a refused Save changed the store: %+v %+v", got, replies)
				}
			})
			t.Run("closed", func(t *testing.T) {
				s := impl.open(t)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if _, _, err := s.Load(); !errors.Is(err, ErrClosed) {
					t.Errorf("Load after Close: %v", err)
				}
				if err := s.Save(state.ServerState{}, nil); !errors.Is(err, ErrClosed) {
					t.Errorf("Save after Close: %v", err)
				}
			})
		})
	}
}

// Records for the peer tests. Aruba is the SPEC's example (pos 138);
// "Arbua" and "Aurba" have the same bytes in another order, so they collide
// with it; CIV carries the dataset's lone 0xAB byte, which is not UTF-8.
var (
	aruba = dataset.Record{CountryCode: "ABW", ShortName: "Aruba", TableName: "Aruba", LongName: "Aruba",
		Alpha2: "AW", Currency: "Aruban florin", Region: "Latin America & Caribbean", WB2: "AW", Census: "2010"}
	arbua = dataset.Record{CountryCode: "XAB", ShortName: "Arbua", LongName: "Arbua", Census: "1999"}
	aurba = dataset.Record{CountryCode: "XAU", ShortName: "Aurba", LongName: "Aurba", Region: "Nowhere"}
	civ   = dataset.Record{CountryCode: "CIV", ShortName: "Co\xabte d'Ivoire", TableName: "Co\xabte d'Ivoire",
		LongName: "Republic of C\xcc\xabte d'Ivoire", Alpha2: "CI", Currency: "CFA franc",
		Region: "Sub-Saharan Africa", WB2: "CI", Census: "1998"}
	zaf = dataset.Record{CountryCode: "ZAF", ShortName: "South Africa", LongName: "Republic of South Africa",
		Census: "2011", Region: "Sub-Saharan Africa"}
)

// slotOrder sorts records as Load returns them: by slot, then Long Name bytes.
func slotOrder(recs ...dataset.Record) []dataset.Record {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b dataset.Record) int {
		if a.Pos() != b.Pos() {
			return a.Pos() - b.Pos()
		}
		return strings.Compare(a.LongName, b.LongName)
	})
	return recs
}

func sampleIdentity() state.Identity {
	return state.Identity{
		Name: "alice", Addr: ap("127.0.0.1:5001"), Server: ap("127.0.0.1:4000"),
		InRing: true, ID: 0, N: 1, // a lone node: it owns every record
		Left:  state.Member{Name: "carol", Addr: ap("127.0.0.1:5003")},
		Right: state.Member{Name: "bob", Addr: ap("10.0.0.2:5002")},
	}
}

func mustApply(t *testing.T, p peerStore, b state.Batch) {
	t.Helper()
	if err := p.Apply(b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func mustLoadPeer(t *testing.T, p peerStore) (state.Identity, []dataset.Record) {
	t.Helper()
	id, recs, err := p.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return id, recs
}

func find(recs []dataset.Record, longName string) (dataset.Record, bool) {
	for _, r := range recs {
		if r.LongName == longName {
			return r, true
		}
	}
	return dataset.Record{}, false
}

func TestPeerContract(t *testing.T) {
	if p := aruba.Pos(); p != 138 || arbua.Pos() != p || aurba.Pos() != p {
		t.Fatalf("test records do not collide at 138: %d %d %d", aruba.Pos(), arbua.Pos(), aurba.Pos())
	}
	for _, impl := range peerImpls() {
		t.Run(impl.name, func(t *testing.T) {
			t.Run("empty", func(t *testing.T) {
				id, recs := mustLoadPeer(t, impl.open(t))
				if id != (state.Identity{}) || recs != nil {
					t.Fatalf("fresh store: %+v %+v", id, recs)
				}
			})
			t.Run("round trip", func(t *testing.T) {
				p := impl.open(t)
				want := sampleIdentity()
				mustApply(t, p, state.Batch{Identity: &want, Put: []dataset.Record{zaf, civ, aruba}})
				id, recs := mustLoadPeer(t, p)
				if id != want {
					t.Fatalf("identity: got %+v want %+v", id, want)
				}
				if w := slotOrder(zaf, civ, aruba); !reflect.DeepEqual(recs, w) {
					t.Fatalf("records:\ngot  %q\nwant %q", recs, w)
				}
				// Identity nil leaves it alone.
				mustApply(t, p, state.Batch{Put: []dataset.Record{arbua}})
				if id, _ := mustLoadPeer(t, p); id != want {
					t.Fatalf("identity changed by a batch without one: %+v", id)
				}
			})
			t.Run("lookup", func(t *testing.T) {
				// Colliding records are each found by their whole Long
				// Name; one stored again replaces the first copy; a prefix,
				// a name of the same slot not stored, and an empty table
				// find nothing; a cleared table finds nothing.
				p := impl.open(t)
				if _, ok, err := p.Lookup("Aruba"); ok || err != nil {
					t.Fatalf("empty table: found %v, %v", ok, err)
				}
				id := sampleIdentity()
				mustApply(t, p, state.Batch{Identity: &id, Put: []dataset.Record{aruba, arbua, civ}})
				changed := arbua
				changed.Census = "2000"
				mustApply(t, p, state.Batch{Put: []dataset.Record{changed}})
				for _, want := range []dataset.Record{aruba, changed, civ} {
					got, ok, err := p.Lookup(want.LongName)
					if err != nil || !ok || got != want {
						t.Fatalf("Lookup(%q) = %+v, %v, %v; want %+v", want.LongName, got, ok, err, want)
					}
				}
				if _, recs := mustLoadPeer(t, p); len(recs) != 3 {
					t.Fatalf("storing a record again left %d records, want 3", len(recs))
				}
				for _, name := range []string{"Arub", "Aurba", "aruba", ""} {
					if _, ok, err := p.Lookup(name); ok || err != nil {
						t.Fatalf("Lookup(%q) found %v, %v", name, ok, err)
					}
				}
				mustApply(t, p, state.Batch{Clear: true})
				if _, ok, err := p.Lookup("Aruba"); ok || err != nil {
					t.Fatalf("cleared table: found %v, %v", ok, err)
				}
			})
			t.Run("clear put identity", func(t *testing.T) {
				p := impl.open(t)
				first := sampleIdentity()
				mustApply(t, p, state.Batch{Identity: &first, Put: []dataset.Record{zaf, civ, aruba, arbua}})
				out := state.Identity{Name: "alice", Addr: first.Addr, Server: first.Server}
				mustApply(t, p, state.Batch{Identity: &out, Clear: true, Put: []dataset.Record{aurba}})
				id, recs := mustLoadPeer(t, p)
				if id != out {
					t.Fatalf("identity: got %+v want %+v", id, out)
				}
				if !reflect.DeepEqual(recs, []dataset.Record{aurba}) {
					t.Fatalf("after Clear+Put: %q", recs)
				}
				mustApply(t, p, state.Batch{Clear: true})
				if _, recs := mustLoadPeer(t, p); recs != nil {
					t.Fatalf("after Clear: %q", recs)
				}
			})
			t.Run("colliding slots", func(t *testing.T) {
				p := impl.open(t)
				mustApply(t, p, state.Batch{Put: []dataset.Record{aurba, aruba, zaf, arbua}})
				_, recs := mustLoadPeer(t, p)
				if w := slotOrder(aurba, aruba, zaf, arbua); !reflect.DeepEqual(recs, w) {
					t.Fatalf("records:\ngot  %q\nwant %q", recs, w)
				}
				for _, want := range []dataset.Record{aruba, arbua, aurba} {
					got, ok := find(recs, want.LongName)
					if !ok || got != want {
						t.Errorf("%q: got %+v (found %v)", want.LongName, got, ok)
					}
				}
				// A retransmitted store replaces, it does not duplicate.
				again := aruba
				again.Census = "2020"
				mustApply(t, p, state.Batch{Put: []dataset.Record{again}})
				_, recs = mustLoadPeer(t, p)
				if got, _ := find(recs, "Aruba"); len(recs) != 4 || got != again {
					t.Fatalf("after re-put: %d records, Aruba %+v", len(recs), got)
				}
			})
			t.Run("invalid UTF-8 kept", func(t *testing.T) {
				p := impl.open(t)
				mustApply(t, p, state.Batch{Put: []dataset.Record{civ}})
				_, recs := mustLoadPeer(t, p)
				if len(recs) != 1 || recs[0] != civ || !strings.Contains(recs[0].ShortName, "\xab") {
					t.Fatalf("got %q", recs)
				}
			})
			t.Run("many", func(t *testing.T) {
				p := impl.open(t)
				all := synthetic(241, 1)
				mustApply(t, p, state.Batch{Put: all})
				if _, recs := mustLoadPeer(t, p); !reflect.DeepEqual(recs, slotOrder(all...)) {
					t.Fatalf("241 records: got %d back, or in the wrong order", len(recs))
				}
			})
			t.Run("invalid changes nothing", func(t *testing.T) {
				p := impl.open(t)
				id := sampleIdentity()
				mustApply(t, p, state.Batch{Identity: &id, Put: []dataset.Record{aruba}})
				neg := state.Identity{Name: "x", ID: -1}
				bad := []state.Batch{
					{Clear: true, Put: []dataset.Record{zaf, {CountryCode: "NON"}}},
					{Clear: true, Put: []dataset.Record{zaf, {LongName: "L", Region: strings.Repeat("x", 1<<16)}}},
					{Clear: true, Identity: &neg},
				}
				for i, b := range bad {
					if err := p.Apply(b); !errors.Is(err, ErrInvalid) {
						t.Errorf("batch %d: got %v, want ErrInvalid", i, err)
					}
				}
				gotID, recs := mustLoadPeer(t, p)
				if gotID != id || !reflect.DeepEqual(recs, []dataset.Record{aruba}) {
					t.Fatalf("a refused batch changed the store: %+v %q", gotID, recs)
				}
			})
			t.Run("closed", func(t *testing.T) {
				p := impl.open(t)
				if err := p.Close(); err != nil {
					t.Fatal(err)
				}
				if _, _, err := p.Load(); !errors.Is(err, ErrClosed) {
					t.Errorf("Load after Close: %v", err)
				}
				if err := p.Apply(state.Batch{}); !errors.Is(err, ErrClosed) {
					t.Errorf("Apply after Close: %v", err)
				}
				if _, _, err := p.Lookup("Aruba"); !errors.Is(err, ErrClosed) {
					t.Errorf("Lookup after Close: %v", err)
				}
			})
		})
	}
}

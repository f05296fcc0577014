package app

// The server's side of join-dht (SPEC §3): every FAILURE rule of join-dht,
// and dht-rebuilt ending a join. The waits a join shares with the other
// operations (every other request refused, saying what the server waits
// for; the op-timeout rollback) are rows of srvWaits in server_test.go.

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"dht/app/state"
	"dht/wire"
)

// srvJoining is a ready DHT of ring that joiner, a registered Free user,
// is joining since srvT0.
func srvJoining(ring []string, joiner string, free ...string) state.ServerState {
	st := srvDHT(state.PhaseJoining, ring, append([]string{joiner}, free...)...)
	st.DHT.Joiner, st.DHT.Since = joiner, srvT0.UnixNano()
	return st
}

// srvFullRing is a ready DHT of n members (generated names, alice first)
// and dave, a Free user.
func srvFullRing(n int) state.ServerState {
	st := srvMany(n-1, 6)
	ring := []string{"alice"}
	for i := range st.Users {
		st.Users[i].State = state.InDHT
		ring = append(ring, st.Users[i].Name)
	}
	st.Users = append(st.Users,
		state.User{Name: "alice", Addr: srvAddr("alice"), State: state.Leader},
		state.User{Name: "dave", Addr: srvAddr("dave"), State: state.Free})
	st.DHT = state.DHT{Phase: state.PhaseReady, Leader: "alice", Members: ring}
	return st
}

// srvLongNamedRing is a ready DHT of n members whose names are all 15
// letters, the longest a name may be, and dave, a Free user: the longest
// join-dht reply a ring can ask for (n = 63).
func srvLongNamedRing(n int) state.ServerState {
	st := srvMany(n, 15)
	var ring []string
	for i := range st.Users {
		st.Users[i].State = state.InDHT
		ring = append(ring, st.Users[i].Name)
	}
	st.Users[0].State = state.Leader
	st.Users = append(st.Users, state.User{Name: "dave", Addr: srvAddr("dave"), State: state.Free})
	st.DHT = state.DHT{Phase: state.PhaseReady, Leader: ring[0], Members: ring, Epoch: 1<<48 - 1, KeyEpoch: 1<<48 - 1}
	return st
}

func TestServerJoinDHT(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	ready := srvDHT(state.PhaseReady, ring, "dave", "erin")
	joining := func(joiner string, members ...string) func(*testing.T, wire.Reply, state.ServerState) {
		return func(t *testing.T, rep wire.Reply, st state.ServerState) {
			t.Helper()
			var names []string
			for _, m := range rep.Members {
				names = append(names, m.Name)
				if m.Addr != srvAddrOf(st, m.Name) {
					t.Errorf("reply lists %s at %s, registered at %s", m.Name, m.Addr, srvAddrOf(st, m.Name))
				}
			}
			if !slices.Equal(names, members) {
				t.Errorf("reply lists %v, want the ring, leader first: %v", names, members)
			}
			want := state.DHT{Phase: state.PhaseJoining, Leader: members[0], Members: members, Joiner: joiner, Since: srvT0.UnixNano()}
			if !reflect.DeepEqual(dhtNoEpoch(st.DHT), want) {
				t.Errorf("DHT = %+v, want %+v", st.DHT, want)
			}
			// Nobody's state changes until dht-rebuilt.
			if u, _ := srvFind(st, joiner); u.State != state.Free {
				t.Errorf("joiner %s is %s while joining, want Free", joiner, u.State)
			}
		}
	}
	waits := []struct {
		name  string
		start state.ServerState
		says  string
	}{
		{"the DHT is being set up", srvDHT(state.PhaseBuilding, ring, "dave"), "server is waiting for dht-complete from alice (setup-dht in progress)"},
		{"a member is leaving", srvLeaving(ring, "bob", "dave"), "server is waiting for dht-rebuilt from bob (leave-dht in progress)"},
		{"the DHT is being torn down", srvDHT(state.PhaseTearing, ring, "dave"), "server is waiting for teardown-complete from alice (teardown-dht in progress)"},
		{"another user is joining", srvJoining(ring, "erin", "dave"), "server is waiting for dht-rebuilt from erin (join-dht in progress)"},
	}
	cases := []srvCase{
		{name: "Free user", start: ready, from: srvAddr("dave"), msg: wire.JoinDHT{Name: "dave"}, check: joining("dave", "alice", "bob", "carol")},
		{name: "ring of one", start: srvDHT(state.PhaseReady, []string{"bob"}, "dave"), from: srvAddr("dave"), msg: wire.JoinDHT{Name: "dave"},
			check: joining("dave", "bob")},
		{name: "ring of 63 grows to 64", start: srvFullRing(63), from: srvAddr("dave"), msg: wire.JoinDHT{Name: "dave"},
			check: func(t *testing.T, rep wire.Reply, st state.ServerState) {
				if len(rep.Members) != 63 || st.DHT.Phase != state.PhaseJoining || st.DHT.Joiner != "dave" {
					t.Errorf("reply of %d members, DHT %s joined by %q", len(rep.Members), st.DHT.Phase, st.DHT.Joiner)
				}
			}},
		{name: "ring of 63 with 15-letter names grows to 64", start: srvLongNamedRing(63), from: srvAddr("dave"), msg: wire.JoinDHT{Name: "dave"},
			check: func(t *testing.T, rep wire.Reply, st state.ServerState) {
				if len(rep.Members) != 63 || len(rep.Members[62].Name) != 15 || st.DHT.Joiner != "dave" {
					t.Errorf("reply of %d members, the last %q, DHT joined by %q", len(rep.Members), rep.Members[len(rep.Members)-1].Name, st.DHT.Joiner)
				}
				if n := wire.EncodedLen(rep); n+wire.AuthLen > wire.MaxDatagram {
					t.Errorf("the reply is %d bytes signed, over %d", n+wire.AuthLen, wire.MaxDatagram)
				}
			}},

		{name: "no DHT", start: srvFree("alice", "dave"), from: srvAddr("dave"), msg: wire.JoinDHT{Name: "dave"}, fail: []string{"no DHT exists"}},
		{name: "not registered", start: ready, from: srvAddr("zed"), msg: wire.JoinDHT{Name: "zed"}, fail: []string{"zed is not registered"}},
		{name: "invalid name", start: ready, from: srvStranger, msg: wire.JoinDHT{Name: "b0b"}, fail: []string{`invalid user name "b0b"`}},
		{name: "from another address", start: ready, from: srvAddr("erin"), msg: wire.JoinDHT{Name: "dave"}, fail: []string{"a request for dave must come from its registered address"}},
		{name: "an InDHT member", start: ready, from: srvAddr("bob"), msg: wire.JoinDHT{Name: "bob"}, fail: []string{"bob already maintains the DHT (InDHT); only a Free user may join"}},
		{name: "the leader", start: ready, from: srvAddr("alice"), msg: wire.JoinDHT{Name: "alice"}, fail: []string{"alice already maintains the DHT (Leader)"}},
		{name: "a ring of 64", start: srvFullRing(64), from: srvAddr("dave"), msg: wire.JoinDHT{Name: "dave"}, fail: []string{"the DHT already has 64 members, the most a ring may have"}},
	}
	for _, w := range waits {
		cases = append(cases, srvCase{name: "busy: " + w.name, start: w.start, from: srvAddr("dave"), msg: wire.JoinDHT{Name: "dave"}, fail: []string{w.says}})
	}
	runSrvCases(t, cases)
	// liveness ("offline" users) does not exist yet: no rule for it.
}

func srvAddrOf(st state.ServerState, name string) netip.AddrPort {
	u, _ := srvFind(st, name)
	return u.Addr
}

// dht-rebuilt from the joiner ends the join: the joiner is a member, last
// in ring order (just before the leader, where the ring took it in), and
// the new leader leads.
func TestServerJoinDHTRebuilt(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	daveJoining := srvJoining(ring, "dave", "erin")
	joined := srvReady
	const F, L, I = state.Free, state.Leader, state.InDHT
	cases := []srvCase{
		{name: "the leader stays", start: daveJoining, from: srvAddr("dave"), msg: wire.DHTRebuilt{Name: "dave", NewLeader: "alice"},
			check: joined("alice", []string{"alice", "bob", "carol", "dave"},
				map[string]state.State{"alice": L, "bob": I, "carol": I, "dave": I, "erin": F})},
		{name: "the joiner leads", start: daveJoining, from: srvAddr("dave"), msg: wire.DHTRebuilt{Name: "dave", NewLeader: "dave"},
			check: joined("dave", []string{"dave", "alice", "bob", "carol"},
				map[string]state.State{"alice": I, "bob": I, "carol": I, "dave": L, "erin": F})},
		{name: "another member leads", start: daveJoining, from: srvAddr("dave"), msg: wire.DHTRebuilt{Name: "dave", NewLeader: "carol"},
			check: joined("carol", []string{"carol", "dave", "alice", "bob"},
				map[string]state.State{"alice": I, "bob": I, "carol": L, "dave": I, "erin": F})},
		{name: "a ring of one grows to two", start: srvJoining([]string{"alice"}, "dave"), from: srvAddr("dave"), msg: wire.DHTRebuilt{Name: "dave", NewLeader: "alice"},
			check: joined("alice", []string{"alice", "dave"}, map[string]state.State{"alice": L, "dave": I})},

		{name: "from a member", start: daveJoining, from: srvAddr("carol"), msg: wire.DHTRebuilt{Name: "carol", NewLeader: "alice"},
			fail: []string{"carol did not ask to join", "waiting for dht-rebuilt from dave"}},
		{name: "from another Free user", start: daveJoining, from: srvAddr("erin"), msg: wire.DHTRebuilt{Name: "erin", NewLeader: "alice"},
			fail: []string{"erin did not ask to join"}},
		{name: "the joiner's name from another address", start: daveJoining, from: srvAddr("erin"), msg: wire.DHTRebuilt{Name: "dave", NewLeader: "alice"},
			fail: []string{"must come from"}},
		{name: "unregistered", start: daveJoining, from: srvAddr("zed"), msg: wire.DHTRebuilt{Name: "zed", NewLeader: "alice"},
			fail: []string{"zed is not registered"}},
		{name: "new leader a Free non-member", start: daveJoining, from: srvAddr("dave"), msg: wire.DHTRebuilt{Name: "dave", NewLeader: "erin"},
			fail: []string{`new leader "erin" is not a member of the DHT dave joined`}},
		{name: "new leader unregistered", start: daveJoining, from: srvAddr("dave"), msg: wire.DHTRebuilt{Name: "dave", NewLeader: "zed"},
			fail: []string{"not a member of the DHT"}},
		{name: "new leader empty", start: daveJoining, from: srvAddr("dave"), msg: wire.DHTRebuilt{Name: "dave", NewLeader: ""},
			fail: []string{`invalid user name ""`}},
	}
	runSrvCases(t, cases)
}

// A join goes through whole at the server, over and over: a ring of two
// grows to 64 one user at a time, each joiner appended, every state one the
// file would be opened with; the 65th is refused.
func TestServerJoinsToTheLimit(t *testing.T) {
	st := srvMany(66, 5)
	h := newSrvH(t, st)
	from := func(i int) netip.AddrPort { return st.Users[i].Addr }
	name := func(i int) string { return st.Users[i].Name }
	h.ok(from(0), wire.SetupDHT{N: 2, Name: name(0)})
	h.ok(from(0), wire.DHTComplete{Name: name(0)})
	members := h.s.Snapshot().DHT.Members
	next := 0
	for len(members) < MaxRing {
		for slices.Contains(members, name(next)) {
			next++
		}
		rep := h.ok(from(next), wire.JoinDHT{Name: name(next)}).Reply
		if len(rep.Members) != len(members) || rep.Members[0].Name != name(0) {
			t.Fatalf("join-dht %s: reply %v, want the %d members, leader first", name(next), rep.Members, len(members))
		}
		h.ok(from(next), wire.DHTRebuilt{Name: name(next), NewLeader: name(0)})
		got := h.s.Snapshot()
		if err := got.Check(); err != nil {
			t.Fatal(err)
		}
		if want := append(slices.Clone(members), name(next)); !slices.Equal(got.DHT.Members, want) {
			t.Fatalf("after %s joined: members %v, want %v", name(next), got.DHT.Members, want)
		}
		members = got.DHT.Members
	}
	for slices.Contains(members, name(next)) {
		next++
	}
	h.fail(from(next), wire.JoinDHT{Name: name(next)}, fmt.Sprintf("the DHT already has %d members", MaxRing))
}

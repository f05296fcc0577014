package state

import (
	"net/netip"
	"strings"
	"testing"

	"dht/dataset"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// leaving is a valid state: alice leads a ring of three that bob is leaving.
func leaving() ServerState {
	return ServerState{
		Users: []User{
			{Name: "alice", Addr: ap("127.0.0.1:5001"), State: Leader},
			{Name: "bob", Addr: ap("10.0.0.2:5002"), State: InDHT},
			{Name: "carol", Addr: ap("127.0.0.1:5003"), State: InDHT},
			{Name: "dave", Addr: ap("10.0.0.4:5004"), State: Free},
		},
		DHT: DHT{Phase: PhaseLeaving, Leader: "alice", Members: []string{"alice", "bob", "carol"},
			Leaver: "bob", Since: 1_700_000_000_123_456_789},
	}
}

// TestServerStateCheck: each rule a saved server state keeps, broken once,
// is reported saying what is wrong; the states the protocol goes through
// pass.
func TestServerStateCheck(t *testing.T) {
	user := func(st *ServerState, name string) *User {
		for i := range st.Users {
			if st.Users[i].Name == name {
				return &st.Users[i]
			}
		}
		t.Fatalf("no user %s", name)
		return nil
	}
	cases := []struct {
		name string
		edit func(*ServerState)
		says string // "" for a valid state
	}{
		{"a DHT being left", func(*ServerState) {}, ""},
		{"no DHT", func(st *ServerState) {
			st.DHT = DHT{}
			for i := range st.Users {
				st.Users[i].State = Free
			}
		}, ""},
		{"no user at all", func(st *ServerState) { *st = ServerState{} }, ""},
		{"a ready DHT", func(st *ServerState) {
			st.DHT.Phase, st.DHT.Leaver, st.DHT.Since = PhaseReady, "", 0
		}, ""},
		{"a user with no address", func(st *ServerState) {
			user(st, "dave").Addr = netip.AddrPort{}
		}, `user "dave" has no address`},
		{"a user at the broadcast address", func(st *ServerState) {
			user(st, "dave").Addr = ap("255.255.255.255:5004")
		}, `user "dave" at 255.255.255.255:5004: 255.255.255.255 is the broadcast address`},
		{"a user at a multicast address", func(st *ServerState) {
			user(st, "dave").Addr = ap("224.0.0.1:5004")
		}, "224.0.0.1 is a multicast address"},
		{"a user name no register takes", func(st *ServerState) {
			user(st, "dave").Name = "bad name!"
		}, `user name "bad name!" is not 1 to 15 ASCII letters`},
		{"two users at one address", func(st *ServerState) {
			user(st, "dave").Addr = user(st, "bob").Addr
		}, "have the same address"},
		{"no DHT but a leader", func(st *ServerState) {
			st.DHT = DHT{Leader: "alice"}
		}, "no DHT, but a leader"},
		{"an InDHT user with no DHT", func(st *ServerState) {
			st.DHT = DHT{}
			user(st, "alice").State = Free
			user(st, "bob").State = Free
		}, `user "carol" is InDHT, but there is no DHT`},
		{"a member that is not registered", func(st *ServerState) {
			st.DHT.Members = append(st.DHT.Members, "zed")
		}, `member "zed" is not registered`},
		{"an InDHT user outside the DHT", func(st *ServerState) {
			user(st, "dave").State = InDHT
		}, `user "dave" is InDHT, but not a member`},
		{"a member that is Free", func(st *ServerState) {
			user(st, "carol").State = Free
		}, `member "carol" is Free, not InDHT`},
		{"a leader that is not the first member", func(st *ServerState) {
			st.DHT.Leader = "bob"
		}, `do not start with its leader "bob"`},
		{"a member listed twice", func(st *ServerState) {
			st.DHT.Members = append(st.DHT.Members, "bob")
		}, `member "bob" is listed twice`},
		{"a leaver that is not a member", func(st *ServerState) {
			st.DHT.Leaver = "dave"
		}, `leaver "dave" is not one of two or more members`},
		{"a wait with no DHT being built, left or torn down", func(st *ServerState) {
			st.DHT.Phase, st.DHT.Leaver = PhaseReady, ""
		}, "DHT ready with a wait"},
		{"a leave with no leaver", func(st *ServerState) {
			st.DHT.Leaver = ""
		}, `DHT leaving with leaver ""`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := leaving()
			c.edit(&st)
			err := st.Check()
			switch {
			case c.says == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)):
				t.Errorf("got %v, want an error saying %q", err, c.says)
			}
		})
	}
}

// TestIdentityCheck: each rule a saved identity keeps, broken once, is
// reported; an identity never saved, and one outside any ring, pass.
func TestIdentityCheck(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Identity)
		says string // "" for a valid identity
	}{
		{"in a ring", func(*Identity) {}, ""},
		{"none saved", func(id *Identity) { *id = Identity{} }, ""},
		{"outside any ring", func(id *Identity) {
			id.InRing, id.ID, id.N, id.Left, id.Right = false, 0, 0, Member{}, Member{}
		}, ""},
		{"no server address", func(id *Identity) { id.Server = netip.AddrPort{} }, "lacks the peer's name"},
		{"an id outside its ring", func(id *Identity) { id.ID = 3 }, "id 3 in a ring of 3"},
		{"an id outside any ring", func(id *Identity) { id.InRing = false }, "but not in a ring"},
		{"a neighbour without an address", func(id *Identity) {
			id.Left.Addr = netip.AddrPort{}
		}, `neighbour "carol"`},
		{"a ring larger than any", func(id *Identity) { id.N = 1<<31 - 1 }, "id 1 in a ring of 2147483647 (rings have 1 to 64 nodes)"},
		{"a ring of 65", func(id *Identity) { id.N = 65 }, "a ring of 65"},
		{"a ring of 64", func(id *Identity) { id.N = 64 }, ""},
		{"a name no register takes", func(id *Identity) { id.Name = "al1ce" }, `the peer's name "al1ce" is not 1 to 15 ASCII letters`},
		{"a multicast address", func(id *Identity) { id.Addr = ap("239.1.2.3:5001") }, "239.1.2.3 is a multicast address"},
		{"a broadcast server", func(id *Identity) { id.Server = ap("255.255.255.255:4000") }, "the server's address 255.255.255.255:4000: 255.255.255.255 is the broadcast address"},
		{"a neighbour's name no register takes", func(id *Identity) { id.Right.Name = "b o b" }, `neighbour name "b o b"`},
		{"a neighbour at 0.0.0.0", func(id *Identity) { id.Left.Addr = ap("0.0.0.0:5003") }, `neighbour "carol" at 0.0.0.0:5003`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := Identity{Name: "alice", Addr: ap("127.0.0.1:5001"), Server: ap("127.0.0.1:4000"),
				InRing: true, ID: 1, N: 3,
				Left:  Member{Name: "carol", Addr: ap("127.0.0.1:5003")},
				Right: Member{Name: "bob", Addr: ap("10.0.0.2:5002")}}
			c.edit(&id)
			err := id.Check()
			switch {
			case c.says == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)):
				t.Errorf("got %v, want an error saying %q", err, c.says)
			}
		})
	}
}

// joining is a valid state: dave joins alice's ring of three.
func joining() ServerState {
	st := leaving()
	st.DHT.Phase, st.DHT.Leaver, st.DHT.Joiner = PhaseJoining, "", "dave"
	return st
}

// TestServerStateCheckJoining: the rules of a join, each broken once.
func TestServerStateCheckJoining(t *testing.T) {
	cases := []struct {
		name string
		edit func(*ServerState)
		says string
	}{
		{"a DHT being joined", func(*ServerState) {}, ""},
		{"a join with no joiner", func(st *ServerState) { st.DHT.Joiner = "" }, `DHT joining with joiner ""`},
		{"a joiner while ready", func(st *ServerState) { st.DHT.Phase, st.DHT.Since = PhaseReady, 0 }, `DHT ready with joiner "dave"`},
		{"a join with no wait", func(st *ServerState) { st.DHT.Since = 0 }, "DHT joining with a wait started at 0"},
		{"a joiner that is a member", func(st *ServerState) { st.DHT.Joiner = "bob" }, `joiner "bob" is not a registered Free user outside the DHT`},
		{"a joiner that is not registered", func(st *ServerState) { st.DHT.Joiner = "zed" }, `joiner "zed" is not a registered Free user`},
		{"a joiner with no DHT", func(st *ServerState) {
			*st = ServerState{Users: []User{{Name: "dave", Addr: ap("10.0.0.4:5004")}}, DHT: DHT{Joiner: "dave"}}
		}, "no DHT, but a leader, members, a leaver, a joiner or a wait"},
		{"a joiner of a full ring", func(st *ServerState) {
			for i := len(st.DHT.Members); i < 64; i++ {
				name := "m" + string(rune('a'+i/26)) + string(rune('a'+i%26))
				st.Users = append(st.Users, User{Name: name, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), 6000), State: InDHT})
				st.DHT.Members = append(st.DHT.Members, name)
			}
		}, `joiner "dave" joins a DHT of 64 members`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := joining()
			c.edit(&st)
			err := st.Check()
			switch {
			case c.says == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)):
				t.Errorf("got %v, want an error saying %q", err, c.says)
			}
		})
	}
}

// CheckTable: a node in a ring holds only the records its place owns (pos
// mod N is its id); simnet checks every commit with it.
func TestIdentityCheckTable(t *testing.T) {
	rec := func(long string) dataset.Record { return dataset.Record{LongName: long} }
	aruba := rec("Aruba") // pos 138: id 0 of 3, id 0 of 2, id 2 of 4
	cases := []struct {
		name string
		id   Identity
		recs []dataset.Record
		says string // "" when the table is the place's
	}{
		{"outside any ring, no records", Identity{Name: "alice"}, nil, ""},
		{"outside any ring, a record: an earlier build's, cleared at resume", Identity{Name: "alice"}, []dataset.Record{aruba}, ""},
		{"its own record", Identity{InRing: true, ID: 0, N: 3}, []dataset.Record{aruba}, ""},
		{"a lone node holds every record", Identity{InRing: true, ID: 0, N: 1}, []dataset.Record{aruba, rec("Republic of South Africa")}, ""},
		{"another id's record", Identity{InRing: true, ID: 1, N: 4}, []dataset.Record{aruba}, `record "Aruba" (slot 138) belongs to id 2 of a ring of 4, not to this node's id 1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.id.CheckTable(c.recs)
			if c.says == "" && err != nil || c.says != "" && (err == nil || err.Error() != c.says) {
				t.Fatalf("CheckTable: %v, want %q", err, c.says)
			}
		})
	}
}

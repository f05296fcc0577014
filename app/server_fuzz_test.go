package app

// A fuzzed (and, in normal runs, seeded random) walk over the server state
// machine: random requests from right and wrong addresses, retransmissions,
// ticks, restarts and stray messages, with the invariants of the registry
// checked after every input.

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"dht/app/state"
	"dht/wire"
)

var srvFuzzNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "zed"}

type srvFuzzLast struct {
	id    uint32
	msg   wire.Message
	reply wire.Reply
}

// srvFuzz runs one walk described by data (4 bytes per input).
func srvFuzz(t *testing.T, data []byte) {
	s := NewServer(srvConfig(), state.ServerState{}, nil)
	now := srvT0
	persisted := s.Snapshot()
	persistedReplies := map[netip.AddrPort]state.CachedReply{}
	persistedLast := map[netip.AddrPort]srvFuzzLast{}
	last := map[netip.AddrPort]srvFuzzLast{}
	ids := map[netip.AddrPort]uint32{}

	for len(data) >= 4 {
		op, u, v, w := data[0]%13, int(data[1])%len(srvFuzzNames), data[2], data[3]
		data = data[4:]
		name := srvFuzzNames[u]
		other := srvFuzzNames[int(v)%len(srvFuzzNames)]
		from := srvAddr(name)
		if w&1 != 0 {
			from = srvAddr(srvFuzzNames[(u+1)%len(srvFuzzNames)]) // the wrong address
		}
		var m wire.Message
		switch op {
		case 0:
			addr := srvAddr(name)
			if w&2 != 0 {
				addr = srvAddr(other)
			}
			if w&4 != 0 {
				name = "b0b"
			}
			m = wire.Register{Name: name, Addr: addr}
		case 1:
			m = wire.SetupDHT{N: uint16(v % 7), Name: name}
		case 2:
			m = wire.DHTComplete{Name: name}
		case 3:
			m = wire.QueryDHT{Name: name}
		case 4:
			m = wire.LeaveDHT{Name: name}
			if w&2 != 0 {
				m = wire.JoinDHT{Name: name}
			}
		case 5:
			m = wire.DHTRebuilt{Name: name, NewLeader: other}
		case 6:
			m = wire.Deregister{Name: name}
		case 7:
			m = wire.TeardownDHT{Name: name}
		case 8:
			m = wire.TeardownComplete{Name: name}
		case 9: // retransmit the last request from this address
			l, ok := last[from]
			if !ok {
				continue
			}
			before := s.Snapshot()
			outs := s.stepTrusted(now, from, wire.Header{Type: l.msg.Type(), ID: l.id}, l.msg)
			r := srvCheckOuts(t, s, from, l.id, outs)
			if !srvSameReply(r.Reply, l.reply) || r.Persist != nil {
				t.Fatalf("retransmission of %T %+v id %d from %s: %+v (persisted %v), want the cached %+v",
					l.msg, l.msg, l.id, from, r.Reply, r.Persist != nil, l.reply)
			}
			if !srvSameState(before, s.Snapshot()) {
				t.Fatalf("retransmission changed the state")
			}
			continue
		case 10: // time passes
			now = now.Add(time.Duration(v) * srvTimeout / 64)
			outs := s.Tick(now)
			for _, o := range outs {
				if p, ok := o.(PersistServer); ok {
					persisted = p.State
				}
			}
			srvFuzzInvariants(t, s.Snapshot())
			if !srvSameState(persisted, s.Snapshot()) {
				t.Fatalf("Tick changed the state without persisting it")
			}
			continue
		case 11: // restart from what was persisted
			var replies []state.CachedReply
			for _, r := range persistedReplies {
				replies = append(replies, r)
			}
			s = NewServer(srvConfig(), persisted, replies)
			if !srvSameState(persisted, s.Snapshot()) {
				t.Fatalf("restart lost state")
			}
			last = map[netip.AddrPort]srvFuzzLast{}
			for k, v := range persistedLast {
				last[k] = v
			}
			continue
		case 12: // a stray non-request with a fresh id, or an alive
			ids[from]++
			if w&2 != 0 {
				before := s.Snapshot()
				for _, o := range s.stepTrusted(now, from, wire.Header{Type: wire.TypeAlive, ID: ids[from]}, wire.Alive{Name: name, PeriodMS: uint32(v) * 100}) {
					switch o := o.(type) {
					case Event:
					case Send:
						if _, ok := o.Msg.(wire.Pace); !ok || o.To != from {
							t.Fatalf("alive answered with %#v", o)
						}
					default:
						t.Fatalf("alive produced %#v", o)
					}
				}
				if !srvSameState(before, s.Snapshot()) {
					t.Fatalf("alive changed the state")
				}
				continue
			}
			outs := s.stepTrusted(now, from, wire.Header{Type: wire.TypeAck, ID: 1<<31 + ids[from]}, wire.Ack{})
			for _, o := range outs {
				if _, ok := o.(Event); !ok {
					t.Fatalf("Ack produced %#v", o)
				}
			}
			continue
		}

		ids[from]++
		id := ids[from]
		before := s.Snapshot()
		outs := s.stepTrusted(now, from, wire.Header{Type: m.Type(), ID: id}, m)
		r := srvCheckOuts(t, s, from, id, outs)
		after := s.Snapshot()
		last[from] = srvFuzzLast{id, m, r.Reply}
		if r.Persist != nil {
			persisted = r.Persist.State
			persistedReplies[from] = *r.Persist.Reply
			persistedLast[from] = last[from]
		}
		if !r.Reply.OK && !srvSameState(before, after) {
			t.Fatalf("FAILURE %q for %T %+v changed the state", r.Reply.Reason, m, m)
		}
		if _, q := m.(wire.QueryDHT); q && r.Persist != nil {
			t.Fatalf("query-dht persisted")
		}
		if !srvSameState(persisted, after) {
			t.Fatalf("%T %+v changed the state without persisting it:\npersisted %+v\nstate     %+v", m, m, persisted, after)
		}
		if r.Reply.OK {
			srvFuzzSuccess(t, from, m, r.Reply, before, after)
		}
		srvFuzzInvariants(t, after)
	}
}

// srvFuzzSuccess checks what any SUCCESS implies about the request.
func srvFuzzSuccess(t *testing.T, from netip.AddrPort, m wire.Message, rep wire.Reply, before, after state.ServerState) {
	t.Helper()
	name := ""
	switch m := m.(type) {
	case wire.Register:
		if m.Addr != from {
			t.Fatalf("register %s for %s accepted from %s", m.Name, m.Addr, from)
		}
		return
	case wire.SetupDHT:
		name = m.Name
		if before.DHT.Phase != state.PhaseNone || int(m.N) < 2 || len(rep.Members) != int(m.N) || rep.Members[0].Name != m.Name {
			t.Fatalf("setup-dht %+v from %+v answered %+v", m, before.DHT, rep)
		}
	case wire.DHTComplete:
		name = m.Name
		if before.DHT.Phase != state.PhaseBuilding || before.DHT.Leader != m.Name {
			t.Fatalf("dht-complete by %s accepted in %+v", m.Name, before.DHT)
		}
	case wire.QueryDHT:
		name = m.Name
		if len(rep.Members) != 1 || !slices.Contains(before.DHT.Members, rep.Members[0].Name) || before.DHT.Phase != state.PhaseReady {
			t.Fatalf("query-dht answered %+v in %+v", rep, before.DHT)
		}
	case wire.LeaveDHT:
		name = m.Name
		if before.DHT.Phase != state.PhaseReady || !slices.Contains(before.DHT.Members, m.Name) || len(before.DHT.Members) < 2 {
			t.Fatalf("leave-dht by %s accepted in %+v", m.Name, before.DHT)
		}
	case wire.JoinDHT:
		name = m.Name
		if u, _ := srvFind(before, m.Name); before.DHT.Phase != state.PhaseReady || u.State != state.Free || len(before.DHT.Members) >= MaxRing ||
			after.DHT.Joiner != m.Name || len(rep.Members) != len(before.DHT.Members) || rep.Members[0].Name != before.DHT.Leader {
			t.Fatalf("join-dht by %s accepted in %+v, answered %+v", m.Name, before.DHT, rep)
		}
	case wire.DHTRebuilt:
		name = m.Name
		if before.DHT.Phase == state.PhaseJoining {
			if before.DHT.Joiner != m.Name || after.DHT.Leader != m.NewLeader || !slices.Contains(after.DHT.Members, m.Name) ||
				len(after.DHT.Members) != len(before.DHT.Members)+1 {
				t.Fatalf("dht-rebuilt %+v: %+v -> %+v", m, before.DHT, after.DHT)
			}
			break
		}
		if before.DHT.Leaver != m.Name || m.NewLeader == m.Name || after.DHT.Leader != m.NewLeader || slices.Contains(after.DHT.Members, m.Name) ||
			len(after.DHT.Members) != len(before.DHT.Members)-1 {
			t.Fatalf("dht-rebuilt %+v: %+v -> %+v", m, before.DHT, after.DHT)
		}
	case wire.Deregister:
		name = m.Name
		if _, ok := srvFind(after, m.Name); ok {
			t.Fatalf("deregistered %s is still there", m.Name)
		}
	case wire.TeardownDHT:
		name = m.Name
		if before.DHT.Phase != state.PhaseReady || before.DHT.Leader != m.Name {
			t.Fatalf("teardown-dht by %s accepted in %+v", m.Name, before.DHT)
		}
	case wire.TeardownComplete:
		name = m.Name
		if before.DHT.Phase != state.PhaseTearing || before.DHT.Leader != m.Name || after.DHT.Phase != state.PhaseNone {
			t.Fatalf("teardown-complete by %s: %+v -> %+v", m.Name, before.DHT, after.DHT)
		}
	}
	if u, ok := srvFind(before, name); !ok || u.Addr != from {
		t.Fatalf("%T for %s accepted from %s (registered %+v)", m, name, from, u)
	}
}

// srvFuzzInvariants checks the registry is consistent.
func srvFuzzInvariants(t *testing.T, st state.ServerState) {
	t.Helper()
	if err := st.Check(); err != nil {
		t.Fatalf("a state the server file would be refused for: %v", err)
	}
	names := map[string]state.User{}
	addrs := map[netip.AddrPort]bool{}
	for i, u := range st.Users {
		if !ValidName(u.Name) {
			t.Fatalf("registered invalid name %q", u.Name)
		}
		if i > 0 && st.Users[i-1].Name >= u.Name {
			t.Fatalf("users not sorted or duplicated: %v", srvNames(st))
		}
		if addrs[u.Addr] {
			t.Fatalf("address %s registered twice", u.Addr)
		}
		if !u.Addr.Addr().Is4() || u.Addr.Port() == 0 {
			t.Fatalf("registered invalid address %s", u.Addr)
		}
		names[u.Name], addrs[u.Addr] = u, true
	}
	d := st.DHT
	if d.Phase == state.PhaseNone {
		if d.Leader != "" || len(d.Members) != 0 || d.Leaver != "" || d.Joiner != "" || d.Since != 0 {
			t.Fatalf("no DHT but %+v", d)
		}
		for _, u := range st.Users {
			if u.State != state.Free {
				t.Fatalf("no DHT but %s is %s", u.Name, u.State)
			}
		}
		return
	}
	if len(d.Members) == 0 || len(d.Members) > MaxRing || d.Members[0] != d.Leader {
		t.Fatalf("DHT %+v: members must start with the leader", d)
	}
	for i, m := range d.Members {
		if slices.Index(d.Members, m) != i {
			t.Fatalf("DHT %+v lists %s twice", d, m)
		}
		u, ok := names[m]
		want := state.InDHT
		if i == 0 {
			want = state.Leader
		}
		if !ok || u.State != want {
			t.Fatalf("member %s is %+v (registered %v), want %s", m, u, ok, want)
		}
	}
	for _, u := range st.Users {
		if !slices.Contains(d.Members, u.Name) && u.State != state.Free {
			t.Fatalf("%s is %s but not in the ring %v", u.Name, u.State, d.Members)
		}
	}
	waiting := d.Phase == state.PhaseBuilding || d.Phase == state.PhaseLeaving || d.Phase == state.PhaseTearing || d.Phase == state.PhaseJoining || d.Phase == state.PhaseHealing
	if waiting != (d.Since != 0) {
		t.Fatalf("phase %s with Since %d", d.Phase, d.Since)
	}
	if (d.Phase == state.PhaseLeaving) != (d.Leaver != "") {
		t.Fatalf("phase %s with leaver %q", d.Phase, d.Leaver)
	}
	if d.Phase == state.PhaseLeaving && (!slices.Contains(d.Members, d.Leaver) || len(d.Members) < 2) {
		t.Fatalf("leaver %s in ring %v", d.Leaver, d.Members)
	}
	if (d.Phase == state.PhaseJoining) != (d.Joiner != "") {
		t.Fatalf("phase %s with joiner %q", d.Phase, d.Joiner)
	}
	if d.Joiner != "" && (slices.Contains(d.Members, d.Joiner) || names[d.Joiner].State != state.Free) {
		t.Fatalf("joiner %s (%+v) in ring %v", d.Joiner, names[d.Joiner], d.Members)
	}
}

func srvFuzzOps(ops ...[4]byte) []byte {
	var b []byte
	for _, o := range ops {
		b = append(b, o[:]...)
	}
	return b
}

func srvFuzzLifecycle() []byte {
	var ops [][4]byte
	for u := byte(0); u < 6; u++ {
		ops = append(ops, [4]byte{0, u, 0, 0}) // register
	}
	ops = append(ops,
		[4]byte{1, 0, 4, 0},                      // setup-dht 4 alice
		[4]byte{9, 0, 0, 0},                      // retransmit
		[4]byte{3, 1, 0, 0},                      // query while building
		[4]byte{2, 1, 0, 0},                      // dht-complete by bob
		[4]byte{2, 0, 0, 0},                      // dht-complete by alice
		[4]byte{11, 0, 0, 0},                     // restart
		[4]byte{3, 4, 0, 0}, [4]byte{3, 5, 0, 0}, // queries
		[4]byte{4, 0, 0, 0},                                           // alice leaves
		[4]byte{5, 0, 1, 0}, [4]byte{5, 0, 2, 0}, [4]byte{5, 0, 3, 0}, // rebuilt with various leaders
		[4]byte{10, 0, 255, 0},                   // op-timeout
		[4]byte{4, 4, 0, 2}, [4]byte{4, 1, 0, 2}, // erin joins carol's ring; bob's join refused meanwhile
		[4]byte{5, 2, 1, 0}, [4]byte{11, 0, 0, 0}, // dht-rebuilt by carol refused; restart mid-join
		[4]byte{5, 4, 2, 0},                      // dht-rebuilt erin carol
		[4]byte{4, 1, 0, 2}, [4]byte{5, 1, 1, 0}, // bob joins, and leads
		[4]byte{4, 0, 0, 2}, [4]byte{10, 0, 255, 0}, // alice joins; op-timeout rolls it back
		[4]byte{1, 2, 3, 0}, [4]byte{2, 2, 0, 0}, [4]byte{7, 2, 0, 0}, [4]byte{8, 2, 0, 0}, // setup, complete, teardown by carol
		[4]byte{6, 0, 0, 0}, [4]byte{6, 1, 0, 1}, [4]byte{12, 1, 0, 0},
	)
	return srvFuzzOps(ops...)
}

func FuzzServerSteps(f *testing.F) {
	f.Add(srvFuzzLifecycle())
	f.Add(srvFuzzOps([4]byte{0, 0, 0, 0}, [4]byte{0, 0, 0, 0}, [4]byte{9, 0, 0, 0}, [4]byte{0, 1, 0, 2}, [4]byte{0, 2, 0, 4}))
	f.Fuzz(func(t *testing.T, data []byte) { srvFuzz(t, data) })
}

// TestServerRandomWalk runs the fuzz body on seeded random walks biased
// towards success, so that normal test runs reach every phase.
func TestServerRandomWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for walk := 0; walk < 300; walk++ {
		data := srvFuzzLifecycle()
		for i := 0; i < 200; i++ {
			w := byte(0)
			if rng.IntN(8) == 0 {
				w = byte(rng.IntN(8)) // sometimes a wrong address or name
			}
			op := byte(rng.IntN(13))
			if op == 4 && rng.IntN(2) == 0 {
				w |= 2 // join-dht rather than leave-dht
			}
			data = append(data, op, byte(rng.IntN(7)), byte(rng.IntN(256)), w)
		}
		srvFuzz(t, data)
		if t.Failed() {
			t.Fatalf("walk %d failed", walk)
		}
	}
}

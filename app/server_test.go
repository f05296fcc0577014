package app

// Tests of the server state machine (server.go) driven through Step and Tick
// directly, without sockets: every FAILURE rule and success path of the nine
// commands (SPEC.md §3, assignment §1.1), the waits, the reply cache, the
// persist-before-send contract, restart and op-timeout rollback.
//
// Helpers and fixtures are prefixed srv so they do not collide with the other
// test files of the package.

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app/state"
	"dht/wire"
)

const srvTimeout = time.Minute

var srvT0 = time.Unix(1_700_000_000, 0)

// srvPorts gives every test user a fixed address on 10.0.0.1 (one host, one
// port per process: the assignment lets users share an IPv4 address).
var srvPorts = map[string]uint16{
	"alice": 5001, "bob": 5002, "carol": 5003, "dave": 5004,
	"erin": 5005, "frank": 5006, "grace": 5007, "heidi": 5008,
	"zed": 5099, // never registered by the fixtures
}

func srvAddr(name string) netip.AddrPort {
	p, ok := srvPorts[name]
	if !ok {
		panic("srvAddr: no address for test user " + name)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 1}), p)
}

// srvStranger is an address no fixture registers.
var srvStranger = netip.MustParseAddrPort("10.0.0.99:7000")

func srvConfig() ServerConfig { return srvCfg(rand.New(rand.NewPCG(1, 2))) }

// srvCfg draws the ring and the keys from r: a server built on a copy of
// r draws the same.
func srvCfg(r *rand.Rand) ServerConfig {
	return ServerConfig{OpTimeout: srvTimeout, Rand: r, Keys: KeysFrom(r), DeadAfter: srvDeadAfter}
}

// srvDeadAfter is the tests' --dead-after: long, so that users who send no
// alive stay live through the tests of other rules (server_heal_test.go
// tests what an offline member does to the DHT).
const srvDeadAfter = time.Hour

// srvFree is a registry of Free users and no DHT.
func srvFree(names ...string) state.ServerState {
	var st state.ServerState
	for _, n := range names {
		st.Users = append(st.Users, state.User{Name: n, Addr: srvAddr(n), State: state.Free, Secret: srvSecret(n)})
	}
	return st
}

// srvSecret is the secret the fixtures give user name.
func srvSecret(name string) wire.Key { return wire.Key(wire.MAC(wire.Key{0x5e}, []byte(name))) }

// srvDHT is a registry with a DHT in the given phase: ring[0] leads, the rest
// of ring are InDHT, free are registered Free users. A waiting phase started
// at srvT0.
func srvDHT(phase state.Phase, ring []string, free ...string) state.ServerState {
	st := srvFree(append(slices.Clone(ring), free...)...)
	for i := range st.Users {
		switch k := slices.Index(ring, st.Users[i].Name); {
		case k == 0:
			st.Users[i].State = state.Leader
		case k > 0:
			st.Users[i].State = state.InDHT
		}
	}
	st.DHT = state.DHT{Phase: phase, Leader: ring[0], Members: slices.Clone(ring)}
	switch phase {
	case state.PhaseBuilding, state.PhaseLeaving, state.PhaseTearing:
		st.DHT.Since = srvT0.UnixNano()
	}
	return st
}

// srvLeaving is a DHT waiting for dht-rebuilt from leaver.
func srvLeaving(ring []string, leaver string, free ...string) state.ServerState {
	st := srvDHT(state.PhaseLeaving, ring, free...)
	st.DHT.Leaver = leaver
	return st
}

// srvManyName is the i-th name of length n: "aaaa", "aaab", ...
func srvManyName(i, n int) string {
	b := []byte(strings.Repeat("a", n))
	for k := n - 1; k >= 0 && i > 0; k-- {
		b[k] = 'a' + byte(i%26)
		i /= 26
	}
	return string(b)
}

// srvMany is a registry of n Free users with names of nameLen letters, on
// addresses no other fixture uses.
func srvMany(n, nameLen int) state.ServerState {
	var st state.ServerState
	for i := 0; i < n; i++ {
		st.Users = append(st.Users, state.User{
			Name:   srvManyName(i, nameLen),
			Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i / 200), byte(i%200 + 1)}), uint16(6000+i)),
			State:  state.Free,
			Secret: srvSecret(srvManyName(i, nameLen)),
		})
	}
	return st
}

// srvNorm also forgets each user's LastSeen (a sign of life, not a change
// of state: the liveness tests look at it) and the credentials (random;
// the tests of auth.go look at them).
func srvNorm(st state.ServerState) state.ServerState {
	if len(st.Users) == 0 {
		st.Users = nil
	}
	st.Users = slices.Clone(st.Users)
	for i := range st.Users {
		st.Users[i].LastSeen, st.Users[i].Secret, st.Users[i].Seq = 0, wire.Key{}, 0
	}
	st.DHT.Epoch, st.DHT.KeyEpoch, st.DHT.RingKey = 0, 0, wire.Key{}
	if len(st.DHT.Members) == 0 {
		st.DHT.Members = nil
	}
	st.DHT.Epoch = 0 // TestServerEpoch checks them
	return st
}

// dhtNoEpoch is d but for its epoch, which TestServerEpoch checks.
func dhtNoEpoch(d state.DHT) state.DHT {
	d.Epoch, d.KeyEpoch, d.RingKey = 0, 0, wire.Key{}
	return d
}

func srvSameState(a, b state.ServerState) bool { return reflect.DeepEqual(srvNorm(a), srvNorm(b)) }

func srvNormReply(r wire.Reply) wire.Reply {
	if len(r.Members) == 0 {
		r.Members = nil
	}
	r.Epoch, r.Key, r.Tickets = 0, wire.Key{}, nil
	return r
}

func srvSameReply(a, b wire.Reply) bool {
	return reflect.DeepEqual(srvNormReply(a), srvNormReply(b))
}

func srvNormOuts(outs []Output) []Output {
	var n []Output
	for _, o := range outs {
		switch o := o.(type) {
		case PersistServer:
			o.State = srvNorm(o.State)
			n = append(n, o)
		case Send:
			if r, ok := o.Msg.(wire.Reply); ok {
				o.Msg = srvNormReply(r)
			}
			n = append(n, o)
		default:
			n = append(n, o)
		}
	}
	return n
}

func srvFind(st state.ServerState, name string) (state.User, bool) {
	for _, u := range st.Users {
		if u.Name == name {
			return u, true
		}
	}
	return state.User{}, false
}

func srvNames(st state.ServerState) []string {
	var n []string
	for _, u := range st.Users {
		n = append(n, u.Name)
	}
	return n
}

// srvStates checks the state of each named user.
func srvStates(t *testing.T, st state.ServerState, want map[string]state.State) {
	t.Helper()
	for name, w := range want {
		u, ok := srvFind(st, name)
		if !ok {
			t.Errorf("%s is not registered, want %s", name, w)
			continue
		}
		if u.State != w {
			t.Errorf("%s is %s, want %s", name, u.State, w)
		}
	}
}

// srvNoDHT checks that no DHT exists and every user is Free.
func srvNoDHT(t *testing.T, st state.ServerState) {
	t.Helper()
	if !reflect.DeepEqual(srvNorm(state.ServerState{DHT: st.DHT}).DHT, state.DHT{}) {
		t.Errorf("DHT = %+v, want none", st.DHT)
	}
	for _, u := range st.Users {
		if u.State != state.Free {
			t.Errorf("%s is %s, want Free", u.Name, u.State)
		}
	}
}

// srvH drives one server.
type srvH struct {
	t   *testing.T
	s   *Server
	now time.Time
	id  uint32
	seq uint64 // of the last datagram stepCame signed
}

func newSrvH(t *testing.T, st state.ServerState) *srvH {
	t.Helper()
	return &srvH{t: t, s: NewServer(srvConfig(), st, nil), now: srvT0, id: 1000}
}

func (h *srvH) nextID() uint32 { h.id++; return h.id }

// aliveAll sends an alive from every registered user, at h.now.
func (h *srvH) aliveAll() {
	h.t.Helper()
	for _, u := range h.s.Snapshot().Users {
		h.s.stepTrusted(h.now, u.Addr, wire.Header{Type: wire.TypeAlive, ID: h.nextID()}, wire.Alive{Name: u.Name})
	}
}

type srvResult struct {
	Reply   wire.Reply
	Persist *PersistServer
	Outs    []Output
}

// srvCheckOuts checks the shape of the outputs of one request: Events, at
// most one PersistServer (only for a SUCCESS of these unsigned requests, with
// the reply cached in it and the state after the step; a signed request's
// refusal is persisted too, for its number), and last the Send of the Reply
// to the sender with the request's id.
func srvCheckOuts(t *testing.T, s *Server, from netip.AddrPort, id uint32, outs []Output) srvResult {
	t.Helper()
	if len(outs) == 0 {
		t.Fatalf("request got no output at all")
	}
	// A rejoin may start a heal: its event and its heal message follow the
	// reply.
	var after []Output
	for len(outs) > 1 {
		if ev, ok := outs[len(outs)-1].(Event); ok && (strings.HasSuffix(ev.Msg, "DHT dissolved") || strings.HasPrefix(ev.Msg, "this server's file is older")) {
			after = append(after, ev) // a rejoin that ended a teardown, or named a newer ring
			outs = outs[:len(outs)-1]
			continue
		}
		last, ok := outs[len(outs)-1].(Send)
		if _, heal := last.Msg.(wire.Heal); !ok || !heal {
			break
		}
		after = append(after, outs[len(outs)-2:]...)
		outs = outs[:len(outs)-2]
	}
	send, ok := outs[len(outs)-1].(Send)
	if !ok {
		t.Fatalf("last output is %T, want Send: %#v", outs[len(outs)-1], outs)
	}
	if send.To != from || send.ID != id || send.Flags != 0 {
		t.Fatalf("Send to %s id %d flags %d, want to %s id %d flags 0", send.To, send.ID, send.Flags, from, id)
	}
	rep, ok := send.Msg.(wire.Reply)
	if !ok {
		t.Fatalf("Send carries %T, want wire.Reply", send.Msg)
	}
	if _, err := wire.Append(nil, id, 0, rep); err != nil {
		t.Errorf("reply does not encode: %v", err)
	}
	if !rep.OK && rep.Reason == "" {
		t.Errorf("FAILURE without a reason")
	}
	if rep.OK && rep.Reason != "" && !srvHealStarted(append(outs, after...)) {
		// Only a rejoin that makes the ring heal says why.
		t.Errorf("SUCCESS with a reason %q", rep.Reason)
	}
	res := srvResult{Reply: rep, Outs: append(outs, after...)}
	for i, o := range outs[:len(outs)-1] {
		switch o := o.(type) {
		case Event:
		case PersistServer:
			if res.Persist != nil {
				t.Fatalf("two PersistServer outputs: %#v", outs)
			}
			res.Persist = &o
		default:
			t.Fatalf("output %d is %T; a request yields only Events, PersistServer and one Send", i, o)
		}
	}
	if p := res.Persist; p != nil {
		if !rep.OK {
			t.Errorf("a FAILURE was persisted: %q", rep.Reason)
		}
		if p.Reply == nil {
			t.Fatalf("PersistServer without the reply to cache")
		}
		if p.Reply.Addr != from || p.Reply.ID != id {
			t.Errorf("cached reply for %s id %d, want %s id %d", p.Reply.Addr, p.Reply.ID, from, id)
		}
		dh, dm, err := wire.Decode(p.Reply.Datagram)
		if err != nil {
			t.Fatalf("cached reply datagram does not decode: %v", err)
		}
		if dr, ok := dm.(wire.Reply); dh.ID != id || !ok || !srvSameReply(dr, rep) {
			t.Errorf("cached reply is id %d %#v, want id %d %#v", dh.ID, dm, id, rep)
		}
		if !srvSameState(p.State, s.Snapshot()) {
			t.Errorf("persisted state\n%+v\nis not the state after the step\n%+v", p.State, s.Snapshot())
		}
	}
	return res
}

// step sends m from `from` with header id and checks the shape of the outputs.
func (h *srvH) step(from netip.AddrPort, id uint32, m wire.Message) srvResult {
	h.t.Helper()
	m = srvVouched(h.s, m)
	outs := h.s.stepTrusted(h.now, from, wire.Header{Type: m.Type(), ID: id}, m)
	return srvCheckOuts(h.t, h.s, from, id, outs)
}

// ok sends m from `from` with a fresh id and wants SUCCESS, persisted unless
// it is a query (which changes nothing).
func (h *srvH) ok(from netip.AddrPort, m wire.Message) srvResult {
	h.t.Helper()
	before := h.s.Snapshot()
	r := h.step(from, h.nextID(), m)
	if !r.Reply.OK {
		h.t.Fatalf("%T %+v from %s: FAILURE %q, want SUCCESS", m, m, from, r.Reply.Reason)
	}
	switch m.(type) {
	case wire.QueryDHT, wire.Tickets: // they read the state
		if r.Persist != nil {
			h.t.Errorf("%T emitted a PersistServer", m)
		}
		if !srvSameState(before, h.s.Snapshot()) {
			h.t.Errorf("%T changed the state", m)
		}
	default:
		if r.Persist == nil {
			h.t.Errorf("%T SUCCESS without a PersistServer before the Send", m)
		}
	}
	return r
}

// fail sends m from `from` with a fresh id and wants a FAILURE whose reason
// contains every want, nothing persisted and nothing changed.
func (h *srvH) fail(from netip.AddrPort, m wire.Message, want ...string) srvResult {
	h.t.Helper()
	before := h.s.Snapshot()
	r := h.step(from, h.nextID(), m)
	if r.Reply.OK {
		h.t.Fatalf("%T %+v from %s: SUCCESS, want FAILURE containing %q", m, m, from, want)
	}
	for _, w := range want {
		if !strings.Contains(r.Reply.Reason, w) {
			h.t.Errorf("reason %q does not contain %q", r.Reply.Reason, w)
		}
	}
	if len(r.Reply.Members) != 0 {
		h.t.Errorf("FAILURE lists members %v", r.Reply.Members)
	}
	if r.Persist != nil {
		h.t.Errorf("FAILURE emitted a PersistServer")
	}
	if after := h.s.Snapshot(); !srvSameState(before, after) {
		h.t.Errorf("FAILURE changed the state:\nbefore %+v\nafter  %+v", before, after)
	}
	return r
}

// srvCase is one request against a starting state.
type srvCase struct {
	name  string
	start state.ServerState
	from  netip.AddrPort
	msg   wire.Message
	fail  []string // substrings of the FAILURE reason; nil wants SUCCESS
	check func(t *testing.T, rep wire.Reply, st state.ServerState)
}

func runSrvCases(t *testing.T, cases []srvCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newSrvH(t, c.start)
			var r srvResult
			if c.fail != nil {
				r = h.fail(c.from, c.msg, c.fail...)
			} else {
				r = h.ok(c.from, c.msg)
			}
			if c.check != nil {
				c.check(t, r.Reply, h.s.Snapshot())
			}
		})
	}
}

func TestServerRegister(t *testing.T) {
	two := srvFree("alice", "bob")
	other := netip.MustParseAddrPort("10.0.0.2:6000")
	reg := func(name string, addr netip.AddrPort) srvCase {
		return srvCase{start: two, from: addr, msg: wire.Register{Name: name, Addr: addr}}
	}
	// regFrom registers an address no host sends from: the request comes
	// from another, and the address is what is refused.
	regFrom := func(name string, addr netip.AddrPort) srvCase {
		return srvCase{start: two, from: other, msg: wire.Register{Name: name, Addr: addr}}
	}
	okCheck := func(name string, addr netip.AddrPort, users int) func(*testing.T, wire.Reply, state.ServerState) {
		return func(t *testing.T, rep wire.Reply, st state.ServerState) {
			t.Helper()
			if len(rep.Members) != 0 {
				t.Errorf("register reply lists members %v", rep.Members)
			}
			u, ok := srvFind(st, name)
			if !ok || u.Addr != addr || u.State != state.Free {
				t.Errorf("%s = %+v (found %v), want Free at %s", name, u, ok, addr)
			}
			if len(st.Users) != users {
				t.Errorf("%d users, want %d", len(st.Users), users)
			}
		}
	}
	withCheck := func(c srvCase, name string, f func(*testing.T, wire.Reply, state.ServerState)) srvCase {
		c.name, c.check = name, f
		return c
	}
	withFail := func(c srvCase, name string, want ...string) srvCase {
		c.name, c.fail = name, want
		return c
	}
	cases := []srvCase{
		withCheck(reg("carol", srvAddr("carol")), "new user on a shared IPv4 address", okCheck("carol", srvAddr("carol"), 3)),
		withCheck(reg("abcdefghijklmno", other), "15 letters", okCheck("abcdefghijklmno", other, 3)),
		withCheck(reg("X", other), "one letter", okCheck("X", other, 3)),
		withCheck(reg("MiXeDcAsE", other), "mixed case", okCheck("MiXeDcAsE", other, 3)),
		withCheck(srvCase{start: srvDHT(state.PhaseReady, []string{"alice", "bob"}), from: srvAddr("carol"),
			msg: wire.Register{Name: "carol", Addr: srvAddr("carol")}}, "while a DHT is ready", okCheck("carol", srvAddr("carol"), 3)),
		withCheck(srvCase{start: srvMany(MaxUsers-1, 4), from: srvAddr("carol"),
			msg: wire.Register{Name: "carol", Addr: srvAddr("carol")}}, "last free slot", okCheck("carol", srvAddr("carol"), MaxUsers)),

		withFail(reg("", other), "empty name", "invalid user name"),
		withFail(reg("abcdefghijklmnop", other), "16 letters", "invalid user name"),
		withFail(reg("bob2", other), "digits", "invalid user name"),
		withFail(reg("12345", other), "only digits", "invalid user name"),
		withFail(reg("jos\u00e9", other), "non-ASCII letter", "invalid user name"),
		withFail(reg("\u00e9", other), "single non-ASCII letter", "invalid user name"),
		withFail(reg("a b", other), "space", "invalid user name"),
		withFail(reg("a_b", other), "underscore", "invalid user name"),
		withFail(reg("a-b", other), "hyphen", "invalid user name"),
		withFail(reg("nul\x00", other), "NUL byte", "invalid user name"),

		withFail(srvCase{start: two, from: srvStranger, msg: wire.Register{Name: "carol", Addr: srvAddr("carol")}},
			"sent from another host", "must be sent from", srvAddr("carol").String(), srvStranger.String()),
		withFail(srvCase{start: two, from: netip.MustParseAddrPort("10.0.0.1:5999"), msg: wire.Register{Name: "carol", Addr: srvAddr("carol")}},
			"sent from another port of the same host", "must be sent from"),
		withFail(srvCase{start: two, from: srvAddr("alice"), msg: wire.Register{Name: "carol", Addr: srvAddr("carol")}},
			"sent from another user's address", "must be sent from"),

		withFail(reg("alice", other), "duplicate name", "alice is already registered", "choose another name"),
		withFail(reg("carol", srvAddr("alice")), "duplicate address", "already registered by alice", "another port"),

		withFail(regFrom("carol", netip.MustParseAddrPort("0.0.0.0:5003")), "unspecified IPv4", "invalid address", "any address"),
		withFail(reg("carol", netip.MustParseAddrPort("10.0.0.1:0")), "port 0", "invalid address"),
		withFail(regFrom("carol", netip.MustParseAddrPort("0.0.0.0:0")), "unspecified IPv4 and port 0", "invalid address"),
		withFail(regFrom("carol", netip.MustParseAddrPort("[::1]:5003")), "IPv6", "invalid address"),
		withFail(regFrom("carol", netip.AddrPort{}), "zero address", "invalid address"),
		withFail(regFrom("carol", netip.MustParseAddrPort("255.255.255.255:20031")), "broadcast", "invalid address 255.255.255.255:20031", "broadcast"),
		withFail(regFrom("carol", netip.MustParseAddrPort("224.0.0.1:20031")), "multicast", "invalid address 224.0.0.1:20031", "multicast"),
		withFail(regFrom("carol", netip.MustParseAddrPort("239.255.255.250:1900")), "multicast, last block", "multicast"),
		withFail(regFrom("carol", netip.MustParseAddrPort("0.1.2.3:5003")), "this network", "0.0.0.0/8"),
		withFail(regFrom("carol", netip.MustParseAddrPort("240.0.0.1:5003")), "reserved", "240.0.0.0/4"),

		withFail(srvCase{start: srvMany(MaxUsers, 4), from: srvAddr("carol"), msg: wire.Register{Name: "carol", Addr: srvAddr("carol")}},
			"MaxUsers full", "registry is full"),
	}
	runSrvCases(t, cases)
}

// A request whose source is no host's (forged) is dropped: no answer goes
// to a group or to a whole link, and nothing changes.
func TestServerDropsNonUnicastSources(t *testing.T) {
	for _, src := range []string{"255.255.255.255:20031", "224.0.0.1:20031", "0.0.0.0:20031"} {
		t.Run(src, func(t *testing.T) {
			from := netip.MustParseAddrPort(src)
			s := NewServer(srvConfig(), srvFree("alice", "bob"), nil)
			outs := s.stepTrusted(srvT0, from, wire.Header{Type: wire.TypeRegister, ID: 1}, wire.Register{Name: "carol", Addr: from})
			if len(outs) != 1 {
				t.Fatalf("outputs %#v; want one Event", outs)
			}
			if ev, ok := outs[0].(Event); !ok || !strings.Contains(ev.Msg, "not a unicast") {
				t.Fatalf("output %#v; want an Event saying the source is not unicast", outs[0])
			}
			if _, ok := srvFind(s.Snapshot(), "carol"); ok {
				t.Fatal("carol was registered")
			}
		})
	}
}

// A register without a cookie, as every peer's first is, gets a challenge
// and changes nothing; it is traced at the info level, not as a warning of
// a datagram dropped, and counted with the drops so that a flood of them
// is summarised.
func TestServerChallengeIsNotAWarning(t *testing.T) {
	s := NewServer(srvConfig(), srvFree("alice", "bob"), nil)
	from := srvAddr("carol")
	outs := s.Step(srvT0, from, wire.Header{Type: wire.TypeRegister, ID: 1}, wire.Register{Name: "carol", Addr: from})
	if len(outs) != 2 {
		t.Fatalf("outputs %#v; want an Event and a Challenge", outs)
	}
	ev, ok := outs[0].(Event)
	if !ok || ev.Level != slog.LevelInfo || !ev.Drop || strings.HasPrefix(ev.Msg, "dropped") || !strings.Contains(ev.Msg, "challenged") {
		t.Errorf("event %#v; want an info line saying the register was challenged, counted with the drops", outs[0])
	}
	if snd, ok := outs[1].(Send); !ok || snd.To != from || snd.Msg.Type() != wire.TypeChallenge {
		t.Errorf("output %#v; want a Challenge to the register's source", outs[1])
	}
	if _, ok := srvFind(s.Snapshot(), "carol"); ok {
		t.Fatal("carol was registered without a cookie")
	}
}

// A register's cookie is good for the window it was made in and the one
// after (cookieWindow each), so that a challenge answered as a window
// turns is taken; one answered later than that is challenged again, and
// the new cookie registers.
func TestServerTakesACookieOfTheWindowBefore(t *testing.T) {
	from := srvAddr("carol")
	reg := wire.Register{Name: "carol", Addr: from}
	// The last millisecond of a window: the answer comes in the next one.
	start := time.Unix(0, (srvT0.UnixNano()/int64(cookieWindow)+1)*int64(cookieWindow)).Add(cookieWindow - time.Millisecond)
	answer := func(s *Server, cookie wire.Tag, at time.Time) (wire.Challenge, *wire.Reply) {
		withCookie := reg
		withCookie.Cookie = cookie
		for _, o := range s.Step(at, from, wire.Header{Type: wire.TypeRegister, ID: 2}, withCookie) {
			if snd, ok := o.(Send); ok {
				switch msg := snd.Msg.(type) {
				case wire.Challenge:
					return msg, nil
				case wire.Reply:
					return wire.Challenge{}, &msg
				}
			}
		}
		t.Fatal("neither a challenge nor a reply")
		return wire.Challenge{}, nil
	}
	challenge := func(s *Server) wire.Tag {
		c, r := answer(s, wire.Tag{}, start)
		if r != nil {
			t.Fatalf("a register without a cookie was answered %+v", *r)
		}
		return c.Cookie
	}
	s := NewServer(srvConfig(), srvFree("alice"), nil)
	if _, r := answer(s, challenge(s), start.Add(2*time.Millisecond)); r == nil || !r.OK {
		t.Fatalf("the cookie of the window before got %+v, want SUCCESS", r)
	}
	s = NewServer(srvConfig(), srvFree("alice"), nil)
	again, r := answer(s, challenge(s), start.Add(cookieWindow+2*time.Millisecond))
	if r != nil {
		t.Fatalf("a cookie two windows old got %+v, want a challenge", *r)
	}
	if _, r := answer(s, again.Cookie, start.Add(cookieWindow+3*time.Millisecond)); r == nil || !r.OK {
		t.Fatalf("the new cookie got %+v, want SUCCESS", r)
	}
}

// A register's cookie is acted on once (SPEC §7: a replayed request is
// never run again): the register that brought it back, sent again with
// another id (an unsigned register's id is not signed), gets a challenge,
// not a new secret that would lock the user's peer out; nor does a
// rejoin's (a peer on a new file, registered anew); and after a
// deregister it gets a challenge, not the registration back. A new
// challenge's cookie registers the name again at once.
func TestServerTakesACookieOnce(t *testing.T) {
	s := NewServer(srvConfig(), srvFree("alice", "bob"), nil)
	from := srvAddr("carol")
	reg := wire.Register{Name: "carol", Addr: from}
	now := srvT0
	id := uint32(0)
	send := func(m wire.Register) (wire.Challenge, *wire.Reply) {
		t.Helper()
		id++
		now = now.Add(time.Second)
		for _, o := range s.Step(now, from, wire.Header{Type: wire.TypeRegister, ID: id}, m) {
			if snd, ok := o.(Send); ok {
				switch msg := snd.Msg.(type) {
				case wire.Challenge:
					return msg, nil
				case wire.Reply:
					return wire.Challenge{}, &msg
				}
			}
		}
		t.Fatalf("register %+v: neither a challenge nor a reply", m)
		return wire.Challenge{}, nil
	}
	register := func() wire.Register {
		t.Helper()
		c, r := send(reg)
		if r != nil {
			t.Fatalf("a register without a cookie was answered %+v", *r)
		}
		withCookie := reg
		withCookie.Cookie = c.Cookie
		if _, r := send(withCookie); r == nil || !r.OK || r.Key.IsZero() {
			t.Fatalf("the register with its cookie got %+v, want SUCCESS with a secret", r)
		}
		return withCookie
	}
	secret := func() wire.Key {
		u, ok := srvFind(s.Snapshot(), "carol")
		if !ok {
			return wire.Key{}
		}
		return u.Secret
	}

	used := register()
	first := secret()
	if _, r := send(used); r != nil {
		t.Fatalf("the register sent again with its cookie got %+v; want a challenge", *r)
	}
	if secret() != first {
		t.Fatal("the register sent again changed carol's secret")
	}
	// A rejoin by cookie (carol's peer on a new file): a new secret, once.
	rejoin := register()
	second := secret()
	if second == first {
		t.Fatal("the rejoin by cookie kept the old secret")
	}
	if _, r := send(rejoin); r != nil {
		t.Fatalf("the rejoin sent again with its cookie got %+v; want a challenge", *r)
	}
	if secret() != second {
		t.Fatal("the rejoin sent again changed carol's secret")
	}

	s.stepTrusted(now, from, wire.Header{Type: wire.TypeDeregister, ID: 99}, wire.Deregister{Name: "carol"})
	if _, ok := srvFind(s.Snapshot(), "carol"); ok {
		t.Fatal("carol is still registered")
	}
	if _, r := send(used); r != nil {
		t.Fatalf("after the deregister, the register sent again got %+v; want a challenge", *r)
	}
	if _, ok := srvFind(s.Snapshot(), "carol"); ok {
		t.Fatal("the register sent again registered carol")
	}
	register()
	if secret().IsZero() || secret() == first || secret() == second {
		t.Fatal("carol registered again without a new secret")
	}
}

// The names whose deregister the cookies remember stay bounded: past
// maxRemoved names deregistered within two cookie windows, the server
// forgets them all and every cookie made for a name not registered is
// refused (its register challenged again), so a replay of one is still
// not acted on; a fresh challenge's cookie registers at once.
func TestServerRemembersBoundedRemovals(t *testing.T) {
	s := NewServer(srvConfig(), state.ServerState{}, nil)
	now := srvT0
	from := netip.MustParseAddrPort("10.9.0.1:5000")
	reg := wire.Register{Name: "zed", Addr: from}
	challenge := func() wire.Tag {
		t.Helper()
		for _, o := range s.Step(now, from, wire.Header{Type: wire.TypeRegister, ID: 1}, reg) {
			if snd, ok := o.(Send); ok {
				if c, ok := snd.Msg.(wire.Challenge); ok {
					return c.Cookie
				}
			}
		}
		t.Fatal("no challenge")
		return wire.Tag{}
	}
	early := challenge() // zed's cookie, before the churn
	for i := range maxRemoved + 1 {
		name := "u" + string(rune('a'+i/676%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i%26))
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, byte(i >> 8), byte(i)}), 5000)
		s.stepTrusted(now, addr, wire.Header{Type: wire.TypeRegister, ID: 1}, wire.Register{Name: name, Addr: addr})
		s.stepTrusted(now, addr, wire.Header{Type: wire.TypeDeregister, ID: 2}, wire.Deregister{Name: name})
	}
	if len(s.removed) > maxRemoved || len(s.users) != 0 {
		t.Fatalf("%d removals remembered (at most %d), %d users", len(s.removed), maxRemoved, len(s.users))
	}
	withEarly := reg
	withEarly.Cookie = early
	for _, o := range s.Step(now, from, wire.Header{Type: wire.TypeRegister, ID: 2}, withEarly) {
		if snd, ok := o.(Send); ok {
			if _, ok := snd.Msg.(wire.Reply); ok {
				t.Fatalf("a cookie made before the removals overflowed was taken: %#v", snd)
			}
		}
	}
	fresh := reg
	fresh.Cookie = challenge()
	var got *wire.Reply
	for _, o := range s.Step(now, from, wire.Header{Type: wire.TypeRegister, ID: 3}, fresh) {
		if snd, ok := o.(Send); ok {
			if r, ok := snd.Msg.(wire.Reply); ok {
				got = &r
			}
		}
	}
	if got == nil || !got.OK {
		t.Fatalf("a fresh cookie after the overflow got %+v", got)
	}
}

// srvCheckSetup checks a setup-dht SUCCESS: n distinct members, leader first,
// registered addresses, states Leader/InDHT/Free, phase Building since now.
func srvCheckSetup(leader string, n int) func(*testing.T, wire.Reply, state.ServerState) {
	return func(t *testing.T, rep wire.Reply, st state.ServerState) {
		t.Helper()
		if len(rep.Members) != n {
			t.Fatalf("reply lists %d members, want %d", len(rep.Members), n)
		}
		if rep.Members[0].Name != leader {
			t.Errorf("first member is %s, want the leader %s", rep.Members[0].Name, leader)
		}
		var names []string
		for _, m := range rep.Members {
			u, ok := srvFind(st, m.Name)
			if !ok {
				t.Errorf("member %s is not registered", m.Name)
				continue
			}
			if m.Addr != u.Addr {
				t.Errorf("member %s at %s, registered at %s", m.Name, m.Addr, u.Addr)
			}
			if slices.Contains(names, m.Name) {
				t.Errorf("member %s listed twice", m.Name)
			}
			names = append(names, m.Name)
		}
		want := state.DHT{Phase: state.PhaseBuilding, Leader: leader, Members: names, Since: srvT0.UnixNano()}
		if !reflect.DeepEqual(dhtNoEpoch(st.DHT), want) {
			t.Errorf("DHT = %+v, want %+v", st.DHT, want)
		}
		// A new ring, and a ticket for every member listed, from the
		// first, that gives that member (and only it) the ring's key.
		if st.DHT.Epoch == 0 || st.DHT.Epoch != rep.Epoch || st.DHT.KeyEpoch != st.DHT.Epoch || rep.KeyEpoch != st.DHT.KeyEpoch || st.DHT.RingKey.IsZero() {
			t.Errorf("epoch %d (reply %d), key epoch %d (reply %d), key %x", st.DHT.Epoch, rep.Epoch, st.DHT.KeyEpoch, rep.KeyEpoch, st.DHT.RingKey)
		}
		if len(rep.Tickets) == 0 && n <= 8 || len(rep.Tickets) > n {
			t.Errorf("%d tickets for %d members", len(rep.Tickets), n)
		}
		for i, tk := range rep.Tickets {
			u, _ := srvFind(st, names[i])
			if ringKeyOf(u.Secret, rep.KeyEpoch, tk) != st.DHT.RingKey {
				t.Errorf("ticket %d does not give %s the ring key", i, names[i])
			}
			if i > 0 && ringKeyOf(st.Users[0].Secret, rep.KeyEpoch, tk) == st.DHT.RingKey && st.Users[0].Name != names[i] {
				t.Errorf("ticket %d gives %s's ring key to %s", i, names[i], st.Users[0].Name)
			}
		}
		for _, u := range st.Users {
			want := state.Free
			switch {
			case u.Name == leader:
				want = state.Leader
			case slices.Contains(names, u.Name):
				want = state.InDHT
			}
			if u.State != want {
				t.Errorf("%s is %s, want %s", u.Name, u.State, want)
			}
		}
	}
}

func TestServerSetupDHT(t *testing.T) {
	four := srvFree("alice", "bob", "carol", "dave")
	one := srvFree("alice")
	ready := srvDHT(state.PhaseReady, []string{"alice", "bob"}, "carol", "dave")
	setup := func(name string, n uint16) wire.SetupDHT { return wire.SetupDHT{N: n, Name: name} }
	cases := []srvCase{
		{name: "n=2", start: four, from: srvAddr("alice"), msg: setup("alice", 2), check: srvCheckSetup("alice", 2)},
		{name: "n=3", start: four, from: srvAddr("bob"), msg: setup("bob", 3), check: srvCheckSetup("bob", 3)},
		{name: "n equals the number of users", start: four, from: srvAddr("dave"), msg: setup("dave", 4), check: srvCheckSetup("dave", 4)},
		{name: "n=MaxRing", start: srvMany(MaxRing, 4), from: srvMany(MaxRing, 4).Users[5].Addr,
			msg: setup(srvManyName(5, 4), MaxRing), check: srvCheckSetup(srvManyName(5, 4), MaxRing)},

		{name: "unregistered", start: four, from: srvAddr("zed"), msg: setup("zed", 2), fail: []string{"zed is not registered"}},
		{name: "invalid name", start: four, from: srvStranger, msg: setup("b0b", 2), fail: []string{"invalid user name"}},
		{name: "from another user's address", start: four, from: srvAddr("bob"), msg: setup("alice", 2),
			fail: []string{"must come from its registered address", srvAddr("alice").String()}},
		{name: "from an unknown address", start: four, from: srvStranger, msg: setup("alice", 2), fail: []string{"must come from"}},
		{name: "n=0", start: four, from: srvAddr("alice"), msg: setup("alice", 0), fail: []string{"ring size N must be a whole number from 2 to 64"}},
		{name: "n=1", start: four, from: srvAddr("alice"), msg: setup("alice", 1), fail: []string{"ring size N must be a whole number from 2 to 64"}},
		{name: "n=MaxRing+1", start: srvMany(MaxRing+1, 4), from: srvMany(MaxRing+1, 4).Users[0].Addr,
			msg: setup(srvManyName(0, 4), MaxRing+1), fail: []string{"ring size N must be a whole number from 2 to 64, got 65"}},
		{name: "n=65535", start: four, from: srvAddr("alice"), msg: setup("alice", 65535), fail: []string{"from 2 to 64, got 65535"}},
		{name: "fewer users than n", start: four, from: srvAddr("alice"), msg: setup("alice", 5), fail: []string{"only 4 users are registered, 5 needed"}},
		{name: "one user", start: one, from: srvAddr("alice"), msg: setup("alice", 2), fail: []string{"only 1 user is registered, 2 needed"}},
		{name: "DHT already exists, from a Free user", start: ready, from: srvAddr("carol"), msg: setup("carol", 2), fail: []string{"DHT already exists"}},
		{name: "DHT already exists, from its leader", start: ready, from: srvAddr("alice"), msg: setup("alice", 2), fail: []string{"DHT already exists"}},
	}
	runSrvCases(t, cases)
}

func TestServerSetupDHTDeterministicAndRandom(t *testing.T) {
	st := srvFree("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
	ring := func(seed uint64) string {
		s := NewServer(srvCfg(rand.New(rand.NewPCG(seed, 2))), st, nil)
		outs := s.stepTrusted(srvT0, srvAddr("alice"), wire.Header{ID: 1}, wire.SetupDHT{N: 3, Name: "alice"})
		return strings.Join(s.Snapshot().DHT.Members, ",") + "|" + outs[len(outs)-1].(Send).Msg.(wire.Reply).Members[1].Name
	}
	t.Run("same seed, same ring", func(t *testing.T) {
		if r1, r2 := ring(1), ring(1); r1 != r2 {
			t.Errorf("seed 1 gave %s then %s", r1, r2)
		}
	})
	t.Run("members are drawn at random", func(t *testing.T) {
		seen := map[string]bool{}
		for seed := uint64(1); seed <= 20; seed++ {
			seen[ring(seed)] = true
		}
		if len(seen) < 3 {
			t.Errorf("20 seeds gave only %d distinct rings: %v", len(seen), seen)
		}
	})
}

func TestServerDHTComplete(t *testing.T) {
	building := srvDHT(state.PhaseBuilding, []string{"alice", "bob", "carol"}, "dave")
	cases := []srvCase{
		{name: "leader", start: building, from: srvAddr("alice"), msg: wire.DHTComplete{Name: "alice"},
			check: func(t *testing.T, _ wire.Reply, st state.ServerState) {
				want := state.DHT{Phase: state.PhaseReady, Leader: "alice", Members: []string{"alice", "bob", "carol"}}
				if !reflect.DeepEqual(dhtNoEpoch(st.DHT), want) {
					t.Errorf("DHT = %+v, want %+v", st.DHT, want)
				}
				srvStates(t, st, map[string]state.State{"alice": state.Leader, "bob": state.InDHT, "carol": state.InDHT, "dave": state.Free})
			}},
		{name: "member that is not the leader", start: building, from: srvAddr("bob"), msg: wire.DHTComplete{Name: "bob"}, fail: []string{"bob is not the leader", "alice"}},
		{name: "Free user", start: building, from: srvAddr("dave"), msg: wire.DHTComplete{Name: "dave"}, fail: []string{"dave is not the leader"}},
		{name: "unregistered", start: building, from: srvAddr("zed"), msg: wire.DHTComplete{Name: "zed"}, fail: []string{"zed is not registered"}},
		{name: "leader's name from another address", start: building, from: srvAddr("bob"), msg: wire.DHTComplete{Name: "alice"}, fail: []string{"must come from"}},
		{name: "no setup-dht", start: srvFree("alice", "bob"), from: srvAddr("alice"), msg: wire.DHTComplete{Name: "alice"}, fail: []string{"no DHT is being set up"}},
		{name: "no setup-dht, a name no register makes", start: srvFree("alice", "bob"), from: srvAddr("alice"), msg: wire.DHTComplete{Name: "1"}, fail: []string{`invalid user name "1"`}},
		{name: "a name no register makes while the server waits", start: building, from: srvAddr("dave"), msg: wire.TeardownDHT{Name: "d4ve"}, fail: []string{`invalid user name "d4ve"`}},
		{name: "DHT already complete", start: srvDHT(state.PhaseReady, []string{"alice", "bob"}), from: srvAddr("alice"),
			msg: wire.DHTComplete{Name: "alice"}, fail: []string{"no DHT is being set up"}},
	}
	runSrvCases(t, cases)
}

func TestServerQueryDHT(t *testing.T) {
	ready := srvDHT(state.PhaseReady, []string{"alice", "bob", "carol"}, "dave", "erin")
	inRing := func(t *testing.T, rep wire.Reply, st state.ServerState) {
		t.Helper()
		if len(rep.Members) != 1 {
			t.Fatalf("reply lists %d members, want 1", len(rep.Members))
		}
		m := rep.Members[0]
		if !slices.Contains(st.DHT.Members, m.Name) || m.Addr != srvAddr(m.Name) {
			t.Errorf("query answered %+v, not a member of %v at its address", m, st.DHT.Members)
		}
	}
	cases := []srvCase{
		{name: "Free user", start: ready, from: srvAddr("dave"), msg: wire.QueryDHT{Name: "dave"}, check: inRing},
		{name: "ring of one", start: srvDHT(state.PhaseReady, []string{"bob"}, "alice"), from: srvAddr("alice"), msg: wire.QueryDHT{Name: "alice"},
			check: func(t *testing.T, rep wire.Reply, _ state.ServerState) {
				if want := []wire.Member{{Name: "bob", Addr: srvAddr("bob")}}; !reflect.DeepEqual(rep.Members, want) {
					t.Errorf("members %v, want %v", rep.Members, want)
				}
			}},
		{name: "no DHT", start: srvFree("alice", "bob"), from: srvAddr("alice"), msg: wire.QueryDHT{Name: "alice"}, fail: []string{"no DHT exists"}},
		{name: "leader", start: ready, from: srvAddr("alice"), msg: wire.QueryDHT{Name: "alice"}, fail: []string{"only Free users may query", "Leader"}},
		{name: "InDHT member", start: ready, from: srvAddr("bob"), msg: wire.QueryDHT{Name: "bob"}, fail: []string{"only Free users may query", "InDHT"}},
		{name: "unregistered", start: ready, from: srvAddr("zed"), msg: wire.QueryDHT{Name: "zed"}, fail: []string{"zed is not registered"}},
		{name: "invalid name", start: ready, from: srvStranger, msg: wire.QueryDHT{Name: "z3d"}, fail: []string{"invalid user name"}},
		{name: "from another user's address", start: ready, from: srvAddr("erin"), msg: wire.QueryDHT{Name: "dave"}, fail: []string{"must come from"}},
	}
	runSrvCases(t, cases)

	t.Run("answers spread over the ring", func(t *testing.T) {
		h := newSrvH(t, ready)
		seen := map[string]int{}
		for i := 0; i < 60; i++ {
			r := h.ok(srvAddr("dave"), wire.QueryDHT{Name: "dave"})
			inRing(t, r.Reply, h.s.Snapshot())
			seen[r.Reply.Members[0].Name]++
		}
		if len(seen) != 3 {
			t.Errorf("60 queries reached %v, want every member of the ring", seen)
		}
	})
}

func TestServerLeaveDHT(t *testing.T) {
	ready := srvDHT(state.PhaseReady, []string{"alice", "bob", "carol", "dave"}, "erin")
	leaving := func(leaver string) func(*testing.T, wire.Reply, state.ServerState) {
		return func(t *testing.T, _ wire.Reply, st state.ServerState) {
			want := state.DHT{Phase: state.PhaseLeaving, Leader: "alice", Members: []string{"alice", "bob", "carol", "dave"},
				Leaver: leaver, Since: srvT0.UnixNano()}
			if !reflect.DeepEqual(dhtNoEpoch(st.DHT), want) {
				t.Errorf("DHT = %+v, want %+v", st.DHT, want)
			}
			srvStates(t, st, map[string]state.State{"alice": state.Leader, "bob": state.InDHT, "carol": state.InDHT, "dave": state.InDHT, "erin": state.Free})
		}
	}
	cases := []srvCase{
		{name: "InDHT member", start: ready, from: srvAddr("bob"), msg: wire.LeaveDHT{Name: "bob"}, check: leaving("bob")},
		{name: "leader", start: ready, from: srvAddr("alice"), msg: wire.LeaveDHT{Name: "alice"}, check: leaving("alice")},
		{name: "ring of two", start: srvDHT(state.PhaseReady, []string{"alice", "bob"}), from: srvAddr("bob"), msg: wire.LeaveDHT{Name: "bob"},
			check: func(t *testing.T, _ wire.Reply, st state.ServerState) {
				if st.DHT.Phase != state.PhaseLeaving || st.DHT.Leaver != "bob" {
					t.Errorf("DHT = %+v, want bob leaving", st.DHT)
				}
			}},
		{name: "no DHT", start: srvFree("alice", "bob"), from: srvAddr("alice"), msg: wire.LeaveDHT{Name: "alice"}, fail: []string{"no DHT exists"}},
		{name: "not a member", start: ready, from: srvAddr("erin"), msg: wire.LeaveDHT{Name: "erin"}, fail: []string{"erin does not maintain the DHT"}},
		{name: "ring of one node", start: srvDHT(state.PhaseReady, []string{"alice"}, "bob"), from: srvAddr("alice"), msg: wire.LeaveDHT{Name: "alice"},
			fail: []string{"only node", "teardown-dht"}},
		{name: "unregistered", start: ready, from: srvAddr("zed"), msg: wire.LeaveDHT{Name: "zed"}, fail: []string{"zed is not registered"}},
		{name: "member's name from another address", start: ready, from: srvAddr("erin"), msg: wire.LeaveDHT{Name: "bob"}, fail: []string{"must come from"}},
	}
	runSrvCases(t, cases)
}

// srvReady checks that a request left the DHT ready, led by leader, with
// members in ring order, and the users in states.
func srvReady(leader string, members []string, states map[string]state.State) func(*testing.T, wire.Reply, state.ServerState) {
	return func(t *testing.T, _ wire.Reply, st state.ServerState) {
		t.Helper()
		want := state.DHT{Phase: state.PhaseReady, Leader: leader, Members: members}
		if !reflect.DeepEqual(dhtNoEpoch(st.DHT), want) {
			t.Errorf("DHT = %+v, want %+v", st.DHT, want)
		}
		srvStates(t, st, states)
	}
}

func TestServerDHTRebuilt(t *testing.T) {
	ring := []string{"alice", "bob", "carol", "dave"}
	bobLeaving := srvLeaving(ring, "bob", "erin")
	rebuilt := srvReady
	const F, L, I = state.Free, state.Leader, state.InDHT
	cases := []srvCase{
		{name: "middle node leaves, right neighbour leads", start: bobLeaving, from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "carol"},
			check: rebuilt("carol", []string{"carol", "dave", "alice"},
				map[string]state.State{"alice": I, "bob": F, "carol": L, "dave": I, "erin": F})},
		{name: "middle node leaves, another member leads", start: bobLeaving, from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "dave"},
			check: rebuilt("dave", []string{"dave", "alice", "carol"},
				map[string]state.State{"alice": I, "bob": F, "carol": I, "dave": L, "erin": F})},
		{name: "last node leaves, leader unchanged", start: srvLeaving(ring, "dave", "erin"), from: srvAddr("dave"), msg: wire.DHTRebuilt{Name: "dave", NewLeader: "alice"},
			check: rebuilt("alice", []string{"alice", "bob", "carol"},
				map[string]state.State{"alice": L, "bob": I, "carol": I, "dave": F, "erin": F})},
		{name: "leader leaves", start: srvLeaving(ring, "alice", "erin"), from: srvAddr("alice"), msg: wire.DHTRebuilt{Name: "alice", NewLeader: "bob"},
			check: rebuilt("bob", []string{"bob", "carol", "dave"},
				map[string]state.State{"alice": F, "bob": L, "carol": I, "dave": I, "erin": F})},
		{name: "ring of two shrinks to one", start: srvLeaving([]string{"alice", "bob"}, "bob"), from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "alice"},
			check: rebuilt("alice", []string{"alice"}, map[string]state.State{"alice": L, "bob": F})},
		{name: "leader of two leaves", start: srvLeaving([]string{"alice", "bob"}, "alice"), from: srvAddr("alice"), msg: wire.DHTRebuilt{Name: "alice", NewLeader: "bob"},
			check: rebuilt("bob", []string{"bob"}, map[string]state.State{"alice": F, "bob": L})},

		{name: "from a member that did not leave", start: bobLeaving, from: srvAddr("carol"), msg: wire.DHTRebuilt{Name: "carol", NewLeader: "dave"},
			fail: []string{"carol did not ask to leave", "bob"}},
		{name: "from the leader that did not leave", start: bobLeaving, from: srvAddr("alice"), msg: wire.DHTRebuilt{Name: "alice", NewLeader: "carol"},
			fail: []string{"alice did not ask to leave"}},
		{name: "from a Free user", start: bobLeaving, from: srvAddr("erin"), msg: wire.DHTRebuilt{Name: "erin", NewLeader: "carol"},
			fail: []string{"erin did not ask to leave"}},
		{name: "leaver's name from another address", start: bobLeaving, from: srvAddr("carol"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "carol"},
			fail: []string{"must come from"}},
		{name: "unregistered", start: bobLeaving, from: srvAddr("zed"), msg: wire.DHTRebuilt{Name: "zed", NewLeader: "carol"},
			fail: []string{"zed is not registered"}},
		{name: "new leader is a Free non-member", start: bobLeaving, from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "erin"},
			fail: []string{"not a remaining member"}},
		{name: "new leader is unregistered", start: bobLeaving, from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "zed"},
			fail: []string{"not a remaining member"}},
		{name: "new leader is the leaver", start: bobLeaving, from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "bob"},
			fail: []string{"not a remaining member"}},
		{name: "new leader is empty", start: bobLeaving, from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: ""},
			fail: []string{`invalid user name ""`}},
		// A name no register could make is said first, whatever the state
		// (a new-user review: 'dht-rebuilt ab c9' was told no leave was in
		// progress).
		{name: "no leave-dht in progress, a new leader no register makes", start: srvDHT(state.PhaseReady, ring), from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "c9"},
			fail: []string{`invalid user name "c9"`}},
		{name: "no leave-dht in progress", start: srvDHT(state.PhaseReady, ring), from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "carol"},
			fail: []string{"no leave-dht or join-dht is in progress"}},
		{name: "no DHT", start: srvFree("alice", "bob"), from: srvAddr("bob"), msg: wire.DHTRebuilt{Name: "bob", NewLeader: "alice"},
			fail: []string{"no leave-dht or join-dht is in progress"}},
	}
	runSrvCases(t, cases)
}

func TestServerDeregister(t *testing.T) {
	ready := srvDHT(state.PhaseReady, []string{"alice", "bob"}, "carol")
	gone := func(name string, rest ...string) func(*testing.T, wire.Reply, state.ServerState) {
		return func(t *testing.T, _ wire.Reply, st state.ServerState) {
			if got := srvNames(st); !slices.Equal(got, rest) {
				t.Errorf("users %v, want %v", got, rest)
			}
		}
	}
	cases := []srvCase{
		{name: "Free user while a DHT exists", start: ready, from: srvAddr("carol"), msg: wire.Deregister{Name: "carol"}, check: gone("carol", "alice", "bob")},
		{name: "last user", start: srvFree("alice"), from: srvAddr("alice"), msg: wire.Deregister{Name: "alice"}, check: gone("alice")},
		{name: "leader", start: ready, from: srvAddr("alice"), msg: wire.Deregister{Name: "alice"}, fail: []string{"alice maintains the DHT", "Leader"}},
		{name: "InDHT member", start: ready, from: srvAddr("bob"), msg: wire.Deregister{Name: "bob"}, fail: []string{"bob maintains the DHT", "InDHT"}},
		{name: "unregistered", start: ready, from: srvAddr("zed"), msg: wire.Deregister{Name: "zed"}, fail: []string{"zed is not registered"}},
		{name: "from another user's address", start: ready, from: srvAddr("alice"), msg: wire.Deregister{Name: "carol"}, fail: []string{"must come from"}},
	}
	runSrvCases(t, cases)

	t.Run("name and address can be registered again", func(t *testing.T) {
		h := newSrvH(t, ready)
		h.ok(srvAddr("carol"), wire.Deregister{Name: "carol"})
		h.ok(srvAddr("carol"), wire.Register{Name: "carol", Addr: srvAddr("carol")})
		h.ok(srvAddr("carol"), wire.Register{Name: "carol", Addr: srvAddr("carol")}) // a rejoin
		h.ok(srvAddr("carol"), wire.Deregister{Name: "carol"})
		// Another user on the freed address, and carol elsewhere.
		h.ok(srvAddr("carol"), wire.Register{Name: "dave", Addr: srvAddr("carol")})
		h.ok(srvStranger, wire.Register{Name: "carol", Addr: srvStranger})
		st := h.s.Snapshot()
		if u, _ := srvFind(st, "dave"); u.Addr != srvAddr("carol") {
			t.Errorf("dave at %s, want %s", u.Addr, srvAddr("carol"))
		}
		if u, _ := srvFind(st, "carol"); u.Addr != srvStranger {
			t.Errorf("carol at %s, want %s", u.Addr, srvStranger)
		}
	})
}

func TestServerTeardownDHT(t *testing.T) {
	ready := srvDHT(state.PhaseReady, []string{"alice", "bob", "carol"}, "dave")
	cases := []srvCase{
		{name: "leader", start: ready, from: srvAddr("alice"), msg: wire.TeardownDHT{Name: "alice"},
			check: func(t *testing.T, _ wire.Reply, st state.ServerState) {
				want := state.DHT{Phase: state.PhaseTearing, Leader: "alice", Members: []string{"alice", "bob", "carol"}, Since: srvT0.UnixNano()}
				if !reflect.DeepEqual(dhtNoEpoch(st.DHT), want) {
					t.Errorf("DHT = %+v, want %+v", st.DHT, want)
				}
				srvStates(t, st, map[string]state.State{"alice": state.Leader, "bob": state.InDHT, "carol": state.InDHT, "dave": state.Free})
			}},
		{name: "leader of a ring of one", start: srvDHT(state.PhaseReady, []string{"alice"}, "bob"), from: srvAddr("alice"), msg: wire.TeardownDHT{Name: "alice"}},
		{name: "InDHT member", start: ready, from: srvAddr("bob"), msg: wire.TeardownDHT{Name: "bob"}, fail: []string{"bob is not the leader", "alice"}},
		{name: "Free user", start: ready, from: srvAddr("dave"), msg: wire.TeardownDHT{Name: "dave"}, fail: []string{"dave is not the leader"}},
		{name: "no DHT", start: srvFree("alice", "bob"), from: srvAddr("alice"), msg: wire.TeardownDHT{Name: "alice"}, fail: []string{"no DHT exists"}},
		{name: "unregistered", start: ready, from: srvAddr("zed"), msg: wire.TeardownDHT{Name: "zed"}, fail: []string{"zed is not registered"}},
		{name: "leader's name from another address", start: ready, from: srvAddr("dave"), msg: wire.TeardownDHT{Name: "alice"}, fail: []string{"must come from"}},
	}
	runSrvCases(t, cases)
}

func TestServerTeardownComplete(t *testing.T) {
	tearing := srvDHT(state.PhaseTearing, []string{"alice", "bob", "carol"}, "dave")
	cases := []srvCase{
		{name: "leader", start: tearing, from: srvAddr("alice"), msg: wire.TeardownComplete{Name: "alice"},
			check: func(t *testing.T, _ wire.Reply, st state.ServerState) {
				srvNoDHT(t, st)
				if got := srvNames(st); !slices.Equal(got, []string{"alice", "bob", "carol", "dave"}) {
					t.Errorf("users %v, want all four still registered", got)
				}
			}},
		{name: "InDHT member", start: tearing, from: srvAddr("bob"), msg: wire.TeardownComplete{Name: "bob"}, fail: []string{"bob is not the leader", "alice"}},
		{name: "Free user", start: tearing, from: srvAddr("dave"), msg: wire.TeardownComplete{Name: "dave"}, fail: []string{"dave is not the leader"}},
		{name: "unregistered", start: tearing, from: srvAddr("zed"), msg: wire.TeardownComplete{Name: "zed"}, fail: []string{"zed is not registered"}},
		{name: "leader's name from another address", start: tearing, from: srvAddr("bob"), msg: wire.TeardownComplete{Name: "alice"}, fail: []string{"must come from"}},
		{name: "no teardown-dht in progress", start: srvDHT(state.PhaseReady, []string{"alice", "bob"}), from: srvAddr("alice"),
			msg: wire.TeardownComplete{Name: "alice"}, fail: []string{"no teardown-dht is in progress"}},
		{name: "no DHT", start: srvFree("alice"), from: srvAddr("alice"), msg: wire.TeardownComplete{Name: "alice"}, fail: []string{"no teardown-dht is in progress"}},
	}
	runSrvCases(t, cases)
}

// srvWaits are the four waits, with who the server waits for.
var srvWaits = []struct {
	name    string
	start   state.ServerState
	waitFor string // text the FAILURE must contain
	// awaited is the message that ends the wait, from the user it awaits.
	awaitedFrom string
	awaited     wire.Message
	// wrongUser is the awaited message type from another member.
	wrongFrom string
	wrong     wire.Message
}{
	{"setup-dht", srvDHT(state.PhaseBuilding, []string{"alice", "bob", "carol"}, "dave", "erin"),
		"waiting for dht-complete from alice", "alice", wire.DHTComplete{Name: "alice"}, "bob", wire.DHTComplete{Name: "bob"}},
	{"leave-dht", srvLeaving([]string{"alice", "bob", "carol"}, "bob", "dave", "erin"),
		"waiting for dht-rebuilt from bob", "bob", wire.DHTRebuilt{Name: "bob", NewLeader: "carol"}, "carol", wire.DHTRebuilt{Name: "carol", NewLeader: "alice"}},
	{"teardown-dht", srvDHT(state.PhaseTearing, []string{"alice", "bob", "carol"}, "dave", "erin"),
		"waiting for teardown-complete from alice", "alice", wire.TeardownComplete{Name: "alice"}, "bob", wire.TeardownComplete{Name: "bob"}},
	{"join-dht", srvJoining([]string{"alice", "bob", "carol"}, "dave", "erin"),
		"waiting for dht-rebuilt from dave (join-dht in progress)", "dave", wire.DHTRebuilt{Name: "dave", NewLeader: "alice"}, "carol", wire.DHTRebuilt{Name: "carol", NewLeader: "alice"}},
}

func TestServerWaiting(t *testing.T) {
	// Every request but the awaited one, from members, Free users,
	// strangers and the initiator itself.
	requests := []struct {
		name string
		from netip.AddrPort
		msg  wire.Message
	}{
		{"register new user", srvAddr("grace"), wire.Register{Name: "grace", Addr: srvAddr("grace")}},
		{"register invalid name", srvStranger, wire.Register{Name: "b0b", Addr: srvStranger}},
		{"setup-dht by Free user", srvAddr("dave"), wire.SetupDHT{N: 2, Name: "dave"}},
		{"setup-dht by leader", srvAddr("alice"), wire.SetupDHT{N: 2, Name: "alice"}},
		{"query-dht by Free user", srvAddr("dave"), wire.QueryDHT{Name: "dave"}},
		{"query-dht by unregistered", srvAddr("zed"), wire.QueryDHT{Name: "zed"}},
		{"leave-dht by member", srvAddr("carol"), wire.LeaveDHT{Name: "carol"}},
		{"leave-dht by leader", srvAddr("alice"), wire.LeaveDHT{Name: "alice"}},
		{"deregister Free user", srvAddr("erin"), wire.Deregister{Name: "erin"}},
		{"teardown-dht by leader", srvAddr("alice"), wire.TeardownDHT{Name: "alice"}},
		{"join-dht by Free user", srvAddr("erin"), wire.JoinDHT{Name: "erin"}},
	}
	others := []wire.Message{
		wire.DHTComplete{Name: "alice"},
		wire.DHTRebuilt{Name: "bob", NewLeader: "carol"},
		wire.TeardownComplete{Name: "alice"},
	}
	for _, w := range srvWaits {
		t.Run(w.name, func(t *testing.T) {
			for _, r := range requests {
				t.Run(r.name, func(t *testing.T) {
					h := newSrvH(t, w.start)
					h.fail(r.from, r.msg, w.waitFor)
				})
			}
			for _, m := range others {
				if m.Type() == w.awaited.Type() {
					continue
				}
				t.Run("other completion "+m.Type().String(), func(t *testing.T) {
					h := newSrvH(t, w.start)
					h.fail(srvAddr(map[wire.Type]string{wire.TypeDHTComplete: "alice", wire.TypeDHTRebuilt: "bob", wire.TypeTeardownComplete: "alice"}[m.Type()]),
						m, w.waitFor)
				})
			}
			t.Run("awaited message from another member is refused", func(t *testing.T) {
				h := newSrvH(t, w.start)
				h.fail(srvAddr(w.wrongFrom), w.wrong, w.wrongFrom)
			})
			t.Run("a rejoin is taken and the wait goes on", func(t *testing.T) {
				// A register from a user's own address is its process
				// come back (SPEC §5, resume): the one request a wait
				// does not refuse, since a member restarted during the
				// command must be able to rejoin for the command to end.
				h := newSrvH(t, w.start)
				h.ok(srvAddr("erin"), wire.Register{Name: "erin", Addr: srvAddr("erin")})
				if !h.s.Snapshot().DHT.Phase.Waiting() {
					t.Errorf("a Free user's rejoin ended the wait")
				}
				h.fail(srvAddr("dave"), wire.QueryDHT{Name: "dave"}, w.waitFor)
			})
			t.Run("awaited message ends the wait", func(t *testing.T) {
				h := newSrvH(t, w.start)
				h.ok(srvAddr(w.awaitedFrom), w.awaited)
				if h.s.Snapshot().DHT.Phase.Waiting() {
					t.Errorf("still waiting after the awaited message")
				}
				// Other requests are served again.
				h.ok(srvAddr("grace"), wire.Register{Name: "grace", Addr: srvAddr("grace")})
			})
		})
	}
}

// The brief for this suite (and SPEC §3: "While the server waits ..., it
// answers FAILURE (saying what it is waiting for) to every other request")
// wants the awaited command sent by the wrong user to say what the server is
// waiting for, like every other request does.
func TestServerWaitingAwaitedFromWrongUserSaysWhat(t *testing.T) {
	for _, w := range srvWaits {
		t.Run(w.name, func(t *testing.T) {
			h := newSrvH(t, w.start)
			h.fail(srvAddr(w.wrongFrom), w.wrong, w.waitFor)
		})
	}
}

func TestServerRetransmit(t *testing.T) {
	t.Run("a request sent again and again is answered maxAgain times a second", func(t *testing.T) {
		// A red-team review: a user that sent its own query-dht 43,540
		// times in 3 s got as many answers, and the server wrote three
		// lines of trace for each.
		s := NewServer(srvConfig(), srvFree("alice"), nil)
		b, err := wire.AppendSigned(nil, 7, 0, wire.QueryDHT{Name: "alice"}, 5, srvSecret("alice"))
		if err != nil {
			t.Fatal(err)
		}
		h, q, err := wire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if r := srvCheckOuts(t, s, srvAddr("alice"), 7, s.Step(srvT0, srvAddr("alice"), h, q)); r.Reply.Reason == "" {
			t.Fatalf("query-dht with no DHT: %+v; want FAILURE", r.Reply)
		}
		for _, at := range []time.Duration{0, 100 * time.Millisecond, time.Second} {
			answered, dropped := 0, 0
			for range 3 * maxAgain {
				out := s.Step(srvT0.Add(at), srvAddr("alice"), h, q)
				// Every copy is traced as a drop (its receive at the
				// debug level, a flood summarised), an answer as a
				// quiet send: a replay from the sender's address wrote
				// three lines a copy for as long as it went on.
				if ev, ok := firstOutput(out).(Event); !ok || !ev.Drop {
					t.Fatalf("at %v: a copy traced as %+v; want a drop first", at, firstOutput(out))
				}
				sent := false
				for _, o := range out {
					if o, ok := o.(Send); ok {
						if !o.Quiet {
							t.Fatalf("at %v: a copy answered with a send traced one by one", at)
						}
						sent = true
					}
				}
				if sent {
					answered++
				} else {
					dropped++
				}
			}
			want := maxAgain
			if at == 100*time.Millisecond {
				want = 0 // the same second: its answers are spent
			}
			if answered != want || dropped != 3*maxAgain-want {
				t.Fatalf("at %v: %d copies answered, %d dropped; want %d answered, the rest dropped", at, answered, dropped, want)
			}
		}
	})
	t.Run("register twice with the same id answers SUCCESS twice and runs once", func(t *testing.T) {
		h := newSrvH(t, srvFree("alice"))
		reg := wire.Register{Name: "carol", Addr: srvAddr("carol")}
		first := h.step(srvAddr("carol"), 7, reg)
		if !first.Reply.OK || first.Persist == nil {
			t.Fatalf("first register: %+v persisted=%v", first.Reply, first.Persist != nil)
		}
		st := h.s.Snapshot()
		for i := 0; i < 3; i++ {
			again := h.step(srvAddr("carol"), 7, reg)
			if !srvSameReply(again.Reply, first.Reply) || again.Reply.Key != first.Reply.Key {
				t.Errorf("retransmission answered %+v, want %+v", again.Reply, first.Reply)
			}
			if again.Persist != nil {
				t.Errorf("retransmission persisted again")
			}
			if !srvSameState(st, h.s.Snapshot()) {
				t.Errorf("retransmission changed the state")
			}
		}
		// A new id runs again: a rejoin, with a new secret.
		r := h.step(srvAddr("carol"), 8, reg)
		if !r.Reply.OK || r.Persist == nil || r.Reply.Key.IsZero() || r.Reply.Key == first.Reply.Key {
			t.Errorf("new id: %+v, want a rejoin with a new secret", r.Reply)
		}
	})

	t.Run("setup-dht retransmission returns the same ring without drawing again", func(t *testing.T) {
		st := srvFree("alice", "bob", "carol", "dave", "erin", "frank")
		h, twin := newSrvH(t, st), newSrvH(t, st)
		setup := wire.SetupDHT{N: 3, Name: "alice"}
		first := h.step(srvAddr("alice"), 9, setup)
		twin.step(srvAddr("alice"), 9, setup)
		snap := h.s.Snapshot()
		again := h.step(srvAddr("alice"), 9, setup)
		if !first.Reply.OK || !srvSameReply(again.Reply, first.Reply) || again.Persist != nil {
			t.Fatalf("retransmitted setup-dht answered %+v (persisted %v), want %+v", again.Reply, again.Persist != nil, first.Reply)
		}
		if !srvSameState(snap, h.s.Snapshot()) {
			t.Errorf("retransmission changed the state")
		}
		// The random source was not touched: queries pick like the twin's.
		for _, x := range []*srvH{h, twin} {
			x.ok(srvAddr("alice"), wire.DHTComplete{Name: "alice"})
		}
		free := ""
		for _, u := range snap.Users {
			if u.State == state.Free {
				free = u.Name
				break
			}
		}
		for i := 0; i < 10; i++ {
			p1 := h.ok(srvAddr(free), wire.QueryDHT{Name: free}).Reply
			p2 := twin.ok(srvAddr(free), wire.QueryDHT{Name: free}).Reply
			if !srvSameReply(p1, p2) {
				t.Fatalf("query %d picked %v, the twin without the retransmission %v", i, p1.Members, p2.Members)
			}
		}
	})

	t.Run("query retransmission returns the same member", func(t *testing.T) {
		h := newSrvH(t, srvDHT(state.PhaseReady, []string{"alice", "bob", "carol", "dave", "erin"}, "frank"))
		first := h.step(srvAddr("frank"), 20, wire.QueryDHT{Name: "frank"})
		for i := 0; i < 10; i++ {
			if again := h.step(srvAddr("frank"), 20, wire.QueryDHT{Name: "frank"}); !srvSameReply(again.Reply, first.Reply) {
				t.Fatalf("retransmission %d answered %v, first %v", i, again.Reply.Members, first.Reply.Members)
			}
		}
	})

	t.Run("a FAILURE is cached too", func(t *testing.T) {
		h := newSrvH(t, srvFree("alice", "dave"))
		setup := wire.SetupDHT{N: 3, Name: "dave"}
		first := h.step(srvAddr("dave"), 5, setup)
		if first.Reply.OK || !strings.Contains(first.Reply.Reason, "only 2 users") {
			t.Fatalf("setup-dht 3 with two users: %+v", first.Reply)
		}
		// A third user makes setup-dht 3 possible, but a retransmission of
		// the old request is still the same request: same answer, no DHT.
		h.ok(srvAddr("erin"), wire.Register{Name: "erin", Addr: srvAddr("erin")})
		again := h.step(srvAddr("dave"), 5, setup)
		if !srvSameReply(again.Reply, first.Reply) {
			t.Errorf("retransmission answered %+v, want the cached %+v", again.Reply, first.Reply)
		}
		if st := h.s.Snapshot(); st.DHT.Phase != state.PhaseNone {
			t.Errorf("retransmitted FAILURE built a DHT: %+v", st.DHT)
		}
		if fresh := h.step(srvAddr("dave"), 6, setup); !fresh.Reply.OK {
			t.Errorf("new id: %+v, want SUCCESS", fresh.Reply)
		}
	})

	t.Run("same id from another sender is a new request", func(t *testing.T) {
		h := newSrvH(t, srvFree())
		for _, n := range []string{"alice", "bob"} {
			if r := h.step(srvAddr(n), 7, wire.Register{Name: n, Addr: srvAddr(n)}); !r.Reply.OK || r.Persist == nil {
				t.Errorf("register %s id 7: %+v", n, r.Reply)
			}
		}
		if got := srvNames(h.s.Snapshot()); !slices.Equal(got, []string{"alice", "bob"}) {
			t.Errorf("users %v", got)
		}
	})

	t.Run("only the last request of a sender is cached", func(t *testing.T) {
		h := newSrvH(t, srvFree())
		h.step(srvAddr("carol"), 7, wire.QueryDHT{Name: "carol"})
		h.step(srvAddr("carol"), 8, wire.Register{Name: "carol", Addr: srvAddr("carol")})
		r := h.step(srvAddr("carol"), 7, wire.QueryDHT{Name: "carol"})
		if r.Reply.OK || !strings.Contains(r.Reply.Reason, "no DHT exists") {
			t.Errorf("old id after a newer request: %+v, want it run again (FAILURE no DHT, not the cached not registered)", r.Reply)
		}
	})

	t.Run("header id is echoed", func(t *testing.T) {
		h := newSrvH(t, srvFree("alice"))
		for _, id := range []uint32{0, 1, 0xdeadbeef, 0xffffffff} {
			h.step(srvAddr("alice"), id, wire.QueryDHT{Name: "alice"}) // step checks Send.ID == id
		}
		h.step(srvAddr("bob"), 0xffffffff, wire.Register{Name: "bob", Addr: srvAddr("bob")})
	})
}

// TestServerPersistBeforeSend walks a whole life cycle and checks, for every
// request, that a state-changing SUCCESS emits exactly one PersistServer,
// immediately before the Send, with the reply cached in it, and that
// FAILUREs and queries emit none.
func TestServerPersistBeforeSend(t *testing.T) {
	h := newSrvH(t, srvFree())
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		h.ok(srvAddr(n), wire.Register{Name: n, Addr: srvAddr(n)})
	}
	steps := []struct {
		from    string
		msg     wire.Message
		persist bool
	}{
		{"alice", wire.SetupDHT{N: 4, Name: "alice"}, true},
		{"bob", wire.QueryDHT{Name: "bob"}, false}, // FAILURE: waiting
		{"alice", wire.DHTComplete{Name: "alice"}, true},
		{"bob", wire.LeaveDHT{Name: "bob"}, true},
		{"alice", wire.TeardownDHT{Name: "alice"}, false}, // FAILURE: waiting
	}
	for _, s := range steps {
		id := h.nextID()
		r := h.step(srvAddr(s.from), id, s.msg)
		n := 0
		for _, o := range r.Outs {
			if _, ok := o.(PersistServer); ok {
				n++
			}
		}
		want := 0
		if s.persist {
			want = 1
		}
		if n != want {
			t.Errorf("%T: %d PersistServer, want %d", s.msg, n, want)
		}
		if s.persist {
			p, ok := r.Outs[len(r.Outs)-2].(PersistServer)
			if !ok || p.Reply == nil || p.Reply.ID != id {
				t.Errorf("%T: output before the Send is %#v, want the PersistServer caching reply %d", s.msg, r.Outs[len(r.Outs)-2], id)
			}
		}
	}
	// Finish the leave: bob's right neighbour leads.
	ring := h.s.Snapshot().DHT.Members
	i := slices.Index(ring, "bob")
	next := ring[(i+1)%len(ring)]
	h.ok(srvAddr("bob"), wire.DHTRebuilt{Name: "bob", NewLeader: next})
	h.ok(srvAddr(next), wire.TeardownDHT{Name: next})
	h.ok(srvAddr(next), wire.TeardownComplete{Name: next})
	h.ok(srvAddr("bob"), wire.Deregister{Name: "bob"})
	srvNoDHT(t, h.s.Snapshot())
}

// srvPersisted is what a runner would have written from PersistServer
// outputs: the last state and the last cached reply per client.
type srvPersisted struct {
	state   state.ServerState
	replies map[netip.AddrPort]state.CachedReply
}

func (p *srvPersisted) apply(outs []Output) {
	for _, o := range outs {
		if ps, ok := o.(PersistServer); ok {
			p.state = ps.State
			for _, a := range ps.Forget {
				if ps.Reply == nil || a != ps.Reply.Addr {
					delete(p.replies, a)
				}
			}
			if ps.Reply != nil {
				p.replies[ps.Reply.Addr] = *ps.Reply
			}
		}
	}
}

func (p *srvPersisted) cached() []state.CachedReply {
	var r []state.CachedReply
	for _, c := range p.replies {
		r = append(r, c)
	}
	slices.SortFunc(r, func(x, y state.CachedReply) int { return x.Addr.Compare(y.Addr) })
	return r
}

// srvClonePCG copies a PCG's state, so that a restarted server draws the
// same numbers as the one that keeps running.
func srvClonePCG(t *testing.T, p *rand.PCG) *rand.PCG {
	t.Helper()
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &rand.PCG{}
	if err := c.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return c
}

type srvReq struct {
	from string
	id   uint32
	msg  wire.Message
}

func TestServerRestart(t *testing.T) {
	pcg := rand.NewPCG(1, 2)
	orig := NewServer(srvCfg(rand.New(pcg)), state.ServerState{}, nil)
	p := &srvPersisted{replies: map[netip.AddrPort]state.CachedReply{}}
	p.state = orig.Snapshot()
	names := []string{"alice", "bob", "carol", "dave", "erin"}
	regIDs := map[string]uint32{}
	for i, n := range names {
		regIDs[n] = uint32(100 + i)
		outs := orig.stepTrusted(srvT0, srvAddr(n), wire.Header{ID: regIDs[n]}, wire.Register{Name: n, Addr: srvAddr(n)})
		p.apply(outs)
	}
	setup := srvReq{"alice", 200, wire.SetupDHT{N: 3, Name: "alice"}}
	setupOuts := orig.stepTrusted(srvT0, srvAddr(setup.from), wire.Header{ID: setup.id}, setup.msg)
	p.apply(setupOuts)
	setupReply := setupOuts[len(setupOuts)-1].(Send).Msg.(wire.Reply)

	restart := func(t *testing.T) *Server {
		t.Helper()
		s := NewServer(srvCfg(rand.New(srvClonePCG(t, pcg))), p.state, p.cached())
		if !srvSameState(s.Snapshot(), orig.Snapshot()) {
			t.Fatalf("restarted state\n%+v\nwant\n%+v", s.Snapshot(), orig.Snapshot())
		}
		d1, ok1 := s.NextDeadline()
		d2, ok2 := orig.NextDeadline()
		if !d1.Equal(d2) || ok1 != ok2 {
			t.Errorf("restarted deadline %v %v, want %v %v", d1, ok1, d2, ok2)
		}
		return s
	}

	t.Run("cached replies survive: retransmissions are not run again", func(t *testing.T) {
		s := restart(t)
		for _, n := range []string{"bob", "erin"} {
			outs := s.stepTrusted(srvT0, srvAddr(n), wire.Header{ID: regIDs[n]}, wire.Register{Name: n, Addr: srvAddr(n)})
			r := srvCheckOuts(t, s, srvAddr(n), regIDs[n], outs)
			if !r.Reply.OK || r.Persist != nil {
				t.Errorf("retransmitted register %s after restart: %+v persisted=%v, want the cached SUCCESS", n, r.Reply, r.Persist != nil)
			}
		}
		outs := s.stepTrusted(srvT0, srvAddr("alice"), wire.Header{ID: setup.id}, setup.msg)
		if r := srvCheckOuts(t, s, srvAddr("alice"), setup.id, outs); !srvSameReply(r.Reply, setupReply) || r.Persist != nil {
			t.Errorf("retransmitted setup-dht after restart: %+v, want the cached %+v", r.Reply, setupReply)
		}
		if !srvSameState(s.Snapshot(), p.state) {
			t.Errorf("retransmissions after restart changed the state")
		}
	})

	t.Run("continues identically", func(t *testing.T) {
		s := restart(t)
		// orig keeps running; from here both get the same requests.
		st := orig.Snapshot()
		leader, member, free := st.DHT.Members[0], st.DHT.Members[1], ""
		for _, u := range st.Users {
			if u.State == state.Free {
				free = u.Name
			}
		}
		script := []srvReq{
			setup, // retransmission
			{"alice", 201, wire.DHTComplete{Name: "alice"}},
			{free, 300, wire.QueryDHT{Name: free}},
			{free, 301, wire.QueryDHT{Name: free}},
			{free, 301, wire.QueryDHT{Name: free}},
			{member, 400, wire.LeaveDHT{Name: member}},
			{member, 401, wire.DHTRebuilt{Name: member, NewLeader: leader}},
			{free, 302, wire.QueryDHT{Name: free}},
			{leader, 202, wire.TeardownDHT{Name: leader}},
			{leader, 203, wire.TeardownComplete{Name: leader}},
			{member, 402, wire.Deregister{Name: member}},
			{member, 402, wire.Deregister{Name: member}},
			{member, 403, wire.Register{Name: member, Addr: srvAddr(member)}},
		}
		for i, r := range script {
			msg := srvVouched(s, r.msg)
			o1 := orig.stepTrusted(srvT0, srvAddr(r.from), wire.Header{ID: r.id}, msg)
			o2 := s.stepTrusted(srvT0, srvAddr(r.from), wire.Header{ID: r.id}, msg)
			res := srvCheckOuts(t, s, srvAddr(r.from), r.id, o2)
			if !reflect.DeepEqual(srvNormOuts(o1), srvNormOuts(o2)) {
				t.Fatalf("step %d %T: running server\n%#v\nrestarted server\n%#v", i, r.msg, o1, o2)
			}
			if !res.Reply.OK {
				t.Errorf("step %d %T %+v: FAILURE %q", i, r.msg, r.msg, res.Reply.Reason)
			}
		}
		if !srvSameState(orig.Snapshot(), s.Snapshot()) {
			t.Errorf("final states differ")
		}
	})

	t.Run("wait in progress rolls back after restart", func(t *testing.T) {
		s := NewServer(srvCfg(rand.New(rand.NewPCG(1, 2))), p.state, p.cached())
		if outs := s.Tick(srvT0.Add(srvTimeout - time.Nanosecond)); len(outs) != 0 {
			t.Errorf("Tick before the deadline: %#v", outs)
		}
		if outs := s.Tick(srvT0.Add(srvTimeout)); len(outs) != 2 {
			t.Errorf("Tick at the deadline after restart: %#v, want Event and PersistServer", outs)
		}
		srvNoDHT(t, s.Snapshot())
	})
}

func TestServerTick(t *testing.T) {
	for _, w := range srvWaits {
		if w.name == "join-dht" || w.name == "leave-dht" {
			continue // heals round the joiner or leaver: TestServerJoinOrLeaveTimeoutHealsRoundIt
		}
		awaitedFailure := map[string]string{
			"setup-dht":    "no DHT is being set up",
			"leave-dht":    "no leave-dht or join-dht is in progress",
			"join-dht":     "no leave-dht or join-dht is in progress",
			"teardown-dht": "no teardown-dht is in progress",
		}[w.name]
		for _, late := range []time.Duration{0, time.Hour} {
			name := w.name + " at the deadline"
			if late > 0 {
				name = w.name + " long after the deadline"
			}
			t.Run(name, func(t *testing.T) {
				h := newSrvH(t, w.start)
				deadline := srvT0.Add(srvTimeout)
				if d, ok := h.s.NextDeadline(); !ok || !d.Equal(deadline) {
					t.Fatalf("NextDeadline = %v %v, want %v", d, ok, deadline)
				}
				before := h.s.Snapshot()
				for _, at := range []time.Time{srvT0, deadline.Add(-time.Nanosecond)} {
					if outs := h.s.Tick(at); len(outs) != 0 {
						t.Errorf("Tick(%v) before the deadline: %#v", at.Sub(srvT0), outs)
					}
				}
				if !srvSameState(before, h.s.Snapshot()) {
					t.Fatalf("Tick before the deadline changed the state")
				}

				h.now = deadline.Add(late)
				h.aliveAll() // online: the op timeout, not liveness, ends the wait
				if late > 0 {
					// A Tick that late means the server did not run
					// meanwhile: it waits drainWait for what waited on
					// its socket (a completion may be there) first.
					outs := h.s.Tick(h.now)
					if len(outs) != 1 || !strings.HasPrefix(outs[0].(Event).Msg, "late:") || !srvSameState(before, h.s.Snapshot()) {
						t.Fatalf("a Tick an hour late: %#v; want one Event saying it waits, and nothing changed", outs)
					}
					if d, ok := h.s.NextDeadline(); !ok || !d.Equal(h.now.Add(drainWait)) {
						t.Fatalf("NextDeadline after a late Tick = %v %v, want drainWait later", d, ok)
					}
					h.now = h.now.Add(drainWait)
					if late >= h.s.Pace() {
						// Stopped longer than an alive period: what its
						// users sent may have been dropped (a full
						// queue); it waits until each has sent again.
						h.now = deadline.Add(late + h.s.Pace())
					}
				}
				outs := h.s.Tick(h.now)
				var events, persists int
				for _, o := range outs {
					switch o := o.(type) {
					case Event:
						events++
						if o.Msg == "" {
							t.Errorf("empty Event")
						}
					case PersistServer:
						persists++
						if o.Reply != nil {
							t.Errorf("rollback caches a reply: %+v", o.Reply)
						}
						if !srvSameState(o.State, h.s.Snapshot()) {
							t.Errorf("rollback persisted %+v, state is %+v", o.State, h.s.Snapshot())
						}
					default:
						t.Errorf("Tick output %T", o)
					}
				}
				if events != 1 || persists != 1 {
					t.Fatalf("Tick at the deadline: %#v, want one Event and one PersistServer", outs)
				}
				st := h.s.Snapshot()
				srvNoDHT(t, st)
				if got := srvNames(st); !slices.Equal(got, srvNames(before)) {
					t.Errorf("users after rollback %v, want %v", got, srvNames(before))
				}
				if _, ok := h.s.NextDeadline(); ok {
					t.Errorf("still a deadline after rollback")
				}
				if outs := h.s.Tick(h.now.Add(time.Hour)); len(outs) != 0 {
					t.Errorf("second Tick: %#v", outs)
				}

				// Later answers explain the rollback.
				h.fail(srvAddr(w.awaitedFrom), w.awaited, awaitedFailure, "rolled back")
				h.fail(srvAddr("dave"), wire.QueryDHT{Name: "dave"}, "no DHT exists", "rolled back", "op-timeout")
				h.fail(srvAddr("bob"), wire.LeaveDHT{Name: "bob"}, "no DHT exists", "rolled back")
				h.fail(srvAddr("alice"), wire.TeardownDHT{Name: "alice"}, "no DHT exists", "rolled back")

				// Every former member is Free again: usable for a new DHT.
				h.ok(srvAddr("bob"), wire.Deregister{Name: "bob"})
				h.aliveAll() // silent through the wait: offline without this
				h.ok(srvAddr("carol"), wire.SetupDHT{N: 4, Name: "carol"})
				h.ok(srvAddr("carol"), wire.DHTComplete{Name: "carol"})
				h.ok(srvAddr("carol"), wire.TeardownDHT{Name: "carol"})
				h.ok(srvAddr("carol"), wire.TeardownComplete{Name: "carol"})
				// A new DHT forgets the old rollback.
				r := h.fail(srvAddr("dave"), wire.QueryDHT{Name: "dave"}, "no DHT exists")
				if strings.Contains(r.Reply.Reason, "rolled back") {
					t.Errorf("reason %q still mentions the old rollback", r.Reply.Reason)
				}
			})
		}
	}

	t.Run("nothing to do", func(t *testing.T) {
		for _, st := range []state.ServerState{srvFree(), srvFree("alice"), srvDHT(state.PhaseReady, []string{"alice", "bob"})} {
			s := NewServer(srvConfig(), st, nil)
			if _, ok := s.NextDeadline(); ok {
				t.Errorf("phase %s has a deadline", st.DHT.Phase)
			}
			if outs := s.Tick(srvT0.Add(100 * time.Hour)); len(outs) != 0 {
				t.Errorf("phase %s: Tick = %#v", st.DHT.Phase, outs)
			}
			if !srvSameState(s.Snapshot(), st) {
				t.Errorf("phase %s: Tick changed the state", st.DHT.Phase)
			}
		}
	})

	t.Run("default op timeout", func(t *testing.T) {
		s := NewServer(ServerConfig{}, srvDHT(state.PhaseBuilding, []string{"alice", "bob"}), nil)
		if d, ok := s.NextDeadline(); !ok || !d.Equal(srvT0.Add(DefaultOpTimeout)) {
			t.Errorf("NextDeadline = %v %v, want %v", d, ok, srvT0.Add(DefaultOpTimeout))
		}
	})
}

func TestServerNonRequest(t *testing.T) {
	member := wire.Member{Name: "bob", Addr: srvAddr("bob")}
	msgs := []wire.Message{
		wire.Ack{},
		wire.Reply{OK: true},
		wire.SetID{ID: 1, N: 2, Left: member, Right: member},
		wire.Store{N: 2},
		wire.Flush{Leader: "alice", N: 2},
		wire.Query{ReqID: 1, Querier: member, LongName: "Aruba"},
		wire.QueryResult{ReqID: 1, Node: "bob"},
		wire.Teardown{Origin: "alice"},
		wire.ResetID{Origin: "bob", N: 2},
		wire.ResetLeft{Left: member},
		wire.ResetRight{Right: member},
		wire.RebuildDHT{Leaver: member},
		wire.Rebuilt{OK: true, NewLeader: "bob"},
	}
	for _, m := range msgs {
		t.Run(m.Type().String(), func(t *testing.T) {
			st := srvDHT(state.PhaseBuilding, []string{"alice", "bob"}, "carol")
			s := NewServer(srvConfig(), st, nil)
			for _, from := range []netip.AddrPort{srvAddr("bob"), srvStranger} {
				outs := s.stepTrusted(srvT0, from, wire.Header{Type: m.Type(), ID: 77}, m)
				for _, o := range outs {
					if _, ok := o.(Event); !ok {
						t.Errorf("non-request %T from %s produced %#v", m, from, o)
					}
				}
			}
			if !srvSameState(s.Snapshot(), st) {
				t.Errorf("non-request changed the state")
			}
		})
	}

	t.Run("does not disturb the reply cache", func(t *testing.T) {
		h := newSrvH(t, srvFree())
		reg := wire.Register{Name: "carol", Addr: srvAddr("carol")}
		h.step(srvAddr("carol"), 7, reg)
		h.s.stepTrusted(srvT0, srvAddr("carol"), wire.Header{Type: wire.TypeAck, ID: 8}, wire.Ack{})
		if r := h.step(srvAddr("carol"), 7, reg); !r.Reply.OK || r.Persist != nil {
			t.Errorf("retransmission after an Ack: %+v, want the cached SUCCESS", r.Reply)
		}
	})
}

// An Ack (or any non-request) that happens to carry the id of the sender's
// last request must get no reply either.
func TestServerNonRequestWithCachedID(t *testing.T) {
	h := newSrvH(t, srvFree())
	h.step(srvAddr("carol"), 7, wire.Register{Name: "carol", Addr: srvAddr("carol")})
	for _, m := range []wire.Message{wire.Ack{}, wire.Reply{OK: true}} {
		outs := h.s.stepTrusted(srvT0, srvAddr("carol"), wire.Header{Type: m.Type(), ID: 7}, m)
		for _, o := range outs {
			if _, ok := o.(Send); ok {
				t.Errorf("%T with the cached id 7 got a reply: %#v", m, o)
			}
		}
	}
}

// A ring of MaxRing members whose names are all 15 letters is legal input:
// setup-dht must answer it (in one datagram) and must not crash the server.
func TestServerSetupDHTMaxRingLongNames(t *testing.T) {
	st := srvMany(MaxRing, MaxNameLen)
	h := newSrvH(t, st)
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("setup-dht %d with %d-letter names panicked: %v", MaxRing, MaxNameLen, r)
		}
	}()
	r := h.ok(st.Users[0].Addr, wire.SetupDHT{N: MaxRing, Name: st.Users[0].Name})
	srvCheckSetup(st.Users[0].Name, MaxRing)(t, r.Reply, h.s.Snapshot())
}

// TestServerLifecycle runs the whole protocol once, as a peer population
// would, through every success path.
func TestServerLifecycle(t *testing.T) {
	h := newSrvH(t, state.ServerState{})
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	for _, n := range names {
		h.ok(srvAddr(n), wire.Register{Name: n, Addr: srvAddr(n)})
	}
	r := h.ok(srvAddr("alice"), wire.SetupDHT{N: 4, Name: "alice"})
	srvCheckSetup("alice", 4)(t, r.Reply, h.s.Snapshot())
	h.ok(srvAddr("alice"), wire.DHTComplete{Name: "alice"})
	st := h.s.Snapshot()
	ring := st.DHT.Members
	var free []string
	for _, u := range st.Users {
		if u.State == state.Free {
			free = append(free, u.Name)
		}
	}
	for _, f := range free {
		q := h.ok(srvAddr(f), wire.QueryDHT{Name: f})
		if !slices.Contains(ring, q.Reply.Members[0].Name) {
			t.Errorf("query answered %v, not in %v", q.Reply.Members, ring)
		}
	}
	// The leader leaves: its right neighbour leads, the ring keeps its order.
	h.ok(srvAddr("alice"), wire.LeaveDHT{Name: "alice"})
	h.ok(srvAddr("alice"), wire.DHTRebuilt{Name: "alice", NewLeader: ring[1]})
	st = h.s.Snapshot()
	if want := ring[1:]; !slices.Equal(st.DHT.Members, want) || st.DHT.Leader != ring[1] {
		t.Errorf("after the leader left: %+v, want members %v led by %s", st.DHT, want, ring[1])
	}
	h.ok(srvAddr("alice"), wire.QueryDHT{Name: "alice"})
	h.ok(srvAddr("alice"), wire.Deregister{Name: "alice"})
	// A middle node leaves.
	h.ok(srvAddr(ring[2]), wire.LeaveDHT{Name: ring[2]})
	h.ok(srvAddr(ring[2]), wire.DHTRebuilt{Name: ring[2], NewLeader: ring[3]})
	st = h.s.Snapshot()
	if want := []string{ring[3], ring[1]}; !slices.Equal(st.DHT.Members, want) {
		t.Errorf("after %s left: members %v, want %v", ring[2], st.DHT.Members, want)
	}
	srvStates(t, st, map[string]state.State{ring[1]: state.InDHT, ring[2]: state.Free, ring[3]: state.Leader})
	h.ok(srvAddr(ring[3]), wire.TeardownDHT{Name: ring[3]})
	h.ok(srvAddr(ring[3]), wire.TeardownComplete{Name: ring[3]})
	srvNoDHT(t, h.s.Snapshot())
	for _, n := range names[1:] {
		h.ok(srvAddr(n), wire.Deregister{Name: n})
	}
	if st := h.s.Snapshot(); len(st.Users) != 0 {
		t.Errorf("users left: %v", srvNames(st))
	}
}

// Requests from thousands of strangers do not grow the reply cache without
// bound, and registered users keep their cached answers.
func TestServerReplyCacheBounded(t *testing.T) {
	s := NewServer(ServerConfig{}, state.ServerState{}, nil)
	alice := netip.MustParseAddrPort("10.0.0.1:5000")
	s.stepTrusted(srvT0, alice, wire.Header{ID: 1}, wire.Register{Name: "alice", Addr: alice})
	for i := range 3 * maxCache {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), uint16(1000+i))
		s.stepTrusted(srvT0, from, wire.Header{ID: 7}, wire.QueryDHT{Name: "nobody"})
	}
	if len(s.cache) > maxCache {
		t.Fatalf("cache holds %d answers, bound is %d", len(s.cache), maxCache)
	}
	if c, ok := s.cache[alice]; !ok || c.id != 1 {
		t.Fatal("a registered user's cached answer was pruned")
	}
}

// The replies the server persists stay bounded as users come and go: a
// deregister's SUCCESS is persisted (a retransmission reaching a restarted
// server must get it again), and when the in-memory cache outgrows its
// bound the replies to addresses no longer registered are deleted from the
// file too, with the next change. Without that, every address that ever
// registered kept a reply in the file.
func TestServerPersistedRepliesStayBounded(t *testing.T) {
	p := &srvPersisted{replies: map[netip.AddrPort]state.CachedReply{}}
	s := NewServer(srvConfig(), state.ServerState{}, nil)
	now := time.Unix(1_700_000_000, 0)
	const users = maxCache + 1000
	var last netip.AddrPort
	for i := range users {
		name := srvManyName(i, 6)
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5000)
		p.apply(s.stepTrusted(now, addr, wire.Header{ID: 1}, wire.Register{Name: name, Addr: addr}))
		p.apply(s.stepTrusted(now, addr, wire.Header{ID: 2}, wire.Deregister{Name: name}))
		last = addr
	}
	if n := len(p.replies); n > maxCache+1 || n == 0 {
		t.Fatalf("%d replies persisted after %d users came and went; the cache holds at most %d", n, users, maxCache)
	}
	// The last deregister's reply survives a restart.
	s = NewServer(srvConfig(), p.state, p.cached())
	outs := s.stepTrusted(now, last, wire.Header{ID: 2}, wire.Deregister{Name: srvManyName(users-1, 6)})
	for _, o := range outs {
		if send, ok := o.(Send); ok {
			if r, ok := send.Msg.(wire.Reply); !ok || !r.OK {
				t.Fatalf("retransmitted deregister after restart answered %+v, want the cached SUCCESS", send.Msg)
			}
			return
		}
	}
	t.Fatalf("no answer: %+v", outs)
}

// A persisted reply that no longer decodes is not used, and is deleted from
// the file with the first change after the start.
func TestServerForgetsUnusableReplies(t *testing.T) {
	bad := srvAddr("bob")
	s := NewServer(srvConfig(), srvFree("bob"), []state.CachedReply{{Addr: bad, ID: 7, Datagram: []byte("not a datagram")}})
	now := time.Unix(1_700_000_000, 0)
	// A retransmission of bob's id 7 is not answered from the broken
	// cache entry: it runs (and fails: no DHT exists).
	var first PersistServer
	for _, o := range s.stepTrusted(now, bad, wire.Header{ID: 7}, wire.QueryDHT{Name: "bob"}) {
		if p, ok := o.(PersistServer); ok {
			t.Fatalf("a FAILURE persisted %+v", p)
		}
	}
	alice := srvAddr("alice")
	for _, o := range s.stepTrusted(now, alice, wire.Header{ID: 1}, wire.Register{Name: "alice", Addr: alice}) {
		if p, ok := o.(PersistServer); ok {
			first = p
		}
	}
	if !slices.Contains(first.Forget, bad) {
		t.Fatalf("the first change forgets %v, want %v among them", first.Forget, bad)
	}
}

// srvHealStarted reports whether outs start a heal (its event or its
// heal message) or dissolve the DHT, or answer again from the cache the
// request that did: the rejoins whose SUCCESS says why.
func srvHealStarted(outs []Output) bool {
	for _, o := range outs {
		switch o := o.(type) {
		case Event:
			if o.Msg == "heal" || strings.HasPrefix(o.Msg, "dropped: duplicate request") || strings.HasSuffix(o.Msg, "DHT dissolved") {
				return true
			}
		case Send:
			if _, ok := o.Msg.(wire.Heal); ok {
				return true
			}
		}
	}
	return false
}

// A deregister whose reply was lost when the server stopped gets that
// SUCCESS again from the restarted server, not "not registered": the user
// and its secret are gone, so the cached reply keeps the key that checks
// the retransmission (and nothing else: another request, or one signed
// with another key, is not answered from it).
func TestDeregisterRetransmittedAfterRestart(t *testing.T) {
	s := NewServer(srvConfig(), srvFree("alice", "bob"), nil)
	p := &srvPersisted{replies: map[netip.AddrPort]state.CachedReply{}}
	p.state = s.Snapshot()
	signedReq := func(id uint32, flags wire.Flags, m wire.Message, seq uint64, key wire.Key) (wire.Header, wire.Message) {
		d, err := wire.AppendSigned(nil, id, flags, m, seq, key)
		if err != nil {
			t.Fatal(err)
		}
		h, msg, err := wire.Decode(d)
		if err != nil {
			t.Fatal(err)
		}
		return h, msg
	}
	h, m := signedReq(77, 0, wire.Deregister{Name: "bob"}, 5, srvSecret("bob"))
	outs := s.Step(srvT0, srvAddr("bob"), h, m)
	p.apply(outs)
	if r := srvCheckOuts(t, s, srvAddr("bob"), 77, outs); !r.Reply.OK {
		t.Fatalf("deregister: %+v", r.Reply)
	}
	restarted := NewServer(srvConfig(), p.state, p.cached())
	reply := func(outs []Output) (wire.Reply, bool) {
		for _, o := range outs {
			if snd, ok := o.(Send); ok {
				r, ok := snd.Msg.(wire.Reply)
				return r, ok
			}
		}
		return wire.Reply{}, false
	}
	h, m = signedReq(77, wire.FlagRetransmit, wire.Deregister{Name: "bob"}, 5, srvSecret("bob"))
	outs = restarted.Step(srvT0.Add(time.Second), srvAddr("bob"), h, m)
	if r, ok := reply(outs); !ok || !r.OK {
		t.Fatalf("the deregister sent again after the restart: %v; want the cached SUCCESS", outs)
	}
	for _, o := range outs {
		if _, ok := o.(PersistServer); ok {
			t.Fatal("the cached answer persisted something")
		}
	}
	// Signed with another key, the same request is refused as before.
	h, m = signedReq(77, wire.FlagRetransmit, wire.Deregister{Name: "bob"}, 5, wire.Key{0xba, 0xd})
	if r, ok := reply(restarted.Step(srvT0.Add(time.Second), srvAddr("bob"), h, m)); ok && r.OK {
		t.Fatal("a deregister signed with another key got the cached SUCCESS")
	}
}

// A request refused while the server waits says what it waits for, from
// whom, and how long it will wait before it rolls the operation back.
func TestServerWaitSaysWhenItRollsBack(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	for _, c := range []struct {
		name  string
		start state.ServerState
		after time.Duration
		says  string
	}{
		{"a setup, 30s in", srvDHT(state.PhaseBuilding, ring, "dave"), 30 * time.Second,
			"server is waiting for dht-complete from alice (setup-dht in progress); rolled back in 30s unless it comes (--op-timeout 1m0s)"},
		{"a teardown, at once", srvDHT(state.PhaseTearing, ring, "dave"), 0,
			"server is waiting for teardown-complete from alice (teardown-dht in progress); the DHT is dissolved in 1m0s unless it comes (--op-timeout 1m0s)"},
		{"a setup past its time, before the tick", srvDHT(state.PhaseBuilding, ring, "dave"), 3 * time.Minute,
			"rolled back in 0s unless it comes"},
		{"a join, 10s in", srvJoining(ring, "dave", "erin"), 10 * time.Second,
			"server is waiting for dht-rebuilt from dave (join-dht in progress); ended (the ring heals without dave) in 50s unless it comes (--op-timeout 1m0s)"},
		{"a leave, 10s in", srvLeaving(ring, "bob", "dave"), 10 * time.Second,
			"server is waiting for dht-rebuilt from bob (leave-dht in progress); ended (the ring heals without bob) in 50s unless it comes (--op-timeout 1m0s)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newSrvH(t, c.start)
			h.now = srvT0.Add(c.after)
			h.fail(srvAddr("dave"), wire.QueryDHT{Name: "dave"}, c.says)
		})
	}
}

// A join-dht whose joiner, or a leave-dht whose leaver, sends no
// dht-rebuilt within --op-timeout ends as one whose joiner or leaver went
// offline or gave it up: the ring heals round it, and it is Free; nobody
// else's place ends (a Free user who asked to join, or a member who asked
// to leave, and then stalled dissolved the DHT, found by red-team reviews).
// Its dht-rebuilt, if it comes after all, hears why.
func TestServerJoinOrLeaveTimeoutHealsRoundIt(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	for _, c := range []struct {
		op, who string
		start   state.ServerState
		healed  []string
		states  map[string]state.State
		leader  string // the rebuilder a dht-rebuilt names
	}{
		{"join-dht", "dave", srvJoining(ring, "dave", "erin"), ring,
			map[string]state.State{"alice": state.Leader, "bob": state.InDHT, "carol": state.InDHT, "dave": state.Free, "erin": state.Free}, "alice"},
		{"leave-dht", "bob", srvLeaving(ring, "bob", "erin"), []string{"alice", "carol"},
			map[string]state.State{"alice": state.Leader, "bob": state.Free, "carol": state.InDHT, "erin": state.Free}, "carol"},
	} {
		t.Run(c.op, func(t *testing.T) {
			h := newSrvH(t, c.start)
			h.now = srvT0.Add(srvTimeout)
			h.aliveAll()
			outs := h.s.Tick(h.now)
			d := h.s.Snapshot().DHT
			if d.Phase != state.PhaseHealing || !slices.Equal(d.Members, c.healed) || d.Leader != "alice" {
				t.Fatalf("the %s timed out: DHT %+v, want a heal of %v", c.op, d, c.healed)
			}
			srvStates(t, h.s.Snapshot(), c.states)
			if !srvHealStarted(outs) || !slices.ContainsFunc(outs, isPersist) {
				t.Fatalf("Tick: %#v, want the heal persisted and sent", outs)
			}
			h.fail(srvAddr("erin"), wire.QueryDHT{Name: "erin"}, "the DHT is healing ("+c.op+" by "+c.who+": no dht-rebuilt came within --op-timeout 1m0s")
			h.s.stepTrusted(h.now, srvAddr("alice"), wire.Header{Type: wire.TypeHealed, ID: h.nextID()}, wire.Healed{Name: "alice", Epoch: d.Epoch})
			h.fail(srvAddr(c.who), wire.DHTRebuilt{Name: c.who, NewLeader: c.leader}, "the "+c.op+" of "+c.who+" was ended before its dht-rebuilt came: no dht-rebuilt came within --op-timeout")
			h.ok(srvAddr("erin"), wire.QueryDHT{Name: "erin"})
		})
	}
}

// A register from an address where another user is registered (typed at a
// peer that is registered already) says so, and what to do: it read as if
// the address typed were wrong.
func TestServerRegisterFromAnotherUsersAddress(t *testing.T) {
	h := newSrvH(t, srvFree("bob"))
	h.fail(srvAddr("bob"), wire.Register{Name: "bobby", Addr: srvStranger},
		"register bobby must be sent from "+srvStranger.String()+", the address it registers; it came from "+srvAddr("bob").String()+", where bob is registered (a peer registers one user: start another peer for bobby)")
	h.fail(srvAddr("carol"), wire.Register{Name: "bobby", Addr: srvStranger}, "(it came from "+srvAddr("carol").String()+")")
	// The same user, at another address, from its own peer (a new user's
	// review: "start another peer for bob" read as nonsense at bob's).
	h.fail(srvAddr("bob"), wire.Register{Name: "bob", Addr: srvStranger},
		"bob is registered at "+srvAddr("bob").String()+", where this register came from: a user keeps the address it registered (to move it, deregister bob, which ends its peer, and start a peer for bob at "+srvStranger.String()+")")
	// A ring member cannot deregister: the way says to leave first (a new
	// user's review).
	h = newSrvH(t, srvDHT(state.PhaseReady, []string{"alice", "bob"}))
	h.fail(srvAddr("alice"), wire.Register{Name: "alice", Addr: srvStranger},
		"(to move it, leave the DHT (leave-dht alice, or teardown-dht alice), then deregister alice, which ends its peer, and start a peer for alice at "+srvStranger.String()+")")
	h.fail(srvAddr("bob"), wire.Register{Name: "bob", Addr: srvStranger},
		"(to move it, leave the DHT (leave-dht bob), then deregister bob, which ends its peer, and start a peer for bob at "+srvStranger.String()+")")
}

// srvVouched is m with the new leader's proof filled in, if m is a
// dht-rebuilt without one, for the epoch s is at: what the peers send once
// the rebuild is done (TestServerDHTRebuiltNeedsTheNewLeadersProof sends
// them without).
func srvVouched(s *Server, m wire.Message) wire.Message {
	if r, ok := m.(wire.DHTRebuilt); ok && r.Proof == (wire.Tag{}) {
		by := r.NewLeader // a leave's rebuilder
		if s.dht.Phase == state.PhaseJoining {
			by = s.dht.Leader // a join's
		}
		if u := s.users[by]; u != nil {
			r.Proof = rebuiltProof(u.Secret, r.Name, r.NewLeader, s.dht.Epoch)
		}
		return r
	}
	return m
}

// A dht-rebuilt is taken only with the proof of the node that did the
// rebuild: the new leader of a leave, the leader that took a joiner in,
// for that user and the operation's epoch. On its own word a Free user
// made itself a member with join-dht and dht-rebuilt, and a member
// renumbered the ring at the server only with leave-dht and dht-rebuilt,
// no ring message sent (a red-team review: three datagrams, then a claim
// of a later epoch from the new "member" dissolved the DHT). A typed
// dht-rebuilt carries none. The proof names the new leader: a joiner that
// named another (itself) with its leader's proof had the server send the
// next joiner to a node that led nothing (a red-team review: a failed join
// and a heal of the whole ring for each).
func TestServerDHTRebuiltNeedsTheNewLeadersProof(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	for _, c := range []struct {
		name      string
		st        state.ServerState
		user, by  string // by: whose proof the server takes
		newLeader string
	}{
		{"a leave", srvLeaving(ring, "bob", "dave"), "bob", "carol", "carol"},
		{"a join", srvJoining(ring, "dave"), "dave", "alice", "alice"},
		{"a join naming the joiner", srvJoining(ring, "dave"), "dave", "alice", "dave"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.st.DHT.Epoch = 7
			h := newSrvH(t, c.st)
			send := func(proof wire.Tag) srvResult {
				m := wire.DHTRebuilt{Name: c.user, NewLeader: c.newLeader, Proof: proof}
				id := h.nextID()
				return srvCheckOuts(t, h.s, srvAddr(c.user), id, h.s.stepTrusted(h.now, srvAddr(c.user), wire.Header{Type: m.Type(), ID: id}, m))
			}
			other := "carol" // a leader the rebuilder did not name
			if c.newLeader == other {
				other = "alice"
			}
			for why, proof := range map[string]wire.Tag{
				"none (typed)":              {},
				"the user's own":            rebuiltProof(srvSecret(c.user), c.user, c.newLeader, 7),
				"another member's":          rebuiltProof(srvSecret("bob"), c.user, c.newLeader, 7),
				"the right node's, epoch 6": rebuiltProof(srvSecret(c.by), c.user, c.newLeader, 6),
				"for another user":          rebuiltProof(srvSecret(c.by), "erin", c.newLeader, 7),
				"for another leader":        rebuiltProof(srvSecret(c.by), c.user, other, 7),
			} {
				if why == "another member's" && c.by == "bob" {
					continue
				}
				if r := send(proof); r.Reply.OK || !strings.Contains(r.Reply.Reason, c.by+" has not vouched for the rebuild of epoch 7") {
					t.Fatalf("proof %s: %+v; want FAILURE saying %s has not vouched", why, r.Reply, c.by)
				}
				if !srvSameState(c.st, h.s.Snapshot()) {
					t.Fatalf("proof %s changed the state: %+v", why, h.s.Snapshot().DHT)
				}
			}
			if r := send(rebuiltProof(srvSecret(c.by), c.user, c.newLeader, 7)); !r.Reply.OK || h.s.Snapshot().DHT.Phase != state.PhaseReady {
				t.Fatalf("%s's proof: %+v, DHT %+v; want SUCCESS and the DHT ready", c.by, r.Reply, h.s.Snapshot().DHT)
			}
		})
	}
}

// tickets (the leader of a ring being set up asks for the tickets its
// setup-dht reply had no room for) is answered to that leader only, and
// each ticket gives its member the ring's key.
func TestServerTickets(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	building := srvDHT(state.PhaseBuilding, ring, "dave")
	building.DHT.Epoch, building.DHT.KeyEpoch, building.DHT.RingKey = 3, 3, wire.Key{7, 7, 7}

	h := newSrvH(t, building)
	r := h.ok(srvAddr("alice"), wire.Tickets{Name: "alice", From: 1})
	if r.Reply.Epoch != 3 || r.Reply.KeyEpoch != 3 || len(r.Reply.Tickets) != 2 {
		t.Fatalf("tickets from 1: epoch %d, key epoch %d, %d tickets; want 3, 3 and 2", r.Reply.Epoch, r.Reply.KeyEpoch, len(r.Reply.Tickets))
	}
	for i, tk := range r.Reply.Tickets {
		if ringKeyOf(srvSecret(ring[1+i]), 3, tk) != building.DHT.RingKey {
			t.Errorf("ticket %d does not give %s the ring key", i, ring[1+i])
		}
	}

	for _, c := range []struct {
		name string
		st   state.ServerState
		from string
		m    wire.Tickets
		want string
	}{
		{"a member not the leader", building, "bob", wire.Tickets{Name: "bob", From: 1}, "bob is not the leader of the DHT being set up"},
		{"a Free user", building, "dave", wire.Tickets{Name: "dave", From: 1}, "dave is not the leader of the DHT being set up"},
		{"another's name", building, "bob", wire.Tickets{Name: "alice", From: 1}, "must come from its registered address"},
		{"past the last member", building, "alice", wire.Tickets{Name: "alice", From: 3}, "the ring has 3 members; no ticket from index 3"},
		{"a ring set up", srvDHT(state.PhaseReady, ring, "dave"), "alice", wire.Tickets{Name: "alice", From: 1}, "no DHT is being set up"},
	} {
		t.Run(c.name, func(t *testing.T) {
			newSrvH(t, c.st).fail(srvAddr(c.from), c.m, c.want)
		})
	}
}

package app

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"dht/wire"
)

// firstDrop is the drop that out starts with, if it does.
func firstDrop(out []Output) (Event, bool) {
	ev, ok := firstOutput(out).(Event)
	return ev, ok && ev.Drop
}

// userStep is s.Step of m, from name's address, with id, signed with its
// secret and sequence number seq.
func userStep(t *testing.T, s *Server, name string, id uint32, seq uint64, m wire.Message) []Output {
	t.Helper()
	b, err := wire.AppendSigned(nil, id, 0, m, seq, srvSecret(name))
	if err != nil {
		t.Fatal(err)
	}
	h, msg, err := wire.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return s.Step(srvT0, srvAddr(name), h, msg)
}

// A network that duplicates delivers a user's alive twice: the copy of the
// last alive taken is no warning (a chaos run at 5% duplication: a
// hundred "alive replayed" warnings at a healthy server). An older one,
// which no network makes of itself, still warns.
func TestACopyOfAnAliveIsNoWarning(t *testing.T) {
	s := NewServer(srvConfig(), srvFree("alice"), nil)
	alive := func(id uint32, seq uint64) []Output {
		return userStep(t, s, "alice", id, seq, wire.Alive{Name: "alice", PeriodMS: uint32(s.Pace().Milliseconds())})
	}
	if _, dropped := firstDrop(alive(1, 100)); dropped {
		t.Fatal("the first alive was dropped")
	}
	if _, dropped := firstDrop(alive(2, 101)); dropped {
		t.Fatal("the next alive was dropped")
	}
	for _, c := range []struct {
		what  string
		id    uint32
		seq   uint64
		level slog.Level
	}{{"a copy of the last", 2, 101, slog.LevelInfo}, {"an older one", 1, 100, slog.LevelWarn}} {
		ev, dropped := firstDrop(alive(c.id, c.seq))
		if !dropped || ev.Level != c.level {
			t.Errorf("%s: %+v; want a drop at level %v", c.what, ev, c.level)
		}
	}
}

// A register sent again before its challenge came is challenged twice:
// the second challenge, for the id the first was answered on, is no
// warning, whether the register still waits for its reply or is done.
func TestACopyOfAChallengeIsNoWarning(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.0.100:4000")
	self := netip.MustParseAddrPort("10.0.0.1:5000")
	p := NewPeer(PeerConfig{Server: server})
	now := time.Unix(1e9, 0)
	out := p.Input(now, "register alice 10.0.0.1 5000")
	out = append(out, p.Bound(now, self, nil)...)
	var id uint32
	for _, o := range out {
		if s, ok := o.(Send); ok {
			id = s.ID
		}
	}
	if id == 0 {
		t.Fatal("no register sent")
	}
	ch := wire.Challenge{Cookie: wire.Tag{7}}
	if _, dropped := firstDrop(p.Step(now, server, wire.Header{ID: id}, ch)); dropped {
		t.Fatal("the challenge was dropped")
	}
	ev, dropped := firstDrop(p.Step(now, server, wire.Header{ID: id}, ch))
	if !dropped || ev.Level != slog.LevelDebug {
		t.Errorf("a copy of the challenge, the register still waiting: %+v; want a drop at the debug level", ev)
	}
	if ev, dropped := firstDrop(p.Step(now, server, wire.Header{ID: id + 1}, ch)); !dropped || ev.Level != slog.LevelWarn {
		t.Errorf("a challenge for an id never challenged: %+v; want a warning", ev)
	}
}

// A network that duplicates delivers a querier's first attempt twice at
// the member it asked: the copy is a drop traced at the info level (and
// summarised), no warning.
func TestACopyOfAQueryIsNoWarning(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	querier := wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	q := wire.Query{ReqID: 9, Querier: querier, LongName: "no such place"}
	first := stepSigned(p, now, querier.Addr, wire.Header{ID: 41, Flags: wire.FlagNoAck}, q)
	if _, dropped := firstDrop(first); dropped {
		t.Fatalf("the query was dropped: %+v", first)
	}
	ev, dropped := firstDrop(stepSigned(p, now, querier.Addr, wire.Header{ID: 41, Flags: wire.FlagNoAck}, q))
	if !dropped || ev.Level != slog.LevelInfo {
		t.Errorf("a copy of the query: %+v; want a drop at the info level", ev)
	}
}

// A network that reorders delivers a user's requests typed ahead out of
// order: the server tells the user of the later one it took, and the
// peer's request waits for its own answer. Neither is a warning (a review
// with reordering: 1,500 at the server, 130 at the peer, in 400 queries).
func TestRequestsReorderedAreNoWarning(t *testing.T) {
	s := NewServer(srvConfig(), srvFree("alice"), nil)
	ask := func(id uint32, seq uint64) []Output {
		return userStep(t, s, "alice", id, seq, wire.QueryDHT{Name: "alice"})
	}
	if _, dropped := firstDrop(ask(8, 6)); dropped {
		t.Fatal("the later request was dropped")
	}
	if ev, dropped := firstDrop(ask(7, 5)); !dropped || ev.Level != slog.LevelInfo {
		t.Errorf("the earlier request, after it: %+v; want a drop at the info level", ev)
	}

	q := newQuerier(t)
	asks, _ := q.sent(append(q.p.Input(q.now, "query-dht erin Aruba"), q.p.Input(q.now, "query-dht erin Republic of Chile")...))
	if len(asks) != 2 {
		t.Fatalf("%d query-dht sent, want 2", len(asks))
	}
	out := stepSigned(q.p, q.now, q.server, wire.Header{ID: asks[0]}, wire.Reply{Reason: "sequence number behind the last one taken", Epoch: 1})
	if ev, dropped := firstDrop(out); !dropped || ev.Level != slog.LevelInfo {
		t.Errorf("the server took the later request: %+v; want a drop at the info level", firstOutput(out))
	}
}

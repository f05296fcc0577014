package app

import (
	"net/netip"
	"testing"

	"dht/app/state"
	"dht/wire"
)

// A register acted on by its cookie (a new user's), its SUCCESS lost, and
// sent again (the same datagram) after the server restarted on its file,
// gets the cached SUCCESS with the same secret: the file keeps the reply
// "so that a retransmitted request gets the same answer after a restart".
func TestACookieRegisterSentAgainAfterARestartGetsItsCachedReply(t *testing.T) {
	s := NewServer(srvConfig(), state.ServerState{}, nil)
	p := &srvPersisted{replies: map[netip.AddrPort]state.CachedReply{}}
	p.state = s.Snapshot()
	alice := srvAddr("alice")
	step := func(s *Server, id uint32, flags wire.Flags, m wire.Message) []Output {
		b, err := wire.Append(nil, id, flags, m)
		if err != nil {
			t.Fatal(err)
		}
		h, msg, err := wire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return s.Step(srvT0, alice, h, msg)
	}
	reply := func(outs []Output) (wire.Message, bool) {
		for _, o := range outs {
			if snd, ok := o.(Send); ok && snd.To == alice {
				return snd.Msg, true
			}
		}
		return nil, false
	}
	reg := wire.Register{Name: "alice", Addr: alice}
	m, _ := reply(step(s, 7, 0, reg))
	ch, ok := m.(wire.Challenge)
	if !ok {
		t.Fatalf("first register: %#v, want a challenge", m)
	}
	reg.Cookie = ch.Cookie
	outs := step(s, 8, 0, reg)
	p.apply(outs)
	m, _ = reply(outs)
	first, ok := m.(wire.Reply)
	if !ok || !first.OK {
		t.Fatalf("register with the cookie: %#v", m)
	}
	// Before a restart, the copy gets the cached SUCCESS.
	if m, _ := reply(step(s, 8, wire.FlagRetransmit, reg)); m == nil {
		t.Fatal("no answer before the restart")
	} else if r, ok := m.(wire.Reply); !ok || r.Key != first.Key {
		t.Fatalf("copy before the restart: %#v", m)
	}
	restarted := NewServer(srvConfig(), p.state, p.cached())
	outs = step(restarted, 8, wire.FlagRetransmit, reg)
	m, _ = reply(outs)
	if r, ok := m.(wire.Reply); !ok || !r.OK || r.Key != first.Key {
		t.Fatalf("copy after the restart: %#v, want the cached SUCCESS with the same secret", m)
	}
}

package app_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"dht/app"
	"dht/wire"
)

// traced is how a runner would trace what the server did with one
// datagram: as a receive of its own (a line each, at the info level), or,
// when the first output is a drop, as a drop (summarised); and how many
// sends it made, and how many of those were traced one by one.
func traced(out []app.Output) (recvLine bool, sends, loud int) {
	recvLine = true
	if len(out) > 0 {
		if ev, ok := out[0].(app.Event); ok && ev.Drop {
			recvLine = false
		}
	}
	for _, o := range out {
		if s, ok := o.(app.Send); ok {
			sends++
			if !s.Quiet {
				loud++
			}
		}
	}
	return recvLine, sends, loud
}

// serverReceiveLines is how many of 1000 copies of (h, m) from `from`, a
// millisecond apart, the server's runner would trace as receives, a line
// each.
func serverReceiveLines(s *simNet, from netip.AddrPort, h wire.Header, m wire.Message) (lines int) {
	for i := range 1000 {
		out := s.Server().Step(s.Now().Add(time.Duration(i)*time.Millisecond), from, h, m)
		if recv, _, _ := traced(out); recv {
			lines++
		}
	}
	return lines
}

// An off-path stranger who knows the address of the last heal's leader
// (any member's, from a query-dht reply) and its epoch (a small number)
// sends unsigned acks with the heal's id from that address: each was
// taken as "the ack of the heal that ended", unchecked, and traced as a
// receive, a line each, for ever (SPEC §7: bounded trace). Not signed with
// the leader's secret, it is a drop like any other.
func TestAForgedAckOfTheHealThatEndedIsADrop(t *testing.T) {
	s, _, healTo, _ := healedWithItsHeal(t)
	epoch := s.Server().Snapshot().DHT.Epoch
	b, err := wire.Append(nil, uint32(epoch), 0, wire.Ack{})
	if err != nil {
		t.Fatal(err)
	}
	h, m, err := wire.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if lines := serverReceiveLines(s, healTo, h, m); lines > 0 {
		t.Fatalf("1000 forged unsigned acks of the heal that ended, from its leader's address: %d traced as receives, a line each; want each a drop", lines)
	}
}

// The leader of the last heal (an insider), or whoever captured its
// healed, sends that healed again and again from its address: the server
// acknowledged every copy, at any rate, and traced each as a receive and
// a send (two lines a copy, without end). Acknowledged again at most
// maxAgain times a second, as a request answered from the cache is, and
// traced as the drops are.
func TestAHealedSentAgainAndAgainIsAcknowledgedAFewTimesASecond(t *testing.T) {
	for _, restarted := range []bool{false, true} {
		s := newSim(t, 1)
		users := joinUsers(t, s, 5)
		var healed []byte
		var from netip.AddrPort
		s.Tap = func(src, to netip.AddrPort, b []byte) {
			if _, m, err := wire.Decode(b); err == nil && m.Type() == wire.TypeHealed && to == simServer {
				healed, from = slices.Clone(b), src
			}
		}
		s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
		dead := memberWithID(s, 3)
		kill(s, dead)
		settleHeal(t, s, dead)
		s.Tap = nil
		if healed == nil {
			t.Fatal("no healed seen")
		}
		if restarted {
			s.RestartServer()
			settle(t, s)
		}
		h, m, err := wire.Decode(healed)
		if err != nil {
			t.Fatal(err)
		}
		start := s.Now().Truncate(time.Second).Add(time.Second)
		var lines, sends, loud int
		for i := range 1000 {
			out := s.Server().Step(start.Add(time.Duration(i)*time.Millisecond), from, h, m)
			recv, n, l := traced(out)
			if recv {
				lines++
			}
			sends += n
			loud += l
		}
		if lines > 0 || sends > 10 || loud > 0 {
			t.Errorf("server restarted %v: a captured healed sent 1000 times in a second: %d traced as receives, %d acks sent (%d traced one by one); want none as receives, at most 10 acks, traced as quiet sends",
				restarted, lines, sends, loud)
		}
	}
}

// The leader's own ack of a heal, signed with its secret, captured and
// sent again and again from its address once the heal has ended: each copy
// is "the ack of the heal that ended", traced as a drop (summarised), not a
// receive line each for ever (SPEC §7).
func TestAReplayedAckOfTheHealThatEndedIsADrop(t *testing.T) {
	s := newSim(t, 1)
	users := joinUsers(t, s, 5)
	var healID uint32
	var ack []byte
	var from netip.AddrPort
	s.Tap = func(src, to netip.AddrPort, b []byte) {
		h, m, err := wire.Decode(b)
		if err != nil {
			return
		}
		if m.Type() == wire.TypeHeal && src == simServer {
			healID = h.ID
		}
		if a, ok := m.(wire.Ack); ok && to == simServer && healID != 0 && (h.ID == healID || slices.Contains(a.More, healID)) {
			ack, from = slices.Clone(b), src
		}
	}
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	dead := memberWithID(s, 3)
	kill(s, dead)
	settleHeal(t, s, dead)
	s.Tap = nil
	if ack == nil {
		t.Fatal("no ack of the heal seen")
	}
	h, m, err := wire.Decode(ack)
	if err != nil {
		t.Fatal(err)
	}
	if lines := serverReceiveLines(s, from, h, m); lines > 0 {
		t.Fatalf("the leader's ack of the heal, captured and sent 1000 times from its address once the heal ended: %d traced as receives, a line each; want drops (summarised)", lines)
	}
}

// The server's heal, captured and sent again and again from the server's
// address to the leader that took it: as any other copy of a message
// already taken, each is a drop and its ack a quiet send, not two lines a
// copy without end.
func TestAHealSentAgainAndAgainIsTracedAsADrop(t *testing.T) {
	s, heal, _, leader := healedWithItsHeal(t)
	h, m, err := wire.Decode(heal)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Peer(leader)
	var lines, loud int
	for i := range 1000 {
		out := p.Step(s.Now().Add(time.Duration(i)*time.Millisecond), simServer, h, m)
		recv, _, l := traced(out)
		if recv {
			lines++
		}
		loud += l
	}
	if lines > 0 || loud > 0 {
		t.Fatalf("a captured heal sent 1000 times at its leader: %d traced as receives, %d acks traced one by one; want drops, quiet acks", lines, loud)
	}
}

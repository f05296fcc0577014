package app

// join-dht at one peer: the leader's refusals and failures, and the
// joiner that hears only its leader. (The simulated joins are in
// join_sim_test.go.)

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/dataset"
	"dht/store"
	"dht/wire"
)

// joinLeader is fuzzPeer made the leader of its ring of 3: bob, id 0,
// alice (id 2) on its left, carol (id 1) on its right.
func joinLeader() *Peer {
	p := fuzzPeer()
	p.id = 0
	return p
}

var fzJoiner = wire.Member{Name: "dave", Addr: netip.MustParseAddrPort("10.0.0.4:5000")}

// outcome sorts a step's outputs: the lines printed, and the messages sent
// to each address.
func outcome(outs []Output) (printed []string, sent map[netip.AddrPort][]wire.Message) {
	sent = map[netip.AddrPort][]wire.Message{}
	for _, o := range outs {
		switch o := o.(type) {
		case Result:
			printed = append(printed, o.String())
		case Send:
			if _, ack := o.Msg.(wire.Ack); !ack {
				sent[o.To] = append(sent[o.To], o.Msg)
			}
		}
	}
	return printed, sent
}

// A join the leader cannot take on is answered at once with rebuilt
// FAILURE saying why, and changes nothing: the joiner is not left waiting.
func TestJoinRefusedByTheLeaderSaysWhy(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cases := []struct {
		name string
		peer func() *Peer
		join wire.Join
		says string
	}{
		{"not the leader", fuzzPeer, wire.Join{Joiner: fzJoiner, N: 3}, "the join was refused: bob leads no ring"},
		{"another ring size", joinLeader, wire.Join{Joiner: fzJoiner, N: 2}, "the join was refused: bob leads a ring of 3, not 2"},
		{"a member joins", joinLeader, wire.Join{Joiner: fzRight, N: 3}, "the join was refused: carol is in the ring already"},
		{"a join in progress", func() *Peer {
			p := joinLeader()
			stepSigned(p, now, fzOther, wire.Header{ID: 1}, wire.Join{Joiner: wire.Member{Name: "erin", Addr: fzOther}, N: 3})
			return p
		}, wire.Join{Joiner: fzJoiner, N: 3}, "the join was refused: bob is already taking erin in"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.peer()
			before := p.identity()
			printed, sent := outcome(stepSigned(p, now, c.join.Joiner.Addr, wire.Header{ID: 9}, c.join))
			got := sent[c.join.Joiner.Addr]
			if len(got) != 1 {
				t.Fatalf("sent the joiner %+v, want one rebuilt", got)
			}
			if r, ok := got[0].(wire.Rebuilt); !ok || r.OK || r.Reason != c.says {
				t.Fatalf("sent the joiner %+v, want rebuilt FAILURE %q", got[0], c.says)
			}
			if len(printed) != 0 || p.identity() != before || len(sent) != 1 {
				t.Fatalf("a refused join printed %q, sent %+v, changed %+v -> %+v", printed, sent, before, p.identity())
			}
		})
	}
}

// A join of a ring epoch this node has reached already is a late copy (of
// a join the server ended, the ring healed since) or a copy sent again
// after this node restarted, its duplicate filter empty: acknowledged and
// dropped, not answered with a refusal sent reliably to a joiner that may
// be gone (an attacker's review: one copy made a restarted leader send 85
// rebuilts to an address where no one listened). The joiner hears from
// the server that its join was ended.
func TestAJoinOfAnEarlierRingIsADrop(t *testing.T) {
	// Epoch 3 is the node's own: the ring a join it completed made (the
	// copy comes after a restart of the leader).
	for _, epoch := range []uint64{2, 3} {
		t.Run(fmt.Sprint("epoch ", epoch), func(t *testing.T) {
			p := joinLeader()
			p.epoch = 3
			before := p.identity()
			out := stepSigned(p, time.Unix(1_700_000_000, 0), fzJoiner.Addr, wire.Header{ID: 9}, wire.Join{Joiner: fzJoiner, N: 3, Epoch: epoch})
			printed, sent := outcome(out)
			if ev, ok := firstOutput(out).(Event); !ok || !ev.Drop || !strings.Contains(ev.Msg, fmt.Sprintf("join of ring epoch %d, and this node's is already 3", epoch)) {
				t.Fatalf("a join of an earlier ring: %v; want a drop saying so", out)
			}
			if got := sent[fzJoiner.Addr]; len(got) != 0 {
				t.Fatalf("sent the joiner %+v; want nothing but its ack", got)
			}
			acked := slices.ContainsFunc(out, func(o Output) bool {
				s, ok := o.(Send)
				return ok && s.To == fzJoiner.Addr && s.ID == 9 && s.Msg.Type() == wire.TypeAck
			})
			if !acked {
				t.Fatal("a join of an earlier ring not acknowledged: a real joiner would send it until its give-up")
			}
			if len(printed) != 0 || p.identity() != before || p.joining != nil {
				t.Fatalf("a join of an earlier ring printed %q, changed %+v -> %+v", printed, before, p.identity())
			}
		})
	}
}

// A leader that cannot use its dataset says so itself, as well as telling
// the joiner, before it tears anything down.
func TestJoinLeaderWithoutDatasetSaysSo(t *testing.T) {
	p := joinLeader()
	p.cfg.LoadData = func() (dataset.Source, error) { return nil, errors.New("dataset: d.csv: line 7: bad") }
	before := p.identity()
	printed, sent := outcome(stepSigned(p, time.Unix(1_700_000_000, 0), fzJoiner.Addr, wire.Header{ID: 1}, wire.Join{Joiner: fzJoiner, N: 3}))
	want := "rebuild-dht FAILURE: cannot use the dataset: d.csv: line 7: bad; the join-dht of dave fails with it"
	if len(printed) != 1 || printed[0] != want {
		t.Fatalf("the leader printed %q, want %q", printed, want)
	}
	r, ok := sent[fzJoiner.Addr][0].(wire.Rebuilt)
	if !ok || r.OK || !strings.Contains(r.Reason, "the join failed at the leader bob: cannot use the dataset") {
		t.Fatalf("the joiner was sent %+v", sent[fzJoiner.Addr])
	}
	if len(sent[fzRight.Addr]) != 0 || p.identity() != before || p.joining != nil {
		t.Fatalf("a join that failed at once sent %+v right and changed %+v -> %+v", sent[fzRight.Addr], before, p.identity())
	}
}

// The joiner takes rebuilt only from the leader it asked; the leader's
// rebuilt FAILURE ends the join with that reason, and any place the
// leader gave it is forgotten.
func TestJoinerHearsOnlyItsLeader(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := NewPeer(PeerConfig{Server: fzServer, Rand: rand.New(rand.NewPCG(1, 1))})
	p.self, p.bound, p.registered = fzJoiner, true, true
	p.cred.secret = fzSecret
	table := store.NewMemPeer()
	p.SetTable(table)
	var req uint32
	for _, o := range p.Input(now, "join-dht dave") {
		if s, ok := o.(Send); ok && s.To == fzServer {
			req = s.ID
		}
	}
	ring := []wire.Member{fzSelf, fzRight, fzLeft} // bob leads
	outs := stepSigned(p, now, fzServer, wire.Header{ID: req}, wire.Reply{OK: true, Members: ring})
	printed, sent := outcome(outs)
	if len(printed) != 1 || printed[0] != "join-dht SUCCESS" {
		t.Fatalf("printed %q, want join-dht SUCCESS", printed)
	}
	if j, ok := sent[fzSelf.Addr][0].(wire.Join); !ok || j.Joiner != fzJoiner || j.N != 3 {
		t.Fatalf("sent the leader %+v, want join {dave, 3}", sent[fzSelf.Addr])
	}
	// The leader acknowledges the join: a flush to it waits for that, and
	// so does this node's commit.
	for _, o := range outs {
		if s, ok := o.(Send); ok && s.To == fzSelf.Addr {
			stepSigned(p, now, fzSelf.Addr, wire.Header{ID: s.ID}, wire.Ack{})
		}
	}
	apply := func(outs []Output) []Output {
		for _, o := range outs {
			if b, ok := o.(PersistPeer); ok {
				if err := table.Apply(b.Batch); err != nil {
					t.Fatal(err)
				}
			}
		}
		return outs
	}
	// The leader places it: set-id, then a store round passes.
	apply(stepSigned(p, now, fzSelf.Addr, wire.Header{ID: 1}, wire.SetID{ID: 3, N: 4, Left: fzLeft, Right: fzSelf}))
	apply(stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 2}, wire.Store{N: 4, Records: []wire.Record{{3: "ab"}}}))
	apply(stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 4}, wire.Flush{Leader: fzSelf.Name, N: 4}))
	if id, recs, _ := table.Load(); !id.InRing || len(recs) != 1 {
		t.Fatalf("the joiner's file: %+v, %d records; want its place and ab (pos 195, id 3 of 4)", id, len(recs))
	}
	for _, from := range []netip.AddrPort{fzRight.Addr, fzOther} {
		outs := stepSigned(p, now, from, wire.Header{ID: 3}, wire.Rebuilt{OK: true, NewLeader: "carol"})
		if printed, sent := outcome(outs); len(printed) != 0 || len(sent) != 0 {
			t.Fatalf("rebuilt from %s, not the leader: printed %q, sent %+v", from, printed, sent)
		}
	}
	printed, _ = outcome(apply(stepSigned(p, now, fzSelf.Addr, wire.Header{ID: 4}, wire.Rebuilt{Reason: "the join failed at the leader bob: why", NewLeader: "bob"})))
	if len(printed) != 1 || printed[0] != "dht-rebuilt FAILURE: the join failed at the leader bob: why" {
		t.Fatalf("printed %q", printed)
	}
	if id, recs, _ := table.Load(); id.InRing || len(recs) != 0 || p.inRing || !p.Idle() {
		t.Fatalf("after the failed join the joiner's file holds %+v and %d records (in ring %v, idle %v)", id, len(recs), p.inRing, p.Idle())
	}
}

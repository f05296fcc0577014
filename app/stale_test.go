package app

// What a node can never act on, and what it no longer needs to deliver,
// once a ring, a store round or an operation is over (docs/DESIGN.md,
// healing): each rule on its own, as the simulations of crashes and
// restarts rely on them together.

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"dht/app/state"
	"dht/wire"
)

// Each message a node can never act on is dropped and acknowledged, so
// that its sender stops: at a node outside any ring (a process restarted
// after the ring phase passed it), back at an origin that no longer runs
// the phase, a rebuilt for no leave or join of its own, a flush of an
// earlier epoch.
func TestEveryMessageANodeCanNeverActOnIsAcknowledged(t *testing.T) {
	outside := func(p *Peer) { p.inRing, p.neighbours, p.left, p.right = false, false, wire.Member{}, wire.Member{} }
	inRing := func(p *Peer) {}
	tests := []struct {
		name  string
		setup func(*Peer)
		from  netip.AddrPort
		m     wire.Message
	}{
		{"a flush of an earlier epoch", inRing, fzLeft.Addr, wire.Flush{Leader: "alice", N: 3, Round: 5, Epoch: 8}},
		{"a committed of an earlier epoch", inRing, fzLeft.Addr, wire.Committed{Leader: "alice", Round: 5, Epoch: 8}},
		{"a teardown at a node outside any ring", outside, fzLeft.Addr, wire.Teardown{Origin: "alice", Epoch: 9}},
		{"a teardown back at an origin that no longer tears down", outside, fzLeft.Addr, wire.Teardown{Origin: fzSelf.Name, Epoch: 9}},
		{"a torn-down at a node outside any ring", outside, fzLeft.Addr, wire.TornDown{Origin: "alice"}},
		{"a torn-down back at an origin that no longer tears down", inRing, fzLeft.Addr, wire.TornDown{Origin: fzSelf.Name}},
		{"a reset-id at a node outside any ring", outside, fzLeft.Addr, wire.ResetID{Origin: "alice", ID: 1, N: 3, Epoch: 9}},
		{"a reset-id back at an origin that no longer renumbers", inRing, fzRight.Addr, wire.ResetID{Origin: fzSelf.Name, ID: 3, N: 3, Epoch: 9}},
		{"a reset-left at a node outside any ring", outside, fzLeft.Addr, wire.ResetLeft{Left: fzRight, Epoch: 9}},
		{"a reset-right at a node outside any ring", outside, fzRight.Addr, wire.ResetRight{Right: fzLeft, Epoch: 9}},
		{"a rebuilt for no leave or join of this node's", inRing, fzRight.Addr, wire.Rebuilt{Reason: "late", NewLeader: "carol"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fuzzPeer()
			p.epoch = 9
			tt.setup(p)
			before := p.identity()
			h, m := signedFor(p, tt.from, wire.Header{ID: 40}, tt.m)
			var dropped, acked bool
			for _, o := range p.Step(time.Unix(1_700_000_000, 0), tt.from, h, m) {
				switch o := o.(type) {
				case Event:
					dropped = dropped || o.Drop
				case Send:
					if a, ok := o.Msg.(wire.Ack); ok && o.To == tt.from && (o.ID == 40 || slices.Contains(a.More, 40)) {
						acked = true
					}
				}
			}
			if !dropped || !acked {
				t.Fatalf("dropped %v, acknowledged %v; want both", dropped, acked)
			}
			if p.link.unseen(tt.from, []uint32{40}) != 0 {
				t.Fatal("not remembered as seen: a flush naming it would wait for it")
			}
			if after := p.identity(); after != before {
				t.Fatalf("the node's place changed: %+v -> %+v", before, after)
			}
		})
	}
}

// sentAgain runs p's link for a minute from now and returns the messages
// it sends again, each once.
func sentAgain(p *Peer, now time.Time) []wire.Message {
	var msgs []wire.Message
	seen := map[uint32]bool{}
	for at := now; at.Before(now.Add(time.Minute)); at = at.Add(10 * time.Millisecond) {
		out, _ := p.link.tick(at)
		for _, o := range out {
			if s, ok := o.(Send); ok && !seen[s.ID] {
				seen[s.ID] = true
				msgs = append(msgs, s.Msg)
			}
		}
	}
	return msgs
}

// onlyQuery: what was sent again is the query alone.
func onlyQuery(msgs []wire.Message) bool {
	return len(msgs) == 1 && msgs[0].Type() == wire.TypeQuery
}

// When a store round is over, the flush and committed it sent (a copy
// whose ack was lost, to a node restarted since) are sent no more; when a
// leave or a teardown ends, done or failed, neither is what it sent round
// the ring; when a new ring is set up over a node, nothing of the old ring
// goes on, queries aside. Their acks, if they come, are taken silently.
func TestWhatNoOneWaitsForIsSentNoMore(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	query := wire.Query{ReqID: 1, Querier: wire.Member{Name: "erin", Addr: fzOther}, LongName: "Aruba"}

	t.Run("a store round that is over", func(t *testing.T) {
		p := fuzzPeer()
		p.pop = &populate{round: 7}
		p.link.send(now, fzRight.Addr, wire.Flush{Leader: fzSelf.Name, N: 3, Round: 7}, tagNone, false)
		p.link.send(now, fzRight.Addr, wire.Committed{Leader: fzSelf.Name, Round: 7}, tagNone, false)
		p.link.send(now, fzRight.Addr, wire.Committed{Leader: "alice", Round: 3}, tagNone, false)
		p.populated(now)
		if got := sentAgain(p, now); len(got) != 1 || got[0] != (wire.Committed{Leader: "alice", Round: 3}) {
			t.Fatalf("sent again %+v; want only the other leader's committed", got)
		}
	})
	for _, ended := range []struct {
		name string
		op   operation
		last Result
	}{
		{"a leave that failed", &leaveOp{stage: leaveRenumbering}, resultFailed(CmdDHTRebuilt, "test")},
		{"a teardown that failed", &teardownOp{stage: teardownTearing}, resultFailed(CmdTeardownComplete, "test")},
	} {
		t.Run(ended.name, func(t *testing.T) {
			p := fuzzPeer()
			p.op = ended.op
			p.link.send(now, fzRight.Addr, wire.ResetID{Origin: fzSelf.Name, N: 2, Epoch: 9}, tagNone, false)
			p.link.send(now, fzRight.Addr, wire.Teardown{Origin: fzSelf.Name, Epoch: 9}, tagNone, false)
			p.link.send(now, fzRight.Addr, query, tagNone, false)
			p.finish(now, nil, ended.last)
			if got := sentAgain(p, now); !onlyQuery(got) {
				t.Fatalf("sent again %+v; want only the query", got)
			}
		})
	}
	t.Run("a new ring over the node", func(t *testing.T) {
		p := fuzzPeer()
		p.link.send(now, fzRight.Addr, wire.Teardown{Origin: "alice", Epoch: 1}, tagNone, false)
		flush := p.link.send(now, fzRight.Addr, wire.Flush{Leader: "alice", N: 3, Round: 2, Epoch: 1}, tagNone, false)
		p.link.send(now, fzRight.Addr, query, tagNone, false)
		p.abandon(now, "test")
		if got := sentAgain(p, now); !onlyQuery(got) {
			t.Fatalf("sent again %+v; want only the query", got)
		}
		// The ack of a message no longer sent ends nothing, and says nothing.
		id := flush[0].(Send).ID
		if out := p.onAck(now, fzRight.Addr, wire.Header{ID: id}, wire.Ack{}); len(out) != 0 {
			t.Fatalf("the ack of a cancelled flush: %v; want nothing", out)
		}
		// A copy of that ack (sent again by a replay) is a drop, which the
		// trace summarises, not a line a copy.
		out := p.onAck(now, fzRight.Addr, wire.Header{ID: id}, wire.Ack{})
		if ev, ok := firstOutput(out).(Event); !ok || !ev.Drop || ev.Level != slog.LevelDebug {
			t.Fatalf("a copy of the ack of a cancelled flush: %v; want a drop, debug", out)
		}
	})
}

// A leader whose join the server's heal ends tells the joiner once,
// unacknowledged: the server tells it too, and a joiner restarted since
// could not check the message, so a reliable copy would be sent again
// until the give-up.
func TestAJoinEndedByAHealIsToldOnce(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := fuzzPeer()
	joiner := wire.Member{Name: "dave", Addr: netip.MustParseAddrPort("10.0.0.9:5000")}
	p.joining = &joinLead{joiner: joiner}
	var told bool
	for _, o := range p.abandon(now, "the server asked bob to heal the ring") {
		if s, ok := o.(Send); ok && s.To == joiner.Addr {
			if _, ok := s.Msg.(wire.Rebuilt); ok && s.Flags&wire.FlagNoAck != 0 {
				told = true
			}
		}
	}
	if !told {
		t.Fatal("the joiner was not told, once and unacknowledged")
	}
	if got := sentAgain(p, now); len(got) != 0 {
		t.Fatalf("sent again %+v; want nothing", got)
	}
}

// A setup-dht answer that comes after a heal placed this node in a later
// ring (the answer lost, asked again, answered from the server's cache)
// does not set up the earlier ring over the healed one.
func TestALateSetupAnswerDoesNotUndoAHeal(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := fuzzPeer()
	p.epoch = 5
	o := &setupOp{stage: setupAsking}
	p.op = o
	members := []wire.Member{fzSelf, fzRight, fzLeft}
	out := o.place(p, now, members, 3)
	last := out[len(out)-1]
	if r, ok := last.(Result); !ok || r.Cmd != CmdDHTComplete || r.OK {
		t.Fatalf("last output %#v; want dht-complete FAILURE", last)
	}
	for _, o := range out {
		if s, ok := o.(Send); ok {
			t.Fatalf("sent %#v for the earlier ring", s.Msg)
		}
	}
	if p.epoch != 5 || p.id != 1 {
		t.Fatalf("the node's place changed: id %d, epoch %d", p.id, p.epoch)
	}
}

// A heal that the server replaces with a later one (another member went
// offline) fails as replaced, naming the new heal's epoch; it said that
// the server had asked for a heal and would heal again, which it had
// already done (an operator's review). The later heal starts.
func TestAHealReplacedSaysSo(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := fuzzPeer()
	members := []wire.Member{fzSelf, fzRight, fzLeft}
	p.startHeal(now, wire.Heal{Epoch: 5, Members: members})
	if p.healing == nil {
		t.Fatal("the first heal did not start")
	}
	var got []string
	for _, o := range p.startHeal(now, wire.Heal{Epoch: 6, Members: members[:2]}) {
		if r, ok := o.(Result); ok {
			got = append(got, r.String())
		}
	}
	if want := []string{"heal FAILURE: the server replaced it with the heal of epoch 6"}; !slices.Equal(got, want) {
		t.Fatalf("printed %q, want %q", got, want)
	}
	if h := p.healing; h == nil || h.epoch != 6 {
		t.Fatalf("healing %+v, want the heal of epoch 6", h)
	}
}

// A member whose rejoin counted it in a ring it held no place in (its
// ticket taken, its place to come by set-id) takes that ring's set-ids
// while the server counts it; once it held a place and gave it up (a
// teardown passed it), the rejoin counts no more: a set-id of that ring,
// replayed, is refused, as at any node that left the ring.
func TestACountedMemberThatLeftTakesNoSetIDAgain(t *testing.T) {
	p := fuzzPeer()
	p.inRing, p.neighbours, p.left, p.right = false, false, wire.Member{}, wire.Member{}
	p.counted = true
	if !p.holdsRing() {
		t.Fatal("a member counted in by its rejoin does not hold the ring")
	}
	p.inRing, p.neighbours = true, true // its set-id came
	p.leaveRing(false)                  // a teardown passed it
	if p.holdsRing() {
		t.Fatal("after its place went, the node still holds the ring by its rejoin")
	}
}

// A set-id of a new ring (a heal the server started) ends what this node
// was doing in the old one, saying who set whom up, by name: a leaver or
// a joiner whose rebuild this node ran is told the same words, and "this
// node" would be another than itself there (an operator's review).
func TestNewRingEndsTheCommandSayingWho(t *testing.T) {
	p := fuzzPeer() // bob, id 1 of 3, left fzLeft
	now := time.Unix(1_700_000_000, 0)
	p.op = &teardownOp{stage: teardownTearing}
	out := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 9}, wire.SetID{ID: 1, N: 2, Left: fzLeft, Right: fzLeft, Epoch: 7})
	want := fmt.Sprintf("teardown-complete FAILURE: %s set %s up in a new ring (epoch 7)", label(fzLeft), fzSelf.Name)
	for _, o := range out {
		if r, ok := o.(Result); ok {
			if r.String() != want {
				t.Fatalf("printed %q; want %q", r.String(), want)
			}
			return
		}
	}
	t.Fatalf("no result in %v; want %q", out, want)
}

// A member resumed on a file whose ring the server no longer counts is
// told which ring it held, not the epoch of the heal its own rejoin began
// (which the server's note gives): the line said "the ring it held (epoch
// 2) is not the server's (epoch 3)", and then that it "restarted without
// its place in the ring (epoch 2)" (an operator's review).
func TestResumeOfAnOutdatedPlaceNamesItsRing(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	id := state.Identity{Name: "bob", Addr: fzSelf.Addr, InRing: true, ID: 1, N: 3, Left: fzLeft, Right: fzRight, Epoch: 2}
	note := "bob restarted without its place in the ring (epoch 2): the ring heals to 3 node(s) led by alice"
	var got string
	for _, o := range p.resumed(now, id, wire.Reply{OK: true, State: uint8(state.InDHT), Epoch: 3, Reason: note}, false, CmdResume) {
		if r, ok := o.(Result); ok {
			got = r.String()
		}
	}
	want := "resume SUCCESS: bob " + fzSelf.Addr.String() + " InDHT; its place in the ring it held (epoch 2) and its table were discarded, and the ring heals with it; " + note
	if got != want {
		t.Fatalf("printed %q\nwant    %q", got, want)
	}
}

// A querier's queries, sent reliably, as many as it likes, are kept in a
// duplicate filter of their own: in the ring's they pushed out the ids of
// the ring's own messages (65,536 of them), and a late copy of one, a
// store here, was then taken again as new (a red-team review: a set-id
// taken twice after a token holder's flood).
func TestQueriesDoNotPushRingMessagesOutOfTheFilter(t *testing.T) {
	p := fuzzPeer() // bob, id 1 of 3
	now := time.Unix(1_700_000_000, 0)
	// Pos("bb") = 196: id 1, bob's own (not found), so nothing is forwarded.
	store := wire.Store{N: 3, Records: []wire.Record{{"AAA", "s", "t", "Kingdom of Spain"}}}
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 500}, store)
	querier := wire.Member{Name: "dave", Addr: fzOther}
	for id := uint32(1); id <= 70_000; id++ {
		stepSigned(p, now, fzOther, wire.Header{ID: id}, wire.Query{ReqID: id, Querier: querier, LongName: "bb"})
	}
	before := p.stats.DupsSuppressed
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 500, Flags: wire.FlagRetransmit}, store)
	if p.stats.DupsSuppressed != before+1 {
		t.Fatal("after 70,000 queries, a copy of the left neighbour's store was taken again as new")
	}
}

// A querier's queries sent reliably go on in the right link's queue, as
// stores do, only while that link keeps up: past backlogLimit they are
// dropped unacknowledged (their sender sends them again). One querier's
// flood grew a member's queue to a gigabyte, and the ring's own messages
// waited behind it until a teardown was rolled back (a red-team review).
func TestQueriesCannotGrowTheRightLinksQueue(t *testing.T) {
	p := fuzzPeer() // bob, id 1 of 3; its right neighbour acknowledges nothing here
	now := time.Unix(1_700_000_000, 0)
	querier := wire.Member{Name: "dave", Addr: fzOther}
	// Pos("Aruba") = 138: id 0, forwarded right.
	for id := uint32(1); id <= 10_000; id++ {
		stepSigned(p, now, fzOther, wire.Header{ID: id}, wire.Query{ReqID: id, Querier: querier, LongName: "Aruba"})
	}
	if got, limit := p.link.backlog(fzRight.Addr), p.backlogLimit(); got > limit+1 {
		t.Fatalf("10,000 reliable queries left %d waiting for the right neighbour, more than %d", got, limit)
	}
}

// A Free user's file that holds a table (builds before 56e5909 kept one
// after a register that followed a failed resume; the open takes such a
// file) is cleared by the resume: the persist clears the table, and the
// ring epoch the file held stays a floor, as in a process that ran on.
func TestResumeAsFreeClearsATableLeftByAnEarlierBuild(t *testing.T) {
	p := fuzzPeer() // its table file holds a record
	p.inRing, p.id, p.n, p.epoch = false, 0, 0, 0
	p.leaveRing(false) // a process just started: no place
	now := time.Unix(1_700_000_000, 0)
	id := state.Identity{Name: "bob", Addr: fzSelf.Addr, Epoch: 2}
	cleared := false
	for _, o := range p.resumed(now, id, wire.Reply{OK: true, State: uint8(state.Free)}, false, CmdResume) {
		if pp, ok := o.(PersistPeer); ok && pp.Batch.Clear && pp.Batch.Identity != nil && !pp.Batch.Identity.InRing {
			cleared = true
		}
	}
	if !cleared {
		t.Fatal("the resume as a Free user does not clear the table")
	}
	if p.epoch != 2 {
		t.Fatalf("ring epoch floor %d after the resume, want the file's 2", p.epoch)
	}
}

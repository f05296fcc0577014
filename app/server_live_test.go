package app

// Liveness at the server (SPEC.md §7 "Members that die"): a user silent for
// DeadAfter is offline; setup-dht and join-dht neither pick nor accept it.

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app/state"
	"dht/wire"
)

// alive sends an alive from each of names at h.now, with the server's
// pace, and wants no answer.
func (h *srvH) alive(names ...string) {
	h.t.Helper()
	for _, n := range names {
		if _, outs := h.aliveAtPace(wire.Alive{Name: n}); len(outs) != 0 {
			h.t.Fatalf("alive from %s at its pace: %#v, want nothing", n, outs)
		}
	}
}

func TestServerSetupDHTPicksOnlyLiveUsers(t *testing.T) {
	everyone := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	for seed := range uint64(50) {
		cfg := srvConfig()
		cfg.DeadAfter = DefaultDeadAfter
		cfg.Rand = rand.New(rand.NewPCG(seed, 7))
		h := &srvH{t: t, s: NewServer(cfg, srvFree(everyone...), nil), now: srvT0, id: 1000}
		h.s.Tick(srvT0) // the server starts: everyone counts as seen now
		h.now = srvT0.Add(DefaultDeadAfter + time.Second)
		h.alive("alice", "carol", "erin") // bob, dave and frank have been silent since the start
		r := h.ok(srvAddr("alice"), wire.SetupDHT{N: 3, Name: "alice"})
		var got []string
		for _, m := range r.Reply.Members {
			got = append(got, m.Name)
		}
		slices.Sort(got)
		if want := []string{"alice", "carol", "erin"}; !slices.Equal(got, want) {
			t.Fatalf("seed %d: setup-dht 3 picked %v, want the live %v", seed, got, want)
		}
	}
}

func TestServerSetupDHTCountsOnlyLiveUsers(t *testing.T) {
	h := newLiveH(t, srvFree("alice", "bob", "carol", "dave", "erin"))
	h.s.Tick(srvT0)
	h.now = srvT0.Add(20 * time.Second)
	h.alive("alice", "bob", "carol")
	h.fail(srvAddr("alice"), wire.SetupDHT{N: 4, Name: "alice"}, "only 3 of the 5 registered users are live", "4 needed")
	// A sign of life from dave makes four.
	h.alive("dave")
	h.ok(srvAddr("alice"), wire.SetupDHT{N: 4, Name: "alice"})
}

func TestServerSetupDHTRefusesAnOfflineLeader(t *testing.T) {
	h := newLiveH(t, srvFree("alice", "bob", "carol"))
	h.s.Tick(srvT0)
	h.now = srvT0.Add(20 * time.Second)
	h.alive("bob", "carol")
	h.fail(srvAddr("alice"), wire.SetupDHT{N: 2, Name: "alice"}, "alice is offline: silent for 20s", "--dead-after 15s")
	// That request was a sign of life: alice is online again.
	h.ok(srvAddr("alice"), wire.SetupDHT{N: 2, Name: "alice"})
}

func TestServerJoinDHTRefusesAnOfflineJoiner(t *testing.T) {
	h := newLiveH(t, srvDHT(state.PhaseReady, []string{"alice", "bob"}, "carol"))
	h.s.Tick(srvT0)
	h.now = srvT0.Add(30 * time.Second)
	h.alive("alice", "bob")
	h.fail(srvAddr("carol"), wire.JoinDHT{Name: "carol"}, "carol is offline: silent for 30s")
	h.now = h.now.Add(DefaultDeadAfter + time.Second)
	h.alive("alice", "bob", "carol") // an alive brings carol back
	h.ok(srvAddr("carol"), wire.JoinDHT{Name: "carol"})
}

// Any request from a user's address is a sign of life, even a refused one
// (here a query while no DHT exists).
func TestServerAnyRequestIsASignOfLife(t *testing.T) {
	h := newLiveH(t, srvFree("alice", "bob"))
	h.s.Tick(srvT0)
	h.now = srvT0.Add(time.Minute)
	if _, off := h.s.Silent(h.now, "bob"); !off {
		t.Fatal("bob silent for a minute is not offline")
	}
	h.fail(srvAddr("bob"), wire.QueryDHT{Name: "bob"}, "no DHT exists")
	if d, off := h.s.Silent(h.now, "bob"); off || d != 0 {
		t.Fatalf("after a request bob is silent for %v (offline %v), want 0, online", d, off)
	}
	h.alive("alice")
	h.ok(srvAddr("alice"), wire.SetupDHT{N: 2, Name: "alice"})
}

// A restart gives every user DeadAfter to show up, whatever it did before.
func TestServerRestartGraceForEveryUser(t *testing.T) {
	restart := srvT0.Add(time.Hour)
	cfg := srvConfig()
	cfg.DeadAfter = DefaultDeadAfter
	cfg.Started = restart
	h := &srvH{t: t, s: NewServer(cfg, srvFree("alice", "bob", "carol"), nil), now: restart.Add(DefaultDeadAfter)}
	for _, n := range []string{"alice", "bob", "carol"} {
		if d, off := h.s.Silent(h.now, n); off || d != DefaultDeadAfter {
			t.Fatalf("%s at the end of the grace: silent %v, offline %v; want %v, online", n, d, off, DefaultDeadAfter)
		}
	}
	h.now = restart.Add(DefaultDeadAfter + time.Millisecond)
	h.alive("bob")
	h.fail(srvAddr("bob"), wire.SetupDHT{N: 2, Name: "bob"}, "only 1 of the 3 registered users are live")
}

// The server answers an alive only with a pace, only when the sender's
// period is wrong, and never with more bytes than it got; an alive that
// does not come from its user's address changes nothing.
func TestServerAlivePace(t *testing.T) {
	h := newLiveH(t, srvFree("alice"))
	h.s.Tick(srvT0)
	h.now = srvT0.Add(time.Minute)
	for _, name := range []string{"a", "alice"} {
		in := wire.Alive{Name: name}
		outs := h.s.stepTrusted(h.now, srvAddr("alice"), wire.Header{Type: wire.TypeAlive, ID: 5}, in)
		if name != "alice" {
			if len(outs) != 1 || !outs[0].(Event).Drop {
				t.Fatalf("alive naming %s from alice's address: %#v, want one drop", name, outs)
			}
			if _, off := h.s.Silent(h.now, "alice"); !off {
				t.Fatal("an alive naming another user brought alice online")
			}
			continue
		}
		if len(outs) != 1 {
			t.Fatalf("alive with period 0: %#v, want one Send of a pace", outs)
		}
		send := outs[0].(Send)
		if p, ok := send.Msg.(wire.Pace); !ok || send.To != srvAddr("alice") || send.ID != 5 || time.Duration(p.PeriodMS)*time.Millisecond != DefaultDeadAfter/10 {
			t.Fatalf("answer %#v, want a pace of %v to alice with id 5", send, DefaultDeadAfter/10)
		}
		if out, least := wire.EncodedLen(send.Msg), wire.EncodedLen(wire.Alive{Name: "a"}); out >= least {
			t.Errorf("pace is %d bytes, the shortest alive %d", out, least)
		}
	}
	if _, off := h.s.Silent(h.now, "alice"); off {
		t.Fatal("alice offline after her alive")
	}
	h.alive("alice") // at the pace: no answer
	// An alive does not replace the cached reply to a request.
	h.step(srvAddr("alice"), 9, wire.SetupDHT{N: 2, Name: "alice"})
	h.alive("alice")
	before := h.s.Snapshot()
	r := h.step(srvAddr("alice"), 9, wire.SetupDHT{N: 2, Name: "alice"})
	if r.Persist != nil || !srvSameState(before, h.s.Snapshot()) {
		t.Error("a retransmitted request after an alive was run again")
	}
}

// Signs of life reach the file coarsely: with the next command's commit,
// or in one commit seenFlush after the first unwritten one; never one
// commit per alive.
func TestServerLastSeenWrittenInBatches(t *testing.T) {
	h := newLiveH(t, srvFree("alice", "bob"))
	h.s.Tick(srvT0)
	if _, ok := h.s.NextDeadline(); ok {
		t.Fatal("a deadline before any sign of life")
	}
	sec := func(d time.Duration) int64 { return srvT0.Add(d).UnixNano() }
	for _, at := range []time.Duration{time.Second, 1500 * time.Millisecond, 2 * time.Second} {
		h.now = srvT0.Add(at)
		h.alive("alice") // wants no output: no PersistServer
	}
	h.now = srvT0.Add(3 * time.Second)
	h.alive("bob")
	if d, ok := h.s.NextDeadline(); !ok || !d.Equal(srvT0.Add(time.Second+seenFlush)) {
		t.Fatalf("NextDeadline %v %v, want %v", d, ok, srvT0.Add(time.Second+seenFlush))
	}
	if outs := h.s.Tick(srvT0.Add(time.Second + seenFlush - time.Millisecond)); len(outs) != 0 {
		t.Fatalf("Tick before the flush: %#v", outs)
	}
	outs := h.s.Tick(srvT0.Add(time.Second + seenFlush))
	if len(outs) != 1 {
		t.Fatalf("Tick at the flush: %#v, want one PersistServer", outs)
	}
	p := outs[0].(PersistServer)
	if got := []int64{p.State.Users[0].LastSeen, p.State.Users[1].LastSeen}; got[0] != sec(2*time.Second) || got[1] != sec(3*time.Second) {
		t.Fatalf("written LastSeen %v, want alice at 2s and bob at 3s", got)
	}
	if d, ok := h.s.NextDeadline(); ok {
		t.Fatalf("a deadline %v after the flush", d)
	}
	// The next command's commit carries the signs of life since.
	h.now = srvT0.Add(10 * time.Second)
	h.alive("bob")
	h.now = srvT0.Add(11 * time.Second)
	r := h.ok(srvAddr("carol"), wire.Register{Name: "carol", Addr: srvAddr("carol")})
	want := map[string]int64{"alice": sec(2 * time.Second), "bob": sec(10 * time.Second), "carol": sec(11 * time.Second)}
	for _, u := range r.Persist.State.Users {
		if u.LastSeen != want[u.Name] {
			t.Errorf("%s written last seen at %v, want %v", u.Name, time.Unix(0, u.LastSeen).Sub(srvT0), time.Unix(0, want[u.Name]).Sub(srvT0))
		}
	}
	if d, ok := h.s.NextDeadline(); ok {
		t.Fatalf("a deadline %v after a command's commit", d)
	}
}

// newLiveH is newSrvH with the default --dead-after.
// aliveAtPace sends in from its user's address, at the period the server
// asks for, and returns it as sent with what the server did.
func (h *srvH) aliveAtPace(in wire.Alive) (wire.Alive, []Output) {
	in.PeriodMS = uint32(h.s.Pace().Milliseconds())
	return in, h.s.stepTrusted(h.now, srvAddr(in.Name), wire.Header{Type: wire.TypeAlive, ID: h.nextID()}, in)
}

func newLiveH(t *testing.T, st state.ServerState) *srvH {
	t.Helper()
	cfg := srvConfig()
	cfg.DeadAfter = DefaultDeadAfter
	return &srvH{t: t, s: NewServer(cfg, st, nil), now: srvT0, id: 1000}
}

// A server that did not run for longer than DeadAfter (stopped, starved of
// CPU, its commit held up by the disk) finds its Tick late and the alives
// of that time waiting, unread, on its socket: it reads them before it
// judges, and a ring whose members all kept sending stays as it is. One
// that sent nothing meanwhile is offline all the same, drainWait later.
func TestServerLateTickReadsBeforeItJudges(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	for _, dead := range []string{"", "bob"} {
		h := newLiveH(t, srvDHT(state.PhaseReady, ring))
		h.s.Tick(srvT0)
		h.alive(ring...)
		due, ok := h.s.judgementDue()
		if !ok || !due.Equal(srvT0.Add(DefaultDeadAfter+1)) {
			t.Fatalf("judgement due %v %v, want DeadAfter after the alives", due, ok)
		}
		// The server stalls a minute; its Tick comes first once it runs.
		h.now = srvT0.Add(time.Minute)
		before := h.s.Snapshot()
		outs := h.s.Tick(h.now)
		if len(outs) != 1 || !strings.HasPrefix(outs[0].(Event).Msg, "late:") || !srvSameState(before, h.s.Snapshot()) {
			t.Fatalf("the late Tick: %#v; want one Event saying it waits, and nothing changed", outs)
		}
		// The LastSeen times are written meanwhile; nothing is judged.
		for range 2 {
			outs := h.s.Tick(h.now.Add(drainWait / 2))
			if len(outs) > 1 || len(outs) == 1 && !isPersist(outs[0]) || !srvSameState(before, h.s.Snapshot()) {
				t.Fatalf("a Tick while the socket is read: %#v", outs)
			}
		}
		if at, _ := h.s.NextDeadline(); !at.Equal(h.now.Add(drainWait)) {
			t.Fatalf("NextDeadline %v after the late Tick, want drainWait later", at.Sub(h.now))
		}
		// What waited on the socket: the alives sent during the stall.
		for _, n := range ring {
			if n != dead {
				h.alive(n)
			}
		}
		h.now = h.now.Add(drainWait)
		outs = h.s.Tick(h.now)
		if dead != "" {
			// Its alives may have been dropped (a full queue): its next
			// comes within Pace after the server runs again.
			for end := srvT0.Add(time.Minute + h.s.Pace() + drainWait); h.now.Before(end); {
				h.now = h.now.Add(drainWait)
				h.tickIfDue()
			}
		}
		st := h.s.Snapshot()
		if dead == "" {
			if len(outs) != 0 || !srvSameState(before, st) {
				t.Fatalf("every member sent alives through the stall, yet: %#v, DHT %+v", outs, st.DHT)
			}
			continue
		}
		if st.DHT.Phase != state.PhaseHealing || slices.Contains(st.DHT.Members, dead) || len(st.DHT.Members) != 2 {
			t.Fatalf("%s sent nothing: DHT %+v, want a heal without it", dead, st.DHT)
		}
	}
}

func isPersist(o Output) bool { _, ok := o.(PersistServer); return ok }

// An alive carries the epoch of the ring its sender holds a place in. The
// server's pace says that place is gone (Gone, the alive's epoch) when it
// counts the user Free and the user is not the joiner of the join in
// progress: the ring was healed without it, dissolved, or rolled back. A
// member, or the joiner in its join's epoch, is never told so, and an alive
// at the pace that names no place, or a live one, gets no answer at all.
func TestServerPaceSaysThePlaceIsGone(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	ready := func(epoch uint64) state.ServerState {
		st := srvDHT(state.PhaseReady, ring, "dave", "erin")
		st.DHT.Epoch = epoch
		return st
	}
	none := srvFree("alice", "dave")
	none.DHT.Epoch = 7 // kept when the DHT was dissolved
	joining := srvJoining(ring, "dave", "erin")
	joining.DHT.Epoch = 8
	tests := []struct {
		name  string
		st    state.ServerState
		user  string
		epoch uint64
		gone  uint64 // 0: no pace at all
	}{
		{"a Free user healed out of the ring", ready(8), "dave", 7, 7},
		{"a Free user, the DHT dissolved since", none, "alice", 7, 7},
		{"a member in the ring's epoch", ready(8), "bob", 8, 0},
		{"a member a leave or join has not renumbered yet", ready(8), "bob", 7, 0},
		{"the leader", ready(8), "alice", 8, 0},
		{"a Free user with no place", ready(8), "dave", 0, 0},
		{"the joiner, in its join's epoch", joining, "dave", 8, 0},
		{"the joiner, with a place of an older ring", joining, "dave", 5, 5},
		{"a Free user during a join not its own", joining, "erin", 8, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newLiveH(t, tt.st)
			in, outs := h.aliveAtPace(wire.Alive{Name: tt.user, Epoch: tt.epoch})
			if tt.gone == 0 {
				if len(outs) != 0 {
					t.Fatalf("alive %+v: %#v, want no answer", in, outs)
				}
				return
			}
			if len(outs) != 1 {
				t.Fatalf("alive %+v: %#v, want one pace", in, outs)
			}
			send := outs[0].(Send)
			if p, ok := send.Msg.(wire.Pace); !ok || send.To != srvAddr(tt.user) || p.Gone != tt.gone || p.PeriodMS != in.PeriodMS {
				t.Fatalf("alive %+v: answer %#v, want a pace to %s with gone %d", in, send, tt.user, tt.gone)
			}
			if out, got := wire.EncodedLen(send.Msg), wire.EncodedLen(in); out >= got {
				t.Errorf("pace is %d bytes, the alive %d", out, got)
			}
			if !srvSameState(tt.st, h.s.Snapshot()) {
				t.Error("an alive changed the registry")
			}
		})
	}
}

// Epochs come from the server, which writes each to its file before any
// peer hears of it: an alive or a rejoin naming a ring place or a ring key
// of a larger epoch says that the server's file is older than its peers'
// rings (put back from a copy). The DHT it recorded, in whatever phase, is
// dissolved, saying why; its epochs go on from the peer's, so that the
// next setup's ring is newer than every ring key a peer took; the change
// is written; and a place the peer holds is gone (the pace says so).
// Epochs not above the server's change nothing; nor does the claim of a
// user who is no member of the DHT recorded (a Free user, the joiner: any
// user could end a ring so), nor an epoch past maxClaimedEpoch (the next
// setup's would wrap to 0, below every ring a peer took).
func TestServerFileOlderThanItsPeersRings(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	at := func(st state.ServerState, phase state.Phase, epoch uint64) state.ServerState {
		st.DHT.Phase, st.DHT.Epoch = phase, epoch
		return st
	}
	tests := []struct {
		name            string
		st              state.ServerState
		user            string
		epoch, keyEpoch uint64
		want            uint64 // the server's epoch after; 0: unchanged
		gone            uint64
	}{
		{"a Free user's place, no DHT recorded", at(srvFree("alice", "erin"), state.PhaseNone, 8), "erin", 9, 9, 9, 9},
		{"a member's place", at(srvDHT(state.PhaseReady, ring, "dave", "erin"), state.PhaseReady, 8), "carol", 9, 9, 9, 9},
		{"the leaver's place", at(srvLeaving(ring, "bob", "dave"), state.PhaseLeaving, 8), "bob", 9, 9, 9, 9},
		// Claims no one is believed in: they change nothing.
		{"a Free user's place beside a DHT", at(srvDHT(state.PhaseReady, ring, "dave", "erin"), state.PhaseReady, 8), "erin", 9, 9, 0, 0},
		{"a Free user's ring key beside a DHT", at(srvDHT(state.PhaseReady, ring, "dave", "erin"), state.PhaseReady, 8), "erin", 0, 1000, 0, 0},
		{"the joiner's ring key", at(srvJoining(ring, "dave", "erin"), state.PhaseJoining, 8), "dave", 8, 9, 0, 0},
		{"a member's epoch past the bound", at(srvDHT(state.PhaseReady, ring, "dave"), state.PhaseReady, 8), "bob", 1<<64 - 1, 0, 0, 0},
		{"a Free user's epoch past the bound, no DHT", at(srvFree("alice", "dave"), state.PhaseNone, 7), "dave", 0, maxClaimedEpoch + 1, 0, 0},
		{"a member's ring key, its place of the server's epoch", at(srvDHT(state.PhaseReady, ring, "dave"), state.PhaseReady, 8), "bob", 8, 11, 11, 8},
		{"a Free user's ring key, no DHT recorded", at(srvFree("alice", "dave"), state.PhaseNone, 7), "dave", 0, 12, 12, 0},
		{"during a teardown", at(srvDHT(state.PhaseTearing, ring, "dave"), state.PhaseTearing, 5), "alice", 6, 6, 6, 6},
		{"a member, the server's epoch", at(srvDHT(state.PhaseReady, ring, "dave"), state.PhaseReady, 8), "bob", 8, 8, 0, 0},
		{"a Free user's older ring key", at(srvFree("alice", "dave"), state.PhaseNone, 7), "dave", 0, 3, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newLiveH(t, tt.st)
			in, outs := h.aliveAtPace(wire.Alive{Name: tt.user, Epoch: tt.epoch, KeyEpoch: tt.keyEpoch})
			after := h.s.Snapshot()
			var persisted *PersistServer
			var gone uint64
			for _, o := range outs {
				switch o := o.(type) {
				case PersistServer:
					persisted = &o
				case Send:
					if p, ok := o.Msg.(wire.Pace); ok {
						gone = p.Gone
					}
				}
			}
			if tt.want == 0 {
				if !srvSameState(tt.st, after) || after.DHT.Epoch != tt.st.DHT.Epoch || persisted != nil {
					t.Fatalf("alive %+v changed the state: %+v, outputs %#v", in, after.DHT, outs)
				}
				return
			}
			if after.DHT.Phase != state.PhaseNone || after.DHT.Epoch != tt.want {
				t.Fatalf("alive %+v: DHT %+v, want none at epoch %d", in, after.DHT, tt.want)
			}
			for _, u := range after.Users {
				if u.State != state.Free {
					t.Errorf("%s is %s, want Free", u.Name, u.State)
				}
			}
			if persisted == nil || persisted.State.DHT.Epoch != tt.want {
				t.Fatalf("the change was not written: %#v", outs)
			}
			if gone != tt.gone {
				t.Errorf("pace says gone %d, want %d", gone, tt.gone)
			}
			if tt.st.DHT.Phase != state.PhaseNone {
				h.fail(srvAddr("dave"), wire.QueryDHT{Name: "dave"}, "no DHT exists", "older than the ring of epoch")
			}
			// The next ring is newer than anything the peers hold.
			h.ok(srvAddr("alice"), wire.SetupDHT{N: 2, Name: "alice"})
			if e := h.s.Snapshot().DHT; e.Epoch != tt.want+1 || e.KeyEpoch != tt.want+1 {
				t.Errorf("the next setup is at epoch %d, key epoch %d; want %d", e.Epoch, e.KeyEpoch, tt.want+1)
			}
		})
	}
	// A member's rejoin naming a newer ring: the same, said in the reply.
	h := newLiveH(t, srvDHT(state.PhaseReady, ring, "dave"))
	h.s.dht.Epoch = 4
	r := h.ok(srvAddr("bob"), wire.Register{Name: "bob", Addr: srvAddr("bob"), Epoch: 9})
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseNone || d.Epoch != 9 || r.Reply.State != uint8(state.Free) || !strings.Contains(r.Reply.Reason, "older than the ring of epoch 9") {
		t.Fatalf("rejoin naming epoch 9 at a server of epoch 4: reply %+v, DHT %+v", r.Reply, d)
	}
}

// An alive that names an operation its user's peer gave up (the type of
// the request that started it, and its epoch) ends that operation at once,
// if the server still waits for that user to finish it: a setup or a
// teardown is dissolved, a leave or a join heals the ring round the leaver
// or the joiner. Any other quit ends nothing: another user's, an earlier
// epoch's, another operation's at the same epoch (a setup's, given up
// long ago, while that ring is torn down).
func TestServerEndsAnOperationItsPeerGaveUp(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	at8 := func(st state.ServerState) state.ServerState {
		st.DHT.Epoch = 8
		return st
	}
	building := at8(srvDHT(state.PhaseBuilding, ring, "dave", "erin"))
	tearing := at8(srvDHT(state.PhaseTearing, ring, "dave", "erin"))
	leaving := at8(srvLeaving(ring, "bob", "dave", "erin"))
	joining := at8(srvJoining(ring, "dave", "erin"))
	ready := at8(srvDHT(state.PhaseReady, ring, "dave", "erin"))
	const (
		setup    = wire.TypeSetupDHT
		teardown = wire.TypeTeardownDHT
		leave    = wire.TypeLeaveDHT
		joinOp   = wire.TypeJoinDHT
	)
	tests := []struct {
		name    string
		st      state.ServerState
		user    string
		op      wire.Type
		epoch   uint64
		phase   state.Phase // once ended; PhaseReady with ended false
		members []string    // of the healed ring
		ended   bool
	}{
		{"the leader gives up its setup", building, "alice", setup, 8, state.PhaseNone, nil, true},
		{"the leader gives up its teardown", tearing, "alice", teardown, 8, state.PhaseNone, nil, true},
		{"the leaver gives up its leave", leaving, "bob", leave, 8, state.PhaseHealing, []string{"alice", "carol"}, true},
		{"the joiner gives up its join", joining, "dave", joinOp, 8, state.PhaseHealing, ring, true},
		{"a member names the setup", building, "bob", setup, 8, 0, nil, false},
		{"a Free user names the setup", building, "dave", setup, 8, 0, nil, false},
		{"the leader names an earlier setup", building, "alice", setup, 7, 0, nil, false},
		{"the leader names the setup as a teardown", building, "alice", teardown, 8, 0, nil, false},
		{"a setup of the ring being torn down", tearing, "alice", setup, 8, 0, nil, false},
		{"another member names the leave", leaving, "carol", leave, 8, 0, nil, false},
		{"the joiner names the join as a leave", joining, "dave", leave, 8, 0, nil, false},
		{"a setup of the ready ring", ready, "alice", setup, 8, 0, nil, false},
		{"no epoch", building, "alice", setup, 0, 0, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newLiveH(t, tt.st)
			in, outs := h.aliveAtPace(wire.Alive{Name: tt.user, QuitOp: tt.op, Quit: tt.epoch})
			got := h.s.Snapshot()
			if !tt.ended {
				if len(outs) != 0 || !srvSameState(tt.st, got) {
					t.Fatalf("alive %+v: %#v, state %+v: want nothing done", in, outs, got.DHT)
				}
				return
			}
			if got.DHT.Phase != tt.phase || !slices.Equal(got.DHT.Members, tt.members) || !strings.Contains(h.s.note, tt.user+"'s peer gave up") && !strings.Contains(h.s.note, "its peer gave it up") {
				t.Fatalf("alive %+v: DHT %+v, note %q; want %s with members %v, saying the peer gave it up", in, got.DHT, h.s.note, tt.phase, tt.members)
			}
			for _, u := range got.Users {
				if want := state.Free; (u.Name == tt.user || !slices.Contains(tt.members, u.Name)) && u.State != want {
					t.Errorf("%s is %s, want %s", u.Name, u.State, want)
				}
			}
			persisted, healed := false, false
			for _, o := range outs {
				switch o := o.(type) {
				case PersistServer:
					persisted = srvSameState(got, o.State)
				case Send:
					if _, ok := o.Msg.(wire.Heal); ok {
						healed = persisted && o.To == srvAddr(tt.members[0])
					}
				}
			}
			if !persisted || healed != (tt.phase == state.PhaseHealing) {
				t.Fatalf("alive %+v: %#v; want the new state persisted, then (healing) the heal sent to its leader", in, outs)
			}
		})
	}
}

// A quit is taken only from an alive its user signed, with a sequence
// number above its last: one forged (unsigned, signed with another key, or
// sent from another address) or replayed ends nothing.
func TestServerTakesAQuitOnlyFromItsUser(t *testing.T) {
	st := srvDHT(state.PhaseBuilding, []string{"alice", "bob", "carol"}, "dave")
	st.DHT.Epoch = 8
	quit := wire.Alive{Name: "alice", QuitOp: wire.TypeSetupDHT, Quit: 8}
	step := func(h *srvH, from netip.AddrPort, seq uint64, key *wire.Key) {
		t.Helper()
		var b []byte
		var err error
		if key == nil {
			b, err = wire.Append(nil, 7, 0, quit)
		} else {
			b, err = wire.AppendSigned(nil, 7, 0, quit, seq, *key)
		}
		if err != nil {
			t.Fatal(err)
		}
		hd, m, err := wire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		h.s.Step(h.now, from, hd, m)
	}
	h := newLiveH(t, st)
	other := wire.Key{0xee}
	step(h, srvAddr("alice"), 0, nil)
	step(h, srvAddr("alice"), 50, &other)
	step(h, srvAddr("dave"), 50, &st.Users[0].Secret) // alice's secret, from dave's address
	if !srvSameState(st, h.s.Snapshot()) {
		t.Fatalf("a forged quit changed the state: %+v", h.s.Snapshot().DHT)
	}
	alice := srvSecret("alice")
	step(h, srvAddr("alice"), 40, &alice)
	if ph := h.s.Snapshot().DHT.Phase; ph != state.PhaseNone {
		t.Fatalf("alice's own quit left the DHT %s, want it dissolved", ph)
	}
	// Replayed into a setup of the same epoch (a fixture: epochs grow).
	h = newLiveH(t, st)
	step(h, srvAddr("alice"), 60, &alice) // the last alice sent
	h.s.users["alice"].State, h.s.dht = state.Leader, st.DHT
	step(h, srvAddr("alice"), 60, &alice)
	if ph := h.s.Snapshot().DHT.Phase; ph != state.PhaseBuilding {
		t.Fatalf("a replayed quit left the DHT %s, want it still building", ph)
	}
}

// A leaver or a joiner silent for DeadAfter while the server waits for its
// dht-rebuilt has its leave or join ended by the heal; a peer that was only
// stopped finishes its part when it runs again, and its dht-rebuilt then
// hears why the server no longer waits for it, not that nothing of the kind
// is in progress. Another user's dht-rebuilt, or one after the user's next
// leave-dht, is answered as before.
func TestServerDHTRebuiltAfterItsOperationWasHealedAway(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	for _, c := range []struct {
		name      string
		st        state.ServerState
		user, op  string
		live      []string
		newLeader string
	}{
		{"a leaver", srvLeaving(ring, "bob", "dave"), "bob", "leave-dht", []string{"alice", "carol", "dave"}, "carol"},
		{"a joiner", srvJoining(ring, "dave", "erin"), "dave", "join-dht", []string{"alice", "bob", "carol", "erin"}, "alice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newLiveH(t, c.st)
			h.s.Tick(srvT0)
			for h.now.Before(srvT0.Add(DefaultDeadAfter)) {
				h.now = h.now.Add(time.Second)
				h.alive(c.live...)
				h.s.Tick(h.now)
			}
			h.now, _ = h.s.judgementDue() // the user's silence turns DeadAfter long
			h.s.Tick(h.now)
			d := h.s.Snapshot().DHT
			if d.Phase != state.PhaseHealing || d.Leader != "alice" {
				t.Fatalf("%s silent for DeadAfter: DHT %+v, want a heal led by alice", c.user, d)
			}
			h.s.stepTrusted(h.now, srvAddr("alice"), wire.Header{Type: wire.TypeHealed, ID: h.nextID()}, wire.Healed{Name: "alice", Epoch: d.Epoch})
			if d := h.s.Snapshot().DHT; d.Phase != state.PhaseReady {
				t.Fatalf("after the healed: DHT %+v, want it ready", d)
			}
			h.fail(srvAddr(c.user), wire.DHTRebuilt{Name: c.user, NewLeader: c.newLeader},
				"the "+c.op+" of "+c.user+" was ended before its dht-rebuilt came: "+c.user+" offline (silent for more than --dead-after 15s)",
				"healed without "+c.user+", who is Free")
			h.fail(srvAddr("erin"), wire.DHTRebuilt{Name: "erin", NewLeader: "alice"}, "no leave-dht or join-dht is in progress")
			if c.op == "leave-dht" {
				return
			}
			h.ok(srvAddr("dave"), wire.JoinDHT{Name: "dave"})
			h.now = h.now.Add(time.Second)
			h.s.Tick(h.now)
			h.fail(srvAddr("erin"), wire.QueryDHT{Name: "erin"}, "waiting for dht-rebuilt from dave")
		})
	}
}

// A registered user who is no member of the standing DHT claims, in its
// own signed alive or rejoin, a ring of a later epoch: the claim cannot be
// checked, so it dissolves nothing (an attacker's one alive ended every
// ring so, and one naming 2^64-1 made the next setup's epoch wrap to 0,
// below every ring key the peers held). The next epoch taken still goes
// past a claim within maxClaimedEpoch, so epochs never repeat. Once every
// member's last two alives since the DHT became ready name no place in it,
// the DHT is dissolved, claim or none: the server's file is older than its
// peers' rings.
func TestFreeUserCannotDissolveTheDHT(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	st := srvDHT(state.PhaseReady, ring, "erin")
	st.DHT.Epoch = 8
	h := newLiveH(t, st)
	h.s.Tick(srvT0)
	for _, e := range []uint64{9, 1000, maxClaimedEpoch + 1, 1<<64 - 1} {
		h.aliveAtPace(wire.Alive{Name: "erin", Epoch: e, KeyEpoch: e})
		h.ok(srvAddr("erin"), wire.Register{Name: "erin", Addr: srvAddr("erin"), Epoch: e})
		if got := h.s.Snapshot(); !srvSameState(st, got) {
			t.Fatalf("erin claimed epoch %d: DHT %+v, want it as it was", e, got.DHT)
		}
	}
	for _, m := range ring { // every member holds its place: still nothing
		h.aliveAtPace(wire.Alive{Name: m, Epoch: 8, KeyEpoch: 8})
	}
	h.aliveAtPace(wire.Alive{Name: "erin", Epoch: 1000})
	if got := h.s.Snapshot(); !srvSameState(st, got) {
		t.Fatalf("DHT %+v, want it as it was", got.DHT)
	}
	h.ok(srvAddr("bob"), wire.LeaveDHT{Name: "bob"})
	if e := h.s.Snapshot().DHT.Epoch; e != 1001 {
		t.Fatalf("the leave took epoch %d, want 1001, past erin's claim", e)
	}

	// Every member says, twice, that it holds no place in the ring
	// recorded (a server put back on an older file, the ring torn down
	// since): the DHT is dissolved, claim or no claim; once, it is not
	// (an alive sent before its member took its place may come late).
	h = newLiveH(t, st)
	h.s.Tick(srvT0)
	for round := range 2 {
		if d := h.s.Snapshot().DHT; d.Phase != state.PhaseReady {
			t.Fatalf("after %d alive(s) each naming no place: DHT %+v, want it standing", round, d)
		}
		for _, m := range ring {
			h.aliveAtPace(wire.Alive{Name: m, KeyEpoch: 8})
		}
	}
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseNone || d.Epoch != 8 || !strings.Contains(h.s.note, "no member holds a place in the DHT of epoch 8") {
		t.Fatalf("no member holds a place in the DHT: DHT %+v, note %q; want it dissolved, saying why", d, h.s.note)
	}
	h.aliveAtPace(wire.Alive{Name: "erin", Epoch: 12, KeyEpoch: 11})
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseNone || d.Epoch != 12 {
		t.Fatalf("erin names a place of epoch 12: DHT %+v, want none at epoch 12", d)
	}
}

// A server started on a file whose DHT is healing (it stopped during the
// heal) sends the heal to its leader at once and then on its timer, as a
// heal started in the same run: healRTO, doubling to healMaxRTO. Its
// timer's state is not in the file; a zero back-off sent a copy on every
// turn of the loop (430,000 in 6 s, found by an operator's review).
func TestServerRestartedDuringAHealSendsItOnItsTimer(t *testing.T) {
	st := srvDHT(state.PhaseReady, []string{"alice", "bob", "carol"}, "dave")
	st.DHT.Phase, st.DHT.Epoch, st.DHT.Since, st.DHT.Removed = state.PhaseHealing, 5, srvT0.UnixNano(), []string{"dave"}
	h := newLiveH(t, st)
	now := srvT0
	var gaps []time.Duration
	var last time.Time
	for len(gaps) < 6 {
		outs := h.s.Tick(now)
		for _, o := range outs {
			if snd, ok := o.(Send); ok {
				if _, ok := snd.Msg.(wire.Heal); !ok {
					continue
				}
				if !last.IsZero() {
					gaps = append(gaps, now.Sub(last))
				}
				last = now
			}
		}
		next, ok := h.s.NextDeadline()
		if !ok || !next.After(now) && len(outs) == 0 {
			t.Fatalf("after %d heals at %v: next deadline %v %v", len(gaps)+1, now.Sub(srvT0), next.Sub(srvT0), ok)
		}
		if next.After(now) {
			now = next
		}
		for _, m := range []string{"alice", "bob", "carol"} { // the members stay live
			h.now = now
			h.aliveAtPace(wire.Alive{Name: m, Epoch: 5})
		}
	}
	want := []time.Duration{healRTO, 2 * healRTO, 4 * healRTO, 8 * healRTO, healMaxRTO, healMaxRTO}
	if !slices.Equal(gaps, want) {
		t.Fatalf("heal copies %v apart, want %v", gaps, want)
	}
}

// A heal's leader that reports a heal the server ended meanwhile (the DHT
// dissolved, or healed again without another member) gets no ack: acked,
// it printed heal SUCCESS for a ring the server no longer had (an
// operator's review: every member stopped past --dead-after, the DHT
// dissolved, the heal's leader run again). The heal that ended the wait,
// reported again because its ack was lost, is acked again.
func TestServerAcksOnlyTheHealThatEnded(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	healing := func() *srvH {
		st := srvDHT(state.PhaseReady, ring, "dave")
		st.DHT.Phase, st.DHT.Epoch, st.DHT.Since, st.DHT.Removed = state.PhaseHealing, 5, srvT0.UnixNano(), []string{"dave"}
		h := newSrvH(t, st)
		h.s.Tick(srvT0)
		return h
	}
	healed := func(h *srvH, epoch uint64) bool {
		for _, o := range h.s.stepTrusted(h.now, srvAddr("alice"), wire.Header{Type: wire.TypeHealed, ID: h.nextID()}, wire.Healed{Name: "alice", Epoch: epoch}) {
			if snd, ok := o.(Send); ok {
				if _, ok := snd.Msg.(wire.Ack); ok {
					return true
				}
			}
		}
		return false
	}
	h := healing()
	if !healed(h, 5) || h.s.Snapshot().DHT.Phase != state.PhaseReady || !healed(h, 5) {
		t.Fatal("the heal in progress, reported twice: want it ended and both acked")
	}
	h = healing()
	h.now = srvT0.Add(srvTimeout)
	h.s.Tick(h.now) // rolled back: dissolved
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseNone {
		t.Fatalf("DHT %+v, want it rolled back", d)
	}
	if healed(h, 5) {
		t.Fatal("a heal of a dissolved DHT was acked")
	}
	h = healing()
	h.s.heal(h.now, []string{"alice", "carol"}, []string{"bob"}, "bob offline") // healed again, at epoch 6
	if healed(h, 5) {
		t.Fatal("a heal replaced by a later one was acked")
	}
}

// A stranger who knows a heal's leader and epoch (an epoch is a small
// number; a heal's id is its low bits) forges, from the leader's address,
// the ack of the heal and the healed that would end it, unsigned or
// signed with a key of its own: the server still sends the heal on its
// timer and still waits; the leader's own healed ends the heal.
func TestForgedHealAckAndHealedEndNoHeal(t *testing.T) {
	st := srvDHT(state.PhaseReady, []string{"alice", "bob", "carol"}, "dave")
	st.DHT.Phase, st.DHT.Epoch, st.DHT.Since, st.DHT.Removed = state.PhaseHealing, 5, srvT0.UnixNano(), []string{"dave"}
	h := newLiveH(t, st)
	h.s.Tick(srvT0)
	decoded := func(id uint32, m wire.Message, key *wire.Key) (wire.Header, wire.Message) {
		var b []byte
		var err error
		if key == nil {
			b, err = wire.Append(nil, id, 0, m)
		} else {
			b, err = wire.AppendSigned(nil, id, 0, m, 1<<40, *key)
		}
		if err != nil {
			t.Fatal(err)
		}
		hd, msg, err := wire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return hd, msg
	}
	for _, key := range []*wire.Key{nil, {0xee, 0xee}} {
		for _, m := range []wire.Message{wire.Ack{}, wire.Healed{Name: "alice", Epoch: 5}} {
			hd, msg := decoded(healID(5), m, key)
			for _, o := range h.s.Step(h.now, srvAddr("alice"), hd, msg) {
				if snd, ok := o.(Send); ok {
					t.Fatalf("a forged %s (key %v) was answered: %+v", m.Type(), key, snd)
				}
			}
		}
	}
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseHealing {
		t.Fatalf("after forged datagrams the DHT is %s, want still healing", d.Phase)
	}
	sent := false
	for _, o := range h.s.Tick(srvT0.Add(healMaxRTO)) {
		if snd, ok := o.(Send); ok {
			if _, ok := snd.Msg.(wire.Heal); ok && snd.To == srvAddr("alice") {
				sent = true
			}
		}
	}
	if !sent {
		t.Fatal("the heal is no longer sent on its timer: a forged ack was taken")
	}
	h.now = srvT0.Add(healMaxRTO)
	secret := srvSecret("alice")
	hd, msg := decoded(h.nextID(), wire.Healed{Name: "alice", Epoch: 5}, &secret)
	h.s.Step(h.now, srvAddr("alice"), hd, msg)
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseReady {
		t.Fatalf("the leader's own healed left the DHT %s, want ready", d.Phase)
	}
}

// What the server keeps of a user beside its registration (when it was
// last seen, the place its alives name, why its leave or join was ended)
// goes with its deregister: a user that registers, sends an alive and
// deregisters under a new name each time grew the places its alives named
// without bound (a red-team review: 200,000 names, 14 MB).
func TestServerForgetsADeregisteredUser(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring, "dave", "erin"))
	h.s.Tick(srvT0)
	h.s.endedFor("erin", "join-dht", "erin offline")
	for _, name := range []string{"dave", "erin"} {
		h.aliveAtPace(wire.Alive{Name: name, Epoch: 3})
		if _, ok := h.s.places[name]; !ok {
			t.Fatalf("%s's alive left no place: the test sees nothing", name)
		}
		h.ok(srvAddr(name), wire.Deregister{Name: name})
		_, place := h.s.places[name]
		_, seen := h.s.lastSeen[name]
		_, ended := h.s.ended[name]
		if place || seen || ended {
			t.Fatalf("after %s's deregister the server keeps its place %v, last seen %v, ended operation %v", name, place, seen, ended)
		}
	}
}

// signedWithSeq steps m, signed by user with the sequence number seq (a
// peer's are its clock's nanoseconds), through the server's checks.
func (h *srvH) signedWithSeq(user string, m wire.Message, seq uint64) {
	h.t.Helper()
	b, err := wire.AppendSigned(nil, 7, 0, m, seq, srvSecret(user))
	if err != nil {
		h.t.Fatal(err)
	}
	hd, msg, err := wire.Decode(b)
	if err != nil {
		h.t.Fatal(err)
	}
	h.s.Step(h.now, srvAddr(user), hd, msg)
}

// A peer that gave up a setup-dht with no answer (the server's disk
// stalled longer than its give-up time, and the server took the request
// after all) names the request's sequence number in its alive: the server
// ends the setup it took for that request at once, instead of refusing
// every request until --op-timeout (an operator's review: two minutes of
// "waiting for dht-complete from alice" while alice's peer ran no setup).
// Another number, or a request the server refused, ends nothing.
func TestServerEndsASetupWhoseRequestItsPeerGaveUp(t *testing.T) {
	const seq = 1 << 60 // a peer's sequence numbers are its clock's nanoseconds
	for _, c := range []struct {
		name  string
		n     uint16 // of the setup-dht
		quit  uint64
		ended bool
	}{
		{"its number", 3, seq, true},
		{"another number", 3, seq + 1, false},
		{"a setup the server refused", 9, seq, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newLiveH(t, srvFree("alice", "bob", "carol", "dave"))
			h.s.Tick(srvT0)
			h.aliveAll()
			h.signedWithSeq("alice", wire.SetupDHT{N: c.n, Name: "alice"}, seq)
			before := h.s.Snapshot()
			if took := before.DHT.Phase == state.PhaseBuilding; took != (c.n == 3) {
				t.Fatalf("setup-dht %d: DHT %+v", c.n, before.DHT)
			}
			h.aliveAtPace(wire.Alive{Name: "alice", QuitOp: wire.TypeSetupDHT, Quit: c.quit})
			got := h.s.Snapshot()
			if ended := got.DHT.Phase == state.PhaseNone && before.DHT.Phase == state.PhaseBuilding; ended != c.ended {
				t.Fatalf("alive naming %d: DHT %+v, note %q; want ended %v", c.quit, got.DHT, h.s.note, c.ended)
			}
			if !c.ended && !srvSameState(before, got) {
				t.Fatalf("alive naming %d changed the state: %+v", c.quit, got.DHT)
			}
		})
	}
}

// The same for a teardown-dht: its SUCCESS carries the ring's epoch, so the
// cached answer the alive's sequence number finds names the teardown (a
// code review: a bare SUCCESS ended nothing, and the server said "waiting
// for teardown-complete" until --op-timeout).
func TestServerEndsATeardownWhoseRequestItsPeerGaveUp(t *testing.T) {
	const seq = 1 << 60
	st := srvDHT(state.PhaseReady, []string{"alice", "bob"})
	st.DHT.Epoch = 4
	h := newLiveH(t, st)
	h.s.Tick(srvT0)
	h.aliveAll()
	h.signedWithSeq("alice", wire.TeardownDHT{Name: "alice"}, seq)
	if p := h.s.Snapshot().DHT.Phase; p != state.PhaseTearing {
		t.Fatalf("teardown-dht not taken: phase %v", p)
	}
	h.aliveAtPace(wire.Alive{Name: "alice", Epoch: 4, QuitOp: wire.TypeTeardownDHT, Quit: seq + 1})
	if p := h.s.Snapshot().DHT.Phase; p != state.PhaseTearing {
		t.Fatalf("an alive naming another request ended the teardown: phase %v", p)
	}
	h.aliveAtPace(wire.Alive{Name: "alice", Epoch: 4, QuitOp: wire.TypeTeardownDHT, Quit: seq})
	if got := h.s.Snapshot(); got.DHT.Phase != state.PhaseNone {
		t.Fatalf("alice gave up its teardown-dht unanswered: DHT %+v; want it dissolved at once", got.DHT)
	}
}

// A leaver or a joiner whose peer restarts while every other member is
// offline, not yet judged so (the server's Tick runs after its socket is
// read, and the server stalled past --dead-after), leaves no one to heal
// with: the DHT is dissolved, saying why (a code review: the server
// panicked, index out of range, with real processes too).
func TestServerRejoinWithNoLiveMemberDissolves(t *testing.T) {
	for _, c := range []struct {
		name string
		st   func() state.ServerState
		who  string
	}{
		{"the leaver", func() state.ServerState {
			st := srvLeaving([]string{"alice", "bob"}, "alice", "carol")
			st.DHT.Epoch, st.DHT.Since = 5, srvT0.UnixNano()
			return st
		}, "alice"},
		{"the joiner", func() state.ServerState {
			st := srvDHT(state.PhaseJoining, []string{"alice", "bob"}, "carol")
			st.DHT.Joiner, st.DHT.Since, st.DHT.Epoch = "carol", srvT0.UnixNano(), 5
			return st
		}, "carol"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newLiveH(t, c.st())
			h.s.Tick(srvT0)
			h.now = srvT0.Add(DefaultDeadAfter + time.Second) // the others silent since the start
			h.alive(c.who)
			out := h.s.stepTrusted(h.now, srvAddr(c.who), wire.Header{Type: wire.TypeRegister, ID: 77},
				wire.Register{Name: c.who, Addr: srvAddr(c.who), Epoch: 5})
			got := h.s.Snapshot()
			if got.DHT.Phase != state.PhaseNone {
				t.Fatalf("DHT %+v, want it dissolved", got.DHT)
			}
			for _, u := range got.Users {
				if u.State != state.Free {
					t.Errorf("%s is %v, want Free", u.Name, u.State)
				}
			}
			var said bool
			for _, o := range out {
				if snd, ok := o.(Send); ok {
					if r, ok := snd.Msg.(wire.Reply); ok && r.OK && strings.Contains(r.Reason, "no member of the DHT is live, so it was dissolved") {
						said = true
					}
				}
			}
			if !said {
				t.Errorf("the rejoin's answer does not say the DHT was dissolved: %+v", out)
			}
		})
	}
}

// A member that restarts during a leave or a join heals the ring without
// the leaver or the joiner, whose peer runs on and may yet send its
// dht-rebuilt: that is answered with why its operation ended, as after a
// heal round an offline member, not with "no leave-dht or join-dht is in
// progress".
func TestServerRejoinDuringALeaveSaysWhyItEnded(t *testing.T) {
	st := srvLeaving([]string{"alice", "bob", "carol"}, "alice", "dave")
	st.DHT.Epoch, st.DHT.Since = 5, srvT0.UnixNano()
	h := newLiveH(t, st)
	h.s.Tick(srvT0)
	h.aliveAll()
	h.s.stepTrusted(h.now, srvAddr("bob"), wire.Header{Type: wire.TypeRegister, ID: 77},
		wire.Register{Name: "bob", Addr: srvAddr("bob"), Epoch: 4})
	h.healedWithout("alice")
	h.fail(srvAddr("alice"), wire.DHTRebuilt{Name: "alice", NewLeader: "bob"},
		"the leave-dht of alice was ended before its dht-rebuilt came: bob restarted")
}

// A wait the server's file held when it started (it was killed during a
// join, and down longer than --op-timeout) gives the joiner the whole op
// timeout from the start: the time the server was down was no time the
// joiner's peer could reach it (an operator's review: the restarted server
// rolled the join back 25 ms after its start, 86 ms before the joiner's
// dht-rebuilt came). A wait begun after the start counts from its own
// beginning, as ever.
func TestServerStartedOnAWaitGivesItTheOpTimeout(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	st := srvJoining(ring, "dave", "erin")
	st.DHT.Epoch, st.DHT.Since = 5, srvT0.Add(-time.Hour).UnixNano()
	cfg := srvConfig()
	cfg.Started = srvT0
	h := &srvH{t: t, s: NewServer(cfg, st, nil), now: srvT0, id: 1000}
	h.s.Start(srvT0)
	tickUntil := func(end time.Time) { // as a runner ticks, every user alive
		for h.now.Before(end) {
			h.now = h.now.Add(10 * time.Millisecond)
			if h.now.Sub(srvT0)%time.Second == 0 {
				h.alive("alice", "bob", "carol", "dave", "erin")
			}
			h.s.Tick(h.now)
		}
	}
	tickUntil(srvT0.Add(srvTimeout - time.Second))
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseJoining {
		t.Fatalf("%v after the start: DHT %+v, want the join still waited for", srvTimeout-time.Second, d)
	}
	h.ok(srvAddr("dave"), wire.DHTRebuilt{Name: "dave", NewLeader: "alice"})
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseReady || !slices.Contains(d.Members, "dave") {
		t.Fatalf("after dave's dht-rebuilt: DHT %+v, want dave a member", d)
	}
	h.ok(srvAddr("erin"), wire.JoinDHT{Name: "erin"})
	tickUntil(h.now.Add(srvTimeout + time.Second))
	if d := h.s.Snapshot().DHT; d.Phase == state.PhaseJoining {
		t.Fatalf("a join begun after the start, %v old: DHT %+v, want it ended", srvTimeout, d)
	}
}

// A user's claim moves the server's epochs up to maxClaimedEpoch, and the
// epochs it then makes go on above it: a setup's, named in the alive of a
// leader that gave it up, is still an epoch, not a request's sequence
// number (a red-team review: past 2^48 every epoch was taken for one, and
// a given-up setup held the server until --op-timeout).
func TestServerEndsAGivenUpSetupPastAClaimedEpoch(t *testing.T) {
	h := newLiveH(t, srvFree("alice", "bob", "carol", "dave", "erin"))
	h.s.Tick(srvT0)
	h.aliveAll()
	h.aliveAtPace(wire.Alive{Name: "erin", Epoch: maxClaimedEpoch})
	r := h.ok(srvAddr("alice"), wire.SetupDHT{N: 3, Name: "alice"})
	if r.Reply.Epoch <= maxClaimedEpoch || h.s.Snapshot().DHT.Phase != state.PhaseBuilding {
		t.Fatalf("setup after the claim: epoch %d, DHT %+v; want one past %d, building", r.Reply.Epoch, h.s.Snapshot().DHT, uint64(maxClaimedEpoch))
	}
	h.aliveAtPace(wire.Alive{Name: "alice", QuitOp: wire.TypeSetupDHT, Quit: r.Reply.Epoch})
	if got := h.s.Snapshot().DHT; got.Phase != state.PhaseNone {
		t.Fatalf("alice gave up the setup of epoch %d: DHT %+v, want it dissolved at once", r.Reply.Epoch, got)
	}
}

// A server just started gives every user of its file --dead-after to show
// up, so that none is offline for the time the server did not run; a setup
// in that time picks the users it has heard from first, and one not heard
// from yet only to make up the ring (a new user's review: a setup right
// after a restart picked a peer stopped before it, and was rolled back at
// its --dead-after).
func TestServerSetupPicksUsersHeardFromFirst(t *testing.T) {
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace"}
	heard := []string{"alice", "carol", "erin", "grace"}
	for seed := range uint64(20) {
		cfg := srvCfg(rand.New(rand.NewPCG(seed, 7)))
		cfg.DeadAfter = DefaultDeadAfter
		h := &srvH{t: t, s: NewServer(cfg, srvFree(users...), nil), now: srvT0, id: 1000}
		h.s.Tick(srvT0)
		h.now = srvT0.Add(time.Second)
		h.alive(heard...)
		r := h.ok(srvAddr("alice"), wire.SetupDHT{N: 4, Name: "alice"})
		for _, m := range r.Reply.Members {
			if !slices.Contains(heard, m.Name) {
				t.Fatalf("seed %d: the ring %v has %s, not heard from since the start, while 4 were", seed, r.Reply.Members, m.Name)
			}
		}
		// Five wanted: one not heard from makes up the ring.
		h = &srvH{t: t, s: NewServer(cfg, srvFree(users...), nil), now: srvT0.Add(time.Second), id: 1000}
		h.alive(heard...)
		if r := h.ok(srvAddr("alice"), wire.SetupDHT{N: 5, Name: "alice"}); len(r.Reply.Members) != 5 {
			t.Fatalf("seed %d: setup-dht 5: %+v", seed, r.Reply)
		}
	}
}

// Start's pace goes to every registered user, and, unacknowledged, twice
// more, a quarter of --dead-after apart, to each not heard from since:
// one lost took a live member out of the ring after a restart with a
// shorter --dead-after (an operator's review, at 20% loss).
func TestServerStartPacesUntilHeard(t *testing.T) {
	h := newLiveH(t, srvFree("alice", "bob", "carol"))
	paced := func(out []Output) (to []string) {
		for _, o := range out {
			if s, ok := o.(Send); ok {
				if p, ok := s.Msg.(wire.Pace); ok && s.Sign && p.PeriodMS == uint32(h.s.Pace().Milliseconds()) {
					for _, name := range []string{"alice", "bob", "carol"} {
						if s.To == srvAddr(name) && wire.Key(s.Key) == srvSecret(name) {
							to = append(to, name)
						}
					}
				}
			}
		}
		return to
	}
	if got := paced(h.s.Start(h.now)); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("Start paced %v; want every user", got)
	}
	h.aliveAtPace(wire.Alive{Name: "bob"})
	var rounds [][]string
	for range 10 {
		at, ok := h.s.NextDeadline()
		if !ok {
			break
		}
		h.now = at
		if got := paced(h.s.Tick(h.now)); len(got) > 0 {
			rounds = append(rounds, got)
		}
	}
	if len(rounds) != 2 || !slices.Equal(rounds[0], []string{"alice", "carol"}) || !slices.Equal(rounds[1], []string{"alice", "carol"}) {
		t.Fatalf("after Start, paced %v; want alice and carol twice (bob was heard from)", rounds)
	}
}

// The leader of a heal that gives it up (its alive says so) has the ring
// heal again at once, the same members led by the next in ring order that
// has not given up a heal of it, one heard from lately first; when every
// member has, the server waits, saying so (a member dead since it gave up
// makes every later leader give up, and heals out once offline), the next
// copies of the quit changing nothing, and after --dead-after, no member
// offline, it begins a new round. Every heal of it keeps the first one's
// start (--op-timeout bounds them all). A quit of the heal by another
// member, or of an earlier heal, ends nothing.
func TestServerHealsAgainWhenItsLeaderGivesUp(t *testing.T) {
	healing := srvDHT(state.PhaseHealing, []string{"alice", "bob", "carol"}, "dave")
	healing.DHT.Epoch, healing.DHT.Since = 8, srvT0.UnixNano()
	for _, c := range []struct {
		name  string
		user  string
		epoch uint64
	}{{"a member not its leader", "bob", 8}, {"an earlier heal", "alice", 7}, {"a Free user", "dave", 8}} {
		t.Run(c.name, func(t *testing.T) {
			h := newLiveH(t, healing)
			if _, outs := h.aliveAtPace(wire.Alive{Name: c.user, QuitOp: wire.TypeHeal, Quit: c.epoch}); len(outs) != 0 || !srvSameState(healing, h.s.Snapshot()) {
				t.Fatalf("%#v, DHT %+v: want nothing done", outs, h.s.Snapshot().DHT)
			}
		})
	}

	h := newLiveH(t, healing)
	for _, step := range []struct {
		quitter string
		members []string // of the next heal; nil: dissolved
	}{
		{"alice", []string{"bob", "carol", "alice"}},
		{"bob", []string{"carol", "alice", "bob"}},
		{"carol", nil},
	} {
		before := h.s.Snapshot().DHT
		_, outs := h.aliveAtPace(wire.Alive{Name: step.quitter, QuitOp: wire.TypeHeal, Quit: before.Epoch})
		d := h.s.Snapshot().DHT
		if step.members == nil {
			if d.Phase != state.PhaseHealing || d.Epoch != before.Epoch || len(outs) != 1 || !strings.Contains(h.s.waiting(h.now), "every member gave up a heal of it, the last carol: the server heals it again without a member that goes offline, or at ") {
				t.Fatalf("%s gave up the last heal: %#v, DHT %+v, wait %q; want the heal waiting, saying why", step.quitter, outs, d, h.s.waiting(h.now))
			}
			h.now = h.now.Add(time.Second)
			waiting, wait := h.s.Snapshot(), h.s.waiting(h.now)
			if _, outs := h.aliveAtPace(wire.Alive{Name: step.quitter, QuitOp: wire.TypeHeal, Quit: before.Epoch}); len(outs) != 0 || !srvSameState(waiting, h.s.Snapshot()) || h.s.waiting(h.now) != wait {
				t.Fatalf("the quit again: %#v, wait %q; want nothing done", outs, h.s.waiting(h.now))
			}
			// --dead-after and two alive periods on, every member heard
			// from meanwhile: a new round.
			retry := h.s.healRetry
			if want := h.now.Add(-time.Second).Add(DefaultDeadAfter + 2*h.s.Pace()); !retry.Equal(want) {
				t.Fatalf("the new round is due at %v, want %v", retry, want)
			}
			h.now = retry.Add(-time.Second)
			h.alive("alice", "bob", "carol")
			if h.s.Tick(h.now); h.s.Snapshot().DHT.Epoch != before.Epoch {
				t.Fatalf("a second before the new round: DHT %+v", h.s.Snapshot().DHT)
			}
			h.now = retry
			h.s.Tick(h.now)
			if d := h.s.Snapshot().DHT; d.Phase != state.PhaseHealing || d.Epoch != before.Epoch+1 || d.Leader != "alice" || d.Since != srvT0.UnixNano() {
				t.Fatalf("--dead-after after every member gave up: DHT %+v; want a new heal led by alice, from the first heal's start", d)
			}
			break
		}
		if d.Since != srvT0.UnixNano() {
			t.Errorf("the heal after %s gave up counts its wait from %v, want the first heal's start", step.quitter, time.Unix(0, d.Since))
		}
		if d.Phase != state.PhaseHealing || d.Epoch <= before.Epoch || !slices.Equal(d.Members, step.members) || d.Leader != step.members[0] {
			t.Fatalf("%s gave up: DHT %+v; want a new heal of %v", step.quitter, d, step.members)
		}
		sent := false
		for _, o := range outs {
			if s, ok := o.(Send); ok {
				hm, isHeal := s.Msg.(wire.Heal)
				sent = sent || isHeal && s.To == srvAddr(step.members[0]) && hm.Epoch == d.Epoch
			}
		}
		if !sent || !strings.Contains(h.s.note, step.quitter+" gave up the heal it led") {
			t.Fatalf("%s gave up: %#v, note %q; want the heal sent to %s, saying why", step.quitter, outs, h.s.note, step.members[0])
		}
	}
}

// The ack of a heal that comes behind its healed (a ring of one places
// itself and reports at once) is no drop: the trace said "dropped: ack
// matches no heal in progress" at WARN for every such heal (a liveness
// review). An ack of no heal still is.
func TestServerTakesTheAckOfAHealThatEnded(t *testing.T) {
	healing := srvDHT(state.PhaseHealing, []string{"alice"}, "bob")
	healing.DHT.Epoch = 8
	h := newLiveH(t, healing)
	h.s.stepTrusted(h.now, srvAddr("alice"), wire.Header{Type: wire.TypeHealed, ID: h.nextID()}, wire.Healed{Name: "alice", Epoch: 8})
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseReady {
		t.Fatalf("after the healed: DHT %+v, want it ready", d)
	}
	// Taken: a drop at the debug level (summarised, and no warning);
	// else a warning.
	for _, c := range []struct {
		from  string
		id    uint32
		level slog.Level
	}{{"alice", healID(8), slog.LevelDebug}, {"alice", healID(7), slog.LevelWarn}, {"bob", healID(8), slog.LevelWarn}} {
		outs := h.s.stepTrusted(h.now, srvAddr(c.from), wire.Header{Type: wire.TypeAck, ID: c.id}, wire.Ack{})
		if len(outs) != 1 || !outs[0].(Event).Drop || outs[0].(Event).Level != c.level {
			t.Errorf("ack %d from %s: %#v; want one event, a drop at level %v", c.id, c.from, outs, c.level)
		}
	}
}

// The next leader of a heal given up is one heard from lately: a member
// silent for a while, though not yet offline (most likely the survivor
// the leader gave up on), is passed over while another can lead.
func TestServerHealsAgainLedByAMemberHeardLately(t *testing.T) {
	healing := srvDHT(state.PhaseHealing, []string{"alice", "bob", "carol", "dave"}, "erin")
	healing.DHT.Epoch = 8
	h := newLiveH(t, healing)
	h.aliveAll()
	h.now = h.now.Add(3 * h.s.Pace())
	h.alive("alice", "carol", "dave") // bob silent for three alives' time
	h.aliveAtPace(wire.Alive{Name: "alice", QuitOp: wire.TypeHeal, Quit: 8})
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseHealing || !slices.Equal(d.Members, []string{"carol", "dave", "alice", "bob"}) {
		t.Fatalf("DHT %+v; want a heal led by carol, bob passed over", d)
	}
}

// The wait after every member gave up a heal says so when the heal began
// with a member removed as offline, the common case, too.
func TestServerSaysEveryMemberGaveUpAHealOfARingThatLostOne(t *testing.T) {
	healing := srvDHT(state.PhaseHealing, []string{"alice"}, "erin")
	healing.DHT.Epoch, healing.DHT.Since, healing.DHT.Removed = 8, srvT0.UnixNano(), []string{"erin"}
	h := newLiveH(t, healing)
	h.aliveAtPace(wire.Alive{Name: "alice", QuitOp: wire.TypeHeal, Quit: 8})
	if w := h.s.waiting(h.now); !strings.Contains(w, "the DHT is healing (erin removed as offline); every member gave up a heal of it, the last alice") {
		t.Fatalf("wait %q; want it to say every member gave up", w)
	}
}

// everyoneQuitsTheHeal is a server healing the ring of alice, bob and
// carol (epoch 8), each of whom, in turn, gave up the heal it was asked to
// lead.
func everyoneQuitsTheHeal(t *testing.T) *srvH {
	t.Helper()
	healing := srvDHT(state.PhaseHealing, []string{"alice", "bob", "carol"}, "dave")
	healing.DHT.Epoch, healing.DHT.Since = 8, srvT0.UnixNano()
	h := newLiveH(t, healing)
	h.s.Tick(h.now)
	h.alive("alice", "bob", "carol")
	for _, q := range []string{"alice", "bob", "carol"} {
		d := h.s.Snapshot().DHT
		if d.Leader != q {
			h.t.Fatalf("the heal is led by %s, want %s", d.Leader, q)
		}
		h.aliveAtPace(wire.Alive{Name: q, QuitOp: wire.TypeHeal, Quit: d.Epoch})
	}
	return h
}

// After every member gave up a heal, a member silent since is healed out
// once offline, and no new round comes first: the round is due past
// --dead-after by two alive periods (it was due at --dead-after exactly,
// when the silent member is not yet offline, and a nanosecond later a heal
// without it replaced the new round).
func TestAHealOfEveryMemberGivenUpHealsOutTheSilentOne(t *testing.T) {
	h := everyoneQuitsTheHeal(t)
	epoch := h.s.Snapshot().DHT.Epoch
	var heals [][]string
	for next := h.now; h.now.Before(srvT0.Add(40 * time.Second)); {
		if d, ok := h.s.NextDeadline(); ok && d.Before(next) {
			h.now = d
			h.s.Tick(h.now)
		} else {
			h.now = next
			h.alive("bob", "carol") // alice silent
			next = next.Add(time.Second)
		}
		if d := h.s.Snapshot().DHT; d.Epoch != epoch {
			heals, epoch = append(heals, d.Members), d.Epoch
		}
	}
	if len(heals) != 1 || slices.Contains(heals[0], "alice") {
		t.Fatalf("heals after every member gave up: %v; want one, without alice", heals)
	}
}

// The new round is a judgement like the others: a server that did not run
// for a while (stopped) reads what came meanwhile before it begins one.
func TestAHealsNewRoundWaitsForWhatCameMeanwhile(t *testing.T) {
	h := everyoneQuitsTheHeal(t)
	epoch := h.s.Snapshot().DHT.Epoch
	h.now = h.now.Add(20 * time.Second) // stopped past the round and --dead-after
	h.s.Tick(h.now)
	h.now = h.now.Add(time.Millisecond)
	h.s.Tick(h.now)
	if d := h.s.Snapshot().DHT; d.Epoch != epoch {
		t.Fatalf("the server began a heal (%+v) before it read what came while it did not run", d)
	}
}

// The socket a stalled server finds full takes longer to read than a
// fixed wait: the judgement waits until nothing has been read for
// drainWait, at most maxDrainWait. A server stopped for ten minutes had
// 2,006 alives queued, and dissolved its live ring 26 ms after it ran
// again, before it had read the first (a new user's review). A socket
// read without end (a flood) holds the judgement back no longer than
// maxDrainWait.
func TestServerLateTickWaitsUntilTheSocketIsRead(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	for _, flood := range []bool{false, true} {
		h := newLiveH(t, srvDHT(state.PhaseReady, ring))
		h.s.Tick(srvT0)
		h.alive(ring...)
		before := h.s.Snapshot()
		h.now = srvT0.Add(10 * time.Minute) // stopped; its Tick comes first
		late := h.now
		h.s.Tick(h.now)
		// The backlog: a datagram every 5 ms, each member's alive last.
		tick := func() {
			t.Helper()
			h.tickIfDue()
		}
		reading := 300 * time.Millisecond
		if flood {
			reading = 3 * maxDrainWait
		}
		for h.now.Sub(late) < reading {
			h.now = h.now.Add(5 * time.Millisecond)
			h.alive("alice") // the queue's older alives
			tick()
			if st := h.s.Snapshot(); st.DHT.Epoch != before.DHT.Epoch {
				if !flood {
					t.Fatalf("judged %v after the late Tick, with the socket still being read: DHT %+v", h.now.Sub(late), st.DHT)
				}
				want := max(maxDrainWait, h.s.Pace()) // after a stall, an alive period at least
				if d := h.now.Sub(late); d < want || d > want+drainWait {
					t.Fatalf("a flood held the judgement back %v, want %v", d, want)
				}
				return
			}
		}
		if flood {
			t.Fatalf("a flood held the judgement back for %v", reading)
		}
		h.alive("bob", "carol")
		for range 10 {
			h.now = h.now.Add(drainWait / 2)
			tick()
		}
		if st := h.s.Snapshot(); !srvSameState(before, st) && st.DHT.Epoch != before.DHT.Epoch {
			t.Fatalf("every member sent alives through the stall, yet the DHT is %+v", st.DHT)
		}
	}
}

// Where the socket says when each datagram came, the judgement after a
// late Tick waits until one that came after the Tick has been read: then
// what waited before it has all been (a socket's queue is read in order).
// A reader slow to begin reading its backlog (a server stopped for ten
// minutes dissolved its live ring 26 ms after it ran again, before it had
// read the first of 2,006 queued alives: a new user's review) is no quiet
// socket.
func TestServerLateTickWaitsForWhatCameAfterIt(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring))
	h.s.Tick(srvT0)
	h.alive(ring...)
	before := h.s.Snapshot()
	stop := srvT0.Add(time.Second)
	h.now = srvT0.Add(10 * time.Minute) // stopped; its Tick comes first
	late := h.now
	h.s.Tick(h.now)
	alive := h.aliveCame
	alive("alice", stop) // one datagram read: the server has stamped sockets
	// The reader reads nothing for 200 ms; the Ticks come on time.
	for range 8 {
		h.now = h.now.Add(drainWait)
		h.tickIfDue()
		if st := h.s.Snapshot(); st.DHT.Epoch != before.DHT.Epoch {
			t.Fatalf("judged %v after the late Tick, nothing that came after it read: DHT %+v", h.now.Sub(late), st.DHT)
		}
	}
	// The backlog, then a datagram that came after the late Tick.
	for i, n := range ring {
		alive(n, stop.Add(time.Duration(i+1)*time.Minute))
	}
	alive("alice", late.Add(time.Millisecond))
	h.now = h.now.Add(time.Millisecond)
	h.s.Tick(h.now)
	if d, same := h.sameRing(before); !same {
		t.Fatalf("every member sent alives through the stall, yet the DHT is %+v", d)
	}
}

// Once a datagram that came after the late Tick is read, the backlog has
// been read, and a member that sent nothing through the stall while the
// others did is judged at the next Tick, not maxDrainWait after the late
// Tick (a code review: nothing tested the early end).
func TestServerLateTickWaitEndsOnceWhatCameAfterItIsRead(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring))
	h.s.Tick(srvT0)
	h.alive(ring...)
	before := h.s.Snapshot()
	// alice and bob keep sending; carol is gone. The server stops a
	// second before carol's --dead-after is up and runs again half a
	// second after it: less late than an alive period, so nothing holds
	// the judgement but the backlog.
	for h.now.Before(srvT0.Add(DefaultDeadAfter - time.Second)) {
		h.now = h.now.Add(h.s.Pace())
		h.alive("alice", "bob")
		h.tickIfDue()
	}
	stop := h.now
	h.now = srvT0.Add(DefaultDeadAfter + 500*time.Millisecond)
	late := h.now
	h.s.Tick(h.now)
	alive := h.aliveCame
	alive("alice", stop.Add(time.Second))
	alive("bob", stop.Add(time.Second)) // carol: nothing, she is gone
	alive("alice", late.Add(time.Millisecond))
	for h.now.Sub(late) < maxDrainWait/2 {
		h.now = h.now.Add(drainWait)
		h.tickIfDue()
		if d, same := h.sameRing(before); !same {
			if !slices.Equal(d.Members, []string{"alice", "bob"}) {
				t.Fatalf("healed to %v, want carol out", d.Members)
			}
			return // judged once the backlog was read
		}
	}
	t.Fatalf("carol sent nothing through the stall and the backlog has been read, yet nothing judged %v after the late Tick", h.now.Sub(late))
}

// What the server sends a user goes from the address of its host the
// user's last authentic request or alive was sent to (ReplyFrom), on a
// server bound to every address. A datagram with the user's source forged
// (junk, unsigned, signed with another key, or a replayed alive), sent to
// another of the host's addresses, changes nothing: a review's spoofed
// junk had the heal leader's heals sent from an address it drops them
// from, until the server dissolved the DHT.
func TestServerRepliesFromWhereTheUserWroteOnly(t *testing.T) {
	h := newLiveH(t, srvDHT(state.PhaseReady, []string{"alice", "bob"}))
	h.s.Tick(srvT0)
	first, other := netip.MustParseAddr("10.0.0.101"), netip.MustParseAddr("10.9.9.9")
	alice := srvAddr("alice")
	at := func(to netip.Addr, seq uint64, key wire.Key, m wire.Message) {
		t.Helper()
		b, err := wire.AppendSigned(nil, h.nextID(), 0, m, seq, key)
		if err != nil {
			t.Fatal(err)
		}
		hd, msg, err := wire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		h.s.StepDatagram(h.now, Datagram{From: alice, Local: to, Header: hd, Msg: msg})
	}
	alive := wire.Alive{Name: "alice", PeriodMS: uint32(h.s.Pace().Milliseconds())}
	if got := h.s.ReplyFrom(alice); got.IsValid() {
		t.Fatalf("ReplyFrom before anything came: %v", got)
	}
	at(first, 100, srvSecret("alice"), alive)
	if got := h.s.ReplyFrom(alice); got != first {
		t.Fatalf("after alice's alive to %v: ReplyFrom %v", first, got)
	}
	// Forged, to another address.
	at(other, 101, wire.Key{0xee}, alive)                                                                                                                         // signed with another key
	at(other, 100, srvSecret("alice"), alive)                                                                                                                     // replayed
	at(other, 5, wire.Key{0xee}, wire.QueryDHT{Name: "alice"})                                                                                                    // a request not signed with its secret
	h.s.StepDatagram(h.now, Datagram{From: alice, Local: other, Header: wire.Header{Type: wire.TypeQueryDHT, ID: h.nextID()}, Msg: wire.QueryDHT{Name: "alice"}}) // unsigned
	if got := h.s.ReplyFrom(alice); got != first {
		t.Fatalf("after forged datagrams to %v: ReplyFrom %v, want %v", other, got, first)
	}
	// alice's own, sent to a broadcast or a multicast address (which a
	// socket bound to every address takes too): nothing can be sent from
	// there, and the file would not read it back (a review).
	at(netip.MustParseAddr("255.255.255.255"), 150, srvSecret("alice"), alive)
	at(netip.MustParseAddr("224.0.0.1"), 160, srvSecret("alice"), alive)
	if got := h.s.ReplyFrom(alice); got != first {
		t.Fatalf("after alice's alives to a broadcast and a multicast address: ReplyFrom %v, want %v", got, first)
	}
	// alice's own request, to the other address.
	at(other, 200, srvSecret("alice"), wire.QueryDHT{Name: "alice"})
	if got := h.s.ReplyFrom(alice); got != other {
		t.Fatalf("after alice's request to %v: ReplyFrom %v", other, got)
	}
	// Kept in the file: a server restarted on it sends alice its start
	// pace from there (a review: from the system's choice, dropped, and a
	// server restarted with a shorter --dead-after healed running members
	// out of the ring).
	again := NewServer(srvConfig(), h.s.Snapshot(), nil)
	if got := again.ReplyFrom(alice); got != other {
		t.Fatalf("after a restart: ReplyFrom %v, want %v", got, other)
	}
	if got := again.ReplyFrom(srvAddr("bob")); got.IsValid() {
		t.Fatalf("bob, heard from nowhere: ReplyFrom %v", got)
	}
}

// A request the server refused goes to the file with its number, and its
// answer, before the refusal leaves: captured and replayed at the server
// restarted on that file, once the user's state has changed without a
// request of its own (its ring torn down by its leader), it is not taken
// (an attacker's review: bob's refused deregister, replayed so, removed
// bob, whose peer ran on unaware). A retransmission of it, from bob, gets
// the same refusal.
func TestARefusedRequestReplayedAtARestartedServerIsNotTaken(t *testing.T) {
	const seq = 1 << 60
	h := newLiveH(t, srvDHT(state.PhaseReady, []string{"alice", "bob"}))
	h.s.Tick(srvT0)
	h.aliveAll()
	captured, err := wire.AppendSigned(nil, 7, 0, wire.Deregister{Name: "bob"}, seq, srvSecret("bob"))
	if err != nil {
		t.Fatal(err)
	}
	step := func(s *Server) wire.Reply {
		t.Helper()
		hd, msg, err := wire.Decode(captured)
		if err != nil {
			t.Fatal(err)
		}
		var rep *wire.Reply
		for _, o := range s.Step(h.now, srvAddr("bob"), hd, msg) {
			if snd, ok := o.(Send); ok {
				if r, ok := snd.Msg.(wire.Reply); ok {
					rep = &r
				}
			}
		}
		if rep == nil {
			return wire.Reply{Reason: "(no answer)"}
		}
		return *rep
	}
	hd, msg, err := wire.Decode(captured)
	if err != nil {
		t.Fatal(err)
	}
	var file *PersistServer
	var refusal wire.Reply
	for _, o := range h.s.Step(h.now, srvAddr("bob"), hd, msg) {
		switch o := o.(type) {
		case PersistServer:
			file = &o
		case Send:
			refusal, _ = o.Msg.(wire.Reply)
		}
	}
	if refusal.OK || !strings.Contains(refusal.Reason, "maintains the DHT") {
		t.Fatalf("deregister of a ring member: %+v", refusal)
	}
	if file == nil || file.Reply == nil {
		t.Fatalf("the refusal left before its request's number was on file (persisted %+v)", file)
	}
	// The server restarts on its file, and the ring is torn down by its
	// leader: bob is Free.
	st := file.State
	st.DHT = state.DHT{}
	for i := range st.Users {
		st.Users[i].State = state.Free
	}
	cfg := srvConfig()
	cfg.DeadAfter = DefaultDeadAfter
	restarted := NewServer(cfg, st, []state.CachedReply{*file.Reply})
	restarted.Tick(h.now)
	if got := step(restarted); got.OK || got.Reason != refusal.Reason {
		t.Fatalf("the deregister replayed after the restart: %+v; want the refusal again, %q", got, refusal.Reason)
	}
	if _, ok := srvFind(restarted.Snapshot(), "bob"); !ok {
		t.Fatal("bob was removed by the replayed deregister")
	}
}

// Who is silent is judged as of when a request came, not when it was read:
// a server that did not read for a while (stopped) reads requests that
// came before the alives queued behind them, and its own silence is not
// its users'. A request that came after its caller fell silent for
// DeadAfter is refused all the same (a chaos review: a setup-dht sent as
// the server stopped for 8 s was refused, "judy is offline: silent for
// 5.181s", judy its caller).
func TestServerJudgesSilenceAsOfWhenARequestCame(t *testing.T) {
	stopped := DefaultDeadAfter + 5*time.Second // the server read nothing for that long
	for _, c := range []struct {
		name   string
		st     state.ServerState
		caller string
		m      wire.Message
		waited time.Duration // in the socket's queue
		want   string        // "": SUCCESS
	}{
		{"setup, came as the server stopped", srvFree("alice", "bob", "carol"), "alice", wire.SetupDHT{N: 3, Name: "alice"}, stopped - time.Second, ""},
		{"setup, the time of the read", srvFree("alice", "bob", "carol"), "alice", wire.SetupDHT{N: 3, Name: "alice"}, 0, "alice is offline: silent for 20s"},
		{"setup, came after the caller fell silent", srvFree("alice", "bob", "carol"), "alice", wire.SetupDHT{N: 3, Name: "alice"}, 3 * time.Second, "alice is offline: silent for 17s"},
		{"join, came as the server stopped", srvDHT(state.PhaseReady, []string{"alice", "bob"}, "carol"), "carol", wire.JoinDHT{Name: "carol"}, stopped - time.Second, ""},
		{"join, the time of the read", srvDHT(state.PhaseReady, []string{"alice", "bob"}, "carol"), "carol", wire.JoinDHT{Name: "carol"}, 0, "carol is offline: silent for 20s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newLiveH(t, c.st)
			h.s.Tick(srvT0)
			h.alive("alice", "bob", "carol")
			h.now = srvT0.Add(stopped)
			outs := h.stepCame(srvAddr(c.caller), c.m, srvSecret(c.caller), h.now.Add(-c.waited))
			var reply *wire.Reply
			for _, o := range outs {
				if s, ok := o.(Send); ok {
					if r, ok := s.Msg.(wire.Reply); ok && s.To == srvAddr(c.caller) {
						reply = &r
					}
				}
			}
			switch {
			case reply == nil:
				t.Fatalf("no reply: %#v", outs)
			case c.want == "" && !reply.OK:
				t.Fatalf("FAILURE %q, want SUCCESS", reply.Reason)
			case c.want != "" && (reply.OK || !strings.Contains(reply.Reason, c.want)):
				t.Fatalf("reply %v %q, want FAILURE %q", reply.OK, reply.Reason, c.want)
			}
			// The request is a sign of life as of its read, and nothing
			// else is judged as of when it came.
			if d, off := h.s.Silent(h.now, c.caller); off || d != 0 {
				t.Fatalf("after its request %s is silent for %v (offline %v), want 0", c.caller, d, off)
			}
			if d, _ := h.s.Silent(h.now, "bob"); d != stopped {
				t.Fatalf("after the request bob is silent for %v, want %v", d, stopped)
			}
		})
	}
}

// stepCame steps m from `from`, signed with key, as a socket that says
// when each datagram came hands it over: it came at came.
func (h *srvH) stepCame(from netip.AddrPort, m wire.Message, key wire.Key, came time.Time) []Output {
	h.t.Helper()
	h.seq++
	b, err := wire.AppendSigned(nil, h.nextID(), 0, m, h.seq, key)
	if err != nil {
		h.t.Fatal(err)
	}
	hd, msg, err := wire.Decode(b)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.s.StepDatagram(h.now, Datagram{From: from, Header: hd, Msg: msg, Stamped: true, Waited: h.now.Sub(came)})
}

// aliveCame is name's alive, at the server's pace, that came at came.
func (h *srvH) aliveCame(name string, came time.Time) {
	h.t.Helper()
	h.stepCame(srvAddr(name), wire.Alive{Name: name, PeriodMS: uint32(h.s.Pace().Milliseconds())}, srvSecret(name), came)
}

// tickIfDue runs the server's Tick if its next deadline has come.
func (h *srvH) tickIfDue() {
	if at, ok := h.s.NextDeadline(); ok && !at.After(h.now) {
		h.s.Tick(h.now)
	}
}

// A member healed out as offline whose leave-dht comes after the heal (it
// typed leave-dht, then stopped past --dead-after) hears why it maintains
// no DHT: the heal, and that it was offline; a chaos review saw "b does
// not maintain the DHT" alone. Once it holds a place again (a setup), a
// later refusal says nothing of that heal; a user never in the ring hears
// the plain refusal.
func TestServerLeaveOfAMemberHealedOutSaysWhy(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring, "dave"))
	h.s.Tick(srvT0)
	h.alive(append(ring, "dave")...)
	epoch := h.s.Snapshot().DHT.Epoch
	// bob goes silent; the others keep sending.
	for end := srvT0.Add(DefaultDeadAfter + 2*time.Second); h.now.Before(end); {
		h.now = h.now.Add(h.s.Pace())
		h.alive("alice", "carol", "dave")
		h.tickIfDue()
	}
	h.healedWithout("bob")
	h.fail(srvAddr("bob"), wire.LeaveDHT{Name: "bob"},
		fmt.Sprintf("bob does not maintain the DHT: the ring of epoch %d healed without bob: bob offline (silent for more than --dead-after %s)", epoch, DefaultDeadAfter))
	if r := h.fail(srvAddr("dave"), wire.LeaveDHT{Name: "dave"}, "dave does not maintain the DHT"); strings.Contains(r.Reply.Reason, "healed") {
		t.Fatalf("dave, never in the ring, hears %q", r.Reply.Reason)
	}
	// bob and dave in the next ring, bob out of it as the leave of no one:
	// the old heal is not his reason any more.
	h.ok(srvAddr("alice"), wire.TeardownDHT{Name: "alice"})
	h.ok(srvAddr("alice"), wire.TeardownComplete{Name: "alice"})
	h.alive("alice", "bob", "carol", "dave")
	h.ok(srvAddr("bob"), wire.SetupDHT{N: 2, Name: "bob"})
	if r := h.s.healedOut["bob"]; r != "" {
		t.Fatalf("bob holds a place again, yet his heal is kept: %q", r)
	}
}

// healedWithout checks that the DHT heals without name, and has its
// leader report the heal done: the DHT is ready again.
func (h *srvH) healedWithout(name string) {
	h.t.Helper()
	d := h.s.Snapshot().DHT
	if d.Phase != state.PhaseHealing || slices.Contains(d.Members, name) {
		h.t.Fatalf("DHT %+v, want a heal without %s", d, name)
	}
	h.s.stepTrusted(h.now, srvAddr(d.Leader), wire.Header{Type: wire.TypeHealed, ID: h.nextID()}, wire.Healed{Name: d.Leader, Epoch: d.Epoch})
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseReady {
		h.t.Fatalf("after the healed: DHT %+v, want it ready", d)
	}
}

// The heal's reason goes with a new ring: bob, healed out of a ring since
// torn down, is not in the ring set up while he was away, and his leave-dht
// no longer names a heal of a ring gone (a review).
func TestServerLeaveAfterANewRingNamesNoOldHeal(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring, "dave"))
	h.s.Tick(srvT0)
	h.alive(append(ring, "dave")...)
	for end := srvT0.Add(DefaultDeadAfter + 2*time.Second); h.now.Before(end); {
		h.now = h.now.Add(h.s.Pace())
		h.alive("alice", "carol", "dave")
		h.tickIfDue()
	}
	h.healedWithout("bob")
	h.ok(srvAddr("alice"), wire.TeardownDHT{Name: "alice"})
	h.ok(srvAddr("alice"), wire.TeardownComplete{Name: "alice"})
	h.alive("alice", "carol", "dave")
	h.ok(srvAddr("alice"), wire.SetupDHT{N: 3, Name: "alice"})
	h.ok(srvAddr("alice"), wire.DHTComplete{Name: "alice"})
	h.alive("alice", "bob", "carol", "dave")
	if r := h.fail(srvAddr("bob"), wire.LeaveDHT{Name: "bob"}, "bob does not maintain the DHT"); strings.Contains(r.Reply.Reason, "healed") {
		t.Fatalf("bob was in no ring since the new setup, yet: %q", r.Reply.Reason)
	}
}

// A heal round a member that restarted without its place removes the
// members offline meanwhile too: each is told its own reason, that it was
// offline, not the restart of another (a review).
func TestServerHealedOutReasonIsTheMembersOwn(t *testing.T) {
	ring := []string{"alice", "bob", "carol", "dave"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring))
	h.s.dht.Epoch = 5
	h.s.Tick(srvT0)
	h.alive(ring...)
	// carol silent past --dead-after; no Tick has judged her yet.
	for end := srvT0.Add(DefaultDeadAfter + 2*time.Second); h.now.Before(end); {
		h.now = h.now.Add(h.s.Pace())
		h.alive("alice", "bob", "dave")
	}
	h.step(srvAddr("bob"), h.nextID(), wire.Register{Name: "bob", Addr: srvAddr("bob")}) // bob restarted without his place
	if d := h.s.Snapshot().DHT; d.Phase != state.PhaseHealing || slices.Contains(d.Members, "carol") {
		t.Fatalf("DHT %+v, want a heal without carol", d)
	}
	if r := h.s.healedOut["carol"]; !strings.Contains(r, "the ring of epoch 5 healed without carol: carol offline (silent for more than --dead-after") {
		t.Fatalf("carol's reason: %q, want her own, that she was offline", r)
	}
}

// sameRing reports whether the DHT is still before's (its epoch and its
// phase: no heal, no dissolve), and the DHT now.
func (h *srvH) sameRing(before state.ServerState) (state.DHT, bool) {
	d := h.s.Snapshot().DHT
	return d, d.Epoch == before.DHT.Epoch && d.Phase == before.DHT.Phase
}

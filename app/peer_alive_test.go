package app

import (
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/store"
	"dht/wire"
)

// alives runs p's timers up to until and returns when it sent an
// alive, and what each carried.
func alives(t *testing.T, p *Peer, until time.Time) ([]time.Time, []wire.Alive) {
	t.Helper()
	var at []time.Time
	var sent []wire.Alive
	for range 10_000 {
		d, ok := p.NextDeadline()
		if !ok || d.After(until) {
			break
		}
		now := d
		for _, o := range p.Tick(now) {
			if s, ok := o.(Send); ok {
				a, isAlive := s.Msg.(wire.Alive)
				if !isAlive || s.To != fzServer {
					t.Fatalf("Tick sent %#v to %s, want only alives to the server", s.Msg, s.To)
				}
				at, sent = append(at, now), append(sent, a)
			}
		}
	}
	return at, sent
}

// A registered peer sends alive on the period the server's pace gives it
// (every 250 ms until told, the first a quarter of that after the
// register, for the server's pace to come soon), and none before register
// nor after deregister.
func TestPeerSendsAliveWhileRegistered(t *testing.T) {
	p := NewPeer(PeerConfig{Server: fzServer, Rand: rand.New(rand.NewPCG(1, 1))})
	t0 := time.Unix(1_700_000_000, 0)
	if _, ok := p.NextDeadline(); ok {
		t.Fatal("a peer not registered has a deadline")
	}
	now := t0
	p.Input(now, "register bob "+fzSelf.Addr.Addr().String()+" 5000")
	var req uint32
	for _, o := range p.Bound(now, fzSelf.Addr, nil) {
		if s, ok := o.(Send); ok {
			req = s.ID
		}
	}
	stepSigned(p, now, fzServer, wire.Header{ID: req}, wire.Reply{OK: true})
	if !p.Registered() {
		t.Fatal("not registered")
	}

	// Untold: the first after 62.5ms, then every 250ms, saying period 0.
	at, sent := alives(t, p, t0.Add(900*time.Millisecond))
	if len(at) != 4 || !at[0].Equal(t0.Add(62500*time.Microsecond)) || !at[3].Equal(t0.Add(812500*time.Microsecond)) {
		t.Fatalf("alives untold at %v, want at 62.5ms, 312.5ms, 562.5ms, 812.5ms", at)
	}
	for _, a := range sent {
		if a.Name != "bob" || a.PeriodMS != 0 {
			t.Fatalf("alive %+v, want bob with period 0", a)
		}
	}
	// A pace that lengthens the period answers none of its alives (a
	// server's start pace, or one captured and sent again): not taken, a
	// drop (which the trace summarises: not a line a copy).
	now = at[3]
	if outs := stepSigned(p, now, fzServer, wire.Header{ID: 1}, wire.Pace{PeriodMS: 5000}); !quietDrop(outs) {
		t.Fatalf("pace: %#v", outs)
	}
	if at, sent := alives(t, p, now.Add(600*time.Millisecond)); len(at) != 2 || !at[1].Equal(now.Add(500*time.Millisecond)) || sent[1].PeriodMS != 0 {
		t.Fatalf("alives after a pace answering no alive at %v (%+v), want every 250ms still, period 0", at, sent)
	}
	// Told 5s in answer to its last alive: the one already due comes,
	// then one every 5s, saying 5000.
	now = now.Add(500 * time.Millisecond)
	if outs := stepSigned(p, now, fzServer, wire.Header{ID: 1, Seq: p.cred.aliveSeq}, wire.Pace{PeriodMS: 5000}); len(outs) != 0 {
		t.Fatalf("pace: %#v", outs)
	}
	// The same pace again (a copy, or one captured and sent again) is a
	// drop; so is a pace from a stranger, which changes nothing.
	for range 3 {
		if outs := stepSigned(p, now, fzServer, wire.Header{ID: 1, Seq: p.cred.aliveSeq}, wire.Pace{PeriodMS: 5000}); !quietDrop(outs) {
			t.Fatalf("a copy of the pace: %#v", outs)
		}
	}
	stepSigned(p, now, fzOther, wire.Header{ID: 2}, wire.Pace{PeriodMS: 100})
	at, sent = alives(t, p, now.Add(16*time.Second))
	if len(at) != 4 || !at[0].Equal(now.Add(250*time.Millisecond)) || !at[3].Equal(now.Add(15250*time.Millisecond)) || sent[0].PeriodMS != 5000 {
		t.Fatalf("alives after a 5s pace at %v (%+v), want at +250ms, +5.25s, +10.25s, +15.25s with period 5000", at, sent)
	}

	// Deregistered: no more alives, no deadline.
	now = at[3]
	var dereg uint32
	for _, o := range p.Input(now, "deregister bob") {
		if s, ok := o.(Send); ok {
			dereg = s.ID
		}
	}
	stepSigned(p, now, fzServer, wire.Header{ID: dereg}, wire.Reply{OK: true})
	if p.Registered() {
		t.Fatal("still registered after deregister")
	}
	if d, ok := p.NextDeadline(); ok {
		t.Fatalf("deadline %v after deregister", d)
	}
	for _, o := range p.Tick(now.Add(time.Minute)) {
		if _, ok := o.(Send); ok {
			t.Fatalf("sent %#v after deregister", o)
		}
	}
}

// A register after a resume that failed (the server unreachable), which
// leaves the peer outside any ring, empties the table of the file: it
// still held the records of the place it had (an operator's review: 'not
// in a DHT', then 61 records in 44 slots). Here under another name than
// the file's (the file's own would resume it again, which drops a place
// the server no longer counts as a resume does).
func TestRegisterAfterAFailedResumeEmptiesTheTable(t *testing.T) {
	p := NewPeer(PeerConfig{Server: fzServer, Rand: rand.New(rand.NewPCG(1, 1))})
	table := store.NewMemPeer()
	id := state.Identity{Name: "bob", Addr: fzSelf.Addr, InRing: true, ID: 1, N: 3, Left: fzLeft, Right: fzRight}
	if err := table.Apply(state.Batch{Identity: &id, Put: []dataset.Record{{LongName: "Republic of Albania", CountryCode: "ALB"}}}); err != nil {
		t.Fatal(err)
	}
	p.SetTable(table)
	p.unresumed = &id // its resume failed
	now := time.Unix(1_700_000_000, 0)
	p.Input(now, "register dave "+fzSelf.Addr.Addr().String()+" 5000")
	var req uint32
	for _, o := range p.Bound(now, fzSelf.Addr, nil) {
		if s, ok := o.(Send); ok {
			if m, ok := s.Msg.(wire.Register); !ok || m.Name != "dave" {
				t.Fatalf("sent %+v, want dave's register", s.Msg)
			}
			req = s.ID
		}
	}
	for _, o := range stepSigned(p, now, fzServer, wire.Header{ID: req}, wire.Reply{OK: true}) {
		if pp, ok := o.(PersistPeer); ok {
			if err := table.Apply(pp.Batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !p.Registered() {
		t.Fatal("not registered")
	}
	got, recs, err := table.Load()
	if err != nil || got.InRing || len(recs) != 0 {
		t.Fatalf("after the register the file holds %+v and %d records (%v); want no place and no record", got, len(recs), err)
	}
}

// quietDrop reports that out is one drop at the debug level: summarised in
// the trace, no line a copy.
func quietDrop(out []Output) bool {
	ev, ok := firstOutput(out).(Event)
	return len(out) == 1 && ok && ev.Drop && ev.Level == slog.LevelDebug
}

package app

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/wire"
)

// An Ack that acknowledges several messages is one round-trip sample, the
// longest: the messages a commit covers were sent over the time it took,
// and a sample for each would weigh that one commit many times over.
func TestOneRTTSampleAnAck(t *testing.T) {
	var st Stats
	l := newLink(LinkConfig{}, 1, &st)
	to := netip.MustParseAddrPort("10.0.0.2:5000")
	t0 := time.Unix(1_700_000_000, 0)
	var ids []uint32
	for i := range 3 {
		for _, o := range l.send(t0.Add(time.Duration(i)*time.Millisecond), to, wire.Store{N: 2}, tagNone, false) {
			ids = append(ids, o.(Send).ID)
		}
	}
	if len(ids) != 3 {
		t.Fatalf("sent %d of 3", len(ids))
	}
	ackAt := t0.Add(10 * time.Millisecond)
	for _, id := range ids {
		if _, ok, _ := l.acked(ackAt, to, id); !ok {
			t.Fatalf("ack of %d matched nothing", id)
		}
	}
	if l.storeRTT.srtt != 0 {
		t.Fatalf("sampled before the Ack was handled: srtt %v", l.storeRTT.srtt)
	}
	l.endAck()
	if l.storeRTT.srtt != 10*time.Millisecond || l.storeRTT.rttvar != 5*time.Millisecond {
		t.Fatalf("srtt %v rttvar %v; want one sample of 10ms (srtt 10ms, rttvar 5ms)", l.storeRTT.srtt, l.storeRTT.rttvar)
	}
	if l.rtt.srtt != 0 {
		t.Fatalf("stores' round trips went into the other messages' estimate: srtt %v", l.rtt.srtt)
	}
	l.endAck() // nothing acknowledged since: no sample
	if l.storeRTT.srtt != 10*time.Millisecond {
		t.Fatalf("an empty endAck sampled: srtt %v", l.storeRTT.srtt)
	}
}

// The quick acks of set-ids do not set the timeout of the first stores:
// a store's ack waits for its receiver's commit, so until a store's round
// trip is measured a store waits the initial timeout, not the floor a
// set-id's 50us round trip gives.
func TestStoresHaveTheirOwnEstimate(t *testing.T) {
	var st Stats
	l := newLink(LinkConfig{}, 1, &st)
	to := netip.MustParseAddrPort("10.0.0.2:5000")
	t0 := time.Unix(1_700_000_000, 0)
	out := l.send(t0, to, wire.SetID{ID: 1, N: 2}, tagSetID, false)
	if _, ok, _ := l.acked(t0.Add(50*time.Microsecond), to, out[0].(Send).ID); !ok {
		t.Fatal("the set-id's ack matched nothing")
	}
	l.endAck()
	if got := l.rtt.first(&l.cfg.Retry); got != DefaultMinRTO {
		t.Fatalf("after a 50us set-id, a set-id's timeout is %v, want the floor %v", got, DefaultMinRTO)
	}
	t1 := t0.Add(time.Millisecond)
	l.send(t1, to, wire.Store{N: 2}, tagNone, false)
	at, ok := l.deadline()
	if !ok || at.Sub(t1) != DefaultRTO {
		t.Fatalf("the first store times out after %v, want the initial %v", at.Sub(t1), DefaultRTO)
	}
}

// retransmitGaps sends one message to a destination that never acknowledges
// it and returns the waits between its transmissions, until the link gives
// up on the destination.
func retransmitGaps(t *testing.T, l *link, t0 time.Time) []time.Duration {
	t.Helper()
	to := netip.MustParseAddrPort("10.0.0.2:5000")
	if out := l.send(t0, to, wire.Store{N: 2}, tagNone, false); len(out) != 1 {
		t.Fatalf("sent %d datagrams", len(out))
	}
	var gaps []time.Duration
	last := t0
	for range 100_000 {
		at, ok := l.deadline()
		if !ok {
			t.Fatal("no retransmission pending and nothing given up")
		}
		out, gone := l.tick(at)
		if len(gone) > 0 {
			return gaps
		}
		if len(out) != 1 {
			t.Fatalf("tick at its deadline sent %d datagrams", len(out))
		}
		gaps = append(gaps, at.Sub(last))
		last = at
	}
	t.Fatal("never gave up")
	return nil
}

// A lost message's timeout doubles up to MaxRTO (100 ms by default) when
// round trips are short, so that a lossy link neither sits idle for
// seconds nor gets few tries before GiveUp (with a 1 s cap, a setup at 30%
// loss took up to 9 s and once gave up on a live neighbour); and up to four
// times the measured timeout when round trips are long, so that a slow
// path is not retransmitted to before its answer can come back.
func TestBackoffCapFollowsTheRoundTrip(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for _, c := range []struct {
		name    string
		rtt     time.Duration
		wantCap time.Duration
	}{
		{"loopback", 50 * time.Microsecond, 100 * time.Millisecond},
		{"long path", 300 * time.Millisecond, 4 * (300*time.Millisecond + 4*150*time.Millisecond)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var st Stats
			l := newLink(LinkConfig{}, 1, &st)
			l.storeRTT.sample(c.rtt) // srtt rtt, rttvar rtt/2
			gaps := retransmitGaps(t, l, t0)
			for i := 1; i < len(gaps); i++ {
				if gaps[i] != min(2*gaps[i-1], c.wantCap) {
					t.Fatalf("waits %v: %v after %v, want it doubled up to %v", gaps, gaps[i], gaps[i-1], c.wantCap)
				}
			}
			if last := gaps[len(gaps)-1]; last != c.wantCap {
				t.Fatalf("waits %v never reached the cap %v", gaps, c.wantCap)
			}
			if c.rtt < time.Millisecond && len(gaps) < 90 {
				t.Fatalf("only %d retransmissions in the %v before giving up", len(gaps), l.cfg.GiveUp)
			}
		})
	}
}

// The duplicate filter remembers exactly the last `size` pairs added, per
// source: checked against a plain list over a seeded random stream from a
// few sources (so that ids collide across sources and repeat), and its
// table of sources never holds more than the sources with pairs remembered.
func TestDedupRemembersTheLastPairs(t *testing.T) {
	const size = 64
	d := newDedup(size, 1)
	var model []dedupPair // oldest first
	rng := rand.New(rand.NewPCG(7, 7))
	sources := []netip.AddrPort{
		netip.MustParseAddrPort("10.0.0.1:5000"), netip.MustParseAddrPort("10.0.0.2:5000"),
		netip.MustParseAddrPort("10.0.0.2:5001"), netip.MustParseAddrPort("[::1]:5000"),
	}
	for i := range 20_000 {
		from := sources[rng.IntN(len(sources))]
		if i%1000 > 900 { // now and then a stream of strangers, each seen once
			from = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(i))
		}
		id := uint32(rng.IntN(300))
		want := !slices.Contains(model, dedupPair{from, id})
		if got := d.add(from, id); got != want {
			t.Fatalf("step %d: add(%v, %d) = %v, want %v", i, from, id, got, want)
		}
		if want {
			model = append(model, dedupPair{from, id})
			if len(model) > size {
				model = model[1:]
			}
		}
		probe := dedupPair{sources[rng.IntN(len(sources))], uint32(rng.IntN(300))}
		if got, want := d.has(probe.from, probe.id), slices.Contains(model, probe); got != want {
			t.Fatalf("step %d: has(%v, %d) = %v, want %v", i, probe.from, probe.id, got, want)
		}
		distinct := map[netip.AddrPort]bool{}
		for _, p := range model {
			distinct[p.from] = true
		}
		if len(d.index) != len(distinct) || d.set.n != len(model) || len(d.set.slots) > 2*size {
			t.Fatalf("step %d: %d sources indexed, %d pairs in %d slots; the last %d pairs have %d sources", i, len(d.index), d.set.n, len(d.set.slots), len(model), len(distinct))
		}
	}
}

type dedupPair struct {
	from netip.AddrPort
	id   uint32
}

// The id set agrees with a map over a seeded stream of adds and removes
// that grows it, empties it and fills it again, with keys drawn from a
// small range so that they meet, and its slots stay at most four times
// the keys it held at most (twice, rounded up to a power of two).
func TestIDSetAgreesWithAMap(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		s := idSet{seed: seed}
		model := map[uint64]bool{}
		rng := rand.New(rand.NewPCG(seed, 9))
		most := 0
		for step := range 200_000 {
			k := 1 + uint64(rng.IntN(3000))
			grow := step/20_000%2 == 0 // phases that fill and phases that drain
			if add := rng.IntN(10) < 7 == grow; add {
				if !model[k] {
					s.add(k)
					model[k] = true
				}
			} else {
				s.remove(k)
				delete(model, k)
			}
			most = max(most, len(model))
			probe := 1 + uint64(rng.IntN(3000))
			if s.has(probe) != model[probe] || s.has(k) != model[k] || s.n != len(model) {
				t.Fatalf("seed %d step %d: has(%d) %v, has(%d) %v, %d keys; the map says %v, %v, %d", seed, step, probe, s.has(probe), k, s.has(k), s.n, model[probe], model[k], len(model))
			}
		}
		if len(s.slots) > 4*most {
			t.Fatalf("seed %d: %d slots for at most %d keys", seed, len(s.slots), most)
		}
	}
}

// A receiver acknowledges every copy of a message, after committing what
// it brought; a commit slower than the timeout has the sender send it again
// on a network that loses nothing, and the second ack then matches nothing
// in flight. That ack is expected: traced at LevelDebug, not as a warning
// in the trace on stderr. An ack for a message never sent still warns.
func TestAckOfARetransmittedMessageIsNoWarning(t *testing.T) {
	p := fuzzPeer() // bob, id 1 of 3
	now := time.Unix(1_700_000_000, 0)
	// Pos("aa") = 194, id 2: carol's, so bob forwards it to carol.
	var id uint32
	for _, o := range stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 7}, wire.Query{ReqID: 1, Querier: wire.Member{Name: "dave", Addr: fzOther}, Hops: 1, LongName: "aa"}) {
		if s, ok := o.(Send); ok && s.To == fzRight.Addr {
			id = s.ID
		}
	}
	if id == 0 {
		t.Fatal("the query was not forwarded")
	}
	at, _ := p.NextDeadline()
	resent := false
	for _, o := range p.Tick(at) {
		if s, ok := o.(Send); ok && s.ID == id && s.Flags&wire.FlagRetransmit != 0 {
			resent = true
		}
	}
	if !resent {
		t.Fatal("the query was not sent again at its deadline")
	}
	trace := func(outs []Output) string {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})) // as on stderr
		for _, o := range outs {
			if ev, ok := o.(Event); ok {
				traceEvent(log, ev)
			}
		}
		return buf.String()
	}
	ack := func(id uint32) []Output { return stepSigned(p, at, fzRight.Addr, wire.Header{ID: id}, wire.Ack{}) }
	if got := trace(ack(id)); got != "" {
		t.Fatalf("the first ack traced %q", got)
	}
	if got := trace(ack(id)); got != "" {
		t.Fatalf("the ack of the second copy traced %q on stderr", got)
	}
	if got := trace(ack(id + 1000)); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "ack matches nothing") {
		t.Fatalf("an ack for a message never sent traced %q, want a warning", got)
	}
}

// A cancelled message is neither retransmitted nor counted against its
// destination: the others to it go on as before, and a late ack of the
// cancelled one is taken as such.
func TestCancelledMessagesAreSentNoMore(t *testing.T) {
	var st Stats
	l := newLink(LinkConfig{}, 1, &st)
	last := netip.MustParseAddrPort("10.0.0.2:5000")
	joiner := netip.MustParseAddrPort("10.0.0.3:5000")
	t0 := time.Unix(1_700_000_000, 0)
	id := func(out []Output) uint32 {
		t.Helper()
		if len(out) != 1 {
			t.Fatalf("sent %d datagrams, want 1", len(out))
		}
		return out[0].(Send).ID
	}
	reset := id(l.send(t0, last, wire.ResetRight{Right: wire.Member{Name: "joiner", Addr: joiner}}, tagJoin, false))
	other := id(l.send(t0, last, wire.Teardown{Origin: "x"}, tagNone, false))
	set := id(l.send(t0, joiner, wire.SetID{ID: 3, N: 4}, tagJoin, false))
	if out := l.cancel(t0, tagJoin); len(out) != 0 {
		t.Fatalf("cancel sent %v", out)
	}
	out, gone := l.tick(t0.Add(2 * DefaultRTO))
	if len(gone) != 0 {
		t.Fatalf("gave up on %v", gone)
	}
	var again []uint32
	for _, o := range out {
		again = append(again, o.(Send).ID)
	}
	if !slices.Equal(again, []uint32{other}) {
		t.Fatalf("retransmitted %v; want only %d (the uncancelled message)", again, other)
	}
	if l.backlog(joiner) != 0 || l.backlog(last) != 1 {
		t.Fatalf("backlog: joiner %d, last node %d; want 0 and 1", l.backlog(joiner), l.backlog(last))
	}
	for _, c := range []struct {
		to netip.AddrPort
		id uint32
	}{{last, reset}, {joiner, set}} {
		if _, ok, _ := l.acked(t0, c.to, c.id); ok || !l.ackDropped(c.to, c.id) {
			t.Fatalf("ack of cancelled %d: matched %v, known as cancelled %v; want the ack of a cancelled message", c.id, ok, l.ackDropped(c.to, c.id))
		}
	}
}

// A flush goes right behind the messages in flight to the same neighbour,
// naming them, instead of waiting for their acks; sent again, it names only
// those still unacknowledged. Any other barrier waits for the acks, and so
// does a flush with more ahead of it than a flush can name.
func TestFlushGoesBehindWhatItNames(t *testing.T) {
	var st Stats
	to := netip.MustParseAddrPort("10.0.0.2:5000")
	t0 := time.Unix(1_700_000_000, 0)
	sent := func(outs []Output) (ids []uint32, flush *wire.Flush) {
		for _, o := range outs {
			s := o.(Send)
			ids = append(ids, s.ID)
			if f, ok := s.Msg.(wire.Flush); ok {
				flush = &f
			}
		}
		return ids, flush
	}
	l := newLink(LinkConfig{}, 1, &st)
	var stores []uint32
	for range 3 {
		ids, _ := sent(l.send(t0, to, wire.Store{N: 2}, tagNone, false))
		stores = append(stores, ids...)
	}
	_, f := sent(l.send(t0, to, wire.Flush{Leader: "alice", N: 2, After: []uint32{99}}, tagNone, true))
	if f == nil || !slices.Equal(f.After, stores) {
		t.Fatalf("flush behind 3 stores in flight: %+v; want it sent at once, after %v", f, stores)
	}
	if _, ok, _ := l.acked(t0, to, stores[1]); !ok {
		t.Fatal("the ack of the second store matched nothing")
	}
	var again *wire.Flush
	for at := t0; again == nil && at.Before(t0.Add(time.Minute)); at = at.Add(time.Millisecond) {
		out, _ := l.tick(at)
		_, again = sent(out)
	}
	if again == nil || !slices.Equal(again.After, []uint32{stores[0], stores[2]}) {
		t.Fatalf("flush sent again with the second store acknowledged: %+v; want after %v", again, []uint32{stores[0], stores[2]})
	}

	// Another barrier waits for the acks.
	l = newLink(LinkConfig{}, 1, &st)
	ids, _ := sent(l.send(t0, to, wire.Store{N: 2}, tagNone, false))
	if got, _ := sent(l.send(t0, to, wire.Teardown{Origin: "alice"}, tagNone, true)); len(got) != 0 {
		t.Fatal("a teardown sent as a barrier went before the store ahead of it was acknowledged")
	}
	if _, _, out := l.acked(t0, to, ids[0]); len(out) != 1 {
		t.Fatalf("the store's ack let %d messages go; want the teardown", len(out))
	}

	// So does a flush with more ahead than it can name.
	l = newLink(LinkConfig{Window: 2 * wire.MaxAfter}, 1, &st)
	stores = nil
	for range wire.MaxAfter + 1 {
		ids, _ := sent(l.send(t0, to, wire.Store{N: 2}, tagNone, false))
		stores = append(stores, ids...)
	}
	if got, _ := sent(l.send(t0, to, wire.Flush{Leader: "alice", N: 2}, tagNone, true)); len(got) != 0 {
		t.Fatalf("a flush went behind %d messages in flight; it names at most %d", len(stores), wire.MaxAfter)
	}
	_, _, out := l.acked(t0, to, stores[0])
	if _, f := sent(out); f == nil || !slices.Equal(f.After, stores[1:]) {
		t.Fatalf("once one was acknowledged: %+v; want the flush, after the other %d", f, wire.MaxAfter)
	}
}

// A give-up that comes right after a stall of this process's own, beyond
// what the give-up spares, says so: the failure carries the stall, and its
// reason says the silence may be this process's (a review: a leader
// stopped past twice the give-up named its live neighbour as the cause).
// One on time carries none.
func TestAGiveUpAfterAStallSaysSo(t *testing.T) {
	for _, stall := range []time.Duration{0, 3 * DefaultGiveUp} {
		var st Stats
		l := newLink(LinkConfig{}, 1, &st)
		to := netip.MustParseAddrPort("10.0.0.2:5000")
		t0 := time.Unix(1_700_000_000, 0)
		l.send(t0, to, wire.Store{N: 2}, tagNone, false)
		now := t0
		var gone []failure
		for len(gone) == 0 {
			at, ok := l.deadline()
			if !ok {
				t.Fatal("nothing pending, nothing given up")
			}
			now = at
			if stall > 0 && now.Sub(t0) > DefaultGiveUp/2 {
				now, stall = now.Add(stall), -stall // once
			}
			_, gone = l.tick(now)
		}
		want := time.Duration(0)
		if stall < 0 {
			want = -stall
		}
		if g := gone[0]; g.stalled < want || want == 0 && g.stalled != 0 {
			t.Errorf("stall %v: the failure carries %v", -stall, g.stalled)
		}
		note := stalledNote(gone[0].stalled)
		if (want > 0) != strings.Contains(note, "this process itself had not run for") {
			t.Errorf("stall %v: note %q", -stall, note)
		}
	}
}

// A short stall (well under the give-up, so wholly spared by tries.again)
// that happens to fall on the retransmission a message is given up at
// does not make the reason say the silence may be this process's own:
// the destination was silent for the whole give-up while the process ran.
func TestAFullySparedStallAddsNoNote(t *testing.T) {
	var st Stats
	l := newLink(LinkConfig{}, 1, &st)
	to := netip.MustParseAddrPort("10.0.0.2:5000")
	t0 := time.Unix(1_700_000_000, 0)
	l.send(t0, to, wire.Store{N: 2}, tagNone, false)
	var gone []failure
	for len(gone) == 0 {
		at, ok := l.deadline()
		if !ok {
			t.Fatal("nothing pending")
		}
		if at.Sub(t0) >= DefaultGiveUp {
			at = at.Add(100 * time.Millisecond) // a 100 ms hiccup at the give-up
		}
		_, gone = l.tick(at)
		if len(gone) > 0 {
			t.Logf("given up at %v, silence while running %v", at.Sub(t0), at.Sub(t0)-100*time.Millisecond)
		}
	}
	if note := stalledNote(gone[0].stalled); strings.Contains(note, "this process itself had not run") {
		t.Errorf("a fully spared 100 ms stall at the give-up: note %q", note)
	}
}

// A round trip that spans this process's own stall (SIGSTOP, a starved
// CPU: no Tick ran) or its own commit (Deaf, which postpones every timeout
// by the commit's length) is no sample of the network: the ack came at
// once and waited unread. Sampled, a 4 s stop or commit set the stores'
// timeout to 12 s, above the give-up, so a store lost afterwards was not
// sent again before the link gave up on a live neighbour (a chaos review:
// a leader stopped for 4 s later failed a join as "the ring is broken at"
// its right neighbour; a code review, for the commit).
func TestARoundTripOverOwnStallIsNoSample(t *testing.T) {
	for _, c := range []struct {
		name  string
		stall func(l *link)
		read  time.Duration // after the send
	}{
		{"stopped", func(*link) {}, 4 * time.Second},
		{"committing", func(l *link) { l.postpone(4 * time.Second) }, 4*time.Second + time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			var st Stats
			l := newLink(LinkConfig{}, 1, &st)
			to := netip.MustParseAddrPort("10.0.0.2:5000")
			t0 := time.Unix(1_700_000_000, 0)
			id := l.send(t0, to, wire.Store{N: 2}, tagNone, false)[0].(Send).ID
			c.stall(l)
			now := t0.Add(c.read)
			if _, ok, _ := l.acked(now, to, id); !ok {
				t.Fatal("ack matched nothing")
			}
			l.endAck()
			l.send(now, to, wire.Store{N: 2}, tagNone, false)
			at, _ := l.deadline()
			if wait := at.Sub(now); wait > DefaultMaxRTO {
				t.Fatalf("after 4 s %s the next store is first sent again after %v (srtt %v): taken for a round trip", c.name, wait, l.storeRTT.srtt)
			}
		})
	}
}

// A member that queries (bob) sends its right neighbour (carol) a query
// copy, signed with its token, and later a store, signed with the ring's
// key; the network duplicates the copy, and carol reads the copy with the
// store. Her acks of the two go apart, each signed with its message's key:
// one ack of both, signed with the token, its first id acknowledged
// before, was dropped at bob with a warning, and the store went again (an
// attacker's review).
func TestAnAckOfACopyIsNotBatchedWithAStoresAck(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bob := fuzzPeer()
	carol := fuzzPeer()
	carol.self, carol.left, carol.right, carol.id = fzRight, fzSelf, fzLeft, 2
	carol.setRing(fzEpoch, fzRingKey) // signs as carol
	tok := signer{seq: fzEpoch, key: bob.cred.queryToken(bob.self.Addr), from: bob.self.Addr}
	sends := func(out []Output, to netip.AddrPort) (r []Send) {
		for _, o := range out {
			if s, ok := o.(Send); ok && s.To == to {
				r = append(r, s)
			}
		}
		return r
	}
	qs := sends(bob.link.sendSigned(now, fzRight.Addr, wire.Query{ReqID: 500, Querier: bob.self, LongName: "Republic of Albania"}, tagNone, false, tok), fzRight.Addr)
	q := deliverSend(t, fzSelf.Addr, qs[0])
	for _, a := range sends(carol.StepBatch(now, []Datagram{q}), fzSelf.Addr) {
		bob.StepBatch(now, []Datagram{deliverSend(t, fzRight.Addr, a)})
	}
	st := sends(bob.link.send(now, fzRight.Addr, wire.Store{N: 3}, tagNone, false), fzRight.Addr)
	var loud []string
	for _, a := range sends(carol.StepBatch(now, []Datagram{q, deliverSend(t, fzSelf.Addr, st[0])}), fzSelf.Addr) {
		t.Logf("carol sends %d %+v key %x", a.ID, a.Msg, a.Key[:2])
		loud = append(loud, loudEvents(bob.StepBatch(now, []Datagram{deliverSend(t, fzRight.Addr, a)}))...)
	}
	if bob.link.pending(fzRight.Addr, func(m wire.Message) bool { _, ok := m.(wire.Store); return ok }) || len(loud) > 0 {
		t.Fatalf("carol's ack of the store, batched with a copy's, not taken at bob (warnings %q)", loud)
	}
}

// deliverSend is s as its receiver reads it, from from.
func deliverSend(t *testing.T, from netip.AddrPort, s Send) Datagram {
	t.Helper()
	b, err := s.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, m, err := wire.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return Datagram{From: from, Header: h, Msg: m}
}

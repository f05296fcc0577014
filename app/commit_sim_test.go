package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"dht/app"
)

// roundEvent is one line of a store round's trace: a datagram sent or
// received, or a commit, at a node; for a store, the Long Name of its
// first record, and whether it was sent again.
type roundEvent struct {
	what, node, typ string
	first           string
	again           bool
}

// roundTrace keeps, in order, the datagrams sent and received and the
// commits of every peer.
type roundTrace struct {
	events *[]roundEvent
	attrs  []slog.Attr
}

func (o roundTrace) Enabled(context.Context, slog.Level) bool { return true }
func (o roundTrace) WithAttrs(as []slog.Attr) slog.Handler {
	o.attrs = append(slices.Clone(o.attrs), as...)
	return o
}
func (o roundTrace) WithGroup(string) slog.Handler { return o }
func (o roundTrace) Handle(_ context.Context, r slog.Record) error {
	var e roundEvent
	var visit func(a slog.Attr) bool
	visit = func(a slog.Attr) bool {
		switch a.Key {
		case "node":
			e.node = a.Value.String()
		case "type":
			e.typ = a.Value.String()
		case "retransmit":
			e.again = true
		case "first":
			e.first = a.Value.String()
		case "msg":
			for _, g := range a.Value.Resolve().Group() {
				visit(g)
			}
		}
		return true
	}
	for _, a := range o.attrs {
		visit(a)
	}
	r.Attrs(visit)
	switch r.Message {
	case "send", "recv", app.TracePersist:
		e.what = r.Message
		*o.events = append(*o.events, e)
	}
	return nil
}

// index is the first event at or after from that matches, or -1.
func index(events []roundEvent, from int, what, node, typ string) int {
	for i := from; i < len(events); i++ {
		if e := events[i]; e.what == what && e.node == node && (typ == "" || e.typ == typ) {
			return i
		}
	}
	return -1
}

// checkCommittedBefore checks that the leader of a store round sent its
// completion (complete: dht-complete, rebuilt or healed) only after every
// other member had committed what the round brought it: each member,
// once the flush came, commits, and passes the committed that follows the
// flush on to its right only after that commit and after the committed
// came from its left; the leader's completion follows the committed back
// from its left. In the simulation a commit takes no time; what a slow one
// needs is this chain, which holds however long each commit takes.
func checkCommittedBefore(t *testing.T, s *simNet, events []roundEvent, complete string) {
	t.Helper()
	d := s.Server().Snapshot().DHT
	ring := d.Members // in ring order from the leader
	leader := ring[0]
	done := index(events, 0, "send", leader, complete)
	if done < 0 {
		t.Fatalf("seed %d: %s never sent %s", s.Seed(), leader, complete)
	}
	if got := index(events, 0, "recv", leader, "committed"); got < 0 || got > done {
		t.Fatalf("seed %d: %s sent %s (event %d) before the committed came back (%d)", s.Seed(), leader, complete, done, got)
	}
	for i := 1; i < len(ring); i++ {
		u := ring[i]
		flush := index(events, 0, "recv", u, "flush")
		if flush < 0 {
			t.Fatalf("seed %d: the flush never reached %s", s.Seed(), u)
		}
		commit := index(events, flush, app.TracePersist, u, "")
		sent := index(events, flush, "send", u, "committed")
		if commit < 0 || sent < 0 || commit > sent || sent > done {
			t.Fatalf("seed %d: %s: flush at %d, commit at %d, committed sent at %d, %s at %d: the commit must come before the committed, and that before the completion", s.Seed(), u, flush, commit, sent, complete, done)
		}
		if from := index(events, flush, "recv", u, "committed"); from < 0 || from > sent {
			t.Fatalf("seed %d: %s sent committed at %d before it came from its left neighbour (%d)", s.Seed(), u, sent, from)
		}
	}
}

// A store round's nodes commit in parallel (each forwards the flush before
// it commits), yet its leader reports it done (dht-complete for a setup,
// rebuilt for a leave's or a join's rebuild, healed for a heal) only after
// every table is on disk, which the committed that follows the flush
// round the ring tells it; with loss and duplicates too.
func TestStoreRoundCompletesAfterEveryCommit(t *testing.T) {
	for _, c := range []struct {
		n         int
		loss, dup float64
	}{{2, 0, 0}, {5, 0, 0}, {5, 0.2, 0.1}, {7, 0.3, 0.2}} {
		t.Run(fmt.Sprintf("n=%d loss=%g dup=%g", c.n, c.loss, c.dup), func(t *testing.T) {
			data := records(t)
			for _, seed := range seeds(t, 4) {
				s := newSim(t, seed)
				users := joinUsers(t, s, c.n+1)
				s.Loss, s.Dup = c.loss, c.dup
				var events []roundEvent
				traced := func(complete string, run func()) {
					events = events[:0]
					s.SetTrace(roundTrace{events: &events})
					run()
					s.SetTrace(nil)
					checkCommittedBefore(t, s, events, complete)
					s.checkRing(data)
				}
				traced("dht-complete", func() {
					s.mustDo(users[0], fmt.Sprintf("setup-dht %d %s", c.n, users[0]), "setup-dht SUCCESS")
				})
				joiner := freeUser(s)
				traced("rebuilt", func() { join(t, s, joiner, data) })
				if c.n > 2 {
					leaver := memberWithID(s, 1)
					traced("rebuilt", func() { s.mustDo(leaver, "leave-dht "+leaver, "leave-dht SUCCESS") })
				}
				dead := memberWithID(s, 0)
				traced("healed", func() {
					kill(s, dead)
					settleHeal(t, s, dead)
				})
			}
		})
	}
}

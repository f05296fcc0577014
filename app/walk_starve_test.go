package app

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"dht/wire"
)

// Queries typed ahead whose first attempts all go unanswered (lost at
// 30% loss, or a slow ring) are each sent again, reliably, well within the
// query's limit: holding the walks still on their first try while another
// is late must not postpone the last of 32 for the whole 10 s, so that it
// fails having gone once, with every node running (a chaos run at 30% loss:
// 'no answer within 10s to the query sent to bob ... may have stopped',
// the query sent once in 10 s, its 31 companions retried meanwhile).
func TestWalksOnTheirFirstTryAreNotStarved(t *testing.T) {
	q := newQuerier(t)
	var out []Output
	names := make([]string, maxWalks)
	for i := range names {
		names[i] = fmt.Sprintf("Name %02d", i)
		out = append(out, q.p.Input(q.now, "query-dht erin "+names[i])...)
	}
	asks, _ := q.sent(out)
	if len(asks) != maxWalks {
		t.Fatalf("%d query-dht sent; want %d", len(asks), maxWalks)
	}
	_, walks := q.replyAll(asks)
	start := q.now
	firstRetry := map[string]time.Duration{}
	var got []string
	for range 100000 {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("walks unanswered, and the peer has no deadline")
		}
		q.now = at
		out := q.p.Tick(q.now)
		for _, o := range out {
			s, ok := o.(Send)
			if !ok || s.Flags&wire.FlagNoAck != 0 {
				continue
			}
			m, ok := s.Msg.(wire.Query)
			if !ok {
				continue
			}
			if _, seen := firstRetry[m.LongName]; !seen {
				firstRetry[m.LongName] = q.now.Sub(start)
			}
			// The member is up: it acknowledges every copy.
			h, a := signedWith(wire.Header{ID: s.ID}, wire.Ack{}, signer{seq: fzEpoch, key: q.token}, q.member, q.p.self.Addr)
			q.p.Step(q.now, q.member, h, a)
		}
		if got = printed(out); len(got) > 0 {
			break
		}
	}
	_ = walks
	var worst time.Duration
	for _, n := range names {
		d, ok := firstRetry[n]
		if !ok {
			t.Errorf("%q was never sent again in the query's limit", n)
			continue
		}
		worst = max(worst, d)
	}
	t.Logf("latest first retry: %v; first printed %q", worst, got)
	if worst > 2*time.Second {
		t.Errorf("the last walk on its first try went again only after %v", worst)
	}
}

// A network that duplicates datagrams delivers an ack twice though its
// message went once: the second copy is what a working network does, and
// is dropped at the debug level, not warned of, at a querier (which holds
// no ring key: 'ack not signed with this peer's ring') as at a member
// ('ack matches nothing in flight'). A chaos run at 5% duplication: 53
// such warnings at queriers, 188 at members.
func TestANetworksCopyOfAnAckIsNoWarning(t *testing.T) {
	q := newQuerier(t)
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(asks[0])
	var id uint32
	for i := 0; id == 0; i++ {
		at, ok := q.p.Pending()
		if !ok || i > 100000 {
			t.Fatal("the query was never sent reliably")
		}
		q.now = at
		for _, o := range q.p.Tick(q.now) {
			if s, ok := o.(Send); ok && s.Flags&wire.FlagNoAck == 0 {
				if _, ok := s.Msg.(wire.Query); ok {
					id = s.ID
				}
			}
		}
	}
	levels := ackTwice(q, id) // the ack, and the network's copy of it
	if len(levels) != 1 || levels[0] != slog.LevelDebug {
		t.Errorf("an ack and its copy, of a query sent once: drops at levels %v; want one, at the debug level", levels)
	}
}

// A server's answer that comes twice (a network that duplicates, or the
// answers to a query-dht asked again before the first came) is dropped
// quietly the second time; a reply to an id never asked still warns.
func TestACopyOfAServersReplyIsNoWarning(t *testing.T) {
	q := newQuerier(t)
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(asks[0])
	for _, tc := range []struct {
		id   uint32
		want slog.Level
	}{{asks[0], slog.LevelDebug}, {asks[0] + 1_000_003, slog.LevelWarn}} {
		var levels []slog.Level
		for _, o := range q.reply(tc.id) {
			if e, ok := o.(Event); ok && e.Drop {
				levels = append(levels, e.Level)
			}
		}
		if len(levels) != 1 || levels[0] != tc.want {
			t.Errorf("reply to id %d: drops at levels %v; want one at %v", tc.id, levels, tc.want)
		}
	}
}

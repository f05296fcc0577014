package app

import (
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	"dht/wire"
)

// querier is a registered Free peer and the two it talks to: the server
// and the member the server names for every query.
type querier struct {
	t      *testing.T
	p      *Peer
	server netip.AddrPort
	member netip.AddrPort
	token  wire.Key
	now    time.Time
}

func newQuerier(t *testing.T) *querier {
	q := &querier{t: t, server: netip.MustParseAddrPort("10.0.0.1:4000"), member: netip.MustParseAddrPort("10.0.0.12:5000"),
		token: wire.Key{0x7a}, now: time.Unix(1_700_000_000, 0)}
	q.p = NewPeer(PeerConfig{Server: q.server})
	q.p.self = wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	q.p.bound, q.p.registered = true, true
	giveCredentials(q.p)
	return q
}

// sent sorts out's datagrams: the query-dht requests to the server (their
// ids) and the queries to the member (their request ids, by Long Name).
func (q *querier) sent(out []Output) (asks []uint32, walks map[string]uint32) {
	walks = map[string]uint32{}
	for _, o := range out {
		s, ok := o.(Send)
		if !ok {
			continue
		}
		switch m := s.Msg.(type) {
		case wire.QueryDHT:
			asks = append(asks, s.ID)
		case wire.Query:
			if s.To != q.member {
				q.t.Fatalf("query sent to %s, not to the member the server named", s.To)
			}
			walks[m.LongName] = m.ReqID
		}
	}
	return asks, walks
}

// reply is the server's SUCCESS to the query-dht with id.
func (q *querier) reply(id uint32) []Output {
	r := wire.Reply{OK: true, Members: []wire.Member{{Name: "bob", Addr: q.member}}, KeyEpoch: fzEpoch, Key: q.token}
	return stepSigned(q.p, q.now, q.server, wire.Header{ID: id}, r)
}

// answer is the owner's answer to the query with reqID: found or not.
func (q *querier) answer(reqID uint32, longName string, found bool) []Output {
	r := wire.QueryResult{ReqID: reqID, Found: found, Node: "carol", NodeID: 2, Hops: 1, LongName: longName}
	if found {
		r.Record[3] = longName
	}
	return stepSigned(q.p, q.now, netip.MustParseAddrPort("10.0.0.13:5000"), wire.Header{ID: 77, Flags: wire.FlagNoAck}, r)
}

// printed is what out prints: each result's first words and Long Name.
func printed(out []Output) []string {
	var got []string
	for _, o := range out {
		r, ok := o.(Result)
		if !ok {
			continue
		}
		s := r.Cmd.String()
		switch {
		case r.OK && r.Cmd == CmdQueryDHT:
			s += " found " + r.Answer.LongName
		case r.Answer.Answered:
			s += " not found " + r.Answer.LongName
		case r.OK:
			s += " SUCCESS"
		default:
			s += " FAILURE: " + r.Reason
		}
		got = append(got, s)
	}
	return got
}

// Queries typed ahead walk the ring together: once the first query is in
// the ring, the next query-dht goes to the server in the same turn, one
// request at a time as ever; the answers, whatever order they come in, are
// printed in the order the queries were typed, and a command that is not a
// query-dht waits for every walk.
func TestQueriesTypedAheadWalkTogether(t *testing.T) {
	q := newQuerier(t)
	names := []string{"Aruba", "Republic of Chile", "Kingdom of Spain"}
	var out []Output
	for _, n := range names {
		out = append(out, q.p.Input(q.now, "query-dht erin "+n)...)
	}
	out = append(out, q.p.Input(q.now, "help")...)
	asks, _ := q.sent(out)
	if len(asks) != 1 {
		t.Fatalf("typed three queries: %d query-dht sent at once; want 1 (one request to the server at a time)", len(asks))
	}
	reqs := map[string]uint32{}
	for i, n := range names {
		out = q.reply(asks[0])
		next, walks := q.sent(out)
		if len(walks) != 1 || walks[n] == 0 {
			t.Fatalf("reply %d: queries sent %v; want %q", i, walks, n)
		}
		reqs[n] = walks[n]
		if want := 1; i < len(names)-1 && len(next) != want {
			t.Fatalf("reply %d: the query for %q in the ring, %d query-dht sent for the next one; want %d", i, n, len(next), want)
		}
		if i == len(names)-1 && len(next) != 0 {
			t.Fatalf("the last query in the ring: %d query-dht sent", len(next))
		}
		if got := printed(out); len(got) != 0 {
			t.Fatalf("reply %d printed %q before any answer", i, got)
		}
		asks = next
	}
	if q.p.Idle() {
		t.Fatal("three queries in the ring, and the peer says it is idle")
	}
	// The last typed answered first, then the second: nothing printed yet.
	if got := printed(q.answer(reqs["Kingdom of Spain"], "Kingdom of Spain", true)); len(got) != 0 {
		t.Fatalf("the third query's answer before the first's printed %q", got)
	}
	if got := printed(q.answer(reqs["Republic of Chile"], "Republic of Chile", false)); len(got) != 0 {
		t.Fatalf("the second query's answer before the first's printed %q", got)
	}
	// A copy of an answer already taken is dropped.
	if out := q.answer(reqs["Republic of Chile"], "Republic of Chile", false); len(printed(out)) != 0 || !droppedAs(out, "answers no query in progress (a late copy)") {
		t.Fatalf("a second copy of an answer: %v", out)
	}
	got := printed(q.answer(reqs["Aruba"], "Aruba", true))
	want := []string{"query-dht found Aruba", "query-dht not found Republic of Chile", "query-dht found Kingdom of Spain", "help SUCCESS"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("printed %q; want %q", got, want)
	}
	if !q.p.Idle() {
		t.Fatal("every query answered and help printed, and the peer is not idle")
	}
}

// droppedAs reports whether out drops a datagram for reason.
func droppedAs(out []Output, reason string) bool {
	for _, o := range out {
		if e, ok := o.(Event); ok && strings.Contains(e.Msg, reason) {
			return true
		}
	}
	return false
}

// A query the ring never answers is given up in its place: the answers of
// the queries typed after it wait for its FAILURE, and a query-dht the
// server refuses meanwhile prints its FAILURE in its turn too.
func TestWalkGivenUpInItsTurn(t *testing.T) {
	q := newQuerier(t)
	q.p.queryRetry.GiveUp = 2 * time.Second
	out := q.p.Input(q.now, "query-dht erin Aruba")
	out = append(out, q.p.Input(q.now, "query-dht erin Republic of Chile")...)
	out = append(out, q.p.Input(q.now, "query-dht erin Kingdom of Spain")...)
	asks, _ := q.sent(out)
	asks, w1 := q.sent(q.reply(asks[0])) // Aruba in the ring; Chile asked
	asks, w2 := q.sent(q.reply(asks[0])) // Chile in the ring; Spain asked
	// The server refuses the third.
	refused := stepSigned(q.p, q.now, q.server, wire.Header{ID: asks[0]}, wire.Reply{Reason: "no DHT exists"})
	if got := printed(refused); len(got) != 0 {
		t.Fatalf("a refused query-dht behind two walks printed %q at once", got)
	}
	if got := printed(q.answer(w2["Republic of Chile"], "Republic of Chile", true)); len(got) != 0 {
		t.Fatalf("the second walk's answer printed %q before the first walk ended", got)
	}
	var got []string
	retries := 0
	for i := 0; i < 10000 && len(got) == 0; i++ {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("a walk unanswered, and the peer has no deadline")
		}
		q.now = at
		out := q.p.Tick(q.now)
		for _, o := range out {
			if s, ok := o.(Send); ok {
				if m, ok := s.Msg.(wire.Query); ok && m.ReqID == w1["Aruba"] {
					retries++
				}
			}
		}
		got = printed(out)
	}
	want := []string{"query-dht FAILURE: no answer from the ring within 2s", "query-dht found Republic of Chile", "query-dht FAILURE: no DHT exists"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("printed %q; want %q", got, want)
	}
	if retries == 0 {
		t.Error("the unanswered query was never sent again")
	}
	if !q.p.Idle() {
		t.Fatal("every walk ended, and the peer is not idle")
	}
}

// At most maxWalks queries are in the ring at once: the next query-dht
// goes to the server only once an answer has come.
func TestWalksBounded(t *testing.T) {
	q := newQuerier(t)
	var out []Output
	for i := range maxWalks + 2 {
		out = append(out, q.p.Input(q.now, fmt.Sprintf("query-dht erin Land %d", i))...)
	}
	asks, _ := q.sent(out)
	reqs := map[string]uint32{}
	for len(asks) == 1 {
		var walks map[string]uint32
		asks, walks = q.sent(q.reply(asks[0]))
		for n, id := range walks {
			reqs[n] = id
		}
	}
	if len(reqs) != maxWalks {
		t.Fatalf("%d queries in the ring before the input waited; want %d", len(reqs), maxWalks)
	}
	out = q.answer(reqs["Land 0"], "Land 0", true)
	if got := printed(out); len(got) != 1 {
		t.Fatalf("the first query's answer printed %q", got)
	}
	if asks, _ := q.sent(out); len(asks) != 1 {
		t.Fatalf("an answer made room: %d query-dht sent; want 1", len(asks))
	}
}

// A walk answered late says the ring is slower than measured: the walks
// sent with it are not all sent again at once. Only the one whose timeout
// passed goes again; the others wait for its new timeout.
func TestLateWalkHoldsTheOthers(t *testing.T) {
	q := newQuerier(t)
	var out []Output
	for _, n := range []string{"Aruba", "Republic of Chile", "Kingdom of Spain"} {
		out = append(out, q.p.Input(q.now, "query-dht erin "+n)...)
	}
	asks, _ := q.sent(out)
	for len(asks) == 1 {
		asks, _ = q.sent(q.reply(asks[0]))
	}
	resent := func(out []Output) (n int) {
		for _, o := range out {
			if s, ok := o.(Send); ok {
				if _, ok := s.Msg.(wire.Query); ok {
					n++
				}
			}
		}
		return n
	}
	at, ok := q.p.Pending()
	if !ok {
		t.Fatal("three walks unanswered, and no deadline")
	}
	q.now = at
	if n := resent(q.p.Tick(q.now)); n != 1 {
		t.Fatalf("the three walks' first timeout: %d queries sent again; want 1", n)
	}
	// Until the resent walk's new timeout, no other walk goes again (the
	// link may send the resent one again, as a ring message).
	late := q.p.walks[0].q
	for {
		at, _ := q.p.Pending()
		if !at.Before(late.tries.next) {
			break
		}
		q.now = at
		for _, o := range q.p.Tick(q.now) {
			if s, ok := o.(Send); ok {
				if m, ok := s.Msg.(wire.Query); ok && m.ReqID != late.reqID {
					t.Fatalf("%s before the late walk's new timeout: %q sent again", late.tries.next.Sub(q.now), m.LongName)
				}
			}
		}
	}
}

// A line that must wait for the walks (here a help) is read once, not
// again each time a walk ends; it starts once the last has ended.
func TestWaitingLineParsedOnce(t *testing.T) {
	q := newQuerier(t)
	var out []Output
	for _, n := range []string{"Aruba", "Republic of Chile"} {
		out = append(out, q.p.Input(q.now, "query-dht erin "+n)...)
	}
	out = append(out, q.p.Input(q.now, "help")...)
	asks, _ := q.sent(out)
	reqs := map[string]uint32{}
	for len(asks) == 1 {
		var walks map[string]uint32
		asks, walks = q.sent(q.reply(asks[0]))
		maps.Copy(reqs, walks)
	}
	if !q.p.headRead || q.p.head.cmd != CmdHelp {
		t.Fatalf("help waits behind two walks: read %v as %v", q.p.headRead, q.p.head.cmd)
	}
	q.p.head.cmd = CmdHelp + 100 // what a second parse would undo
	if got := printed(q.answer(reqs["Aruba"], "Aruba", true)); len(got) != 1 || q.p.head.cmd != CmdHelp+100 {
		t.Fatalf("a walk ended: printed %q, the waiting line read again (%v)", got, q.p.head.cmd)
	}
	q.p.head.cmd = CmdHelp
	got := printed(q.answer(reqs["Republic of Chile"], "Republic of Chile", true))
	if strings.Join(got, "|") != "query-dht found Republic of Chile|help SUCCESS" || q.p.headRead {
		t.Fatalf("the last walk ended: printed %q, head still read %v", got, q.p.headRead)
	}
}

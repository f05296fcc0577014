package app

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
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

// replyAll answers every query-dht in asks, in order, and returns the
// queries sent into the ring (request ids by Long Name) and any query-dht
// sent meanwhile.
func (q *querier) replyAll(asks []uint32) (more []uint32, walks map[string]uint32) {
	walks = map[string]uint32{}
	for _, id := range asks {
		a, w := q.sent(q.reply(id))
		more = append(more, a...)
		maps.Copy(walks, w)
	}
	return more, walks
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

// tickUntilPrinted runs the querier's timers until it prints, showing
// see each datagram it sends meanwhile; it returns what it printed.
func (q *querier) tickUntilPrinted(see func(Send)) []string {
	q.t.Helper()
	for range 100000 {
		at, ok := q.p.Pending()
		if !ok {
			q.t.Fatal("a walk unanswered, and the peer has no deadline")
		}
		q.now = at
		out := q.p.Tick(q.now)
		for _, o := range out {
			if s, ok := o.(Send); ok {
				see(s)
			}
		}
		if got := printed(out); len(got) > 0 {
			return got
		}
	}
	q.t.Fatal("nothing printed")
	return nil
}

// tickServing is tickUntilPrinted with the server answering each
// query-dht at once, naming bob again (a node that never acknowledges the
// query, in these tests); asks counts the query-dht requests sent meanwhile.
func (q *querier) tickServing(see func(Send)) (got []string, asks int) {
	q.t.Helper()
	var due []uint32
	look := func(out []Output) []string {
		for _, o := range out {
			if s, ok := o.(Send); ok {
				if _, ok := s.Msg.(wire.QueryDHT); ok {
					due = append(due, s.ID)
					asks++
				}
				see(s)
			}
		}
		return printed(out)
	}
	for range 100000 {
		for len(due) > 0 {
			id := due[0]
			due = due[1:]
			if got := look(q.reply(id)); len(got) > 0 {
				return got, asks
			}
		}
		at, ok := q.p.Pending()
		if !ok {
			q.t.Fatal("a walk unanswered, and the peer has no deadline")
		}
		q.now = at
		if got := look(q.p.Tick(q.now)); len(got) > 0 {
			return got, asks
		}
	}
	q.t.Fatal("nothing printed")
	return nil, asks
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

// Queries typed ahead walk the ring together: each query-dht typed with
// its Long Name goes to the server at once, without waiting for the reply
// to the one before (their sequence numbers in the order sent); a reply
// sends its query into the ring, whatever order the replies come in; the
// answers are printed in the order the queries were typed, and a command
// that is not a query-dht waits for every walk.
func TestQueriesTypedAheadWalkTogether(t *testing.T) {
	q := newQuerier(t)
	names := []string{"Aruba", "Republic of Chile", "Kingdom of Spain"}
	var out []Output
	for _, n := range names {
		out = append(out, q.p.Input(q.now, "query-dht erin "+n)...)
	}
	out = append(out, q.p.Input(q.now, "help")...)
	asks, _ := q.sent(out)
	if len(asks) != len(names) {
		t.Fatalf("typed three queries: %d query-dht sent at once; want 3", len(asks))
	}
	var last uint64
	for _, o := range out {
		if s, ok := o.(Send); ok {
			if s.Seq <= last {
				t.Fatalf("query-dht sent with sequence number %d after %d", s.Seq, last)
			}
			last = s.Seq
		}
	}
	if got := printed(out); len(got) != 0 {
		t.Fatalf("typed ahead, printed %q before any reply", got)
	}
	// The server's replies, the second first: each sends its own query.
	reqs := map[string]uint32{}
	for _, i := range []int{1, 0, 2} {
		out = q.reply(asks[i])
		more, walks := q.sent(out)
		if len(walks) != 1 || walks[names[i]] == 0 || len(more) != 0 {
			t.Fatalf("reply to %q: queries sent %v, query-dht %v; want the query for it alone", names[i], walks, more)
		}
		reqs[names[i]] = walks[names[i]]
		if got := printed(out); len(got) != 0 {
			t.Fatalf("reply to %q printed %q before any answer", names[i], got)
		}
	}
	if out := q.reply(asks[0]); !droppedAs(out, replyAgain) {
		t.Fatalf("a second copy of a reply: %v", out)
	}
	if q.p.serverRTT.srtt == 0 {
		t.Error("the replies to queries typed ahead measured no round trip to the server")
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

// A query-dht typed ahead whose reply does not come is asked again as a
// new request (a new id, a larger sequence number: the server, which has
// seen the requests sent after it, would drop the same request again as
// a replay). Past the server's limit the walk ends with a FAILURE in its
// turn.
func TestWalkAskedAgainAsANewRequest(t *testing.T) {
	q := newQuerier(t)
	q.p.serverRetry.GiveUp = 3 * time.Second
	out := q.p.Input(q.now, "query-dht erin Aruba")
	out = append(out, q.p.Input(q.now, "query-dht erin Republic of Chile")...)
	asks, _ := q.sent(out)
	if len(asks) != 2 {
		t.Fatalf("two queries typed: %d query-dht sent", len(asks))
	}
	seqOf := func(out []Output, id uint32) uint64 {
		for _, o := range out {
			if s, ok := o.(Send); ok && s.ID == id {
				return s.Seq
			}
		}
		t.Fatalf("no datagram with id %d in %v", id, out)
		return 0
	}
	lastSeq := seqOf(out, asks[1])
	_, walks := q.sent(q.reply(asks[1])) // Chile answered; Aruba's lost
	if walks["Republic of Chile"] == 0 {
		t.Fatalf("the second query-dht's reply sent %v", walks)
	}
	at, ok := q.p.Pending()
	if !ok {
		t.Fatal("a query-dht unanswered, and no deadline")
	}
	q.now = at
	out = q.p.Tick(q.now)
	again, _ := q.sent(out)
	if len(again) != 1 || again[0] == asks[0] || again[0] == asks[1] {
		t.Fatalf("the unanswered query-dht (id %d) asked again as %v; want one new id", asks[0], again)
	}
	for _, o := range out {
		if s, ok := o.(Send); ok && s.ID == again[0] && s.Flags&wire.FlagRetransmit != 0 {
			t.Fatal("asked again flagged as a retransmission of the same request")
		}
	}
	if !droppedAs(out, "query-dht asked again as a new request") {
		t.Error("asking again left no trace event")
	}
	if seq := seqOf(out, again[0]); seq <= lastSeq {
		t.Fatalf("asked again with sequence number %d, not above the last sent, %d", seq, lastSeq)
	}
	// No reply to the new request either: the walk is given up in its
	// turn, before the second query's answer is printed.
	var got []string
	for i := 0; i < 10000 && len(got) == 0; i++ {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("a query-dht unanswered, and no deadline")
		}
		q.now = at
		got = printed(q.p.Tick(q.now))
		if i == 0 {
			got = append(got, printed(q.answer(walks["Republic of Chile"], "Republic of Chile", true))...)
		}
	}
	want := []string{`query-dht FAILURE: "Aruba": no answer from the server at 10.0.0.1:4000 within 3s`, "query-dht found Republic of Chile"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("printed %q; want %q", got, want)
	}
	if !q.p.Idle() {
		t.Fatal("every walk ended, and the peer is not idle")
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
	_, w1 := q.sent(q.reply(asks[0])) // Aruba in the ring
	_, w2 := q.sent(q.reply(asks[1])) // Chile in the ring
	// The server refuses the third.
	refused := stepSigned(q.p, q.now, q.server, wire.Header{ID: asks[2]}, wire.Reply{Reason: "no DHT exists"})
	if got := printed(refused); len(got) != 0 {
		t.Fatalf("a refused query-dht behind two walks printed %q at once", got)
	}
	if got := printed(q.answer(w2["Republic of Chile"], "Republic of Chile", true)); len(got) != 0 {
		t.Fatalf("the second walk's answer printed %q before the first walk ended", got)
	}
	retries := 0
	got, _ := q.tickServing(func(s Send) {
		if m, ok := s.Msg.(wire.Query); ok && m.ReqID == w1["Aruba"] {
			retries++
		}
	})
	want := []string{"query-dht FAILURE: \"Aruba\": no answer within 2s: no node the server named acknowledged the query (asked 2 times, the last named bob (10.0.0.12:5000); it, or a node after it that holds its forwards back, may have stopped); a member silent for the server's --dead-after is healed out of the ring: ask again once that heal is done",
		"query-dht found Republic of Chile", "query-dht FAILURE: no DHT exists"}
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

// At most maxWalks queries are asked or in the ring at once: the next
// query-dht goes to the server only once an answer has come.
func TestWalksBounded(t *testing.T) {
	q := newQuerier(t)
	var out []Output
	for i := range maxWalks + 2 {
		out = append(out, q.p.Input(q.now, fmt.Sprintf("query-dht erin Land %d", i))...)
	}
	asks, _ := q.sent(out)
	if len(asks) != maxWalks {
		t.Fatalf("%d query-dht sent before the input waited; want %d", len(asks), maxWalks)
	}
	more, reqs := q.replyAll(asks)
	if len(more) != 0 {
		t.Fatalf("the replies sent %d query-dht more", len(more))
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
	q.replyAll(asks)
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
	_, reqs := q.replyAll(asks)
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

// A line too long to be a command, queued behind walks, waits without
// being parsed (a megabyte split into fields at every answer), and is
// refused in its turn, once the walks before it have ended; the query
// typed after it then starts.
func TestLineTooLongWaitsUnparsed(t *testing.T) {
	q := newQuerier(t)
	var out []Output
	for _, n := range []string{"Aruba", "Republic of Chile"} {
		out = append(out, q.p.Input(q.now, "query-dht erin "+n)...)
	}
	long := "query-dht erin " + strings.Repeat("x", MaxInputLine)
	out = append(out, q.p.Input(q.now, long)...)
	out = append(out, q.p.Input(q.now, "query-dht erin Kingdom of Spain")...)
	asks, _ := q.sent(out)
	if len(asks) != 2 {
		t.Fatalf("%d query-dht sent; want the two before the long line", len(asks))
	}
	_, reqs := q.replyAll(asks)
	if q.p.headRead {
		t.Fatal("the line too long was parsed while it waits")
	}
	if got := printed(q.answer(reqs["Aruba"], "Aruba", true)); len(got) != 1 || q.p.headRead {
		t.Fatalf("a walk ended: printed %q, the line too long parsed: %v", got, q.p.headRead)
	}
	out = q.answer(reqs["Republic of Chile"], "Republic of Chile", true)
	var notice bool
	for _, o := range out {
		if r, ok := o.(Result); ok && r.Cmd == CmdQueryDHT && strings.HasPrefix(r.Reason, "a line of more than ") {
			notice = true
		}
	}
	if asks, _ := q.sent(out); !notice || len(asks) != 1 {
		t.Fatalf("the last walk ended: notice %v, %d query-dht sent; want the notice and the next query asked", notice, len(asks))
	}
}

// A querier that did not run for longer than a query's GiveUp (stopped,
// starved of CPU) finds its Tick late, and the answer that came meanwhile
// waiting unread: it gives nothing up before it has read it. A query with
// no answer waiting fails all the same, drainWait later: the stall, far
// longer than GiveUp, is spared only GiveUp (tries.again).
func TestLateTickReadsBeforeGivingUp(t *testing.T) {
	for _, answered := range []bool{true, false} {
		q := newQuerier(t)
		q.p.queryRetry.GiveUp = 2 * time.Second
		asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
		_, walks := q.sent(q.reply(asks[0]))
		// The peer stalls a minute; its Tick comes first once it runs.
		q.now = q.now.Add(time.Minute)
		out := q.p.Tick(q.now)
		if got := printed(out); len(got) != 0 || !slices.ContainsFunc(out, func(o Output) bool {
			e, ok := o.(Event)
			return ok && strings.HasPrefix(e.Msg, "late:")
		}) {
			t.Fatalf("the late Tick: %#v; want an event saying it waits, and nothing printed", out)
		}
		if at, _ := q.p.Pending(); !at.Equal(q.now.Add(drainWait)) {
			t.Fatalf("Pending %v after the late Tick, want drainWait later", at.Sub(q.now))
		}
		var got []string
		if answered { // it came during the stall, and is read now
			got = printed(q.answer(walks["Aruba"], "Aruba", true))
		}
		q.now = q.now.Add(drainWait)
		got = append(got, printed(q.p.Tick(q.now))...)
		want := "query-dht found Aruba"
		if !answered {
			want = "query-dht FAILURE: \"Aruba\": no answer within 2s to the query sent to bob (10.0.0.12:5000), the node the server named: it, or a node on the way from it to the one that holds the Long Name, may have stopped; a member silent for the server's --dead-after is healed out of the ring: ask again once that heal is done"
		}
		if len(got) != 1 || got[0] != want {
			t.Fatalf("answered %v: printed %q, want %q", answered, got, want)
		}
	}
}

// A querier whose every Tick comes late (a CPU quota of a few percent)
// still sends its query again and gives it up: the waits for what came
// meanwhile are bounded (a code review: 26 ms late each time, the query
// was neither sent again nor failed in ten minutes).
func TestEveryTickLateStillJudges(t *testing.T) {
	q := newQuerier(t)
	q.p.queryRetry.GiveUp = 2 * time.Second
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(asks[0])
	start := q.now
	const late = 40 * time.Millisecond
	var got []string
	for len(got) == 0 {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("nothing pending")
		}
		if q.now.Sub(start) > time.Minute {
			t.Fatalf("no result a minute after the query, every Tick %v late", late)
		}
		q.now = at.Add(late)
		out := q.p.Tick(q.now)
		got = printed(out)
		for _, o := range out {
			if s, ok := o.(Send); ok {
				if _, ok := s.Msg.(wire.QueryDHT); ok {
					q.reply(s.ID) // bob, named again
				}
			}
		}
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "query-dht FAILURE: \"Aruba\": no answer within 2s") {
		t.Fatalf("printed %q", got)
	}
}

// A query whose node never acknowledges it (one that left the ring since
// the server named it drops it) travels as one stream to each node the
// server names: after the first, unacknowledged attempt, one copy sent
// reliably, which the link sends again until the querier asks the server
// again; the query's own retries add no other copy. The failure says how
// often the server was asked, and the node it named last.
func TestQueryToASilentNodeIsOneStream(t *testing.T) {
	q := newQuerier(t)
	first, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(first[0])
	start := q.now
	ids := map[uint32]map[uint32]int{} // by query id, the link ids of its copies sent reliably, and how often each went
	got, asks := q.tickServing(func(s Send) {
		if m, ok := s.Msg.(wire.Query); ok && s.Flags&wire.FlagNoAck == 0 {
			if ids[m.ReqID] == nil {
				ids[m.ReqID] = map[uint32]int{}
			}
			ids[m.ReqID][s.ID]++
		}
	})
	// Asked again after 1, 2 and 4 s without an ack, the server names bob
	// each time: four queries, each one stream.
	if asks != maxReasks || len(ids) != maxReasks+1 {
		t.Errorf("the server was asked again %d times, and the query went %d times; want %d and %d", asks, len(ids), maxReasks, maxReasks+1)
	}
	for id, copies := range ids {
		if len(copies) != 1 {
			t.Errorf("query %d went as %d reliable copies %v; want one, sent again by the link", id, len(copies), copies)
		}
	}
	want := "query-dht FAILURE: \"Aruba\": no answer within 10s: no node the server named acknowledged the query (asked 4 times, the last named bob (10.0.0.12:5000); it, or a node after it that holds its forwards back, may have stopped); a member silent for the server's --dead-after is healed out of the ring: ask again once that heal is done"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("printed %q; want %q", got, want)
	}
	// Its limit, at the first retry's turn past it (maxCopyWait apart at most).
	if d := q.now.Sub(start); d < q.p.queryRetry.GiveUp || d > q.p.queryRetry.GiveUp+maxCopyWait {
		t.Fatalf("failed %v after the query went; want its limit, %v, however often the server was asked", d, q.p.queryRetry.GiveUp)
	}
}

// The server is asked again at most maxReasks times for a query, however
// long its --query-timeout: with 30 s, a fourth ask would fit (after 1, 2,
// 4 and 8 s unacknowledged), and is not made. The failure says how long
// the query waited.
func TestQueryAsksTheServerAgainAtMostMaxReasks(t *testing.T) {
	q := newQuerier(t)
	q.p.queryRetry.GiveUp = 30 * time.Second
	first, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(first[0])
	got, asks := q.tickServing(func(Send) {})
	if asks != maxReasks {
		t.Errorf("the server was asked again %d times; want %d", asks, maxReasks)
	}
	if len(got) != 1 || !strings.Contains(got[0], fmt.Sprintf("asked %d times", maxReasks+1)) {
		t.Fatalf("printed %q; want a failure saying the server was asked %d times", got, maxReasks+1)
	}
	// Given up --give-up after the last node named (asked 7 s in), the
	// line counts from the query's first attempt, not from that node's.
	if !strings.HasPrefix(got[0], `query-dht FAILURE: "Aruba": no answer within 18s: `) {
		t.Fatalf("printed %q; want the time since the query's first attempt", got[0])
	}
}

// A query whose node acknowledges every copy, but whose answer never
// comes (a node further on stopped), is sent reliably less and less
// often, each copy waiting twice as long as the one before, up to a
// second: each copy is a whole walk, which every node forwards to the
// stopped one (a new user's review: a copy every 100 ms, 2,769 datagrams
// in 10 s from the node before the stopped one); and each answer, not
// acknowledged, may be lost, so the copies go on coming to the end.
func TestQueryCopiesBounded(t *testing.T) {
	q := newQuerier(t)
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(asks[0])
	copies := map[uint32]bool{}
	var got []string
	for range 100000 {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("a walk unanswered, and the peer has no deadline")
		}
		q.now = at
		out := q.p.Tick(q.now)
		for _, o := range out {
			if s, ok := o.(Send); ok && s.Flags&wire.FlagNoAck == 0 {
				if _, ok := s.Msg.(wire.Query); ok {
					copies[s.ID] = true
					// The member takes it, and acknowledges it with the
					// key it came signed with.
					h, m := signedWith(wire.Header{ID: s.ID}, wire.Ack{}, signer{seq: fzEpoch, key: q.token}, q.member, q.p.self.Addr)
					q.p.Step(q.now, q.member, h, m)
				}
			}
		}
		if got = printed(out); len(got) > 0 {
			break
		}
	}
	// From the policy's least timeout, 10 ms, doubling up to a second, a
	// copy once the one before was acknowledged: a dozen in 10 s (6
	// doubling without the cap).
	if len(copies) < 11 || len(copies) > 16 {
		t.Errorf("the query went reliably %d times in 10 s; want 11 to 16", len(copies))
	}
	if len(got) != 1 || got[0] != "query-dht FAILURE: \"Aruba\": no answer from the ring within 10s (asked bob (10.0.0.12:5000), the node the server named, which took the query; a node on the way from it to the one that holds the Long Name may have stopped); a member silent for the server's --dead-after is healed out of the ring: ask again once that heal is done" {
		t.Fatalf("printed %q; want the ring's silence, naming bob", got)
	}
}

// A reply to the id a query-dht went with before it was asked again
// answers it, and times the round trip exactly (each id went once): on a
// link slower than the retry time every reply came after its id was
// replaced, no round trip was ever measured, and the query failed with
// 'no answer from the server' though the server answered every copy (an
// operator's review: 160 ms of round trip). A reply to an id the query
// never went with answers nothing.
func TestWalkTakesTheReplyToAnEarlierAsk(t *testing.T) {
	q := newQuerier(t)
	out := q.p.Input(q.now, "query-dht erin Aruba")
	asks, _ := q.sent(out)
	if len(asks) != 1 {
		t.Fatalf("one query typed: %d query-dht sent", len(asks))
	}
	first := q.now
	var ids []uint32
	for range 3 { // asked again three times, no reply yet
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("a query-dht unanswered, and no deadline")
		}
		q.now = at
		again, _ := q.sent(q.p.Tick(q.now))
		if len(again) != 1 {
			t.Fatalf("asked again as %v, want one new id", again)
		}
		ids = append(ids, again[0])
	}
	if out := q.reply(asks[0] + 1_000_003); !droppedAs(out, "reply matches no request") {
		t.Fatalf("a reply to an id never asked with: %v", out)
	}
	q.now = first.Add(200 * time.Millisecond)
	_, walks := q.sent(q.reply(asks[0]))
	if walks["Aruba"] == 0 {
		t.Fatalf("the reply to the first ask, after three more: the query went nowhere (%v)", walks)
	}
	if got := q.p.serverRTT.srtt; got != 200*time.Millisecond {
		t.Fatalf("round trip measured %v, want the first ask's 200ms", got)
	}
	if out := q.reply(ids[2]); !droppedAs(out, replyAgain) {
		t.Fatalf("a second reply, to a later ask, once the query went: %v", out)
	}
}

// A querier's query sent reliably and sent again before its ack came is
// acknowledged twice; the second ack, after the first ended it, is
// dropped quietly (at the debug level), not as a forgery: a querier holds
// no ring key to check an ack of a message no longer in flight with (a
// chaos review: 76 "dropped: ack not signed with this peer's ring"
// warnings in healthy runs).
func TestASecondAckOfAQueryIsNoWarning(t *testing.T) {
	q := newQuerier(t)
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(asks[0])
	var id uint32
	sends := 0
	for i := 0; sends < 2; i++ {
		at, ok := q.p.Pending()
		if !ok || i > 100000 {
			t.Fatal("the query was never sent reliably twice")
		}
		q.now = at
		for _, o := range q.p.Tick(q.now) {
			if s, ok := o.(Send); ok && s.Flags&wire.FlagNoAck == 0 {
				if _, ok := s.Msg.(wire.Query); ok && (id == 0 || s.ID == id) {
					id = s.ID
					sends++
				}
			}
		}
	}
	levels := ackTwice(q, id)
	if len(levels) != 1 || levels[0] != slog.LevelDebug {
		t.Errorf("two acks of the query sent twice: drops at levels %v; want one, at the debug level", levels)
	}
}

// The answer to a query's first attempt, slow, arriving behind the answer
// to its reliable retry (a querier under load, on loopback), is a copy a
// working network makes: dropped at the debug level, not as a warning on
// stderr. An answer not signed with that query's token, or to a query not
// asked here, still warns.
func TestASecondAnswerToAQueryAnsweredIsNoWarning(t *testing.T) {
	q := newQuerier(t)
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	_, walks := q.sent(q.reply(asks[0]))
	id := walks["Aruba"]
	w, ok := q.p.walkOf(id)
	if !ok {
		t.Fatal("no query in the ring")
	}
	sg := w.q.sg
	owner := netip.MustParseAddrPort("10.0.0.13:5000")
	answer := func(reqID uint32, sg signer) []Output {
		r := wire.QueryResult{ReqID: reqID, Found: true, Node: "carol", NodeID: 2, Hops: 1, LongName: "Aruba"}
		r.Record[3] = "Aruba"
		h, m := signedWith(wire.Header{ID: 78, Flags: wire.FlagNoAck}, r, sg, owner, q.p.self.Addr)
		return q.p.Step(q.now, owner, h, m)
	}
	if got := printed(answer(id, sg)); len(got) == 0 {
		t.Fatal("the first answer printed nothing")
	}
	for _, c := range []struct {
		what  string
		reqID uint32
		sg    signer
		level slog.Level
	}{
		{"the same answer again", id, sg, slog.LevelDebug},
		{"an answer signed with another token", id, signer{key: wire.Key{0x7b}, seq: sg.seq}, slog.LevelWarn},
		{"an answer to a query not asked here", id + 1, sg, slog.LevelWarn},
	} {
		out := answer(c.reqID, c.sg)
		ev, ok := firstOutput(out).(Event)
		if !ok || !ev.Drop || ev.Level != c.level {
			t.Errorf("%s: %+v; want a drop at level %v", c.what, firstOutput(out), c.level)
		}
		if got := printed(out); len(got) != 0 {
			t.Errorf("%s printed %q", c.what, got)
		}
	}
}

// A copy of an answer a few hundred queries behind it (a querier typing
// ahead at a thousand queries a second, the copy late by a few hundred
// milliseconds) is still known for one.
func TestACopyOfAnAnswerHundredsOfQueriesLaterIsNoWarning(t *testing.T) {
	q := newQuerier(t)
	var first uint32
	var sg signer
	owner := netip.MustParseAddrPort("10.0.0.13:5000")
	for i := range 300 {
		asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
		_, walks := q.sent(q.reply(asks[0]))
		id := walks["Aruba"]
		if i == 0 {
			w, _ := q.p.walkOf(id)
			first, sg = id, w.q.sg
		}
		if got := printed(q.answer(id, "Aruba", true)); len(got) == 0 {
			t.Fatalf("query %d: the answer printed nothing", i)
		}
	}
	r := wire.QueryResult{ReqID: first, Found: true, Node: "carol", NodeID: 2, Hops: 1, LongName: "Aruba"}
	r.Record[3] = "Aruba"
	h, m := signedWith(wire.Header{ID: 79, Flags: wire.FlagNoAck}, r, sg, owner, q.p.self.Addr)
	ev, ok := firstOutput(q.p.Step(q.now, owner, h, m)).(Event)
	if !ok || !ev.Drop || ev.Level != slog.LevelDebug {
		t.Errorf("a copy of the first of 300 answers: %+v; want a drop at the debug level", ev)
	}
}

// ackTwice steps the same ack of the query with request id, signed with
// q's token, from the member twice, and returns the levels of the drops.
func ackTwice(q *querier, id uint32) []slog.Level {
	var levels []slog.Level
	for range 2 {
		h, m := signedWith(wire.Header{ID: id}, wire.Ack{}, signer{seq: fzEpoch, key: q.token}, q.member, q.p.self.Addr)
		for _, o := range q.p.Step(q.now, q.member, h, m) {
			if e, ok := o.(Event); ok && e.Drop {
				levels = append(levels, e.Level)
			}
		}
	}
	return levels
}

// reasked runs the querier's timers, the server naming bob (who never
// acknowledges the query) to the first query-dht, until the querier asks
// the server again; it returns that request's id, and whether bob got
// anything after it.
func (q *querier) reasked() (id uint32, toBobAfter func([]Output) bool) {
	q.t.Helper()
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(asks[0])
	start := q.now
	for id == 0 {
		at, ok := q.p.Pending()
		if !ok {
			q.t.Fatal("a walk unanswered, and the peer has no deadline")
		}
		q.now = at
		out := q.p.Tick(q.now)
		if got := printed(out); len(got) > 0 {
			q.t.Fatalf("printed %q before the server was asked again", got)
		}
		for _, o := range out {
			if s, ok := o.(Send); ok {
				if _, ok := s.Msg.(wire.QueryDHT); ok {
					id = s.ID
				}
			}
		}
	}
	if q.now.Sub(start) < reaskAfter {
		q.t.Fatalf("asked the server again %v after the query went, before bob had %v to acknowledge it", q.now.Sub(start), reaskAfter)
	}
	return id, func(out []Output) bool {
		return slices.ContainsFunc(out, func(o Output) bool { s, ok := o.(Send); return ok && s.To == q.member })
	}
}

// A query sent to a node that left the ring since the server named it
// (it drops the query) is answered through the node the server names when
// asked again: the querier asks once the node has left the query's copy
// unacknowledged for reaskAfter, stops sending to it, and prints the
// answer (it failed at the query's limit, 10 s, naming the node that left).
func TestQueryAsksTheServerAgainWhenItsNodeIsSilent(t *testing.T) {
	q := newQuerier(t)
	id, toBob := q.reasked()
	carol := netip.MustParseAddrPort("10.0.0.13:5000")
	r := wire.Reply{OK: true, Members: []wire.Member{{Name: "carol", Addr: carol}}, KeyEpoch: fzEpoch, Key: q.token}
	out := stepSigned(q.p, q.now, q.server, wire.Header{ID: id}, r)
	var reqID uint32
	for _, o := range out {
		if s, ok := o.(Send); ok {
			if m, ok := s.Msg.(wire.Query); ok && s.To == carol {
				reqID = m.ReqID
			}
		}
	}
	if reqID == 0 || toBob(out) {
		t.Fatalf("the server named carol: the query went to carol %v, to bob %v", reqID != 0, toBob(out))
	}
	q.now = q.now.Add(time.Millisecond)
	out = q.p.Tick(q.now)
	if toBob(out) {
		t.Fatal("bob, silent, got the query's copy again after the server named carol")
	}
	if got := printed(q.answer(reqID, "Aruba", true)); len(got) != 1 || got[0] != "query-dht found Aruba" {
		t.Fatalf("carol's answer printed %q", got)
	}
	if !q.p.Idle() {
		t.Fatal("the walk ended, and the peer is not idle")
	}
}

// Asked again, the server may say that the ring is gone (a teardown since
// it named the node): the query fails with its word at once.
func TestQueryAskedAgainAfterATeardown(t *testing.T) {
	q := newQuerier(t)
	id, _ := q.reasked()
	out := stepSigned(q.p, q.now, q.server, wire.Header{ID: id}, wire.Reply{Reason: "no DHT exists"})
	if got := printed(out); len(got) != 1 || got[0] != "query-dht FAILURE: no DHT exists" {
		t.Fatalf("printed %q", got)
	}
}

// Asked again, a server that does not answer does not stretch the query's
// limit: it fails --query-timeout after its first attempt, naming the
// node that never acknowledged it and the server's silence.
func TestQueryAskedAgainKeepsItsLimit(t *testing.T) {
	q := newQuerier(t)
	start := q.now
	q.reasked()
	got := q.tickUntilPrinted(func(Send) {})
	want := `query-dht FAILURE: "Aruba": no answer within 10s: bob (10.0.0.12:5000), the node the server named, never acknowledged the query, and the server, asked again for a node, has not answered`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("printed %q; want %q", got, want)
	}
	if d := q.now.Sub(start); d != q.p.queryRetry.GiveUp {
		t.Fatalf("failed %v after the query was typed; want its limit, %v", d, q.p.queryRetry.GiveUp)
	}
}

// A walk that ends takes its copy sent reliably out of the link: left
// there, it went to its node for the link's whole give-up (a node in
// another ring since drops it unacknowledged), and its give-up ended every
// other message in flight to that node.
func TestAWalkEndedSendsNoMoreCopies(t *testing.T) {
	q := newQuerier(t)
	q.p.queryRetry.GiveUp = 2 * time.Second // below the link's, 10 s
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(asks[0])
	if got, _ := q.tickServing(func(Send) {}); len(got) != 1 || !strings.HasPrefix(got[0], `query-dht FAILURE: "Aruba": no answer within 2s`) {
		t.Fatalf("printed %q", got)
	}
	for i := 0; i < 1000; i++ {
		at, ok := q.p.Pending()
		if !ok {
			break
		}
		q.now = at
		for _, o := range q.p.Tick(q.now) {
			if s, ok := o.(Send); ok {
				t.Fatalf("the walk ended, and %s went to %s %v later", s.Msg.Type(), s.To, q.now.Sub(at))
			}
		}
	}
}

// The link's give-up on a message to a node fails a walk only if its own
// query was among the messages given up: a copy of an earlier walk's, which
// a node now in another ring drops, failed six fresh queries to that live
// node at once, as "never acknowledged" (a chaos review).
func TestAStaleCopyGivenUpFailsNoOtherWalk(t *testing.T) {
	q := newQuerier(t)
	start := q.now
	q.p.link.send(q.now, q.member, wire.Query{ReqID: 7, Querier: q.p.self, LongName: "Kingdom of Spain"}, tagNone, false) // bob never acknowledges it
	tick := func() []Output {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("nothing pending")
		}
		q.now = at
		return q.p.Tick(q.now)
	}
	for q.now.Sub(start) < q.p.link.cfg.GiveUp-time.Second {
		tick()
	}
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	_, walks := q.sent(q.reply(asks[0]))
	gaveUp, acked := false, false
	for !gaveUp {
		out := tick()
		if got := printed(out); len(got) > 0 {
			t.Fatalf("printed %q when the link gave up on another message to bob", got)
		}
		for _, o := range out {
			if s, ok := o.(Send); ok && s.Flags&wire.FlagNoAck == 0 {
				if m, ok := s.Msg.(wire.Query); ok && m.ReqID == walks["Aruba"] {
					acked = true // bob takes the walk's copy
					h, m := signedWith(wire.Header{ID: s.ID}, wire.Ack{}, signer{seq: fzEpoch, key: q.token}, q.member, q.p.self.Addr)
					q.p.Step(q.now, q.member, h, m)
				}
			}
			if e, ok := o.(Event); ok && strings.Contains(e.Msg, "gave up") {
				gaveUp = true
			}
		}
	}
	if !acked {
		t.Fatal("the walk's copy went only after the give-up: the test tests nothing")
	}
	if got := printed(q.answer(walks["Aruba"], "Aruba", true)); len(got) != 1 || got[0] != "query-dht found Aruba" {
		t.Fatalf("the answer printed %q", got)
	}
}

// A stranger who knows the ids (the strongest off-path attacker: one that
// guessed them) forges, from the server's address, the SUCCESS of a
// query-dht naming itself as the member to ask, and, from the owner's
// address, the answer to the query: unsigned, or signed with a key of its
// own. The querier takes neither: it sends nothing to the stranger, and
// prints the record the owner's own answer carries.
func TestForgedReplyAndAnswerWithTheRightIDs(t *testing.T) {
	stranger := netip.MustParseAddrPort("10.6.6.6:666")
	owner := netip.MustParseAddrPort("10.0.0.13:5000")
	forge := func(id uint32, flags wire.Flags, m wire.Message, key *wire.Key, from netip.AddrPort, to netip.AddrPort) (wire.Header, wire.Message) {
		t.Helper()
		var b []byte
		var err error
		if key == nil {
			b, err = wire.Append(nil, id, flags, m)
		} else {
			b, err = wire.AppendSignedBetween(nil, id, flags, m, fzEpoch, *key, from, to)
		}
		if err != nil {
			t.Fatal(err)
		}
		h, msg, err := wire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return h, msg
	}
	keys := []*wire.Key{nil, {0xee, 0xee}}
	q := newQuerier(t)
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	if len(asks) != 1 {
		t.Fatalf("%d query-dht sent", len(asks))
	}
	toStranger := func(out []Output) {
		t.Helper()
		for _, o := range out {
			if s, ok := o.(Send); ok && s.To == stranger {
				t.Fatalf("sent %s to the stranger", s.Msg.Type())
			}
			if r, ok := o.(Result); ok {
				t.Fatalf("printed %q after a forged datagram", r.String())
			}
		}
	}
	for _, key := range keys {
		r := wire.Reply{OK: true, Members: []wire.Member{{Name: "eve", Addr: stranger}}, KeyEpoch: fzEpoch, Key: wire.Key{0xee}}
		h, m := forge(asks[0], 0, r, key, q.server, q.p.self.Addr)
		toStranger(q.p.Step(q.now, q.server, h, m))
	}
	_, walks := q.sent(q.reply(asks[0]))
	reqID, ok := walks["Aruba"]
	if !ok {
		t.Fatal("the query did not go to the member the server named")
	}
	for _, key := range keys {
		a := wire.QueryResult{ReqID: reqID, Found: true, Node: "eve", NodeID: 2, Hops: 1, LongName: "Aruba"}
		a.Record[3], a.Record[1] = "Aruba", "FORGED"
		for _, from := range []netip.AddrPort{owner, q.member, stranger} {
			h, m := forge(77, wire.FlagNoAck, a, key, from, q.p.self.Addr)
			toStranger(q.p.Step(q.now, from, h, m))
		}
	}
	if got := printed(q.answer(reqID, "Aruba", true)); !slices.Equal(got, []string{"query-dht found Aruba"}) {
		t.Fatalf("the owner's answer printed %q", got)
	}
}

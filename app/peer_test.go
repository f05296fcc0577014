package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/wire"
)

// set-id and stores are acknowledged at once, without a commit of their
// own: the new place in the ring and the records the stores bring are
// written in one transaction when the flush passes, which clears what the
// file held before. The flush goes on before that commit, so that the
// nodes commit in parallel; the committed that follows the flush from the
// left, which reports the tables from the leader's to the left
// neighbour's on disk, goes right only after it.
func TestSetIDAndStoresWrittenAtTheFlush(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	stepFrom := func(from netip.AddrPort, id uint32, m wire.Message) []Output {
		h, m := signedFor(p, from, wire.Header{ID: id}, m)
		outs := p.Receive(now, []Datagram{{From: from, Header: h, Msg: m}})
		return append(outs, p.Settle()...)
	}
	step := func(id uint32, m wire.Message) []Output { return stepFrom(fzLeft.Addr, id, m) }
	_ = stepFrom
	var persists []state.Batch
	acks, flushBefore, committedAfter := 0, false, false
	count := func(outs []Output) {
		for _, o := range outs {
			switch o := o.(type) {
			case PersistPeer:
				persists = append(persists, o.Batch)
			case Send:
				switch o.Msg.(type) {
				case wire.Ack:
					acks++
				case wire.Flush:
					flushBefore = len(persists) == 0
				case wire.Committed:
					committedAfter = len(persists) == 1 && o.To == fzRight.Addr
				}
			}
		}
	}
	count(step(1, wire.SetID{ID: 2, N: 3, Left: fzLeft, Right: fzRight}))
	if len(persists) != 0 || acks != 1 {
		t.Fatalf("set-id: %d commits, %d acks; want 0 and 1", len(persists), acks)
	}
	// Pos("ab") = 195, id 195 mod 3 = 0: not ours; "ac" (196 mod 3 = 1)
	// neither; "aa" (194 mod 3 = 2) is.
	mine := wire.Record{3: "aa"}
	if got := dataset.ID(dataset.Pos("aa"), 3); got != 2 {
		t.Fatalf("test record hashes to id %d", got)
	}
	count(step(2, wire.Store{N: 3, Records: []wire.Record{mine, {3: "ab"}}}))
	if len(persists) != 0 || acks != 2 {
		t.Fatalf("store: %d commits, %d acks; want 0 and 2", len(persists), acks)
	}
	// The forwarded store is acknowledged by the right neighbour: the
	// flush may then go on.
	for _, o := range p.link.dests[fzRight.Addr].inflight {
		h, m := signedFor(p, fzRight.Addr, wire.Header{ID: o.id}, wire.Ack{})
		p.Receive(now, []Datagram{{From: fzRight.Addr, Header: h, Msg: m}})
	}
	count(step(3, wire.Flush{Leader: fzLeft.Name, N: 3}))
	if len(persists) != 1 || !flushBefore || committedAfter {
		t.Fatalf("flush: %d commits, flush sent before it %v, committed sent %v; want 1, true and false", len(persists), flushBefore, committedAfter)
	}
	count(step(4, wire.Committed{Leader: fzLeft.Name}))
	if len(persists) != 1 || !committedAfter {
		t.Fatalf("committed from the left: %d commits, committed sent right after the commit %v; want 1 and true", len(persists), committedAfter)
	}
	b := persists[0]
	if !b.Clear || b.Identity == nil || b.Identity.ID != 2 || b.Identity.N != 3 || len(b.Put) != 1 || b.Put[0].LongName != "aa" {
		t.Fatalf("the flush's commit is %+v; want the table cleared, id 2 of 3 and the record", b)
	}
}

// failingTable is a table file that cannot be read.
type failingTable struct{}

func (failingTable) Lookup(string) (dataset.Record, bool, error) {
	return dataset.Record{}, false, errors.New("read error")
}

// A table that cannot be read (a file damaged or cut short under the
// process) does not answer "not found" for what may be in it: the query is
// not answered, and the peer is told to stop, so that the ring heals round
// it; its runner stops, saying why.
func TestUnreadableTableStopsThePeer(t *testing.T) {
	p := fuzzPeer()
	p.SetTable(failingTable{})
	now := time.Unix(1_700_000_000, 0)
	querier := wire.Member{Name: "dave", Addr: fzOther}
	// Pos("ac") = 196, id 196 mod 3 = 1: bob's.
	outs := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 9, Flags: wire.FlagNoAck}, wire.Query{ReqID: 3, Querier: querier, LongName: "ac"})
	if len(outs) != 1 {
		t.Fatalf("outputs %+v: want the table's failure alone, no answer", outs)
	}
	tu, ok := outs[0].(TableUnreadable)
	if !ok {
		t.Fatalf("output %+v: want TableUnreadable", outs[0])
	}
	r := &PeerRunner{Core: p}
	defer r.start()(nil)
	r.mu.Lock()
	_, err := r.exec(outs)
	r.mu.Unlock()
	if err == nil || !errors.Is(err, tu.Err) || !strings.Contains(err.Error(), "cannot read the table file, stopping") {
		t.Fatalf("the runner: %v; want it to stop, saying it cannot read the table file", err)
	}
}

// The new leader of a leave that cannot use its dataset says so itself,
// as well as telling the leaver: the file to fix is the new leader's.
func TestNewLeaderWithoutDatasetSaysSo(t *testing.T) {
	p := fuzzPeer() // bob; alice, his left, leaves
	p.cfg.LoadData = func() (dataset.Source, error) { return nil, errors.New("dataset: d.csv: line 7: bad") }
	now := time.Unix(1_700_000_000, 0)
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 1}, wire.ResetLeft{Left: wire.Member{Name: "dave", Addr: fzOther}})
	outs := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 2}, wire.RebuildDHT{Leaver: fzLeft})
	var printed []string
	told := false
	for _, o := range outs {
		switch o := o.(type) {
		case Result:
			printed = append(printed, o.String())
		case Send:
			if r, ok := o.Msg.(wire.Rebuilt); ok && o.To == fzLeft.Addr && !r.OK && strings.Contains(r.Reason, "line 7") {
				told = true
			}
		}
	}
	if !told {
		t.Fatalf("outputs %+v: the leaver was not told", outs)
	}
	if len(printed) != 1 || !strings.HasPrefix(printed[0], "rebuild-dht FAILURE: cannot use the dataset: d.csv: line 7: bad") ||
		!strings.Contains(printed[0], "leave-dht of alice fails") {
		t.Fatalf("the new leader printed %q; want one rebuild-dht FAILURE line with the dataset's error and the leaver", printed)
	}
}

// So does a new leader whose right neighbour stops acknowledging the
// rebuild's stores.
func TestNewLeaderWhoseStoresAreNotAcknowledgedSaysSo(t *testing.T) {
	p := fuzzPeer() // bob; alice, his left, leaves; carol, his right, is silent
	now := time.Unix(1_700_000_000, 0)
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 1}, wire.ResetLeft{Left: wire.Member{Name: "dave", Addr: fzOther}})
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 2}, wire.RebuildDHT{Leaver: fzLeft})
	var printed []string
	for range 1000 {
		at, ok := p.NextDeadline()
		if !ok || len(printed) > 0 {
			break
		}
		for _, o := range p.Tick(at) {
			if pr, ok := o.(Result); ok {
				printed = append(printed, pr.String())
			}
		}
	}
	if len(printed) != 1 || !strings.HasPrefix(printed[0], "rebuild-dht FAILURE: right neighbour "+fzRight.Name+" ("+fzRight.Addr.String()+") stopped acknowledging stores") {
		t.Fatalf("the new leader printed %q; want one rebuild-dht FAILURE line naming its right neighbour", printed)
	}
}

// A leave whose right neighbour stops answering fails naming the message
// the leave sent it (the teardown), not another that happened to be in
// flight to the same neighbour first (here a query bob was forwarding).
func TestLeaveFailureNamesTheLeavesMessage(t *testing.T) {
	p := fuzzPeer() // bob, id 1 of 3; carol, his right, stops answering
	now := time.Unix(1_700_000_000, 0)
	// Pos("aa") = 194, id 2: carol's, so bob forwards it to her.
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 7}, wire.Query{ReqID: 1, Querier: wire.Member{Name: "dave", Addr: fzOther}, Hops: 1, LongName: "aa"})
	var req uint32
	for _, o := range p.Input(now, "leave-dht bob") {
		if s, ok := o.(Send); ok && s.To == fzServer {
			req = s.ID
		}
	}
	stepSigned(p, now, fzServer, wire.Header{ID: req}, wire.Reply{OK: true})
	var printed []string
	for range 10000 {
		at, ok := p.NextDeadline()
		if !ok || p.Idle() {
			break
		}
		for _, o := range p.Tick(at) {
			if pr, ok := o.(Result); ok {
				printed = append(printed, pr.String())
			}
		}
	}
	want := "dht-rebuilt FAILURE: teardown sent to " + fzRight.Name + " (" + fzRight.Addr.String() + ") was not acknowledged"
	if len(printed) != 1 || !strings.HasPrefix(printed[0], want) {
		t.Fatalf("printed %q; want one line starting %q", printed, want)
	}
}

// A ring message can never loop: a query is forwarded at most n-1 times,
// and a store never passes the leader, whatever the members believe.
func TestRingMessagesCannotLoop(t *testing.T) {
	now := time.Unix(1e9, 0)
	querier := wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.9:5000")}
	// "Aruba" is pos 138: id 0 of a ring of 3, not bob's (id 1).
	for hops, forwarded := range map[uint16]bool{0: true, 1: true, 2: false, 40: false} {
		p := fuzzPeer()
		outs := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 7, Flags: wire.FlagNoAck}, wire.Query{ReqID: 1, Querier: querier, Hops: hops, LongName: "Aruba"})
		sent, dropped := false, false
		for _, o := range outs {
			switch o := o.(type) {
			case Send:
				q, ok := o.Msg.(wire.Query)
				sent = ok && o.To == fzRight.Addr && q.Hops == hops+1
			case Event:
				dropped = dropped || o.Msg == "dropped: a query would loop"
			}
		}
		if sent != forwarded || dropped == forwarded {
			t.Errorf("query after %d hops in a ring of 3: forwarded %v, dropped %v; want forwarded %v", hops, sent, dropped, forwarded)
		}
	}
	// The leader of a ring of 3 takes no store from its left.
	p := fuzzPeer()
	p.id = 0
	outs := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 8}, wire.Store{N: 3, Records: []wire.Record{dataset.Record{LongName: "Kingdom of Spain"}.Fields()}})
	for _, o := range outs {
		if s, ok := o.(Send); ok {
			if _, ack := s.Msg.(wire.Ack); !ack {
				t.Errorf("the leader sent %v for a store that came back to it", s.Msg.Type())
			}
		}
	}
	if p.Unsettled() || !slices.ContainsFunc(outs, func(o Output) bool {
		e, ok := o.(Event)
		return ok && e.Msg == "dropped: a store came back to the leader"
	}) {
		t.Errorf("a store back at the leader was not dropped and traced: %v", outs)
	}
}

// A flush that reaches a node while its window to the right is full
// waits behind the stores it forwarded, and so does the node's commit:
// committing at once would keep the node from reading the acks that let
// the flush go for as long as its disk takes, and every node to its right
// would wait that long for the flush. The commit is made in the step
// whose ack lets the flush leave, after it; a committed from the left that
// came meanwhile goes on right after the commit, not before. One from the
// right is no committed of this round's.
func TestHeldFlushCommitsWhenItLeaves(t *testing.T) {
	p := fuzzPeer()
	p.link.cfg.Window = 1 // the store forwarded fills it
	now := time.Unix(1_700_000_000, 0)
	step := func(from netip.AddrPort, id uint32, m wire.Message) []Output {
		h, m := signedFor(p, from, wire.Header{ID: id}, m)
		return append(p.Receive(now, []Datagram{{From: from, Header: h, Msg: m}}), p.Settle()...)
	}
	// order lists the flushes sent and the commits made, in output order.
	order := func(outs []Output) (got []string) {
		for _, o := range outs {
			switch o := o.(type) {
			case PersistPeer:
				got = append(got, "commit")
			case Send:
				switch o.Msg.(type) {
				case wire.Flush:
					got = append(got, "flush")
				case wire.Committed:
					got = append(got, "committed")
				}
			}
		}
		return got
	}
	step(fzLeft.Addr, 1, wire.SetID{ID: 2, N: 3, Left: fzLeft, Right: fzRight})
	step(fzLeft.Addr, 2, wire.Store{N: 3, Records: []wire.Record{{3: "aa"}, {3: "ab"}}}) // "ab" goes right
	if got := order(step(fzLeft.Addr, 3, wire.Flush{Leader: fzLeft.Name, N: 3})); len(got) != 0 {
		t.Fatalf("flush with the window to the right full: %q; want nothing yet", got)
	}
	if got := order(step(fzRight.Addr, 9, wire.Committed{Leader: fzLeft.Name})); len(got) != 0 {
		t.Fatalf("a committed from the right: %q; want it dropped", got)
	}
	if got := order(step(fzLeft.Addr, 10, wire.Committed{Leader: fzLeft.Name})); len(got) != 0 {
		t.Fatalf("the committed from the left while the flush is held: %q; want nothing sent before the commit", got)
	}
	var ack []Output
	for _, o := range p.link.dests[fzRight.Addr].inflight {
		ack = append(ack, step(fzRight.Addr, o.id, wire.Ack{})...)
	}
	if got := order(ack); !slices.Equal(got, []string{"flush", "commit"}) {
		t.Fatalf("the ack that lets the flush go: %q; want [flush commit]", got)
	}
	// The committed, sent after the commit, waits in the window of one
	// behind the flush.
	if d := p.link.dests[fzRight.Addr]; d == nil || len(d.queue) != 1 {
		t.Fatalf("the committed from the left is not queued after the commit for the right neighbour")
	}
	ack = nil
	for _, o := range p.link.dests[fzRight.Addr].inflight {
		ack = append(ack, step(fzRight.Addr, o.id, wire.Ack{})...)
	}
	if got := order(ack); !slices.Equal(got, []string{"committed"}) {
		t.Fatalf("the flush's ack: %q; want the committed sent right", got)
	}
}

// A member whose flush waits for room in its window commits in the step
// the flush leaves, even when another message waits behind the flush: the
// commit waits for the flush, not for everything queued to the right.
func TestHeldFlushCommitsWhateverWaitsBehind(t *testing.T) {
	p := fuzzPeer()
	p.link.cfg.Window = 1
	now := time.Unix(1_700_000_000, 0)
	step := func(from netip.AddrPort, id uint32, m wire.Message) []Output {
		h, m := signedFor(p, from, wire.Header{ID: id}, m)
		return append(p.Receive(now, []Datagram{{From: from, Header: h, Msg: m}}), p.Settle()...)
	}
	commits := func(outs []Output) (n int) {
		for _, o := range outs {
			if _, ok := o.(PersistPeer); ok {
				n++
			}
		}
		return n
	}
	step(fzLeft.Addr, 1, wire.SetID{ID: 2, N: 3, Left: fzLeft, Right: fzRight})
	step(fzLeft.Addr, 2, wire.Store{N: 3, Records: []wire.Record{{3: "aa"}, {3: "ab"}}}) // "ab" goes right
	if n := commits(step(fzLeft.Addr, 3, wire.Flush{Leader: fzLeft.Name, N: 3})); n != 0 {
		t.Fatalf("the flush with the window full: %d commits; want none yet", n)
	}
	p.link.send(now, p.right.Addr, wire.Query{ReqID: 7, Querier: fzLeft, LongName: "x"}, tagNone, false)
	var n int
	for _, o := range p.link.dests[fzRight.Addr].inflight {
		n += commits(step(fzRight.Addr, o.id, wire.Ack{}))
	}
	if p.link.unsent(fzRight.Addr) == 0 {
		t.Fatal("nothing waits behind the flush: the test tests nothing")
	}
	if n != 1 {
		t.Fatalf("the ack that let the flush go, a query waiting behind it: %d commits; want 1", n)
	}
}

// A node that reads its left neighbour's stores and flush together, as they
// are sent, acknowledges them before the commit the flush makes: the acks
// say the records came and went on, not that they are on disk, and held
// for the commit they reached the left after its timeouts (a real run's
// leader sent every store and its flush again).
func TestStoresAndFlushAcknowledgedBeforeTheCommit(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	dg := func(id uint32, m wire.Message) Datagram {
		h, m := signedFor(p, fzLeft.Addr, wire.Header{ID: id}, m)
		return Datagram{From: fzLeft.Addr, Header: h, Msg: m}
	}
	p.Receive(now, []Datagram{dg(1, wire.SetID{ID: 2, N: 3, Left: fzLeft, Right: fzRight})})
	p.Settle()
	outs := p.Receive(now, []Datagram{
		dg(2, wire.Store{N: 3, Records: []wire.Record{{3: "aa"}, {3: "ab"}}}), // "ab" goes right
		dg(3, wire.Flush{Leader: fzLeft.Name, N: 3, After: []uint32{2}}),
	})
	outs = append(outs, p.Settle()...)
	acked, commit := acksAndCommit(outs, fzLeft.Addr)
	if commit < 0 {
		t.Fatalf("no commit at the flush: %v", outs)
	}
	for _, id := range []uint32{2, 3} {
		if at, ok := acked[id]; !ok || at > commit {
			t.Fatalf("message %d acknowledged at output %d (sent: %v), the commit at %d: want the ack first", id, at, ok, commit)
		}
	}
}

// acksAndCommit reads a step's outputs: the index of the output that
// acknowledges each message id to `to`, and the index of the first commit
// (-1: none).
func acksAndCommit(outs []Output, to netip.AddrPort) (acked map[uint32]int, commit int) {
	acked, commit = map[uint32]int{}, -1
	for i, o := range outs {
		switch o := o.(type) {
		case PersistPeer:
			if commit < 0 {
				commit = i
			}
		case Send:
			if a, ok := o.Msg.(wire.Ack); ok && o.To == to {
				for _, id := range append([]uint32{o.ID}, a.More...) {
					if _, seen := acked[id]; !seen {
						acked[id] = i
					}
				}
			}
		}
	}
	return acked, commit
}

// A node acknowledges a teardown-dht's teardown before it commits its
// emptied table: the ack says the teardown came; the torn-down that
// follows says the table is on disk.
func TestTeardownAcknowledgedBeforeTheCommit(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	now := time.Unix(1_700_000_000, 0)
	p.inRing, p.id, p.n, p.neighbours = true, 2, 3, true
	p.left, p.right = fzLeft, fzRight
	h, m := signedFor(p, fzLeft.Addr, wire.Header{ID: 7}, wire.Teardown{Origin: fzLeft.Name})
	outs := append(p.Receive(now, []Datagram{{From: fzLeft.Addr, Header: h, Msg: m}}), p.Settle()...)
	acked, commit := acksAndCommit(outs, fzLeft.Addr)
	ack, ok := acked[7]
	if !ok {
		ack = -1
	}
	if ack < 0 || commit < 0 || ack > commit {
		t.Fatalf("the teardown's ack at output %d, the commit of the emptied table at %d: want both, the ack first (%v)", ack, commit, outs)
	}
}

// A flush names the messages sent ahead of it that its sender had not seen
// acknowledged: a node that has not received them all drops it,
// unacknowledged, for its left neighbour to send again, and neither
// forwards it nor commits. Once they have come it does both, and the flush
// it forwards names the store it sent ahead of it.
func TestFlushWaitsForWhatItNames(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	step := func(from netip.AddrPort, id uint32, m wire.Message) []Output {
		h, m := signedFor(p, from, wire.Header{ID: id}, m)
		return append(p.Receive(now, []Datagram{{From: from, Header: h, Msg: m}}), p.Settle()...)
	}
	type seen struct {
		flush   *wire.Flush
		acked   []uint32
		commits int
		stores  []uint32
	}
	look := func(outs []Output) (s seen) {
		for _, o := range outs {
			switch o := o.(type) {
			case PersistPeer:
				s.commits++
			case Send:
				switch m := o.Msg.(type) {
				case wire.Flush:
					s.flush = &m
				case wire.Ack:
					s.acked = append(append(s.acked, o.ID), m.More...)
				case wire.Store:
					s.stores = append(s.stores, o.ID)
				}
			}
		}
		return s
	}
	step(fzLeft.Addr, 1, wire.SetID{ID: 2, N: 3, Left: fzLeft, Right: fzRight})
	fwd := look(step(fzLeft.Addr, 2, wire.Store{N: 3, Records: []wire.Record{{3: "aa"}, {3: "ab"}}})) // "ab" goes right
	if len(fwd.stores) != 1 {
		t.Fatalf("the store sent %d stores right; want 1", len(fwd.stores))
	}
	flush := wire.Flush{Leader: fzLeft.Name, N: 3, After: []uint32{2, 4}}
	if got := look(step(fzLeft.Addr, 3, flush)); got.flush != nil || got.commits != 0 || slices.Contains(got.acked, 3) {
		t.Fatalf("flush ahead of store 4: %+v; want it dropped, unacknowledged", got)
	}
	step(fzLeft.Addr, 4, wire.Store{N: 3, Records: []wire.Record{{3: "aa"}}})
	got := look(step(fzLeft.Addr, 3, flush))
	if got.flush == nil || got.commits != 1 || !slices.Contains(got.acked, 3) {
		t.Fatalf("flush again, store 4 come: %+v; want it forwarded, acknowledged and the table committed", got)
	}
	if !slices.Equal(got.flush.After, fwd.stores) {
		t.Fatalf("the flush forwarded names %v; want the store this node sent ahead of it, %v", got.flush.After, fwd.stores)
	}
}

// The leader of a store round sends its stores, then its flush (here,
// its window full, once they are acknowledged), and commits its own
// records only after the flush has left: while it commits it reads no
// acks, and the flush would wait.
func TestLeaderCommitsAfterItsFlushLeaves(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	p.link.cfg.Window = 1
	now := time.Unix(1_700_000_000, 0)
	p.inRing, p.id, p.n, p.neighbours = true, 0, 3, true
	data := dataset.Records{{LongName: "aa"}, {LongName: "ab"}, {LongName: "ac"}} // ids 2, 0, 1 of 3
	outs := p.startPopulate(now, nil, data, nil)
	var got []string
	var inflight []uint32
	for _, o := range outs {
		switch o := o.(type) {
		case PersistPeer:
			got = append(got, "commit")
		case Send:
			if _, ok := o.Msg.(wire.Store); ok {
				got = append(got, "store")
				inflight = append(inflight, o.ID)
			}
		}
	}
	if !slices.Equal(got, []string{"store"}) {
		t.Fatalf("the round starts with %q; want [store] (no commit before the flush)", got)
	}
	got = nil
	for _, id := range inflight {
		h, m := signedFor(p, p.right.Addr, wire.Header{ID: id}, wire.Ack{})
		for _, o := range p.Step(now, p.right.Addr, h, m) {
			switch o := o.(type) {
			case PersistPeer:
				got = append(got, "commit")
				if !o.Batch.Clear || len(o.Batch.Put) != 1 || o.Batch.Put[0].LongName != "ab" {
					t.Fatalf("the leader's commit is %+v; want the table cleared and ab", o.Batch)
				}
			case Send:
				if _, ok := o.Msg.(wire.Flush); ok {
					got = append(got, "flush")
				}
			}
		}
	}
	if !slices.Equal(got, []string{"flush", "commit"}) {
		t.Fatalf("the ack of the stores: %q; want [flush commit]", got)
	}
}

// An ack of a store in flight forged by a stranger from the right
// neighbour's address, for the store's id and this ring's epoch, unsigned
// or signed with a key of its own, acknowledges nothing: the store stays
// in flight (the flush, behind it in a window of one, does not go), and
// the neighbour's own ack lets the flush go. Taken, the forged ack would
// end a store the network lost, and its records with it.
func TestAForgedAckEndsNoStore(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	p.link.cfg.Window = 1
	now := time.Unix(1_700_000_000, 0)
	p.inRing, p.id, p.n, p.neighbours = true, 0, 3, true
	data := dataset.Records{{LongName: "aa"}, {LongName: "ab"}, {LongName: "ac"}} // ids 2, 0, 1 of 3
	var store uint32
	for _, o := range p.startPopulate(now, nil, data, nil) {
		if s, ok := o.(Send); ok {
			if _, ok := s.Msg.(wire.Store); ok {
				store = s.ID
			}
		}
	}
	if store == 0 {
		t.Fatal("no store sent")
	}
	flushes := func(outs []Output) int {
		n := 0
		for _, o := range outs {
			if s, ok := o.(Send); ok {
				if _, ok := s.Msg.(wire.Flush); ok {
					n++
				}
			}
		}
		return n
	}
	for _, key := range []*wire.Key{nil, {0xee, 0xee}} {
		var b []byte
		var err error
		if key == nil {
			b, err = wire.Append(nil, store, 0, wire.Ack{})
		} else {
			b, err = wire.AppendSignedBetween(nil, store, 0, wire.Ack{}, p.cred.epoch, *key, p.right.Addr, p.self.Addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		h, m, err := wire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if n := flushes(p.Step(now, p.right.Addr, h, m)); n != 0 {
			t.Fatalf("a forged ack (key %v) let the flush go", key)
		}
	}
	h, m := signedFor(p, p.right.Addr, wire.Header{ID: store}, wire.Ack{})
	if n := flushes(p.Step(now, p.right.Addr, h, m)); n != 1 {
		t.Fatalf("the neighbour's own ack sent %d flushes, want 1", n)
	}
}

// A leaver whose teardown came back renumbers the ring, points its
// neighbours at each other and sends rebuild-dht before it commits its
// emptied table: a commit any earlier would keep it from reading the
// reset-id coming back, and the rest would wait for its disk. A leave
// that ends before rebuild-dht left makes the commit as it ends.
func TestLeaverCommitsOnceRebuildDHTHasLeft(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	leaver := func() (*Peer, *leaveOp) {
		p := fuzzPeer()
		giveCredentials(p)
		o := &leaveOp{stage: leaveTearing, left: fzLeft, right: fzRight, n: 3, epoch: fzEpoch}
		o.ringPhase.until = now.Add(time.Minute)
		p.op = o
		return p, o
	}
	steps := func(t *testing.T, outs []Output) []string {
		t.Helper()
		var got []string
		for _, out := range outs {
			switch out := out.(type) {
			case PersistPeer:
				got = append(got, "commit")
				id := out.Batch.Identity
				if !out.Batch.Clear || id == nil || id.InRing || id.Left != fzLeft || id.Right != fzRight {
					t.Fatalf("the leaver commits %+v; want its table cleared, no place, its neighbours kept", out.Batch)
				}
			case Send:
				got = append(got, out.Msg.Type().String())
			case Result:
				got = append(got, out.String())
			}
		}
		return got
	}

	p, o := leaver()
	var got []string
	got = append(got, steps(t, p.teardownReturned(now, wire.Teardown{Origin: p.self.Name, KeepNeighbours: true}))...)
	got = append(got, steps(t, o.renumbered(p, now))...)
	got = append(got, steps(t, o.resetAcked(p, now, nil))...)
	got = append(got, steps(t, o.resetAcked(p, now, nil))...)
	if want := []string{"reset-id", "reset-left", "reset-right", "rebuild-dht", "commit"}; !slices.Equal(got, want) {
		t.Fatalf("the leave from its teardown's return gives %q; want %q", got, want)
	}

	p, o = leaver()
	got = steps(t, p.teardownReturned(now, wire.Teardown{Origin: p.self.Name, KeepNeighbours: true}))
	got = append(got, steps(t, o.expire(p, now.Add(time.Minute), nil))...)
	if want := []string{"reset-id", "commit", "dht-rebuilt FAILURE: the ring did not finish within " + p.cfg.OpTimeout.String() + ": it waited for the reset-id to come back round the ring"}; !slices.Equal(got, want) {
		t.Fatalf("a leave ending before its rebuild-dht: %q; want %q", got, want)
	}
}

// A leaver's dht-rebuilt SUCCESS is the server's: the commit that drops
// the neighbours from its file comes after the result, marked Tidy (no
// output before it waits for it), so that the line is not held up by the
// disk. A member that reports another's leave commits nothing.
func TestLeaverPrintsBeforeItForgetsItsNeighbours(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, c := range []struct {
		name   string
		leaver string
		want   []string
	}{
		{"the leaver", fzSelf.Name, []string{"dht-rebuilt SUCCESS: new leader carol", "tidy commit"}},
		{"another's leave", "dave", []string{"dht-rebuilt SUCCESS: new leader carol"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := fuzzPeer()
			giveCredentials(p)
			p.leaveRing(true) // the teardown came back: no place, the neighbours kept
			o := &plainOp{}
			p.op = o
			var req uint32
			for _, out := range p.ask(now, nil, &o.rq, CmdDHTRebuilt, wire.DHTRebuilt{Name: c.leaver, NewLeader: "carol"}) {
				if s, ok := out.(Send); ok && s.To == fzServer {
					req = s.ID
				}
			}
			var got []string
			for _, out := range stepSigned(p, now, fzServer, wire.Header{ID: req}, wire.Reply{OK: true}) {
				switch out := out.(type) {
				case Result:
					got = append(got, out.String())
				case PersistPeer:
					id := out.Batch.Identity
					if !out.Tidy || id == nil || id.InRing || id.Left.Name != "" || id.Right.Name != "" {
						t.Fatalf("the commit after dht-rebuilt: %+v; want a tidy one of no place and no neighbours", out)
					}
					got = append(got, "tidy commit")
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("the reply to dht-rebuilt gives %q; want %q", got, c.want)
			}
		})
	}
}

// A peer derives a querier's token once a ring and keeps it: the token is
// the one queryToken derives for the ring the peer is in now, a new ring
// (epoch or key) derives it again, and the cache is bounded.
func TestQueryTokensFollowTheRing(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	querier := netip.MustParseAddrPort("10.0.0.99:7000")
	if got, want := p.tokenSigner(querier).key, queryToken(fzRingKey, fzEpoch, querier); got != want {
		t.Fatalf("token %x, want %x", got, want)
	}
	p.setRing(fzEpoch+1, wire.Key{0x55})
	if got, want := p.tokenSigner(querier).key, queryToken(wire.Key{0x55}, fzEpoch+1, querier); got != want {
		t.Fatalf("after a new ring: token %x, want %x (a token of the old ring was kept)", got, want)
	}
	p.setRing(fzEpoch+1, wire.Key{0x56}) // same epoch, another key
	if got, want := p.tokenSigner(querier).key, queryToken(wire.Key{0x56}, fzEpoch+1, querier); got != want {
		t.Fatalf("after a new key: token %x, want %x", got, want)
	}
	for i := range maxTokens + 10 {
		p.tokenSigner(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 7000))
	}
	if len(p.cred.tokens) > maxTokens {
		t.Fatalf("%d tokens cached, more than %d", len(p.cred.tokens), maxTokens)
	}
}

// A store round's leader takes back only its own round's flush and
// committed: a late copy of an earlier round's (of a setup a heal
// replaced, say, signed with the same ring key) is dropped, so the round
// is not reported done before its own flush has gone round and every
// table is on disk.
func TestLeaderTakesBackOnlyItsRound(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	now := time.Unix(1_700_000_000, 0)
	p.inRing, p.id, p.n, p.neighbours = true, 0, 3, true
	data := dataset.Records{{LongName: "aa"}, {LongName: "ab"}, {LongName: "ac"}}
	outs := p.startPopulate(now, nil, data, nil)
	for _, o := range outs {
		if s, ok := o.(Send); ok {
			h, m := signedFor(p, p.right.Addr, wire.Header{ID: s.ID}, wire.Ack{})
			outs = append(outs, p.Step(now, p.right.Addr, h, m)...)
		}
	}
	var round uint32
	for _, o := range outs {
		if s, ok := o.(Send); ok {
			if f, ok := s.Msg.(wire.Flush); ok {
				round = f.Round
			}
		}
	}
	if p.pop == nil || !p.pop.flushed || round != p.pop.round {
		t.Fatalf("the leader's flush did not leave (round %d, pop %+v)", round, p.pop)
	}
	step := func(from netip.AddrPort, id uint32, m wire.Message) []Output {
		h, m := signedFor(p, from, wire.Header{ID: id}, m)
		return p.Step(now, from, h, m)
	}
	done := func(outs []Output) bool {
		for _, o := range outs {
			if s, ok := o.(Send); ok {
				if _, ok := s.Msg.(wire.DHTComplete); ok {
					return true
				}
			}
		}
		return p.pop == nil
	}
	p.op = &setupOp{stage: setupPopulating}
	stale := round + 1
	if done(step(p.left.Addr, 101, wire.Flush{Leader: p.self.Name, N: 3, Round: stale})) ||
		done(step(p.left.Addr, 102, wire.Committed{Leader: p.self.Name, Round: stale})) {
		t.Fatal("an earlier round's flush and committed ended this round")
	}
	if !p.pop.back && !p.pop.done && done(step(p.left.Addr, 103, wire.Flush{Leader: p.self.Name, N: 3, Round: round})) {
		t.Fatal("the round ended on its flush alone")
	}
	if done(step(p.right.Addr, 104, wire.Committed{Leader: p.self.Name, Round: round})) {
		t.Fatal("the round's committed from the right ended it")
	}
	if !done(step(p.left.Addr, 105, wire.Committed{Leader: p.self.Name, Round: round})) {
		t.Fatal("the round's own flush and committed did not end it")
	}
}

// A teardown of an earlier ring is dropped: one left over from a leave
// whose leaver a heal removed would go round the healed ring for ever
// (its origin is gone), emptying every table it passed. One of the node's
// own ring is taken.
func TestTeardownOfAnEarlierRingIsDropped(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	now := time.Unix(1_700_000_000, 0)
	p.inRing, p.id, p.n, p.epoch = true, 2, 3, 9
	step := func(id uint32, m wire.Message) []Output {
		h, m := signedFor(p, fzLeft.Addr, wire.Header{ID: id}, m)
		return p.Step(now, fzLeft.Addr, h, m)
	}
	for _, o := range step(1, wire.Teardown{Origin: "carol", KeepNeighbours: true, Epoch: 8}) {
		if s, ok := o.(Send); ok {
			if _, ok := s.Msg.(wire.Teardown); ok {
				t.Fatal("a teardown of ring epoch 8 was forwarded by a node of epoch 9")
			}
		}
	}
	if !p.inRing {
		t.Fatal("a teardown of ring epoch 8 emptied a node of epoch 9")
	}
	forwarded := false
	for _, o := range step(2, wire.Teardown{Origin: "carol", KeepNeighbours: true, Epoch: 9}) {
		if s, ok := o.(Send); ok {
			if _, ok := s.Msg.(wire.Teardown); ok {
				forwarded = true
			}
		}
	}
	if !forwarded || p.inRing {
		t.Fatalf("the teardown of the node's own ring: forwarded %v, still in the ring %v", forwarded, p.inRing)
	}
}

// A reset-left or reset-right of an earlier ring is dropped: one left over
// from a leave or a join that a heal replaced (its retransmission outliving
// the heal) would point the healed ring at a node outside it. Those of the
// node's own ring are taken.
func TestResetOfAnEarlierRingIsDropped(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	now := time.Unix(1_700_000_000, 0)
	p.inRing, p.id, p.n, p.epoch = true, 2, 3, 9
	outsider := wire.Member{Name: "joiner", Addr: netip.MustParseAddrPort("10.0.0.9:5000")}
	step := func(from netip.AddrPort, id uint32, m wire.Message) []Output {
		h, m := signedFor(p, from, wire.Header{ID: id}, m)
		return p.Step(now, from, h, m)
	}
	dropped := func(outs []Output) bool {
		ev, ok := firstOutput(outs).(Event)
		return ok && ev.Drop && strings.Contains(ev.Msg, "older than this node's 9")
	}
	if outs := step(fzRight.Addr, 1, wire.ResetRight{Right: outsider, Epoch: 8}); !dropped(outs) || p.right != fzRight {
		t.Fatalf("a reset-right of ring epoch 8 at a node of epoch 9: %v, right %v; want it dropped", outs, p.right)
	}
	if outs := step(fzLeft.Addr, 2, wire.ResetLeft{Left: outsider, Epoch: 8}); !dropped(outs) || p.left != fzLeft {
		t.Fatalf("a reset-left of ring epoch 8 at a node of epoch 9: %v, left %v; want it dropped", outs, p.left)
	}
	step(fzRight.Addr, 3, wire.ResetRight{Right: outsider, Epoch: 9})
	step(fzLeft.Addr, 4, wire.ResetLeft{Left: outsider, Epoch: 9})
	if p.right != outsider || p.left != outsider {
		t.Fatalf("resets of the node's own ring: left %v, right %v; want both %v", p.left, p.right, outsider)
	}
}

// A set-id of an earlier ring epoch is dropped, though its ticket is of
// the ring key the node holds (a heal keeps the key): a late copy from the
// setup a heal replaced, taken, would empty the table the heal's stores
// filled and place the node in a ring that no longer stands. One of a
// newer epoch, with the same ticket, is taken.
func TestSetIDOfAnEarlierRingIsDropped(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	p.inRing, p.id, p.n, p.epoch = true, 1, 3, 9
	step := func(id uint32, m wire.SetID) []Output {
		m.Ticket = ticket(fzSecret, fzEpoch, fzRingKey)
		h, mm := signedWith(wire.Header{ID: id}, m, signer{seq: fzEpoch, key: fzRingKey}, fzLeft.Addr, p.self.Addr)
		return p.Step(now, fzLeft.Addr, h, mm)
	}
	outs := step(1, wire.SetID{ID: 2, N: 4, Left: fzLeft, Right: fzRight, Epoch: 8})
	if ev, ok := firstOutput(outs).(Event); !ok || !ev.Drop || !strings.Contains(ev.Msg, "older than this node's 9") {
		t.Fatalf("a set-id of ring epoch 8 at a node of epoch 9: %v; want it dropped as older", outs)
	}
	if p.id != 1 || p.n != 3 || p.epoch != 9 || tableRecords(t, p) != 1 {
		t.Fatalf("after a set-id of ring epoch 8: id %d of %d, epoch %d, %d records; want 1 of 3, epoch 9, the 1 record", p.id, p.n, p.epoch, tableRecords(t, p))
	}
	step(2, wire.SetID{ID: 2, N: 4, Left: fzLeft, Right: fzRight, Epoch: 10})
	if p.id != 2 || p.n != 4 || p.epoch != 10 {
		t.Fatalf("a set-id of ring epoch 10: id %d of %d, epoch %d; want 2 of 4, epoch 10", p.id, p.n, p.epoch)
	}
}

// A join that fails stops sending its reset-right and set-id: a copy taken
// late, after a heal, would point a node of the healed ring at the joiner,
// outside it.
func TestFailedJoinSendsItsResetsNoMore(t *testing.T) {
	p := ringNode(t)
	now := time.Unix(1e9, 0)
	joiner := wire.Member{Name: "joiner", Addr: netip.MustParseAddrPort("10.0.0.9:5000")}
	p.link.send(now, p.right.Addr, wire.ResetRight{Right: joiner, Epoch: p.epoch}, tagJoin, false)
	p.link.send(now, joiner.Addr, wire.SetID{ID: 1, N: 3, Left: p.self, Right: p.right, Epoch: p.epoch}, tagJoin, false)
	p.joinFailed(now, joiner, p.epoch, "test", false)
	for at := now; at.Before(now.Add(time.Minute)); at = at.Add(10 * time.Millisecond) {
		out, _ := p.link.tick(at)
		for _, o := range out {
			switch o.(Send).Msg.(type) {
			case wire.ResetRight, wire.SetID:
				t.Fatalf("%v after the join failed: %+v", at.Sub(now), o)
			}
		}
	}
}

// A leader that keeps more records than one commit takes commits them a
// chunk at each turn of its sending, not all in the turn its flush leaves:
// it holds no more than a chunk of records at a time, however many it
// keeps. A ring of 2 whose leader keeps about 3.5 chunks, every store and
// the flush acknowledged by its right neighbour as they come.
func TestLeaderHoldsAChunkOfItsRecordsAtATime(t *testing.T) {
	p := ringNode(t)
	p.id, p.n = 0, 2
	data := dataset.SyntheticSource{N: 7 * ownChunk, Seed: 4}
	own := 0
	for i := range data.Len() {
		if dataset.ID(data.Record(i).Pos(), 2) == 0 {
			own++
		}
	}
	now := time.Unix(1e9, 0)
	committed, flushed := 0, false
	var right []uint32 // sent right, not yet acknowledged
	// step checks what one step of the core did: at most one commit of
	// the leader's records.
	step := func(what string, outs []Output) {
		t.Helper()
		persists := 0
		for _, o := range outs {
			switch o := o.(type) {
			case PersistPeer:
				persists++
				committed += len(o.Batch.Put)
				if len(o.Batch.Put) > ownChunk || o.Batch.Clear != (committed == len(o.Batch.Put)) {
					t.Fatalf("%s: a commit of %d records, clear %v", what, len(o.Batch.Put), o.Batch.Clear)
				}
			case Send:
				if o.To == p.right.Addr {
					right = append(right, o.ID)
					if _, ok := o.Msg.(wire.Flush); ok {
						flushed = true
					}
				}
			}
		}
		if persists > 1 {
			t.Fatalf("%s: %d commits of the leader's records at once", what, persists)
		}
	}
	step("the start", p.startPopulate(now, nil, data, nil))
	for acks := 0; len(right) > 0; acks++ {
		if acks > 100_000 {
			t.Fatal("the round never ended")
		}
		var outs []Output
		right, outs = ackFromRight(t, p, now, right)
		step(fmt.Sprintf("ack %d", acks), outs)
	}
	if !flushed {
		t.Fatal("the leader sent no flush")
	}
	if own <= 3*ownChunk || committed != own {
		t.Fatalf("the leader keeps %d records and committed %d", own, committed)
	}
}

// A leader packs its stores up to the largest message, inclusive: records
// that fill one exactly go in one datagram, which encodes.
func TestStoresFillTheLargestMessage(t *testing.T) {
	p := ringNode(t)
	p.id, p.n = 0, 2
	// padded is a record of longName whose other fields hold pad bytes,
	// none over the largest field.
	padded := func(longName string, pad int) dataset.Record {
		f := [dataset.NumFields]string{3: longName}
		for i := range f {
			if i != 3 {
				k := min(pad, wire.MaxField)
				f[i], pad = strings.Repeat("x", k), pad-k
			}
		}
		return dataset.FromFields(f)
	}
	// "a" and "c" are id 1 of a ring of 2: both go right.
	first := padded("a", 100)
	room := wire.MaxMessage - wire.StoreOverhead - wire.RecordLen(first.Fields())
	second := padded("c", room-wire.RecordLen(padded("c", 0).Fields()))
	if wire.StoreOverhead+wire.RecordLen(first.Fields())+wire.RecordLen(second.Fields()) != wire.MaxMessage {
		t.Fatal("the records do not fill a message exactly")
	}
	var stores []wire.Store
	for _, o := range p.startPopulate(time.Unix(1e9, 0), nil, dataset.Records{first, second}, nil) {
		s, ok := o.(Send)
		if !ok {
			continue
		}
		if st, ok := s.Msg.(wire.Store); ok {
			stores = append(stores, st)
			if _, err := s.Append(nil); err != nil {
				t.Fatalf("a store of %d records does not encode: %v", len(st.Records), err)
			}
		}
	}
	if len(stores) != 1 || len(stores[0].Records) != 2 {
		var sizes []int
		for _, st := range stores {
			sizes = append(sizes, len(st.Records))
		}
		t.Fatalf("stores of %v records sent; want one of both records", sizes)
	}
}

// ackFromRight has p's right neighbour acknowledge the first messages of
// right (as many as one Ack carries), and returns the rest and what p did.
func ackFromRight(t *testing.T, p *Peer, now time.Time, right []uint32) ([]uint32, []Output) {
	t.Helper()
	k := min(len(right), 1+wire.MaxAcks)
	dg, err := p.link.sg.as(p.right.Addr).send(p.self.Addr, right[0], 0, wire.Ack{More: right[1:k]}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, m, err := wire.Decode(dg)
	if err != nil {
		t.Fatal(err)
	}
	return right[k:], p.StepBatch(now, []Datagram{{From: p.right.Addr, Header: h, Msg: m}})
}

// A leader commits its own records in the step its flush leaves, even
// when another message waits behind the flush for the same neighbour (a
// late flush of a replaced round passing through): it held them until the
// round came back otherwise, and with them its table's clearing, which the
// late flush's commit could then take with no records.
func TestLeaderCommitsWhenItsFlushLeavesWhateverWaitsBehind(t *testing.T) {
	p := ringNode(t)
	p.id, p.n = 0, 2
	p.link.cfg.Window = 1 // the flush waits for the stores' acks
	now := time.Unix(1e9, 0)
	data := dataset.SyntheticSource{N: 40, Seed: 5}
	var right []uint32
	var flushed, committed bool
	step := func(outs []Output) {
		for _, o := range outs {
			switch o := o.(type) {
			case PersistPeer:
				committed = committed || len(o.Batch.Put) > 0
			case Send:
				if o.To == p.right.Addr {
					right = append(right, o.ID)
					if f, ok := o.Msg.(wire.Flush); ok && f.Leader == p.self.Name {
						flushed = true
					}
				}
			}
		}
	}
	step(p.startPopulate(now, nil, data, nil))
	if flushed || len(right) == 0 {
		t.Fatalf("the flush left with the window full (flushed %v, %d sent)", flushed, len(right))
	}
	// Queued behind the leader's flush, as a barrier: it leaves only once
	// the flush is acknowledged.
	step(p.link.send(now, p.right.Addr, wire.Flush{Leader: "someone", N: 2, Round: 99}, tagNone, true))
	for !flushed {
		if len(right) == 0 {
			t.Fatal("no flush and nothing left to acknowledge")
		}
		var outs []Output
		right, outs = ackFromRight(t, p, now, right)
		step(outs)
	}
	if p.link.unsent(p.right.Addr) == 0 {
		t.Fatal("nothing waits behind the flush: the test tests nothing")
	}
	if !committed {
		t.Fatal("the flush left and the leader has not committed its records")
	}
}

// A node acknowledges a store from its left once what it passes on has
// left for its right neighbour: while its window to the right is full, the
// left's stores wait unacknowledged, and the left, its own window full,
// sends no more. Acknowledged on receipt, stores would pile up behind a
// slow right neighbour until the backlog rule dropped them for the left to
// send again (at 0% loss, some 11,000 in a setup and a leave of 100,000
// records over 16 processes).
func TestStoreAcknowledgedOnceItsForwardHasLeft(t *testing.T) {
	p := ringNode(t) // id 3 of 8
	now := time.Unix(1e9, 0)
	var rec wire.Record
	for _, r := range records(t) {
		if dataset.ID(r.Pos(), 8) != 3 {
			rec = r.Fields()
			break
		}
	}
	// from the left: store id, through the runner's path (Receive, Settle)
	store := func(id uint32) (acked []uint32, fwd []uint32) {
		t.Helper()
		dg, err := p.link.sg.as(p.left.Addr).send(p.self.Addr, id, 0, wire.Store{N: 8, Records: []wire.Record{rec}}).Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		h, m, err := wire.Decode(dg)
		if err != nil {
			t.Fatal(err)
		}
		return storeTraffic(p.StepBatch(now, []Datagram{{From: p.left.Addr, Header: h, Msg: m}}), p)
	}
	window := p.link.cfg.Window
	var inflight []uint32
	for i := range window {
		acked, fwd := store(uint32(100 + i))
		if len(acked) != 1 || acked[0] != uint32(100+i) || len(fwd) != 1 {
			t.Fatalf("store %d with room in the window: acked %v, forwarded %v; want it acked and forwarded at once", i, acked, fwd)
		}
		inflight = append(inflight, fwd[0])
	}
	acked, fwd := store(500)
	if len(acked) != 0 || len(fwd) != 0 {
		t.Fatalf("a store behind a full window: acked %v, forwarded %v; want it held", acked, fwd)
	}
	// The right neighbour acknowledges one: the held forward leaves, and
	// the left's store is acknowledged.
	dg, err := p.link.sg.as(p.right.Addr).send(p.self.Addr, inflight[0], 0, wire.Ack{}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, m, err := wire.Decode(dg)
	if err != nil {
		t.Fatal(err)
	}
	acked, fwd = storeTraffic(p.StepBatch(now, []Datagram{{From: p.right.Addr, Header: h, Msg: m}}), p)
	if len(acked) != 1 || acked[0] != 500 || len(fwd) != 1 {
		t.Fatalf("once the right acknowledged: acked %v, forwarded %v; want 500 acked and its forward sent", acked, fwd)
	}
}

// storeTraffic is what outs acknowledged to p's left neighbour (every id of its
// acks) and the ids of the stores it sent right.
func storeTraffic(outs []Output, p *Peer) (acked, fwd []uint32) {
	for _, o := range outs {
		s, ok := o.(Send)
		if !ok {
			continue
		}
		switch m := s.Msg.(type) {
		case wire.Ack:
			if s.To == p.left.Addr {
				acked = append(append(acked, s.ID), m.More...)
			}
		case wire.Store:
			if s.To == p.right.Addr {
				fwd = append(fwd, s.ID)
			}
		}
	}
	return acked, fwd
}

// A ring message of an earlier ring is dropped, and acknowledged all the
// same (and remembered as seen): its sender, a node of this ring still
// that has not dropped it (a process that did not run while the ring was
// replaced), stops sending it, and a flush of this ring sent after it on
// the same link, which names it, is not held back for it. So is the flush
// or committed of a store round this node led before. A message dropped
// as early (a flush ahead of what it names) is not acknowledged: it must
// come again.
func TestARingMessageOfAnEarlierRingIsAcknowledged(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	now := time.Unix(1_700_000_000, 0)
	p.inRing, p.id, p.n, p.epoch = true, 1, 3, 9
	step := func(id uint32, m wire.Message) (dropped, acked bool) {
		h, m := signedFor(p, fzLeft.Addr, wire.Header{ID: id}, m)
		for _, o := range p.Step(now, fzLeft.Addr, h, m) {
			switch o := o.(type) {
			case Event:
				dropped = dropped || o.Drop
			case Send:
				if a, ok := o.Msg.(wire.Ack); ok && o.To == fzLeft.Addr && (o.ID == id || slices.Contains(a.More, id)) {
					acked = true
				}
			}
		}
		return dropped, acked
	}
	stale := []wire.Message{
		wire.Teardown{Origin: "alice", KeepNeighbours: true, Epoch: 8},
		wire.ResetID{Origin: "alice", ID: 2, N: 3, Epoch: 8},
		wire.ResetLeft{Left: fzLeft, Epoch: 8},
		wire.Flush{Leader: fzSelf.Name, N: 3, Round: 77},
		wire.Committed{Leader: fzSelf.Name, Round: 77},
	}
	for i, m := range stale {
		id := uint32(10 + i)
		for copy := range 2 {
			if dropped, acked := step(id, m); copy == 0 && !dropped || !acked {
				t.Fatalf("%T %+v (copy %d): dropped %v, acknowledged %v; want dropped and acknowledged", m, m, copy, dropped, acked)
			}
		}
		if p.link.unseen(fzLeft.Addr, []uint32{id}) != 0 {
			t.Fatalf("%T %+v not remembered as seen: a flush naming it would wait for it", m, m)
		}
	}
	if !p.inRing || p.epoch != 9 || p.id != 1 {
		t.Fatalf("the node's place changed: in ring %v, id %d, epoch %d", p.inRing, p.id, p.epoch)
	}
	// A flush of another leader's round, ahead of a message it names.
	if dropped, acked := step(30, wire.Flush{Leader: "alice", N: 3, Round: 5, After: []uint32{29}}); !dropped || acked {
		t.Fatalf("a flush ahead of what it names: dropped %v, acknowledged %v; want dropped, not acknowledged", dropped, acked)
	}
}

// A resume the server never answers fails as a resume, and its line says
// how to try it again: the peer reads commands on.
func TestResumeWithNoAnswerSaysHowToTryAgain(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.0.100:4000")
	self := netip.MustParseAddrPort("10.0.0.1:5000")
	p := NewPeer(PeerConfig{Server: server})
	now := time.Unix(1e9, 0)
	p.Resume(now, state.Identity{Name: "alice", Addr: self, Secret: wire.Key{1}})
	res := untilResult(t, p, p.Bound(now, self, nil))
	want := "resume FAILURE: no answer from the server at 10.0.0.100:4000 within 10s (nothing has come from there yet: is a dht server running at that address, and can it reach 10.0.0.1:5000, the address this peer registers from?); type 'register alice 10.0.0.1 5000' to try again"
	if len(res) != 1 || res[0] != want {
		t.Fatalf("printed %q, want %q", res, want)
	}
}

// A register whose answers come from the server's port at another
// address (a server bound to every address of a host that answers from
// another than the one the peer was given, on a system that cannot say
// where a datagram was sent) says so, and what to do: it read as if no
// server were running (a new user's review).
func TestRegisterAnsweredFromElsewhereSaysSo(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.0.100:4000")
	self := netip.MustParseAddrPort("10.0.0.1:5000")
	other := netip.MustParseAddrPort("10.0.0.99:4000")
	p := NewPeer(PeerConfig{Server: server})
	now := time.Unix(1e9, 0)
	out := p.Input(now, "register alice 10.0.0.1 5000")
	out = append(out, p.Bound(now, self, nil)...)
	out = append(out, p.Step(now, other, wire.Header{ID: 1}, wire.Challenge{Cookie: wire.Tag{7}})...)
	res := untilResult(t, p, out)
	want := "register FAILURE: no answer from the server at 10.0.0.100:4000 within 10s (answers came from 10.0.0.99:4000 instead, and were dropped: only the server's address is trusted; give the peer that address, or start the server with --addr 10.0.0.100)"
	if len(res) != 1 || res[0] != want {
		t.Fatalf("printed %q, want %q", res, want)
	}
}

// untilResult runs p's clock until it prints a result: the result lines
// of out and of its ticks.
func untilResult(t *testing.T, p *Peer, out []Output) []string {
	t.Helper()
	var res []string
	collect := func(outs []Output) {
		for _, o := range outs {
			if r, ok := o.(Result); ok {
				res = append(res, r.String())
			}
		}
	}
	collect(out)
	for i := 0; len(res) == 0 && i < 1000; i++ {
		at, ok := p.NextDeadline()
		if !ok {
			t.Fatal("the command waits for nothing")
		}
		collect(p.Tick(at))
	}
	return res
}

// A resume whose address cannot be bound (another process holds it) fails
// as a resume: its one line is resume FAILURE, naming the address, and the
// peer is left unregistered, reading commands (it said register FAILURE).
func TestResumeThatCannotBindSaysResume(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.0.100:4000")
	self := netip.MustParseAddrPort("10.0.0.1:5000")
	p := NewPeer(PeerConfig{Server: server})
	t0 := time.Unix(1e9, 0)
	outs := p.Resume(t0, state.Identity{Name: "alice", Addr: self, Secret: wire.Key{1}, InRing: true, ID: 1, N: 3, Epoch: 4,
		Left: wire.Member{Name: "carol", Addr: netip.MustParseAddrPort("10.0.0.3:5000")}, Right: wire.Member{Name: "bob", Addr: netip.MustParseAddrPort("10.0.0.2:5000")}})
	if len(outs) != 1 {
		t.Fatalf("resume asked for %v, want a bind", outs)
	}
	if b, ok := outs[0].(Bind); !ok || b.Addr != self {
		t.Fatalf("resume asked for %v, want a bind of %v", outs[0], self)
	}
	var res []string
	for _, o := range p.Bound(t0, self, errors.New("cannot bind 10.0.0.1:5000: bind: address already in use")) {
		if r, ok := o.(Result); ok {
			res = append(res, r.String())
		}
	}
	// The runner stops the process on it (TestResumeThatCannotBindStopsThePeer):
	// the line says nothing of typing a register.
	want := "resume FAILURE: cannot bind 10.0.0.1:5000: bind: address already in use"
	if len(res) != 1 || res[0] != want {
		t.Fatalf("printed %q, want %q", res, want)
	}
	if p.Registered() || !p.Idle() {
		t.Fatalf("registered %v, idle %v: want unregistered and reading commands", p.Registered(), p.Idle())
	}
	// A command that needs the registration says how to try the resume
	// again.
	res = nil
	for _, o := range p.Input(t0, "query-dht alice Aruba") {
		if r, ok := o.(Result); ok {
			res = append(res, r.String())
		}
	}
	want = "query-dht FAILURE: not registered: the resume of alice failed; type 'register alice 10.0.0.1 5000' to try again"
	if len(res) != 1 || res[0] != want {
		t.Fatalf("printed %q, want %q", res, want)
	}
	// That register resumes the file's registration again, naming its
	// place as the resume at the start did (a new user's review: typed,
	// it named none, and the server healed the ring round a member that
	// had lost nothing); its result is the register's.
	if outs := p.Input(t0, "register alice 10.0.0.1 5000"); len(outs) != 1 {
		t.Fatalf("register after the failed resume asked for %v, want a bind", outs)
	} else if b, ok := outs[0].(Bind); !ok || b.Addr != self {
		t.Fatalf("register after the failed resume asked for %v, want a bind of %v", outs[0], self)
	}
	var req uint32
	for _, o := range p.Bound(t0, self, nil) {
		if s, ok := o.(Send); ok {
			if m, ok := s.Msg.(wire.Register); !ok || m.Name != "alice" || m.Epoch != 4 {
				t.Fatalf("sent %+v, want alice's register naming the place of epoch 4", s.Msg)
			}
			req = s.ID
		}
	}
	res = nil
	for _, o := range stepSigned(p, t0, server, wire.Header{ID: req}, wire.Reply{OK: true, State: uint8(state.InDHT), Epoch: 4}) {
		if r, ok := o.(Result); ok {
			res = append(res, r.String())
		}
	}
	want = "register SUCCESS: alice 10.0.0.1:5000 InDHT, id 1 of a ring of 3, epoch 4, its table taken back"
	if len(res) != 1 || res[0] != want {
		t.Fatalf("printed %q, want %q", res, want)
	}
}

// help lists the commands and says how the peer stops, since no command
// but deregister ends it (a new-user review: 'exit' and 'quit' were tried,
// and the list named no way out).
func TestHelpSaysHowThePeerStops(t *testing.T) {
	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.100:4000")})
	var text string
	for _, o := range p.Input(time.Unix(1e9, 0), "help") {
		if r, ok := o.(Result); ok && r.Cmd == CmdHelp && r.OK {
			text = r.String()
		}
	}
	for _, want := range []string{"help SUCCESS", "register NAME IPV4 PORT", "Ctrl-C (SIGINT, SIGTERM, or SIGHUP: the terminal closed) stops the peer", "the end of input (Ctrl-D)"} {
		if !strings.Contains(text, want) {
			t.Errorf("help printed %q, lacking %q", text, want)
		}
	}
}

// A peer holds at most maxHeldBytes (or maxHeldLines) of input read ahead
// of the command in progress: past that, InputFull tells its runner to
// read no more until commands have taken some (a red-team review: 400
// lines of a mebibyte, typed while the server was stopped, took 430 MB).
func TestInputHeldIsBounded(t *testing.T) {
	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.100:4000")})
	now := time.Unix(1e9, 0)
	p.Input(now, "sleep 1h") // the command in progress: every later line waits
	long := "query-dht bob " + strings.Repeat("E", MaxInputLine)
	n := 0
	for ; !p.InputFull(); n++ {
		if n > maxHeldBytes/MaxInputLine+1 {
			t.Fatalf("%d lines of %d bytes held, and the input is not full", n, len(long))
		}
		p.Input(now, long)
	}
	if n != maxHeldBytes/len(long)+1 {
		t.Fatalf("full after %d lines of %d bytes, want %d", n, len(long), maxHeldBytes/len(long)+1)
	}
	// The sleep ends: the lines are taken (refused, each too long), and
	// the input is no longer full.
	var refused int
	for _, o := range p.Tick(now.Add(time.Hour)) {
		if r, ok := o.(Result); ok && strings.Contains(r.Reason, "a line of more than") {
			refused++
		}
	}
	if refused != n || p.InputFull() {
		t.Fatalf("after the sleep: %d lines refused of %d, input full %v", refused, n, p.InputFull())
	}
	short := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.100:4000")})
	short.Input(now, "sleep 1h")
	for i := 0; i < maxHeldLines; i++ {
		if short.InputFull() {
			t.Fatalf("full after %d short lines, want %d", i, maxHeldLines)
		}
		short.Input(now, "help")
	}
	if !short.InputFull() {
		t.Fatalf("%d lines held, and the input is not full", maxHeldLines)
	}
}

// A heal this node cannot lead (its dataset does not load, or a survivor
// stops acknowledging its set-id) fails, and its next alive, sent at once,
// says it gave that heal up: the server heals again (Server.quitHeal)
// rather than wait for its --op-timeout.
func TestAHealGivenUpIsToldInTheNextAlive(t *testing.T) {
	for _, c := range []struct {
		name   string
		broken bool // the dataset does not load; else the survivors are silent
		why    string
	}{
		{"its dataset does not load", true, "cannot use the dataset: d.csv: line 7: bad"},
		{"a survivor is silent", false, "set-id sent to " + fzLeft.Name + " (" + fzLeft.Addr.String() + ") was not acknowledged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := fuzzPeer() // bob
			if c.broken {
				p.cfg.LoadData = func() (dataset.Source, error) { return nil, errors.New("dataset: d.csv: line 7: bad") }
			}
			now := time.Unix(1_700_000_000, 0)
			p.aliveAt = now.Add(time.Second)
			epoch := fzEpoch + 3
			heal := wire.Heal{Epoch: epoch, Members: []wire.Member{fzSelf, fzRight, fzLeft}}
			h, m := signedWith(wire.Header{ID: 70}, heal, signer{seq: 1, key: p.cred.secret}, netip.AddrPort{}, p.self.Addr)
			outs := p.Step(now, fzServer, h, m)
			var failed string
			var quit *wire.Alive
			for range 1000 {
				for _, o := range outs {
					switch o := o.(type) {
					case Result:
						if o.Cmd == CmdHeal && !o.OK {
							failed = o.String()
						}
					case Send:
						if a, ok := o.Msg.(wire.Alive); ok && failed != "" && quit == nil {
							quit = &a
						}
					}
				}
				if quit != nil {
					break
				}
				at, ok := p.NextDeadline()
				if !ok {
					break
				}
				now = at
				outs = p.Tick(now)
			}
			if !strings.Contains(failed, c.why) || !strings.HasSuffix(failed, "; the server is told, and heals the ring again, led by another member while one can lead") {
				t.Fatalf("printed %q; want heal FAILURE with %q, saying the server is told", failed, c.why)
			}
			if quit == nil || quit.QuitOp != wire.TypeHeal || quit.Quit != epoch {
				t.Fatalf("the alive after it: %+v; want it to name the heal of epoch %d given up", quit, epoch)
			}
		})
	}
}

// A copy of a heal this node gave up, under an id its duplicate filter no
// longer holds (a restarted server's, say) and after its alives stopped
// naming the heal, has them name it again: the server that sent it waits
// for the healed otherwise.
func TestACopyOfAHealGivenUpHasTheAlivesNameItAgain(t *testing.T) {
	p := fuzzPeer() // bob; the survivors are silent
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Second)
	epoch := fzEpoch + 3
	heal := wire.Heal{Epoch: epoch, Members: []wire.Member{fzSelf, fzRight, fzLeft}}
	h, m := signedWith(wire.Header{ID: 70}, heal, signer{seq: 1, key: p.cred.secret}, netip.AddrPort{}, p.self.Addr)
	p.Step(now, fzServer, h, m)
	for p.healing != nil {
		at, ok := p.NextDeadline()
		if !ok {
			t.Fatal("the heal never ended")
		}
		now = at
		p.Tick(now)
	}
	now = now.Add(quitFor + time.Minute) // its alives name the heal no longer
	for at, ok := p.NextDeadline(); ok && !at.After(now); at, ok = p.NextDeadline() {
		p.Tick(at)
	}
	h, m = signedWith(wire.Header{ID: 71}, heal, signer{seq: 2, key: p.cred.secret}, netip.AddrPort{}, p.self.Addr)
	p.Step(now, fzServer, h, m)
	var quit *wire.Alive
	for _, o := range p.Tick(now) {
		if s, ok := o.(Send); ok {
			if a, ok := s.Msg.(wire.Alive); ok {
				quit = &a
			}
		}
	}
	if quit == nil || quit.QuitOp != wire.TypeHeal || quit.Quit != epoch {
		t.Fatalf("the alive after the copy: %+v; want it to name the heal of epoch %d given up", quit, epoch)
	}
}

// A leaver or a joiner whose leader tells it, once (unacknowledged), that
// the rebuild ended because the server moved the ring on (a heal's set-id
// reached the leader first) says what that means for it: the server ended
// the leave or the join, and it is outside the ring. The leader's own
// words name the heal's leader by address only (a chaos review: the leaver
// printed "dht-rebuilt FAILURE: 127.0.0.1:49101 set bob up in a new ring
// (epoch 3)" and no more). A failure the leader reports of its own
// (acknowledged) is its words alone.
func TestALeaveOrJoinEndedByTheServerAtTheLeaderSaysSo(t *testing.T) {
	const tail = ": bob is Free, outside the ring, which the server heals without it or dissolved (its answers say which)"
	for _, tc := range []struct {
		name, why, ended string
		op               func() operation
		from             wire.Member
	}{
		{"leave", "10.0.0.7:5000 set carol up in a new ring (epoch 10)",
			"the server ended the leave (epoch 9) while the new leader carol (10.0.0.3:5000) rebuilt the ring (carol: %s)" + tail,
			func() operation {
				return &leaveOp{stage: leaveRebuilding, left: fzLeft, right: fzRight, n: 3, epoch: 9, ringEpoch: 8}
			}, fzRight},
		{"join", "the join failed at the leader alice: 10.0.0.7:5000 set alice up in a new ring (epoch 10)",
			"the server ended the join (epoch 9) while the leader alice (10.0.0.1:5000) took bob in (%s)" + tail,
			func() operation { return &joinOp{stage: joinWaiting, leader: fzLeft, epoch: 9} }, fzLeft},
	} {
		for _, ended := range []bool{true, false} {
			p := fuzzPeer()
			now := time.Unix(1_700_000_000, 0)
			p.op = tc.op()
			if tc.name == "join" {
				p.inRing, p.neighbours = false, false
			}
			var flags wire.Flags
			if ended {
				flags = wire.FlagNoAck
			}
			var got []string
			for _, o := range stepSigned(p, now, tc.from.Addr, wire.Header{ID: 5, Flags: flags}, wire.Rebuilt{Reason: tc.why, NewLeader: tc.from.Name, Epoch: 9}) {
				if r, ok := o.(Result); ok {
					got = append(got, r.String())
				}
			}
			want := "dht-rebuilt FAILURE: " + tc.why
			if ended {
				want = "dht-rebuilt FAILURE: " + fmt.Sprintf(tc.ended, tc.why)
			}
			if len(got) != 1 || got[0] != want {
				t.Errorf("%s, ended %v: printed %q, want %q", tc.name, ended, got, want)
			}
		}
	}
}

// A flush that overtook a message it names, and a committed no round here
// waits for (a copy whose ack was lost), are what a working network does:
// dropped at the debug level, not warned of (a chaos review: hundreds of
// such warnings in a healthy run at 15% loss). A message of another ring
// key is still a warning.
func TestDropsOfAWorkingNetworkAreNoWarnings(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	now := time.Unix(1_700_000_000, 0)
	p.inRing, p.id, p.n, p.epoch = true, 1, 3, 9
	p.left, p.right, p.neighbours = fzLeft, fzRight, true
	level := func(id uint32, m wire.Message) (slog.Level, bool) {
		h, m := signedFor(p, fzLeft.Addr, wire.Header{ID: id}, m)
		for _, o := range p.Step(now, fzLeft.Addr, h, m) {
			if e, ok := o.(Event); ok && e.Drop {
				return e.Level, true
			}
		}
		return 0, false
	}
	if l, ok := level(30, wire.Flush{Leader: "alice", N: 3, Round: 5, Epoch: 9, After: []uint32{29}}); !ok || l != slog.LevelDebug {
		t.Errorf("a flush ahead of what it names: dropped %v at %v; want dropped at the debug level", ok, l)
	}
	if l, ok := level(31, wire.Committed{Leader: "alice", Round: 5, Epoch: 9}); !ok || l != slog.LevelDebug {
		t.Errorf("a committed no round waits for: dropped %v at %v; want dropped at the debug level", ok, l)
	}
	p.cred.ringKey = wire.Key{0x99} // what comes is signed with another key
	if l, ok := level(32, wire.Committed{Leader: "alice", Round: 5, Epoch: 9}); !ok || l != slog.LevelWarn {
		t.Errorf("a committed under another key: dropped %v at %v; want a warning", ok, l)
	}
}

// A setup that runs out of time says what it waited for: the flush behind
// the records, which may be what stalled, as well as the committed behind
// it (the line named only the committed).
func TestASetupOutOfTimeNamesTheFlushAndTheCommitted(t *testing.T) {
	p := fuzzPeer()
	o := &setupOp{stage: setupPopulating}
	p.op = o
	var got []string
	for _, out := range o.expire(p, time.Unix(1_700_000_000, 0), nil) {
		if r, ok := out.(Result); ok {
			got = append(got, r.String())
		}
	}
	want := "dht-complete FAILURE: the ring did not finish within " + p.cfg.OpTimeout.String() + ": it waited for the flush behind the records, then the committed behind it, to come back round the ring; this setup is given up, and the server rolls it back as it hears so (at its --op-timeout at the latest): every member Free"
	if len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Fatalf("printed %q, want a line starting %q", got, want)
	}
}

// A leaver whose own leave failed after its teardown came back (its ring
// phase expired) holds its neighbours and no place; its own leave-dht
// typed next is not refused as if another member's leave or join rebuilt
// "the ring bob is in" (a code review).
func TestALeaverAfterItsFailedLeaveIsNotToldARebuildRuns(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := fuzzPeer()
	o := &leaveOp{stage: leaveTearing, left: fzLeft, right: fzRight, n: 3, epoch: fzEpoch}
	o.ringPhase.until = now.Add(time.Minute)
	p.op = o
	p.teardownReturned(now, wire.Teardown{Origin: p.self.Name, KeepNeighbours: true})
	p.aliveAt = now.Add(time.Hour)
	now = now.Add(time.Minute)
	var res []string
	for _, out := range o.expire(p, now, nil) {
		if r, ok := out.(Result); ok {
			res = append(res, r.String())
		}
	}
	if len(res) != 1 || !strings.HasPrefix(res[0], "dht-rebuilt FAILURE") {
		t.Fatalf("the leave did not fail at its limit: %q", res)
	}
	res = nil
	for _, out := range p.Input(now, "leave-dht "+p.self.Name) {
		if r, ok := out.(Result); ok {
			res = append(res, r.String())
		}
	}
	if len(res) != 1 || strings.Contains(res[0], "is rebuilding the ring") {
		t.Fatalf("the leaver, its own leave failed, printed %q", res)
	}
}

// A register the server never answers names the address registered as
// well as the server's: a server running on another host may be unable to
// reach it (an address of this host on another network), and the line
// read as if no server were running (a walk-through on several hosts).
func TestRegisterWithNoAnswerNamesTheAddressRegistered(t *testing.T) {
	server := netip.MustParseAddrPort("10.222.0.1:4000")
	self := netip.MustParseAddrPort("192.168.77.1:5008")
	p := NewPeer(PeerConfig{Server: server})
	now := time.Unix(1e9, 0)
	out := p.Input(now, "register hank 192.168.77.1 5008")
	res := untilResult(t, p, append(out, p.Bound(now, self, nil)...))
	want := "register FAILURE: no answer from the server at 10.222.0.1:4000 within 10s (nothing has come from there yet: is a dht server running at that address, and can it reach 192.168.77.1:5008, the address this peer registers from?)"
	if len(res) != 1 || res[0] != want {
		t.Fatalf("printed %q, want %q", res, want)
	}
}

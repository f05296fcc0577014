package app

import (
	"errors"
	"strings"
	"testing"
	"time"

	"dht/dataset"
	"dht/store"
	"dht/wire"
)

// set-id is acknowledged at once, without a commit of its own: the new
// place in the ring is written with the node's stores (here, one that
// brings a record of its own), in the same transaction, which clears what
// the file held before.
func TestSetIDWrittenWithTheStores(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	step := func(id uint32, m wire.Message) []Output {
		outs := p.Receive(now, []Datagram{{From: fzLeft.Addr, Header: wire.Header{ID: id}, Msg: m}})
		return append(outs, p.Settle()...)
	}
	var persists []store.Batch
	acks := 0
	count := func(outs []Output) {
		for _, o := range outs {
			switch o := o.(type) {
			case PersistPeer:
				persists = append(persists, o.Batch)
			case Send:
				if _, ok := o.Msg.(wire.Ack); ok {
					acks++
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
	if len(persists) != 1 || acks != 2 {
		t.Fatalf("store: %d commits, %d acks; want 1 and 2", len(persists), acks)
	}
	b := persists[0]
	if !b.Clear || b.Identity == nil || b.Identity.ID != 2 || b.Identity.N != 3 || len(b.Put) != 1 || b.Put[0].LongName != "aa" {
		t.Fatalf("the stores' commit is %+v; want the table cleared, id 2 of 3 and the record", b)
	}
}

// A query's owner answers from its table file, not from a copy in memory:
// once the records are committed the core holds none of them (its memory
// does not grow with its share of the dataset), a record deleted from the
// file behind its back is not found, and one written there is.
func TestQueriesReadTheFile(t *testing.T) {
	data := records(t)
	s := newSim(t, 5, data)
	setupFive(t, s)
	s.mustDo("alice", "setup-dht 4 alice", "setup-dht SUCCESS")
	s.checkRing(data)
	free := freeUser(s)
	r := data[17]
	owner := s.procs[memberWithID(s, dataset.ID(r.Pos(), 4))]
	for _, name := range s.names() {
		if n := len(s.procs[name].core.uncommitted); n != 0 {
			t.Fatalf("%s keeps %d records in memory after the setup", name, n)
		}
	}
	s.mustDo(free, "query-dht "+free+" "+r.LongName, "query-dht SUCCESS")
	if err := owner.store.Apply(store.Batch{Clear: true}); err != nil {
		t.Fatal(err)
	}
	s.mustDo(free, "query-dht "+free+" "+r.LongName, "query-dht FAILURE: \""+r.LongName+"\" not found")
	changed := r
	changed.Census = "1789"
	if err := owner.store.Apply(store.Batch{Put: []dataset.Record{changed}}); err != nil {
		t.Fatal(err)
	}
	out := s.mustDo(free, "query-dht "+free+" "+r.LongName, "query-dht SUCCESS")
	if got := out[len(out)-1]; !strings.HasSuffix(got, "\nLatest Population Census: 1789") {
		t.Fatalf("the answer ends %q, want the census written to the file", got)
	}
}

// failingTable is a table file that cannot be read.
type failingTable struct{}

func (failingTable) Lookup(string) (dataset.Record, bool, error) {
	return dataset.Record{}, false, errors.New("read error")
}

// A table that cannot be read answers the query as not found, at once, and
// says why in the trace: the querier is not left waiting for a timeout.
func TestUnreadableTableAnswersNotFound(t *testing.T) {
	p := fuzzPeer()
	p.SetTable(failingTable{})
	now := time.Unix(1_700_000_000, 0)
	querier := wire.Member{Name: "dave", Addr: fzOther}
	// Pos("ac") = 196, id 196 mod 3 = 1: bob's.
	outs := p.Step(now, fzLeft.Addr, wire.Header{ID: 9, Flags: wire.FlagNoAck}, wire.Query{ReqID: 3, Querier: querier, LongName: "ac"})
	var answered, logged bool
	for _, o := range outs {
		switch o := o.(type) {
		case Send:
			res, ok := o.Msg.(wire.QueryResult)
			answered = ok && o.To == fzOther && !res.Found && res.ReqID == 3 && res.NodeID == 1
		case Event:
			logged = strings.Contains(o.Msg, "table read failed")
		}
	}
	if !answered || !logged {
		t.Fatalf("outputs %+v: want a not-found answer to the querier and a trace event", outs)
	}
}

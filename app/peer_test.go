package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app/state"
	"dht/dataset"
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
	var persists []state.Batch
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
	s, data := ringOfFour(t, 5)
	free := freeUser(s)
	r := data[17]
	owner := s.procs[memberWithID(s, dataset.ID(r.Pos(), 4))]
	for _, name := range s.names() {
		if n := len(s.procs[name].core.uncommitted); n != 0 {
			t.Fatalf("%s keeps %d records in memory after the setup", name, n)
		}
	}
	s.mustDo(free, "query-dht "+free+" "+r.LongName, "query-dht SUCCESS")
	if err := owner.store.Apply(state.Batch{Clear: true}); err != nil {
		t.Fatal(err)
	}
	s.mustDo(free, "query-dht "+free+" "+r.LongName, "query-dht FAILURE: \""+r.LongName+"\" not found")
	changed := r
	changed.Census = "1789"
	if err := owner.store.Apply(state.Batch{Put: []dataset.Record{changed}}); err != nil {
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

// persistCounter is a trace handler that keeps, for one node, the number
// of records each commit wrote.
type persistCounter struct {
	node    string
	batches *[]int
	attrs   []slog.Attr
}

func (c persistCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c persistCounter) WithAttrs(as []slog.Attr) slog.Handler {
	c.attrs = append(slices.Clone(c.attrs), as...)
	return c
}
func (c persistCounter) WithGroup(string) slog.Handler { return c }
func (c persistCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != TracePersist {
		return nil
	}
	node, n := "", -1
	visit := func(a slog.Attr) bool {
		switch a.Key {
		case "node":
			node = a.Value.String()
		case "records":
			n = int(a.Value.Int64())
		}
		return true
	}
	for _, a := range c.attrs {
		visit(a)
	}
	r.Attrs(visit)
	if node == c.node {
		*c.batches = append(*c.batches, n)
	}
	return nil
}

// A leader walks its dataset as it sends and commits the records it keeps
// at most ownChunk at a time, however many there are: its memory does not
// grow with the dataset. Checked on a ring of two, on a ring of three where
// nearly every record hashes to the leader (so that the first walk, bounded
// by the window only for records sent on, meets more than a chunk of its
// own before the first commit is out), and on the ring of one a leave
// leaves, whose leader keeps everything. Every record still ends up in its
// node's file, exactly once.
func TestLeaderCommitsItsRecordsInChunks(t *testing.T) {
	src := dataset.SyntheticSource{N: 7 * ownChunk, Seed: 4}
	synth := make([]dataset.Record, src.N)
	var mostlyLeader []dataset.Record // id 0 of 3, but every 500th
	for i := range synth {
		r := src.Record(i)
		synth[i] = r
		if dataset.ID(r.Pos(), 3) == 0 || i%500 == 0 {
			mostlyLeader = append(mostlyLeader, r)
		}
	}
	check := func(t *testing.T, data []dataset.Record, n int, batches []int) {
		t.Helper()
		own, written := 0, 0
		for _, r := range data {
			if dataset.ID(r.Pos(), n) == 0 {
				own++
			}
		}
		for _, b := range batches {
			if b > ownChunk {
				t.Fatalf("the leader committed %d records at once (commits %v)", b, batches)
			}
			written += b
		}
		if own <= 2*ownChunk || written != own || len(batches) > own/ownChunk+2 {
			t.Fatalf("the leader keeps %d records; its commits %v wrote %d", own, batches, written)
		}
	}
	for _, c := range []struct {
		name string
		n    int
		data []dataset.Record
	}{
		{"ring of 2, then the ring of 1 a leave leaves", 2, synth},
		{"ring of 3, nearly all the leader's", 3, mostlyLeader},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSim(t, 3)
			names := []string{"alice", "bob", "carol"}[:c.n]
			for _, u := range names {
				s.addPeer(u, c.data)
			}
			for _, u := range names {
				p := s.procs[u]
				s.mustDo(u, fmt.Sprintf("register %s %s %d", u, p.addr.Addr(), p.addr.Port()), "register SUCCESS")
			}
			var batches []int
			s.SetTrace(persistCounter{node: "alice", batches: &batches})
			s.mustDo("alice", fmt.Sprintf("setup-dht %d alice", c.n), "setup-dht SUCCESS")
			s.SetTrace(nil)
			s.checkRing(c.data)
			check(t, c.data, c.n, batches)
			if c.n != 2 {
				return
			}
			// bob leaves; alice, his right neighbour, rebuilds a ring of one.
			batches = nil
			s.SetTrace(persistCounter{node: "alice", batches: &batches})
			s.mustDo("bob", "leave-dht bob", "leave-dht SUCCESS")
			s.SetTrace(nil)
			s.checkRing(c.data)
			check(t, c.data, 1, batches[1:]) // the first clears the table the leave tore down
		})
	}
}

// The new leader of a leave that cannot use its dataset says so itself,
// as well as telling the leaver: the file to fix is the new leader's.
func TestNewLeaderWithoutDatasetSaysSo(t *testing.T) {
	p := fuzzPeer() // bob; alice, his left, leaves
	p.cfg.LoadData = func() (dataset.Source, error) { return nil, errors.New("dataset: d.csv: line 7: bad") }
	now := time.Unix(1_700_000_000, 0)
	p.Step(now, fzLeft.Addr, wire.Header{ID: 1}, wire.ResetLeft{Left: wire.Member{Name: "dave", Addr: fzOther}})
	outs := p.Step(now, fzLeft.Addr, wire.Header{ID: 2}, wire.RebuildDHT{Leaver: fzLeft})
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
	if len(printed) != 1 || !strings.HasPrefix(printed[0], "rebuild-dht FAILURE: cannot use the dataset: dataset: d.csv: line 7: bad") ||
		!strings.Contains(printed[0], "leave-dht of alice fails") {
		t.Fatalf("the new leader printed %q; want one rebuild-dht FAILURE line with the dataset's error and the leaver", printed)
	}
}

// So does a new leader whose right neighbour stops acknowledging the
// rebuild's stores.
func TestNewLeaderWhoseStoresAreNotAcknowledgedSaysSo(t *testing.T) {
	p := fuzzPeer() // bob; alice, his left, leaves; carol, his right, is silent
	now := time.Unix(1_700_000_000, 0)
	p.Step(now, fzLeft.Addr, wire.Header{ID: 1}, wire.ResetLeft{Left: wire.Member{Name: "dave", Addr: fzOther}})
	p.Step(now, fzLeft.Addr, wire.Header{ID: 2}, wire.RebuildDHT{Leaver: fzLeft})
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
	if len(printed) != 1 || !strings.HasPrefix(printed[0], "rebuild-dht FAILURE: right neighbour "+fzRight.Addr.String()+" stopped acknowledging stores") {
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
	p.Step(now, fzLeft.Addr, wire.Header{ID: 7}, wire.Query{ReqID: 1, Querier: wire.Member{Name: "dave", Addr: fzOther}, Hops: 1, LongName: "aa"})
	var req uint32
	for _, o := range p.Input(now, "leave-dht bob") {
		if s, ok := o.(Send); ok && s.To == fzServer {
			req = s.ID
		}
	}
	p.Step(now, fzServer, wire.Header{ID: req}, wire.Reply{OK: true})
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
	want := "dht-rebuilt FAILURE: teardown sent to " + fzRight.Addr.String() + " was not acknowledged"
	if len(printed) != 1 || !strings.HasPrefix(printed[0], want) {
		t.Fatalf("printed %q; want one line starting %q", printed, want)
	}
}

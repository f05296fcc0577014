package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"dht/app"
	"dht/app/state"
	"dht/dataset"
)

// A query's owner answers from its table file, not from a copy in memory:
// once the records are committed the core holds none of them (its memory
// does not grow with its share of the dataset), a record deleted from the
// file behind its back is not found, and one written there is.
func TestQueriesReadTheFile(t *testing.T) {
	s, data := ringOfFour(t, 5)
	free := freeUser(s)
	r := data[17]
	owner := s.Process(memberWithID(s, dataset.ID(r.Pos(), 4)))
	for _, name := range s.Names() {
		if s.Process(name).Core.Unsettled() {
			t.Fatalf("%s keeps records in memory after the setup", name)
		}
	}
	s.mustDo(free, "query-dht "+free+" "+r.LongName, "query-dht SUCCESS")
	if err := owner.Table.Apply(state.Batch{Clear: true}); err != nil {
		t.Fatal(err)
	}
	s.mustDo(free, "query-dht "+free+" "+r.LongName, "query-dht FAILURE: \""+r.LongName+"\" not found")
	changed := r
	changed.Census = "1789"
	if err := owner.Table.Apply(state.Batch{Put: []dataset.Record{changed}}); err != nil {
		t.Fatal(err)
	}
	out := s.mustDo(free, "query-dht "+free+" "+r.LongName, "query-dht SUCCESS")
	if got := out[len(out)-1]; !strings.HasSuffix(got, "\nLatest Population Census: 1789") {
		t.Fatalf("the answer ends %q, want the census written to the file", got)
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
	if r.Message != app.TracePersist {
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

// A leader commits the records it keeps at most app.OwnChunk a
// transaction, however many there are. Checked
// on a ring of two, on a ring of three where nearly every record hashes to
// the leader, and on the ring of one a leave leaves, whose leader keeps
// everything. Every record still ends up in its
// node's file, exactly once.
func TestLeaderCommitsItsRecordsInChunks(t *testing.T) {
	src := dataset.SyntheticSource{N: 7 * app.OwnChunk, Seed: 4}
	synth := make([]dataset.Record, src.Len())
	for i := range synth {
		synth[i] = src.Record(i)
	}
	var mostlyLeader []dataset.Record // id 0 of 3, but every 500th
	for i, r := range synth {
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
			if b > app.OwnChunk {
				t.Fatalf("the leader committed %d records at once (commits %v)", b, batches)
			}
			written += b
		}
		if own <= 2*app.OwnChunk || written != own || len(batches) > own/app.OwnChunk+2 {
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
				p := s.Process(u)
				s.mustDo(u, fmt.Sprintf("register %s %s %d", u, p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
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
			check(t, c.data, 1, batches) // the table the leave tore down is cleared by the rebuild's first commit
		})
	}
}

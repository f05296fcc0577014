package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"dht/app"
	"dht/dataset"
)

// foundLine is the first line of a query's answer that found the record.
var foundLine = regexp.MustCompile(`^query-dht SUCCESS: found at node ([A-Za-z]+) \(id (\d+)\) after (\d+) hops?$`)

// queryAll asks for every record from user `from` and checks each answer,
// as the result says it and as stdout shows it: the right node (by the
// hash), a plausible hop count, every field.
func queryAll(t *testing.T, s *simNet, from string, data []dataset.Record, n int) {
	t.Helper()
	for _, r := range data {
		res, err := s.Do(from, "query-dht "+from+" "+r.LongName)
		if err != nil {
			t.Fatalf("seed %d: %v", s.Seed(), err)
		}
		if len(res) != 1 || !res[0].OK || res[0].Answer.Record != r {
			t.Fatalf("seed %d: %q: printed %q", s.Seed(), r.LongName, texts(res))
		}
		lines := strings.Split(res[0].String(), "\n")
		m := foundLine.FindStringSubmatch(lines[0])
		if m == nil {
			t.Fatalf("seed %d: result line %q", s.Seed(), lines[0])
		}
		id, _ := strconv.Atoi(m[2])
		hops, _ := strconv.Atoi(m[3])
		if a := res[0].Answer; a.NodeID != id || a.Hops != hops || a.Node != m[1] {
			t.Fatalf("seed %d: %q: the line says node %s id %d after %d hops, the result %s id %d after %d", s.Seed(), r.LongName, m[1], id, hops, a.Node, a.NodeID, a.Hops)
		}
		if want := dataset.ID(r.Pos(), n); id != want || hops >= n {
			t.Fatalf("seed %d: %q answered by id %d after %d hops, want id %d and < %d hops", s.Seed(), r.LongName, id, hops, want, n)
		}
		if len(lines) != 1+dataset.NumFields {
			t.Fatalf("seed %d: %q: %d lines", s.Seed(), r.LongName, len(lines))
		}
		for i, f := range r.Fields() {
			if want := dataset.Headers[i] + ": " + f; lines[1+i] != want {
				t.Fatalf("seed %d: line %q, want %q", s.Seed(), lines[1+i], want)
			}
		}
	}
}

func freeUser(s *simNet) string {
	for _, name := range s.Names() {
		if p := s.Process(name); !app.Identity(p.Core).InRing && p.Core.Registered() {
			return name
		}
	}
	return ""
}

func leaderName(s *simNet) string { return s.Server().Snapshot().DHT.Leader }

// memberWithID names the ring member holding id.
func memberWithID(s *simNet, id int) string {
	for _, name := range s.Names() {
		if p := s.Process(name); app.Identity(p.Core).InRing && app.Identity(p.Core).ID == id {
			return name
		}
	}
	return ""
}

// runScenario is the whole life of a DHT: register 5, setup 4, query
// everything, a missing name, leave of a middle node and of the leader,
// teardown, a second DHT, deregister.
func runScenario(t *testing.T, s *simNet, data []dataset.Record) {
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	for _, u := range users {
		s.addPeer(u, data)
	}
	for _, u := range users {
		p := s.Process(u)
		s.mustDo(u, fmt.Sprintf("register %s %s %d", u, p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
	}
	out := s.mustDo("alice", "setup-dht 4 alice", "setup-dht SUCCESS")
	if len(out) != 2 || out[1] != "dht-complete SUCCESS" {
		t.Fatalf("seed %d: setup printed %q", s.Seed(), out)
	}
	s.checkRing(data)
	free := freeUser(s)
	queryAll(t, s, free, data, 4)
	s.mustDo(free, "query-dht "+free+" Republic of Nowhere", `query-dht FAILURE: "Republic of Nowhere" not found`)

	middle := memberWithID(s, 2)
	out = s.mustDo(middle, "leave-dht "+middle, "leave-dht SUCCESS")
	if len(out) != 2 || !strings.HasPrefix(out[1], "dht-rebuilt SUCCESS") {
		t.Fatalf("seed %d: leave printed %q", s.Seed(), out)
	}
	s.checkRing(data)

	leader := leaderName(s)
	out = s.mustDo(leader, "leave-dht "+leader, "leave-dht SUCCESS")
	if len(out) != 2 || !strings.HasPrefix(out[1], "dht-rebuilt SUCCESS") {
		t.Fatalf("seed %d: leave printed %q", s.Seed(), out)
	}
	s.checkRing(data)
	queryAll(t, s, leader, data, 2)

	leader = leaderName(s)
	out = s.mustDo(leader, "teardown-dht "+leader, "teardown-dht SUCCESS")
	if len(out) != 2 || out[1] != "teardown-complete SUCCESS" {
		t.Fatalf("seed %d: teardown printed %q", s.Seed(), out)
	}
	for _, name := range s.Names() {
		p := s.Process(name)
		id, recs, _ := p.Table.Load()
		if app.Identity(p.Core).InRing || p.Core.Unsettled() || id.InRing || len(recs) != 0 {
			t.Fatalf("seed %d: %s still holds a DHT after teardown", s.Seed(), name)
		}
	}
	if st := s.Server().Snapshot(); st.DHT.Phase != 0 {
		t.Fatalf("seed %d: server still has a DHT: %+v", s.Seed(), st.DHT)
	}

	s.mustDo("erin", "setup-dht 3 erin", "setup-dht SUCCESS")
	s.checkRing(data)
	s.mustDo("erin", "teardown-dht erin", "teardown-dht SUCCESS")
	s.mustDo("bob", "deregister bob", "deregister SUCCESS")
	if !s.Process("bob").Exited {
		t.Fatalf("seed %d: bob did not exit after deregister", s.Seed())
	}
	if len(s.Server().Snapshot().Users) != 4 {
		t.Fatalf("seed %d: server users %+v", s.Seed(), s.Server().Snapshot().Users)
	}
}

func TestScenarioPerfectNetwork(t *testing.T) {
	data := records(t)
	for _, seed := range seeds(t, 2) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			runScenario(t, newSim(t, seed), data)
		})
	}
}

func TestScenarioLossyNetwork(t *testing.T) {
	data := records(t)
	for _, seed := range seeds(t, 3) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := newSim(t, seed)
			s.Loss, s.Dup, s.Delay = 0.2, 0.05, 3e6
			runScenario(t, s, data)
			st := s.Stats()
			t.Logf("seed %d: %d datagrams, %d dropped, %d duplicated", seed, st.Sent, st.Dropped, st.Duplicated)
		})
	}
}

// The simulation hands a peer what arrives together as one batch, as the
// runner does, and the core acknowledges a batch with one Ack per sender.
// Unbatched, each datagram is stepped alone: the whole life of a DHT both
// ways, over a lossy, duplicating, reordering network.
func TestScenarioBatchedAndNot(t *testing.T) {
	data := records(t)
	for _, batch := range []bool{true, false} {
		for _, seed := range seeds(t, 2) {
			t.Run(fmt.Sprint("batch=", batch, "/seed=", seed), func(t *testing.T) {
				s := newSim(t, seed)
				s.Batch = batch
				s.Loss, s.Dup, s.Delay = 0.2, 0.05, 100e3
				acks := &countAcks{}
				s.SetTrace(acks)
				runScenario(t, s, data)
				st := s.Stats()
				t.Logf("seed %d: %d datagrams, %d dropped, %d duplicated; %d acks, %d for several messages", seed, st.Sent, st.Dropped, st.Duplicated, acks.all, acks.several)
				if batch && acks.several == 0 {
					t.Fatalf("seed %d: no ack acknowledged several messages", seed)
				}
				if !batch && acks.several != 0 {
					t.Fatalf("seed %d: unbatched, %d acks acknowledged several messages", seed, acks.several)
				}
			})
		}
	}
}

// countAcks is a trace handler that counts the acks sent, and those that
// acknowledge more than one message.
type countAcks struct{ all, several int }

func (c *countAcks) Enabled(_ context.Context, l slog.Level) bool { return l == slog.LevelInfo }

func (c *countAcks) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "send" {
		return nil
	}
	ack := false
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "type":
			ack = a.Value.String() == "ack"
		case "msg":
			if ack {
				c.all++
				if len(a.Value.Resolve().Group()) > 0 {
					c.several++
				}
			}
		}
		return true
	})
	return nil
}

func (c *countAcks) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *countAcks) WithGroup(string) slog.Handler      { return c }

// A node that no record hashes to still writes its place in the ring before
// the flush goes on (set-id and the renumbering of a leave are written with
// a node's stores, so a node without any writes them at the flush): after
// setup and after a leave every member's file agrees with its memory.
func TestScenarioNodesWithoutRecords(t *testing.T) {
	data := records(t)[:2]
	for _, seed := range seeds(t, 2) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := newSim(t, seed)
			users := []string{"alice", "bob", "carol", "dave", "erin"}
			for _, u := range users {
				s.addPeer(u, data)
				p := s.Process(u)
				s.mustDo(u, fmt.Sprintf("register %s %s %d", u, p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
			}
			s.mustDo("alice", "setup-dht 5 alice", "setup-dht SUCCESS")
			s.checkRing(data)
			middle := memberWithID(s, 2)
			out := s.mustDo(middle, "leave-dht "+middle, "leave-dht SUCCESS")
			if len(out) != 2 || !strings.HasPrefix(out[1], "dht-rebuilt SUCCESS") {
				t.Fatalf("seed %d: leave printed %q", s.Seed(), out)
			}
			s.checkRing(data)
		})
	}
}

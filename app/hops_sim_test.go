package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"dht/app"
	"dht/dataset"
)

// firstQueryTo is a trace handler that keeps, for each Long Name, the
// address node's first query for it was sent to: the member the server
// gave the querier.
type firstQueryTo struct {
	node  string
	first map[string]string
	attrs []slog.Attr
}

func (c *firstQueryTo) Enabled(_ context.Context, l slog.Level) bool { return l == slog.LevelInfo }

func (c *firstQueryTo) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "send" {
		return nil
	}
	var node, typ, to, longName string
	visit := func(a slog.Attr) bool {
		switch a.Key {
		case "node":
			node = a.Value.String()
		case "type":
			typ = a.Value.String()
		case "addr":
			to = a.Value.String()
		case "msg":
			for _, f := range a.Value.Resolve().Group() {
				if f.Key == "long_name" {
					longName = f.Value.String()
				}
			}
		}
		return true
	}
	for _, a := range c.attrs {
		visit(a)
	}
	r.Attrs(visit)
	if _, seen := c.first[longName]; node == c.node && typ == "query" && !seen {
		c.first[longName] = to
	}
	return nil
}

func (c *firstQueryTo) WithAttrs(as []slog.Attr) slog.Handler {
	return &firstQueryTo{node: c.node, first: c.first, attrs: append(append([]slog.Attr(nil), c.attrs...), as...)}
}

func (c *firstQueryTo) WithGroup(string) slog.Handler { return c }

// A query's hop count is the forwards between ring nodes (SPEC §5): from
// the member the querier was given to the one that holds the key, going
// right, so (owner's id − first id) mod n, 0 when the first node asked
// holds it. A count below n but from elsewhere (from the leader, say)
// passes queryAll's bound and not this.
func TestHopsCountFromTheFirstNodeAsked(t *testing.T) {
	data := records(t)
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprint(n, " nodes"), func(t *testing.T) {
			s, names, _ := tracedSetup(t, 7, n)
			p := s.addPeer("querier", data)
			s.mustDo("querier", fmt.Sprintf("register querier %s %d", p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
			idAt := map[string]int{}
			for _, name := range names {
				idAt[s.Process(name).Addr.String()] = app.Identity(s.Process(name).Core).ID
			}
			c := &firstQueryTo{node: "querier", first: map[string]string{}}
			s.SetTrace(c)
			atFirst, starts := 0, map[int]bool{}
			for _, r := range data {
				res, err := s.Do("querier", "query-dht querier "+r.LongName)
				if err != nil || len(res) != 1 || !res[0].OK || !res[0].Answer.Answered {
					t.Fatalf("%q: %v %q", r.LongName, err, texts(res))
				}
				first, ok := idAt[c.first[r.LongName]]
				if !ok {
					t.Fatalf("%q: the first query went to %q, no member", r.LongName, c.first[r.LongName])
				}
				starts[first] = true
				a := res[0].Answer
				if want := (dataset.ID(r.Pos(), n) - first + n) % n; a.Hops != want {
					t.Errorf("%q: asked id %d first, answered by id %d after %d hops; want %d", r.LongName, first, a.NodeID, a.Hops, want)
				}
				if a.Hops == 0 {
					atFirst++
				}
			}
			if len(starts) != n {
				t.Errorf("the server gave %d of the %d members to ask first; want every one", len(starts), n)
			}
			t.Logf("%d of %d answered by the first node asked; %d members asked first", atFirst, len(data), len(starts))
		})
	}
}

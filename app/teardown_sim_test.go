package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"dht/app"
)

// orderTrace keeps, in order, the peers' commits that cleared a table, the
// torn-down received at each node and the teardown-completes sent.
type orderTrace struct {
	events *[]string
	attrs  []slog.Attr
}

func (o orderTrace) Enabled(context.Context, slog.Level) bool { return true }
func (o orderTrace) WithAttrs(as []slog.Attr) slog.Handler {
	o.attrs = append(slices.Clone(o.attrs), as...)
	return o
}
func (o orderTrace) WithGroup(string) slog.Handler { return o }
func (o orderTrace) Handle(_ context.Context, r slog.Record) error {
	var node, typ string
	clear := false
	visit := func(a slog.Attr) bool {
		switch a.Key {
		case "node":
			node = a.Value.String()
		case "type":
			typ = a.Value.String()
		case "clear":
			clear = a.Value.Bool()
		}
		return true
	}
	for _, a := range o.attrs {
		visit(a)
	}
	r.Attrs(visit)
	switch {
	case r.Message == app.TracePersist && clear:
		*o.events = append(*o.events, "clear "+node)
	case r.Message == "send" && typ == "teardown-complete":
		*o.events = append(*o.events, "complete "+node)
	case r.Message == "recv" && typ == "torn-down":
		*o.events = append(*o.events, "torn-down to "+node)
	}
	return nil
}

// The nodes commit their emptied tables in parallel (each forwards the
// teardown before it commits), yet the leader sends teardown-complete only
// after every table is cleared on disk, which the torn-down that follows
// the teardown round the ring tells it; with loss and duplicates too.
func TestTeardownCompletesAfterEveryCommit(t *testing.T) {
	for _, c := range []struct {
		n         int
		loss, dup float64
	}{{2, 0, 0}, {5, 0, 0}, {5, 0.2, 0.1}, {8, 0.3, 0.2}} {
		t.Run(fmt.Sprintf("n=%d loss=%g dup=%g", c.n, c.loss, c.dup), func(t *testing.T) {
			data := records(t)
			for seed := uint64(1); seed <= 5; seed++ {
				s := newSim(t, seed)
				names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}[:c.n]
				for _, u := range names {
					s.addPeer(u, data)
					p := s.Process(u)
					s.mustDo(u, fmt.Sprintf("register %s %s %d", u, p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
				}
				s.mustDo("alice", fmt.Sprintf("setup-dht %d alice", c.n), "setup-dht SUCCESS")
				s.checkRing(data)
				s.Loss, s.Dup = c.loss, c.dup
				var events []string
				s.SetTrace(orderTrace{events: &events})
				out := s.mustDo("alice", "teardown-dht alice", "teardown-dht SUCCESS")
				s.SetTrace(nil)
				if len(out) != 2 || out[1] != "teardown-complete SUCCESS" {
					t.Fatalf("seed %d: printed %q", seed, out)
				}
				done := slices.Index(events, "complete alice")
				if done < 0 {
					t.Fatalf("seed %d: no teardown-complete sent: %q", seed, events)
				}
				// In the simulation a commit takes no time; what a slow one
				// needs is that the leader waits for the torn-down.
				if !slices.Contains(events[:done], "torn-down to alice") {
					t.Fatalf("seed %d: teardown-complete sent before the torn-down came: %q", seed, events)
				}
				for _, u := range names {
					if !slices.Contains(events[:done], "clear "+u) {
						t.Fatalf("seed %d: teardown-complete sent before %s's table was cleared on disk: %q", seed, u, events)
					}
				}
			}
		})
	}
}

package app

import (
	"strings"
	"testing"
	"time"

	"dht/app/state"
	"dht/wire"
)

// A Tick judged carol offline and dissolved the setup she was in; a
// setup-dht read just after, that came 3 s before that Tick (queued while
// the server did not read), is judged as of when it came, when carol was
// not yet offline: the new ring picks carol, whom the server had just
// judged offline, and the next Tick dissolves it at once. Judged as of
// the later of the two times, it is refused: only 3 users are live.
func TestAJudgementAsOfArrivalDoesNotUndoATicks(t *testing.T) {
	h := newLiveH(t, srvDHT(state.PhaseBuilding, []string{"alice", "bob", "carol"}, "dave"))
	h.s.Tick(srvT0)
	h.now = srvT0.Add(10 * time.Second)
	h.alive("alice", "bob", "dave")                           // carol is silent from the start
	tick := srvT0.Add(DefaultDeadAfter + 10*time.Millisecond) // on time: within lateTick of carol's due
	h.now = tick
	h.s.Tick(tick)
	if h.s.dht.Phase != state.PhaseNone {
		t.Fatalf("after the Tick: %v, want the setup dissolved (carol offline)", h.s.dht.Phase)
	}
	h.now = tick.Add(time.Millisecond)
	outs := h.stepCame(srvAddr("alice"), wire.SetupDHT{N: 4, Name: "alice"}, srvSecret("alice"), h.now.Add(-3*time.Second))
	for _, o := range outs {
		if s, ok := o.(Send); ok {
			if r, ok := s.Msg.(wire.Reply); ok {
				if r.OK || !strings.Contains(r.Reason, "only 3 of the 4") {
					var names []string
					for _, m := range r.Members {
						names = append(names, m.Name)
					}
					t.Fatalf("setup-dht 4: OK=%v %q members %v; want it refused, carol offline since the Tick", r.OK, r.Reason, names)
				}
				return
			}
		}
	}
	t.Fatalf("no reply: %#v", outs)
}

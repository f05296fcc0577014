package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app"
	"dht/app/state"
	"dht/dataset"
)

// A peer killed (kill -9) and started again on its file at any step of
// setup, query, leave, join and teardown, with and without loss: once the
// network and the server settle (the operation finished, rolled back or
// healed), the server's states agree with the ring, and a ready ring is
// one cycle with every record exactly once, in the right slot of a live
// node, and answers a query; and that happens within settleBound of the
// restart, not at a give-up or an op timeout. Seeded: -seed replays one
// seed.
func TestCrashRestartAtEveryStep(t *testing.T) {
	data := records(t)
	type op struct {
		name  string
		setup func(s *simNet) (who string) // the ring before the operation; returns the user who types it
		line  func(s *simNet, who string) string
		crash func(s *simNet, who string) string // the peer that crashes
	}
	ring := func(n int) func(s *simNet) string {
		return func(s *simNet) string {
			users := joinUsers(t, s, 5)
			s.mustDo(users[0], fmt.Sprintf("setup-dht %d %s", n, users[0]), "setup-dht SUCCESS")
			return users[0]
		}
	}
	ops := []op{
		{"setup", func(s *simNet) string { return joinUsers(t, s, 5)[0] },
			func(_ *simNet, who string) string { return "setup-dht 4 " + who },
			func(s *simNet, _ string) string { return s.Names()[2] }},
		{"query", ring(4), func(s *simNet, _ string) string { f := freeUser(s); return "query-dht " + f + " Kingdom of Spain" },
			func(s *simNet, _ string) string { return memberWithID(s, 1) }},
		{"leave", ring(4), func(s *simNet, _ string) string { m := memberWithID(s, 1); return "leave-dht " + m },
			func(s *simNet, _ string) string { return memberWithID(s, 2) }},
		{"join", ring(3), func(s *simNet, _ string) string { f := freeUser(s); return "join-dht " + f },
			func(s *simNet, _ string) string { return memberWithID(s, 1) }},
		{"teardown", ring(4), func(_ *simNet, who string) string { return "teardown-dht " + who },
			func(s *simNet, _ string) string { return memberWithID(s, 2) }},
		{"leave, the leaver crashes", ring(4), func(s *simNet, _ string) string { m := memberWithID(s, 1); return "leave-dht " + m },
			func(s *simNet, _ string) string { return memberWithID(s, 1) }},
		{"setup, the leader crashes", func(s *simNet) string { return joinUsers(t, s, 5)[0] },
			func(_ *simNet, who string) string { return "setup-dht 4 " + who },
			func(_ *simNet, who string) string { return who }},
		{"join, the joiner crashes", ring(3), func(s *simNet, _ string) string { f := freeUser(s); return "join-dht " + f },
			func(s *simNet, _ string) string { return freeUser(s) }},
		{"teardown, the leader crashes", ring(4), func(_ *simNet, who string) string { return "teardown-dht " + who },
			func(_ *simNet, who string) string { return who }},
	}
	for _, o := range ops {
		for _, loss := range []float64{0, 0.1} {
			for _, seed := range seeds(t, 3) {
				for step := 1; step <= 60; step += 3 {
					t.Run(fmt.Sprintf("%s/loss=%v/seed=%d/step=%d", o.name, loss, seed, step), func(t *testing.T) {
						s := newSim(t, seed)
						who := o.setup(s)
						s.Loss = loss
						line := o.line(s, who)
						typist := line[len(line)-len(lastWord(line)):]
						if o.name == "query" {
							typist = freeUser(s)
						}
						victim := o.crash(s, who)
						s.input(typist, line)
						for i := 0; i < step && s.step(); i++ {
						}
						if !s.Restart(victim) {
							t.Fatalf("seed %d: %s: nothing to restart", seed, victim)
						}
						crashedAt := s.Now()
						resolved := settleResolved(t, s)
						// Simulated time: a command, or the server, still
						// waiting at a give-up (10 s) or an op timeout (1 min
						// here) waited on what was gone (a message its
						// receiver had forgotten, a ring phase no one would
						// finish).
						if d := resolved.Sub(crashedAt); d > settleBound {
							t.Fatalf("seed %d: commands and the server still waited %v after the restart, beyond %v (DHT %+v)", seed, d, settleBound, s.Server().Snapshot().DHT)
						}
						checkSettled(t, s, data)
					})
				}
			}
		}
	}
}

// settleBound is how long, in simulated time, the cluster may take to
// settle after a peer's restart: rings heal and operations end in well
// under a second (at most 0.91 s over seeds 1-8, with 10% loss), far
// below any give-up or op timeout.
const settleBound = 5 * time.Second

func lastWord(line string) string {
	for i := len(line) - 1; i >= 0; i-- {
		if line[i] == ' ' {
			return line[i+1:]
		}
	}
	return line
}

// settle runs the simulation until every peer is idle, nothing is in
// flight, and the server waits for nothing.
func settle(t *testing.T, s *simNet) {
	t.Helper()
	for i := 0; ; i++ {
		idle := !s.Busy() && !s.Server().Snapshot().DHT.Phase.Waiting()
		for _, n := range s.Names() {
			idle = idle && s.Process(n).Core.Idle()
		}
		if idle {
			return
		}
		if i == 3_000_000 || !s.step() {
			t.Fatalf("seed %d: never settled (DHT %+v)", s.Seed(), s.Server().Snapshot().DHT)
		}
	}
}

// settleResolved is settle, and returns when commands and the server last
// waited: the time of the last step at which a peer had a command in
// progress or the server waited for the end of an operation. What is left
// after it is retransmissions no one waits for (an ack lost to a node
// restarted since), which end at their give-up.
func settleResolved(t *testing.T, s *simNet) (resolved time.Time) {
	t.Helper()
	for i := 0; ; i++ {
		waiting := s.Server().Snapshot().DHT.Phase.Waiting()
		for _, n := range s.Names() {
			waiting = waiting || !s.Process(n).Core.Idle()
		}
		if waiting || resolved.IsZero() {
			resolved = s.Now()
		}
		if !waiting && !s.Busy() {
			return resolved
		}
		if i == 3_000_000 || !s.step() {
			t.Fatalf("seed %d: never settled (DHT %+v)", s.Seed(), s.Server().Snapshot().DHT)
		}
	}
}

// checkSettled checks the invariants once settled: the server's states
// agree with its DHT; a ready ring is whole and answers.
func checkSettled(t *testing.T, s *simNet, data []dataset.Record) {
	t.Helper()
	st := s.Server().Snapshot()
	if err := st.Check(); err != nil {
		t.Fatalf("seed %d: server state: %v", s.Seed(), err)
	}
	if st.DHT.Phase != state.PhaseReady {
		return
	}
	s.checkRing(data)
	var free string
	for _, n := range s.Names() {
		if !slices.Contains(st.DHT.Members, n) && s.Process(n).Core.Registered() {
			free = n
		}
	}
	if free == "" {
		return
	}
	r := data[len(data)/2]
	res, err := s.Do(free, "query-dht "+free+" "+r.LongName)
	if err != nil || len(res) != 1 || !res[0].OK {
		t.Fatalf("seed %d: query after settling: %q (%v)", s.Seed(), texts(res), err)
	}
	_ = app.Identity
}

// TestHealLeaderCommitsItsOwnRecords replays the schedule where a heal's
// leader reported its ring healed without its own records on disk: a leaver
// killed during its leave, 10% loss, seed 64, the crash after 25 steps. The
// late flush of the rebuild the heal replaced, passing through the heal's
// leader, was queued to its right neighbour behind the heal's own flush, so
// the leader never saw its flush leave, and its records (and with them the
// clearing of its table) waited for a commit that the late flush then made
// with none: the ring held 159 of 241 records. The round is now over only
// once the leader's own records are committed: the committed that ends it
// is sent by the leader after that commit. (The protocol's timing has
// changed since, so this schedule plays out differently; it must still
// settle whole.)
func TestHealLeaderCommitsItsOwnRecords(t *testing.T) {
	crashAfter(t, 64, 4, 25, func(s *simNet) (typist, line, victim string) {
		leaver := memberWithID(s, 1)
		return leaver, "leave-dht " + leaver, leaver
	})
}

// crashAfter replays one schedule of TestCrashRestartAtEveryStep: with the
// simulation seeded with seed, a ring of n of 5 users, then 10% loss, the
// line op gives typed, and its victim killed and started again after that
// many steps; the ring must settle whole. It returns the simulation.
func crashAfter(t *testing.T, seed uint64, n, steps int, op func(*simNet) (typist, line, victim string)) *simNet {
	t.Helper()
	data := records(t)
	s := newSim(t, seed)
	users := joinUsers(t, s, 5)
	s.mustDo(users[0], fmt.Sprintf("setup-dht %d %s", n, users[0]), "setup-dht SUCCESS")
	s.Loss = 0.1
	typist, line, victim := op(s)
	s.input(typist, line)
	for i := 0; i < steps && s.step(); i++ {
	}
	if !s.Restart(victim) {
		t.Fatalf("%s: nothing to restart", victim)
	}
	settle(t, s)
	checkSettled(t, s, data)
	return s
}

// A join's leader killed and restarted on its file at any step of the
// join, with and without loss: the server ends the join and heals the ring
// with the restarted leader, and within settleBound, not at the server's or
// the joiner's op timeout (2 minutes), the ring is ready again with its
// three members (or four, if the join was done before the crash), and the
// joiner's command is over: it learns that its join was ended from the
// server's pace, since the leader that would have told it restarted
// without it. Seen with real processes: the joiner waited the full 2
// minutes, and the heal waited for ever on a flush its leader held back
// behind the join's teardown, which the left neighbour went on sending
// and the leader dropped, unacknowledged, as of an earlier ring.
func TestJoinWhoseLeaderRestarts(t *testing.T) {
	data := records(t)
	for _, loss := range []float64{0, 0.1} {
		for _, seed := range seeds(t, 3) {
			for step := 1; step <= 60; step += 3 {
				t.Run(fmt.Sprintf("loss=%v/seed=%d/step=%d", loss, seed, step), func(t *testing.T) {
					s := newSim(t, seed)
					users := joinUsers(t, s, 5)
					leader := users[0]
					s.mustDo(leader, "setup-dht 3 "+leader, "setup-dht SUCCESS")
					joiner := freeUser(s)
					s.Loss = loss
					s.input(joiner, "join-dht "+joiner)
					for i := 0; i < step && s.step(); i++ {
					}
					crashed := s.Now()
					if !s.Restart(leader) {
						t.Fatalf("seed %d: nothing to restart", seed)
					}
					if d := settleResolved(t, s).Sub(crashed); d > settleBound {
						t.Fatalf("seed %d: commands and the server still waited %v after the leader's restart (DHT %+v; %s printed %q)", seed, d,
							s.Server().Snapshot().DHT, joiner, texts(s.Process(joiner).Printed))
					}
					for _, line := range texts(s.Process(leader).Printed) {
						if strings.HasPrefix(line, "resume ") && strings.Contains(line, "(epoch 0)") {
							t.Fatalf("seed %d: the resume line names no ring: %q", seed, line)
						}
					}
					d := s.Server().Snapshot().DHT
					if d.Phase != state.PhaseReady || len(d.Members) < 3 {
						t.Fatalf("seed %d: DHT %+v after the leader's restart, want a ready ring of 3 or 4", seed, d)
					}
					checkSettled(t, s, data)
					queryAll(t, s, freeUser(s), data, len(d.Members))
				})
			}
		}
	}
}

// The server killed (SIGKILL) and restarted on its file at any step of
// setup, leave, join and teardown, with and without loss: the operation
// goes on or is ended, and commands and the server wait no more than
// settleBound after the restart; a ready ring is whole and answers.
func TestServerCrashAtEveryStep(t *testing.T) {
	atEveryStep(t, 3, func(s *simNet, _ []string) { s.RestartServer() })
}

// stepOps are the operations atEveryStep disrupts: the ring set up before
// (0: none) and what is typed, by whom.
var stepOps = []struct {
	name string
	n    int
	line func(s *simNet, leader string) (typist, line string)
}{
	{"setup", 0, func(_ *simNet, l string) (string, string) { return l, "setup-dht 4 " + l }},
	{"leave", 4, func(s *simNet, _ string) (string, string) { m := memberWithID(s, 1); return m, "leave-dht " + m }},
	{"join", 3, func(s *simNet, _ string) (string, string) { f := freeUser(s); return f, "join-dht " + f }},
	{"teardown", 4, func(_ *simNet, l string) (string, string) { return l, "teardown-dht " + l }},
}

// atEveryStep runs each of stepOps over 5 users, 3 seeds, 0 and 10% loss,
// and disrupts it after 1, 1+stride, … steps (up to 60); disrupt's last
// event is the one measured from: commands and the server must wait no
// more than settleBound after it, and a ready ring be whole and answer.
func atEveryStep(t *testing.T, stride int, disrupt func(s *simNet, users []string)) {
	data := records(t)
	for _, o := range stepOps {
		for _, loss := range []float64{0, 0.1} {
			for _, seed := range seeds(t, 3) {
				for step := 1; step <= 60; step += stride {
					t.Run(fmt.Sprintf("%s/loss=%v/seed=%d/step=%d", o.name, loss, seed, step), func(t *testing.T) {
						s := newSim(t, seed)
						users := joinUsers(t, s, 5)
						if o.n > 0 {
							s.mustDo(users[0], fmt.Sprintf("setup-dht %d %s", o.n, users[0]), "setup-dht SUCCESS")
						}
						s.Loss = loss
						s.input(o.line(s, users[0]))
						for i := 0; i < step && s.step(); i++ {
						}
						disrupt(s, users)
						after := s.Now()
						if d := settleResolved(t, s).Sub(after); d > settleBound {
							t.Fatalf("seed %d: commands and the server still waited %v after the disruption (DHT %+v)", seed, d, s.Server().Snapshot().DHT)
						}
						checkSettled(t, s, data)
					})
				}
			}
		}
	}
}

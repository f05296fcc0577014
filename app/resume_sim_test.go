package app_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app"
	"dht/app/state"
	"dht/internal/simnet"
	"dht/store"
	"dht/wire"
)

// restart kills user name's process and starts a new one on its file,
// then runs the network until the resume is done and the ring settled;
// it returns the resume's result line.
func restart(t *testing.T, s *simNet, name string) string {
	t.Helper()
	if !s.Restart(name) {
		t.Fatalf("seed %d: %s: nothing to restart", s.Seed(), name)
	}
	p := s.Process(name)
	before := len(p.Printed) // the resume prints once the server answers
	for i := 0; !p.Core.Idle() || s.Busy(); i++ {
		if i == 1_000_000 || !s.step() {
			t.Fatalf("seed %d: %s never resumed (printed %q)", s.Seed(), name, texts(p.Printed[before:]))
		}
	}
	out := texts(p.Printed[before:])
	if len(out) == 0 {
		t.Fatalf("seed %d: %s printed nothing on resume", s.Seed(), name)
	}
	return out[0]
}

// A member or the leader killed and restarted on its file resumes: the
// server still counts it in the same ring, so it takes back its place and
// its table, the ring answers every query without a heal, and the resumed
// leader tears the ring down.
func TestResumeKeepsThePlace(t *testing.T) {
	data := records(t)
	for _, who := range []string{"member", "leader"} {
		for _, seed := range seeds(t, 3) {
			t.Run(fmt.Sprint(who, "/seed=", seed), func(t *testing.T) {
				s := newSim(t, seed)
				users := joinUsers(t, s, 5)
				s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
				epoch := s.Server().Snapshot().DHT.Epoch
				name := memberWithID(s, 2)
				if who == "leader" {
					name = leaderName(s)
				}
				place := app.Identity(s.Process(name).Core)
				line := restart(t, s, name)
				if !strings.HasPrefix(line, "resume SUCCESS: "+name) || !strings.Contains(line, "its table taken back") {
					t.Fatalf("resume printed %q", line)
				}
				if got := app.Identity(s.Process(name).Core); got != place {
					t.Fatalf("place after resume %+v, want %+v", got, place)
				}
				if d := s.Server().Snapshot().DHT; d.Epoch != epoch || d.Phase != state.PhaseReady {
					t.Fatalf("DHT %+v after the resume, want the same ring (epoch %d)", d, epoch)
				}
				s.checkRing(data)
				queryAll(t, s, freeUser(s), data, 4)
				if who == "leader" {
					out := s.mustDo(name, "teardown-dht "+name, "teardown-dht SUCCESS")
					if len(out) != 2 || out[1] != "teardown-complete SUCCESS" {
						t.Fatalf("teardown from the resumed leader printed %q", out)
					}
				} else {
					out := s.mustDo(name, "leave-dht "+name, "leave-dht SUCCESS")
					if len(out) != 2 || !strings.HasPrefix(out[1], "dht-rebuilt SUCCESS") {
						t.Fatalf("leave from the resumed member printed %q", out)
					}
					s.checkRing(data)
					s.mustDo(name, "deregister "+name, "deregister SUCCESS")
				}
			})
		}
	}
}

// A member killed for good is removed by a heal; started again on its
// file afterwards, it resumes as a Free user, discards the ring state it
// held, and can deregister (after which its file holds no registration).
func TestResumeAfterTheRingHealed(t *testing.T) {
	data := records(t)
	s := newSim(t, 7)
	users := joinUsers(t, s, 5)
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	name := memberWithID(s, 1)
	kill(s, name)
	settleHeal(t, s, name)
	line := restart(t, s, name)
	if !strings.HasPrefix(line, "resume SUCCESS: "+name) || !strings.Contains(line, " Free") || !strings.Contains(line, "discarded") {
		t.Fatalf("resume printed %q", line)
	}
	if place, _ := s.Place(name); place.InRing {
		t.Fatalf("the file still holds a place: %+v", place)
	}
	s.checkRing(data)
	queryAll(t, s, name, data, 3)
	s.mustDo(name, "deregister "+name, "deregister SUCCESS")
	if place, _ := s.Place(name); place.Name != "" {
		t.Fatalf("after deregister the file still holds %+v", place)
	}
	if s.Restart(name) {
		t.Fatal("a deregistered file resumed")
	}
}

// A peer restarted on a new, empty file, registering the same name from
// the same address, rejoins; a member among them makes the ring heal with
// it, and every record is found again.
func TestRejoinOnAnEmptyFile(t *testing.T) {
	data := records(t)
	s := newSim(t, 8)
	users := joinUsers(t, s, 5)
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	name := memberWithID(s, 3)
	addr := s.Process(name).Addr
	kill(s, name)
	s.AddPeer(name, addr, data)
	s.Up(addr)
	out := s.mustDo(name, fmt.Sprintf("register %s %s %d", name, addr.Addr(), addr.Port()), "register SUCCESS")
	// SPEC §3: the reply says which state, and which DHT.
	want := fmt.Sprintf("register SUCCESS: rejoined: %s is InDHT in the DHT of epoch 2; %s restarted without its place in the ring (epoch 1): the ring heals to 4 node(s) led by %s", name, name, users[0])
	if out[0] != want {
		t.Fatalf("%s printed %q, want %q", name, out[0], want)
	}
	settleHeal(t, s, "")
	s.checkRing(data)
	if d := s.Server().Snapshot().DHT; len(d.Members) != 4 {
		t.Fatalf("DHT %+v, want the 4 members", d)
	}
	queryAll(t, s, freeUser(s), data, 4)
}

// A register typed again at the peer that holds the registration is a
// rejoin, and its line says so: which state, and for a member which DHT
// and its place; a new registration's line says nothing more.
func TestRegisterAgainSaysWhatTheUserIs(t *testing.T) {
	s := newSim(t, 3)
	users := joinUsers(t, s, 4)
	s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
	again := func(name string) string {
		addr := s.Process(name).Addr
		out := s.mustDo(name, fmt.Sprintf("register %s %s %d", name, addr.Addr(), addr.Port()), "register SUCCESS")
		return out[0]
	}
	free := freeUser(s)
	if got, want := again(free), "register SUCCESS: rejoined: "+free+" is Free"; got != want {
		t.Fatalf("%s printed %q, want %q", free, got, want)
	}
	member := memberWithID(s, 2)
	if got, want := again(member), "register SUCCESS: rejoined: "+member+" is InDHT in the DHT of epoch 1, id 2 of a ring of 3"; got != want {
		t.Fatalf("%s printed %q, want %q", member, got, want)
	}
	if got, want := again(users[0]), "register SUCCESS: rejoined: "+users[0]+" is Leader in the DHT of epoch 1, id 0 of a ring of 3"; got != want {
		t.Fatalf("%s printed %q, want %q", users[0], got, want)
	}
	// Nothing changed: no heal, the ring answers.
	settle(t, s)
	if d := s.Server().Snapshot().DHT; d.Epoch != 1 || len(d.Members) != 3 {
		t.Fatalf("DHT %+v, want the ring of epoch 1 untouched", d)
	}
	queryAll(t, s, free, records(t), 3)
	// A new registration says nothing more.
	p := s.addPeer("zed", records(t))
	if out := s.do("zed", fmt.Sprintf("register zed %s %d", p.Addr.Addr(), p.Addr.Port())); len(out) != 1 || out[0] != "register SUCCESS" {
		t.Fatalf("zed printed %q, want register SUCCESS", out)
	}
}

// The peer that typed setup-dht, killed while the ring is being set up and
// started again on its file, is told what became of its setup: the ring
// heals with it, and its resume line says so.
func TestResumeSaysWhatBecameOfTheSetup(t *testing.T) {
	for _, seed := range seeds(t, 3) {
		s := newSim(t, seed)
		users := joinUsers(t, s, 5)
		leader := users[0]
		s.input(leader, "setup-dht 4 "+leader)
		// Killed once the server named the ring, before anything else:
		// the set-ids and the stores are on their way.
		for !printedCmd(s, leader, app.CmdSetupDHT) && s.step() {
		}
		if printedCmd(s, leader, app.CmdDHTComplete) {
			t.Fatalf("seed %d: the setup ended before the restart", seed)
		}
		if !s.Restart(leader) {
			t.Fatalf("seed %d: nothing to restart", seed)
		}
		settle(t, s)
		var resume string
		for _, r := range s.Process(leader).Printed {
			if r.Cmd == app.CmdResume {
				resume = r.String()
			}
		}
		if !strings.Contains(resume, "setup-dht by "+leader+" ends in a heal") {
			t.Fatalf("seed %d: %s's resume said %q", seed, leader, resume)
		}
		checkSettled(t, s, records(t))
	}
}

// The leader of a teardown, killed during it and started again on its
// file: the DHT is dissolved at its rejoin (nothing else would send
// teardown-complete), not after --op-timeout, and its resume line says so.
func TestResumeEndsTheTeardownItLed(t *testing.T) {
	for _, seed := range seeds(t, 3) {
		s, leader := tearingDown(t, seed)
		for i := 0; i < 4 && s.step(); i++ {
		}
		if !s.Restart(leader) {
			t.Fatalf("seed %d: nothing to restart", seed)
		}
		restarted := s.Now()
		settle(t, s)
		if took := s.Now().Sub(restarted); took >= time.Minute {
			t.Fatalf("seed %d: the server waited %v (its op timeout) for a teardown nobody runs", seed, took)
		}
		resume := resumeLine(s, leader)
		if !strings.Contains(resume, "restarted during its teardown-dht: the DHT was dissolved") {
			t.Fatalf("seed %d: %s's resume said %q", seed, leader, resume)
		}
		if st := s.Server().Snapshot(); st.DHT.Phase != state.PhaseNone {
			t.Fatalf("seed %d: DHT %+v after the teardown's leader came back", seed, st.DHT)
		}
		checkSettled(t, s, records(t))
	}
}

// printedCmd says whether name has printed a result of cmd.
func printedCmd(s *simNet, name string, cmd app.Command) bool {
	for _, r := range s.Process(name).Printed {
		if r.Cmd == cmd {
			return true
		}
	}
	return false
}

// A member that restarts during a teardown-dht, after the teardown passed
// it, no longer knows the teardown, and would drop the torn-down that must
// pass it: its rejoin dissolves the DHT at once, its resume line says so,
// and the teardown's leader ends its command within seconds, saying why,
// instead of at a give-up or its op timeout.
func TestResumeOfAMemberEndsTheTeardown(t *testing.T) {
	for _, seed := range seeds(t, 3) {
		s, leader := tearingDown(t, seed)
		member := memberWithID(s, 2)
		for app.Identity(s.Process(member).Core).InRing {
			if !s.step() {
				t.Fatalf("seed %d: the teardown never reached %s", seed, member)
			}
		}
		if !s.Restart(member) {
			t.Fatalf("seed %d: nothing to restart", seed)
		}
		restarted := s.Now()
		settle(t, s)
		if took := s.Now().Sub(restarted); took > settleBound {
			t.Fatalf("seed %d: settled %v after the restart", seed, took)
		}
		resume := resumeLine(s, member)
		if want := "restarted during the teardown-dht led by " + leader + ": the DHT was dissolved"; !strings.Contains(resume, want) {
			t.Fatalf("seed %d: %s's resume said %q, want %q", seed, member, resume, want)
		}
		if st := s.Server().Snapshot(); st.DHT.Phase != state.PhaseNone {
			t.Fatalf("seed %d: DHT %+v after a member of the torn ring came back", seed, st.DHT)
		}
		printed := texts(s.Process(leader).Printed)
		// The leader's command ends either way, saying why: told by its
		// pace, or, if the torn-down had come round before the restart, by
		// the server's answer to its teardown-complete.
		last := printed[len(printed)-1]
		if !strings.HasPrefix(last, "teardown-complete FAILURE: the server ended the teardown") &&
			!(strings.HasPrefix(last, "teardown-complete FAILURE: ") && strings.Contains(last, member+" restarted during the teardown-dht")) {
			t.Fatalf("seed %d: the leader printed %q last", seed, last)
		}
		checkSettled(t, s, records(t))
	}
}

// resumeLine is the last resume result name printed, "" if none.
func resumeLine(s *simNet, name string) string {
	var line string
	for _, r := range s.Process(name).Printed {
		if r.Cmd == app.CmdResume {
			line = r.String()
		}
	}
	return line
}

// tearingDown sets up a ring of 4 of 5 users and types teardown-dht at its
// leader, whom it returns; the teardown has not started.
func tearingDown(t *testing.T, seed uint64) (*simNet, string) {
	s := newSim(t, seed)
	leader := joinUsers(t, s, 5)[0]
	s.mustDo(leader, "setup-dht 4 "+leader, "setup-dht SUCCESS")
	s.input(leader, "teardown-dht "+leader)
	return s, leader
}

// A server started on a new, empty file knows no one: each user's request
// gets "not registered", and each registers again, typing register at its
// running peer, or by restarting it on its file: the register, signed with
// a secret the server never gave, is challenged as a new one, and the peer
// says it was registered anew. A member's place is discarded (at its resume,
// or at the pace that answers its next alive), and a new ring can be set up.
func TestServerOnANewFileRegistersEachUserAnew(t *testing.T) {
	for _, seed := range seeds(t, 3) {
		s := newSim(t, seed)
		users := joinUsers(t, s, 5)
		s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
		// A leave: the ring's epoch is 2, past the 1 a new file starts at.
		leaver := memberWithID(s, 1)
		s.mustDo(leaver, "leave-dht "+leaver, "leave-dht SUCCESS")
		free := freeUser(s)
		restarted := memberWithID(s, 2)
		// While the server knows it, a register typed again at a member's
		// running peer is a rejoin by its secret: nothing changes.
		again := memberWithID(s, 0)
		a := s.Process(again).Addr
		before := s.Server().Snapshot()
		if out, want := s.mustDo(again, fmt.Sprintf("register %s %s %d", again, a.Addr(), a.Port()), "register SUCCESS"), "register SUCCESS: rejoined: "+again+" is Leader in the DHT of epoch 2, id 0 of a ring of 3"; out[0] != want {
			t.Fatalf("seed %d: %s's register again printed %q, want %q", seed, again, out[0], want)
		}
		if id := app.Identity(s.Process(again).Core); !id.InRing || !reflect.DeepEqual(s.Server().Snapshot().DHT, before.DHT) {
			t.Fatalf("seed %d: after %s's register again: its place %+v, the DHT %+v (was %+v)", seed, again, id, s.Server().Snapshot().DHT, before.DHT)
		}
		s.RestartServerOnANewFile()

		fa := s.Process(free).Addr
		out := s.mustDo(free, "query-dht "+free+" Aruba", "query-dht FAILURE: "+free+" is not registered")
		if want := fmt.Sprintf("query-dht FAILURE: %s is not registered (the server no longer knows it: started on a new or older file?); type 'register %s %s %d' to register anew", free, free, fa.Addr(), fa.Port()); out[0] != want {
			t.Fatalf("seed %d: %q, want %q", seed, out[0], want)
		}
		for _, u := range users {
			if u == restarted {
				continue
			}
			a := s.Process(u).Addr
			id := app.Identity(s.Process(u).Core)
			out := s.mustDo(u, fmt.Sprintf("register %s %s %d", u, a.Addr(), a.Port()), "register SUCCESS")
			want := "register SUCCESS: registered anew (the server did not hold " + u + "'s secret)"
			if id.InRing {
				want += fmt.Sprintf("; its place (id %d of a ring of %d) and table were discarded", id.ID, id.N)
			}
			if out[0] != want {
				t.Fatalf("seed %d: %s printed %q, want %q", seed, u, out[0], want)
			}
		}
		if !s.Restart(restarted) {
			t.Fatalf("seed %d: nothing to restart", seed)
		}
		settle(t, s)
		resume := texts(s.Process(restarted).Printed)
		if want := "resume SUCCESS: " + restarted + " " + s.Process(restarted).Addr.String() + " Free, registered anew (the server did not hold " + restarted + "'s secret); the ring it held (epoch 2) no longer counts it"; !strings.HasPrefix(resume[len(resume)-1], want) {
			t.Fatalf("seed %d: %s's resume said %q, want it to start %q", seed, restarted, resume[len(resume)-1], want)
		}
		for _, u := range users {
			if id := app.Identity(s.Process(u).Core); id.InRing || !s.Process(u).Core.Registered() {
				t.Fatalf("seed %d: %s still holds a place (%+v), or is not registered", seed, u, id)
			}
		}
		s.mustDo(users[1], "setup-dht 5 "+users[1], "setup-dht SUCCESS")
		s.checkRing(records(t))
	}
}

// A peer restarted on its file while a server that does not know it (on a
// new file) waits for a setup to complete: the server challenges the
// resume's register, as a new one, and refuses it while it waits. The one
// line the restart prints is the resume's, saying why (it said "register
// FAILURE" when the challenge came).
func TestResumeChallengedAndRefusedSaysResume(t *testing.T) {
	s := newSim(t, 5)
	users := joinUsers(t, s, 5)
	s.RestartServerOnANewFile()
	for _, u := range users[:3] {
		a := s.Process(u).Addr
		s.mustDo(u, fmt.Sprintf("register %s %s %d", u, a.Addr(), a.Port()), "register SUCCESS: registered anew")
	}
	// A setup of the three that cannot complete: a member is cut off.
	s.Down(s.Process(users[2]).Addr)
	s.input(users[0], "setup-dht 3 "+users[0])
	for !printedCmd(s, users[0], app.CmdSetupDHT) && s.step() {
	}
	if d := s.Server().Snapshot().DHT; d.Phase != state.PhaseBuilding {
		t.Fatalf("DHT %+v, want a setup in progress", d)
	}
	restarted := users[4]
	before := len(s.Process(restarted).Printed)
	if !s.Restart(restarted) {
		t.Fatal("nothing to restart")
	}
	for len(s.Process(restarted).Printed) == before && s.step() {
	}
	out := texts(s.Process(restarted).Printed[before:])
	want := "resume FAILURE: server is waiting for dht-complete from " + users[0] + " (setup-dht in progress)"
	if len(out) != 1 || !strings.HasPrefix(out[0], want) {
		t.Fatalf("%s printed %q, want one line starting %q", restarted, out, want)
	}
	settle(t, s)
	s.Up(s.Process(users[2]).Addr)
	// Once the server waits no more, register registers the user anew.
	a := s.Process(restarted).Addr
	s.mustDo(restarted, fmt.Sprintf("register %s %s %d", restarted, a.Addr(), a.Port()), "register SUCCESS")
}

// The server put back on an older copy of its file (a backup restored)
// while its peers run: the copy records alice's ring of four at epoch 1;
// since, that ring was torn down, another set up and left (epoch 3), and
// a Free user's peer was started again on an empty file (a rejoin by
// cookie: a secret the copy does not hold). The peers' alives name epochs
// the copy never reached: the server dissolves the ring it recorded, every
// peer drops the place it holds, and the next ring is newer than any ring
// key a peer took; the user whose secret the copy lacks types register and
// is registered anew. A new ring of five is set up and answers every query.
// The same with the later ring torn down before the copy is put back: no
// peer holds a place, and the ring keys the peers took tell the server.
func TestServerPutBackOnAnOlderFile(t *testing.T) {
	data := records(t)
	for _, seed := range seeds(t, 3) {
		for _, standing := range []bool{true, false} {
			t.Run(fmt.Sprintf("seed=%d/ring standing=%v", seed, standing), func(t *testing.T) {
				s, users, copied := copiedThenNewRing(t, seed, 3)
				s.mustDo(memberWithID(s, 1), "leave-dht "+memberWithID(s, 1), "leave-dht SUCCESS")
				moved := freeUser(s)
				addr := s.Process(moved).Addr
				kill(s, moved)
				s.AddPeer(moved, addr, data)
				s.Up(addr)
				s.mustDo(moved, fmt.Sprintf("register %s %s %d", moved, addr.Addr(), addr.Port()), "register SUCCESS")
				newest := s.Server().Snapshot().DHT.Epoch
				if !standing {
					newest = s.Server().Snapshot().DHT.KeyEpoch // the peers keep it
					s.mustDo(leaderName(s), "teardown-dht "+leaderName(s), "teardown-dht SUCCESS")
				}

				s.RestartServerOnACopy(copied)
				if d := s.Server().Snapshot().DHT; d.Phase != state.PhaseReady || d.Epoch >= newest {
					t.Fatalf("seed %d: the copy records %+v", seed, d)
				}
				idle(t, s, 3*app.DefaultDeadAfter/10) // every peer's alive comes, and the paces go back
				d := s.Server().Snapshot().DHT
				if d.Phase != state.PhaseNone || d.Epoch < newest {
					t.Fatalf("seed %d: after the alives the server has %+v, want no DHT and epoch at least %d", seed, d, newest)
				}
				for _, name := range s.Names() {
					if id := app.Identity(s.Process(name).Core); id.InRing {
						t.Fatalf("seed %d: %s still holds a place: %+v", seed, name, id)
					}
				}
				asker := users[2]
				if asker == moved {
					asker = users[3] // the copy does not hold moved's secret
				}
				query := s.mustDo(asker, "query-dht "+asker+" "+data[0].LongName, "query-dht FAILURE: no DHT exists")
				if !strings.Contains(query[0], "older than the ring of epoch") {
					t.Errorf("seed %d: %q does not say why the DHT is gone", seed, query[0])
				}
				// Any other request of moved's is signed with a secret the
				// copy lacks: its FAILURE says what to do.
				refused := s.mustDo(moved, "deregister "+moved, "deregister FAILURE")
				if want := fmt.Sprintf("deregister FAILURE: not signed by %s (the server holds another secret for it: its file or this peer's is from before the last register?); type 'register %s %s %d' to register anew", moved, moved, addr.Addr(), addr.Port()); refused[0] != want {
					t.Errorf("seed %d: %q, want %q", seed, refused[0], want)
				}
				out := s.mustDo(moved, fmt.Sprintf("register %s %s %d", moved, addr.Addr(), addr.Port()), "register SUCCESS")
				if want := "register SUCCESS: registered anew (the server did not hold " + moved + "'s secret)"; out[0] != want {
					t.Errorf("seed %d: %q, want %q", seed, out[0], want)
				}
				s.mustDo(users[5], "setup-dht 5 "+users[5], "setup-dht SUCCESS")
				s.checkRing(data)
				queryAll(t, s, freeUser(s), data, 5)
			})
		}
	}
}

// A peer restarted on an older copy of its own file (a backup restored),
// whose secret the server replaced since (the user registered again from
// an empty file): its resume is signed with a secret the server no longer
// holds, from the user's address; the server challenges it, and the user
// is registered anew, then leads a ring of five.
func TestResumeOnAnOlderCopyOfThePeersFile(t *testing.T) {
	data := records(t)
	s := newSim(t, 11)
	users := joinUsers(t, s, 5)
	name := users[2]
	addr := s.Process(name).Addr
	id, recs, err := s.Process(name).Table.Load()
	if err != nil {
		t.Fatal(err)
	}
	backup := store.NewMemPeer()
	if err := backup.Apply(state.Batch{Identity: &id, Clear: true, Put: recs}); err != nil {
		t.Fatal(err)
	}
	kill(s, name)
	s.AddPeer(name, addr, data)
	s.Up(addr)
	s.mustDo(name, fmt.Sprintf("register %s %s %d", name, addr.Addr(), addr.Port()), "register SUCCESS")
	if now, _, _ := s.Process(name).Table.Load(); now.Secret == id.Secret {
		t.Fatal("registering from an empty file kept the old secret")
	}

	kill(s, name).Table = backup
	line := restart(t, s, name)
	if want := "resume SUCCESS: " + name + " " + addr.String() + " Free, registered anew (the server did not hold " + name + "'s secret)"; line != want {
		t.Fatalf("resume printed %q, want %q", line, want)
	}
	s.mustDo(name, "setup-dht 5 "+name, "setup-dht SUCCESS")
	s.checkRing(data)
}

// A member's host whose clock is behind the one its peer ran on before
// (set back an hour, or a process moved to another host with its file):
// the peer started again signs its requests with sequence numbers below
// the last the server took from it, and its alives too. The server tells
// it the last it took (a FAILURE carrying it, signed, to the user's
// address only), the peer goes on above it, and the resume takes its place
// back; its alives count (the rejoin starts them again), so it stays in
// the ring. Without, the server dropped every request as replayed: resume
// FAILURE (no answer from the server), and the ring healed without it.
func TestResumeOnAClockBehind(t *testing.T) {
	for _, ahead := range []time.Duration{time.Hour, 0} {
		t.Run(fmt.Sprintf("clock before %v ahead", ahead), func(t *testing.T) {
			data := records(t)
			s := newSim(t, 7)
			users := joinUsers(t, s, 4)
			s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
			member := memberWithID(s, 2)
			p := s.Process(member)
			// Its host's clock an hour ahead: a request and alives signed
			// then.
			p.Clock = ahead
			s.mustDo(member, fmt.Sprintf("register %s %s %d", member, p.Addr.Addr(), p.Addr.Port()), "register SUCCESS: rejoined")
			idle(t, s, 5*time.Second)
			// Started again on its file, on a host whose clock is right.
			p.Clock = 0
			before := len(p.Printed)
			if !s.Restart(member) {
				t.Fatal("nothing to restart")
			}
			for len(p.Printed) == before && s.step() {
			}
			out := texts(p.Printed[before:])
			if want := "resume SUCCESS: " + member + " " + p.Addr.String() + " InDHT, id 2 of a ring of 3"; len(out) != 1 || !strings.HasPrefix(out[0], want) {
				t.Fatalf("%s printed %q, want %q", member, out, want)
			}
			// Past --dead-after: its alives count, no heal.
			idle(t, s, 3*time.Minute)
			if d := s.Server().Snapshot().DHT; d.Epoch != 1 || !slices.Contains(d.Members, member) {
				t.Fatalf("DHT %+v: want the ring of epoch 1 with %s in it", d, member)
			}
			queryAll(t, s, freeUser(s), data, 3)
		})
	}
}

// A peer started on its file with another server's address than the one
// its file was registered with (a mistyped port, say), where that server
// does not know the user: the resume fails, saying so, and changes
// nothing; registered anew there, the user would lose its place in the
// ring of the file's server. A register typed then registers it anew.
// Where that server has the name registered at another address, the resume
// says the same (not "not signed by NAME" with an invitation to type a
// register that fails the same way every time), and a register typed then
// gets the rules' answer.
func TestResumeWithAnotherServersAddressChangesNothing(t *testing.T) {
	for _, taken := range []bool{false, true} {
		t.Run(fmt.Sprintf("name-taken=%v", taken), func(t *testing.T) {
			s := newSim(t, 3)
			users := joinUsers(t, s, 3)
			s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
			member := users[1]
			p := s.Process(member)
			id, _, err := p.Table.Load()
			if err != nil || !id.InRing {
				t.Fatalf("%s's file: %+v, %v; want a place in the ring", member, id, err)
			}
			elsewhere := netip.MustParseAddrPort("10.9.9.9:4000")
			id.Server = elsewhere // the file is of the server at 10.9.9.9:4000
			if err := p.Table.Apply(state.Batch{Identity: &id}); err != nil {
				t.Fatal(err)
			}
			s.RestartServerOnANewFile() // the server this peer is started with does not know it
			if taken {
				imp := s.addPeer("imp", records(t))
				s.mustDo("imp", fmt.Sprintf("register %s %s %d", member, imp.Addr.Addr(), imp.Addr.Port()), "register SUCCESS")
			}
			file := p.Table
			before := len(p.Printed)
			if !s.Restart(member) {
				t.Fatal("nothing to restart")
			}
			for len(s.Process(member).Printed) == before && s.step() {
			}
			out := texts(s.Process(member).Printed[before:])
			a := p.Addr
			want := fmt.Sprintf("resume FAILURE: the server at %s does not hold %s's secret, and %s's file was registered with the server at %s: nothing was changed; to resume there, start the peer with 10.9.9.9 4000 (typing 'register %s %s %d' registers %s anew with this server if the name is free there, and its place in a ring is discarded)", simServer, member, member, elsewhere, member, a.Addr(), a.Port(), member)
			if len(out) != 1 || out[0] != want {
				t.Fatalf("%s printed %q, want %q (no invitation to try again)", member, out, want)
			}
			register := fmt.Sprintf("register %s %s %d", member, a.Addr(), a.Port())
			if taken {
				if got := s.do(member, register); len(got) != 1 || !strings.HasPrefix(got[0], "register FAILURE: "+member+" is already registered") || strings.Contains(got[0], "try again") {
					t.Errorf("a typed register printed %q, want the rules' answer: %s is already registered", got, member)
				}
				return
			}
			// A command typed meanwhile says the same, not "try again".
			if got, want := s.do(member, "query-dht "+member+" Aruba"), fmt.Sprintf("query-dht FAILURE: not registered: the resume of %s failed, its file being of the server at %s (typing 'register %s %s %d' registers %s anew with this server if the name is free there)", member, elsewhere, member, a.Addr(), a.Port(), member); len(got) != 1 || got[0] != want {
				t.Errorf("query-dht printed %q, want %q", got, want)
			}
			if after, _, err := file.Load(); err != nil || after != id {
				t.Errorf("the file holds %+v (%v), want it unchanged: %+v", after, err, id)
			}
			if st := s.Server().Snapshot(); len(st.Users) != 0 {
				t.Errorf("the server registered %+v", st.Users)
			}
			s.mustDo(member, register, fmt.Sprintf("register SUCCESS: %s %s Free, registered anew", member, a))
		})
	}
}

// The server put back on a copy of its file taken after the first setup
// (key epoch 1), while since a second ring (key epoch 2) lost two members
// by leave-dht (epochs 3 and 4) and was torn down: its last members'
// floor is epoch 4, which their alives claim with their ring key's epoch,
// so the next setup's epoch is above it. Claiming only the key epoch (a
// review), the setup took epoch 3, which those members refused as older
// than their floor, and failed; with the floor kept in the peers' files
// it failed after their restarts too.
func TestSetupAfterAnOlderServerFileIsAboveEveryPeersFloor(t *testing.T) {
	for _, restartPeers := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart-peers=%v", restartPeers), func(t *testing.T) {
			s, users, copied := copiedThenNewRing(t, 1, 4)
			s.mustDo(memberWithID(s, 1), "leave-dht "+memberWithID(s, 1), "leave-dht SUCCESS")
			s.mustDo(memberWithID(s, 1), "leave-dht "+memberWithID(s, 1), "leave-dht SUCCESS")
			s.mustDo(leaderName(s), "teardown-dht "+leaderName(s), "teardown-dht SUCCESS")
			if restartPeers {
				for _, n := range s.Names() {
					restart(t, s, n)
				}
			}
			s.RestartServerOnACopy(copied)
			idle(t, s, 3*app.DefaultDeadAfter/10)
			out := s.do(users[2], "setup-dht 6 "+users[2])
			if len(out) != 2 || out[1] != "dht-complete SUCCESS" {
				settle(t, s)
				t.Fatalf("setup after the older copy printed %q; server: %s", out, app.ServerNote(s.Server()))
			}
			s.checkRing(records(t))
		})
	}
}

// copiedThenNewRing: six users, a ring of 4 set up by the first, a copy of
// the server's file taken then, the ring torn down and a ring of n set up
// by the second.
func copiedThenNewRing(t *testing.T, seed uint64, n int) (*simNet, []string, simnet.ServerFile) {
	t.Helper()
	s := newSim(t, seed)
	users := joinUsers(t, s, 6)
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	copied := s.CopyServerFile()
	s.mustDo(users[0], "teardown-dht "+users[0], "teardown-dht SUCCESS")
	s.mustDo(users[1], fmt.Sprintf("setup-dht %d %s", n, users[1]), "setup-dht SUCCESS")
	return s, users, copied
}

// A member restarted right after it passed on its store round's committed,
// its ack of the committed lost, takes the committed sent again by its
// left neighbour as one of the round its file holds, and acknowledges it,
// so that the neighbour stops sending it (a chaos review: the resumed
// member dropped 102 copies unacknowledged, "no store round waits for it
// from there", and its left neighbour gave up on it).
func TestAResumedMemberAcknowledgesTheCommittedOfItsRound(t *testing.T) {
	data := records(t)
	s := newSim(t, 12)
	users := joinUsers(t, s, 5)
	type sent struct {
		from, to netip.AddrPort
		b        []byte
	}
	var committed []sent
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if _, m, err := wire.Decode(b); err == nil && m.Type() == wire.TypeCommitted {
			committed = append(committed, sent{from, to, slices.Clone(b)})
		}
	}
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	s.Tap = nil
	member := memberWithID(s, 2)
	var c sent
	for _, x := range committed {
		if x.to == s.Process(member).Addr {
			c = x
		}
	}
	if c.b == nil {
		t.Fatalf("seed %d: no committed to %s captured", s.Seed(), member)
	}
	restart(t, s, member)
	acks := 0
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if _, m, err := wire.Decode(b); err == nil && m.Type() == wire.TypeAck && from == c.to && to == c.from {
			acks++
		}
	}
	s.Inject(c.from, c.to, c.b)
	runFor(t, s, time.Second)
	s.Tap = nil
	if acks == 0 {
		t.Errorf("%s, resumed, did not acknowledge the committed of its round sent again from its left neighbour", member)
	}
	s.checkRing(data)
}

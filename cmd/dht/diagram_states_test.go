package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"dht/app/state"
	"dht/dataset"
	"dht/diagram"
	"dht/internal/simnet"
	"dht/wire"
)

// The state machines of docs/DESIGN.md §4, described once here: the test
// below draws them into docs/diagrams/state-*.svg and checks them against
// the protocol's own constants (state.Phase and state.State, and the peer's
// stage constants in app/), so that a state added to the code and not here
// fails it.

// dhtPhases is the server's machine of the one DHT: its states are
// state.Phase's names, its transitions the requests that move it.
var dhtPhases = diagram.Machine{
	Title: "server: the phase of the one DHT",
	States: []diagram.State{
		{Name: state.PhaseNone.String(), Detail: "no DHT"},
		{Name: state.PhaseBuilding.String(), Detail: "waits for dht-complete from the leader"},
		{Name: state.PhaseReady.String(), Detail: "the DHT answers queries"},
		{Name: state.PhaseLeaving.String(), Detail: "waits for dht-rebuilt from the leaver"},
		{Name: state.PhaseTearing.String(), Detail: "waits for teardown-complete from the leader"},
		{Name: state.PhaseJoining.String(), Detail: "waits for dht-rebuilt from the joiner"},
		{Name: state.PhaseHealing.String(), Detail: "waits for healed from the new leader"},
	},
	Transitions: []diagram.Transition{
		{From: "", To: "none", Label: "the server starts on an empty file"},
		{From: "none", To: "building", Label: "setup-dht n leader"},
		{From: "building", To: "ready", Label: "dht-complete leader"},
		{From: "ready", To: "leaving", Label: "leave-dht member"},
		{From: "leaving", To: "ready", Label: "dht-rebuilt leaver new-leader"},
		{From: "ready", To: "joining", Label: "join-dht free-user"},
		{From: "joining", To: "ready", Label: "dht-rebuilt joiner leader"},
		{From: "ready", To: "tearing-down", Label: "teardown-dht leader"},
		{From: "tearing-down", To: "none", Label: "teardown-complete leader"},
		{From: "building", To: "none", Label: "op-timeout: roll back", Exception: true},
		{From: "tearing-down", To: "none", Label: "op-timeout: roll back", Exception: true},
		{From: "ready", To: "healing", Label: "offline: a member, or one back without its place; heal the survivors", Exception: true},
		{From: "building", To: "healing", Label: "register: a member back without its place; heal", Exception: true},
		{From: "leaving", To: "healing", Label: "offline: a member; op-timeout; heal", Exception: true},
		{From: "joining", To: "healing", Label: "offline: a member or the joiner; op-timeout; heal", Exception: true},
		{From: "healing", To: "ready", Label: "healed leader epoch", Exception: true},
		{From: "healing", To: "none", Label: "op-timeout: roll back; or every member offline", Exception: true},
		{From: "building", To: "none", Label: "offline: a member; roll back", Exception: true},
		{From: "tearing-down", To: "none", Label: "offline: a member, or one restarted; dissolve", Exception: true},
		{From: "ready", To: "none", Label: "offline: every member; dissolve", Exception: true},
		{From: "leaving", To: "none", Label: "offline: every member, or the leave given up with none live; dissolve", Exception: true},
		{From: "joining", To: "none", Label: "offline: every member, or the join given up with none live; dissolve", Exception: true},
	},
	Notes: []string{
		"While it waits (building, leaving, tearing-down, joining, healing), the server answers FAILURE to",
		"every request but the one it waits for, saying what it waits for. A wait its initiator does",
		"not finish within --op-timeout rolls back: the DHT is dissolved, every member Free (a leave or",
		"a join heals the ring round its leaver or joiner). A member silent for --dead-after is",
		"offline: the ring heals without it, again if another goes offline meanwhile (docs/DESIGN.md §6).",
	},
}

// userStates is the server's machine of one registered user: its states
// are state.State's names.
var userStates = diagram.Machine{
	Title: "server: the state of one user",
	States: []diagram.State{
		{Name: state.Free.String(), Detail: "registered, in no ring"},
		{Name: state.Leader.String(), Detail: "id 0 of the ring"},
		{Name: state.InDHT.String(), Detail: "a member of the ring"},
	},
	Transitions: []diagram.Transition{
		{From: "", To: "Free", Label: "register name ip port"},
		{From: "Free", To: "Leader", Label: "setup-dht n name"},
		{From: "Free", To: "InDHT", Label: "setup-dht: picked at random; dht-rebuilt: it joined"},
		{From: "Leader", To: "InDHT", Label: "dht-rebuilt: another leads"},
		{From: "InDHT", To: "Leader", Label: "dht-rebuilt: names it the new leader"},
		{From: "Leader", To: "Free", Label: "teardown-complete; dht-rebuilt: it left"},
		{From: "InDHT", To: "Free", Label: "teardown-complete; dht-rebuilt: it left"},
		{From: "Leader", To: "Free", Label: "op-timeout: roll back; offline: healed out; dissolve", Exception: true},
		{From: "InDHT", To: "Free", Label: "op-timeout: roll back; offline: healed out; dissolve", Exception: true},
		{From: "InDHT", To: "Leader", Label: "heal: the leader is gone, it is the first survivor", Exception: true},
		{From: "Leader", To: "InDHT", Label: "heal: its leader gave it up, the next member leads", Exception: true},
		{From: "Free", To: "", Label: "deregister name: the peer exits"},
	},
}

// peerStage is a stage of the user commands a peer runs, and what names it
// in app/: the constants of the commands' stage types (setupStage,
// leaveStage, …) that stand for it, or the operation type that is all one
// stage (registerOp before it is bound, sleepOp).
type peerStage struct {
	names []string
	state diagram.State
}

var peerStages = []peerStage{
	{[]string{"registerOp"}, diagram.State{Name: "bind", Detail: "the socket bound at the address being registered"}},
	{[]string{"queryLongName"}, diagram.State{Name: "long-name", Detail: "the next line: the Long Name"}},
	{[]string{"sleepOp"}, diagram.State{Name: "sleep", Detail: "the time to pass"}},
	{[]string{"plainOp", "setupAsking", "setupCompleting", "leaveAsking", "leaveReporting", "teardownAsking", "teardownCompleting", "queryAsking", "joinAsking", "joinReporting"},
		diagram.State{Name: "request", Detail: "the server's reply (the request is retransmitted until it comes)"}},
	{[]string{"setupPopulating"}, diagram.State{Name: "populate", Detail: "the flush back and the committed: every member placed, every table on disk"}},
	{[]string{"queryWalking"}, diagram.State{Name: "query", Detail: "the query-result (the query is sent again until it comes)"}},
	{[]string{"leaveTearing", "teardownTearing"}, diagram.State{Name: "teardown", Detail: "its teardown back round the ring (teardown-dht: and the torn-down)"}},
	{[]string{"leaveRenumbering"}, diagram.State{Name: "reset-id", Detail: "its reset-id back round the ring"}},
	{[]string{"leaveClosing"}, diagram.State{Name: "resets", Detail: "acks of reset-left and reset-right"}},
	{[]string{"leaveRebuilding"}, diagram.State{Name: "rebuild", Detail: "rebuilt from the new leader"}},
	{[]string{"joinWaiting"}, diagram.State{Name: "join", Detail: "rebuilt from the leader, which takes it in"}},
}

// peerMachine is the stages of one user command at a peer: a line typed
// starts it, a result line printed ends it.
func peerMachine() diagram.Machine {
	m := diagram.Machine{
		Title: "peer: the stages of one command",
		Transitions: []diagram.Transition{
			{From: "", To: "bind", Label: "register name ip port"},
			{From: "", To: "request", Label: "any other server command"},
			{From: "", To: "sleep", Label: "sleep D"},
			{From: "bind", To: "request", Label: "bound: send register"},
			{From: "request", To: "long-name", Label: "query-dht SUCCESS, typed without a Long Name"},
			{From: "long-name", To: "query", Label: "line read: query the member named"},
			{From: "request", To: "populate", Label: "setup-dht SUCCESS: set-id to each member, the stores and the flush behind"},
			{From: "populate", To: "request", Label: "flush and committed back: send dht-complete"},
			{From: "request", To: "query", Label: "query-dht SUCCESS: query the member named"},
			{From: "request", To: "teardown", Label: "teardown-dht or leave-dht SUCCESS: send teardown"},
			{From: "teardown", To: "request", Label: "back, and the torn-down (teardown-dht): send teardown-complete"},
			{From: "teardown", To: "reset-id", Label: "back (leave-dht): send reset-id"},
			{From: "reset-id", To: "resets", Label: "back: send reset-left and reset-right"},
			{From: "resets", To: "rebuild", Label: "both acked: send rebuild-dht"},
			{From: "rebuild", To: "request", Label: "rebuilt: send dht-rebuilt"},
			{From: "request", To: "join", Label: "join-dht SUCCESS: send join to the leader"},
			{From: "join", To: "request", Label: "rebuilt: send dht-rebuilt"},
			{From: "request", To: "", Label: "the reply: print the result"},
			{From: "query", To: "", Label: "query-result: print it"},
			{From: "sleep", To: "", Label: "time passed"},
			{From: "bind", To: "", Label: "cannot bind: FAILURE", Exception: true},
		},
		Notes: []string{
			"Each box names what the stage waits for. A stage on the ring that passes the op timeout,",
			"or a peer it needs that stops acknowledging, ends the command with a FAILURE saying which.",
			"Lines typed meanwhile wait their turn; the peer answers the ring protocol in every stage.",
		},
	}
	for _, s := range peerStages {
		m.States = append(m.States, s.state)
	}
	return m
}

var stateDiagrams = []struct {
	name    string
	machine func() diagram.Machine
}{
	{"state-server", func() diagram.Machine { return dhtPhases }},
	{"state-user", func() diagram.Machine { return userStates }},
	{"state-peer", peerMachine},
}

// TestStateDiagrams draws every state machine and fails if the drawing
// differs from the committed one in docs/diagrams/ (-update rewrites them).
func TestStateDiagrams(t *testing.T) {
	for _, sd := range stateDiagrams {
		t.Run(sd.name, func(t *testing.T) {
			m := sd.machine()
			svg, err := m.SVG()
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join(docsDiagrams, sd.name+".svg"), svg)
		})
	}
}

func stateNames(m diagram.Machine) []string {
	var names []string
	for _, s := range m.States {
		names = append(names, s.Name)
	}
	return names
}

// The server's machines have exactly the states of state.Phase and
// state.State, and every transition of the DHT's phase is named after the
// request that makes it (or the op timeout).
func TestServerMachinesMatchTheProtocol(t *testing.T) {
	var phases, states []string
	for p := state.Phase(0); !strings.HasPrefix(p.String(), "Phase("); p++ {
		phases = append(phases, p.String())
	}
	for s := state.State(0); !strings.HasPrefix(s.String(), "State("); s++ {
		states = append(states, s.String())
	}
	if got := stateNames(dhtPhases); !slices.Equal(got, phases) {
		t.Errorf("the DHT's machine has states %q; state.Phase has %q", got, phases)
	}
	if got := stateNames(userStates); !slices.Equal(got, states) {
		t.Errorf("the user's machine has states %q; state.State has %q", got, states)
	}
	var types []string
	for ty := wire.Type(0); ty < 255; ty++ {
		if !strings.HasPrefix(ty.String(), "type(") {
			types = append(types, ty.String())
		}
	}
	for _, m := range []diagram.Machine{dhtPhases, userStates} {
		for _, tr := range m.Transitions {
			first, _, _ := strings.Cut(tr.Label, " ")
			first = strings.TrimRight(first, ":;")
			if tr.From != "" && !slices.Contains(types, first) && first != "op-timeout" && first != "offline" {
				t.Errorf("%s: transition %s → %s is labelled %q, which names no request", m.Title, tr.From, tr.To, tr.Label)
			}
		}
	}
}

// Every change of the DHT's phase and of a user's state that a scripted
// run goes through is a transition of its machine, labelled with the
// request that made it.
func TestServerMachinesCoverARun(t *testing.T) {
	data, err := dataset.Load(designData)
	if err != nil {
		t.Fatal(err)
	}
	var trace bytes.Buffer
	sim := simnet.New(designSeed, designServer)
	sim.SetTrace(newJSONTrace(&trace, slog.LevelDebug))
	for i, u := range designUsers {
		sim.AddPeer(u, designAddr(i), data)
	}
	r := designRun{t: t, sim: sim, inputs: map[string]int{}, start: new(string)}
	r.registerAll()
	r.do("alice", "setup-dht 4 alice", "setup-dht SUCCESS")
	members, _ := r.ring()
	r.do(members[1], "leave-dht "+members[1], "leave-dht SUCCESS") // its right neighbour leads now
	free := members[1]
	r.do(free, "query-dht "+free+" Aruba", "query-dht SUCCESS")
	r.do(free, "join-dht "+free, "join-dht SUCCESS") // it comes back, last
	members, _ = r.ring()
	r.do(members[0], "leave-dht "+members[0], "leave-dht SUCCESS") // the leader leaves
	members, _ = r.ring()
	r.do(members[0], "teardown-dht "+members[0], "teardown-dht SUCCESS")
	r.do(free, "deregister "+free, "deregister SUCCESS")

	evs, err := diagram.Read(&trace)
	if err != nil {
		t.Fatal(err)
	}
	has := func(m diagram.Machine, from, to, request string) bool {
		for _, tr := range m.Transitions {
			words := strings.FieldsFunc(tr.Label, func(r rune) bool { return strings.ContainsRune(" :;,", r) })
			if tr.From == from && tr.To == to && slices.Contains(words, request) {
				return true
			}
		}
		return false
	}
	phase, request := state.PhaseNone.String(), ""
	users := map[string]string{}
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Process != "server" {
			continue
		}
		switch {
		case e.Dir == diagram.DirRecv:
			request = e.Type
		case e.Event == "persist":
			if p, _ := e.Attrs["dht"].(string); p != phase {
				seen[phase+" → "+p] = true
				if !has(dhtPhases, phase, p, request) {
					t.Errorf("%s moved the DHT from %s to %s: not a transition of its machine", request, phase, p)
				}
				phase = p
			}
			now := map[string]string{}
			list, _ := e.Attrs["users"].(string)
			for _, kv := range strings.Split(list, ",") {
				name, state, _ := strings.Cut(kv, ":")
				now[name] = state
			}
			for _, name := range slices.Sorted(maps.Keys(now)) {
				if users[name] != now[name] {
					seen[users[name]+" → "+now[name]] = true
					if !has(userStates, users[name], now[name], request) {
						t.Errorf("%s moved %s from %q to %q: not a transition of the user's machine", request, name, users[name], now[name])
					}
				}
			}
			for name := range users {
				if _, ok := now[name]; !ok && !has(userStates, users[name], "", request) {
					t.Errorf("%s removed %s (%s): not a transition of the user's machine", request, name, users[name])
				}
			}
			users = now
		}
	}
	// The run goes through every transition of the normal course.
	for _, m := range []diagram.Machine{dhtPhases, userStates} {
		for _, tr := range m.Transitions {
			if !tr.Exception && tr.From != "" && tr.To != "" && !seen[tr.From+" → "+tr.To] {
				t.Errorf("%s: the run never went %s → %s (%s)", m.Title, tr.From, tr.To, tr.Label)
			}
		}
	}
}

// The peer's machine has one state for every stage of a user command in
// app/, read from the source: each constant of a type whose name ends in
// Stage, and each operation type (a type whose name ends in Op) that has
// no stages, is named by exactly one state.
func TestPeerMachineMatchesTheStages(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("../../app/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || len(g.Specs) == 0 {
				continue
			}
			switch g.Tok {
			case token.CONST:
				first := g.Specs[0].(*ast.ValueSpec)
				if id, ok := first.Type.(*ast.Ident); !ok || !strings.HasSuffix(id.Name, "Stage") {
					continue
				}
				for _, s := range g.Specs {
					for _, n := range s.(*ast.ValueSpec).Names {
						names = append(names, n.Name)
					}
				}
			case token.TYPE:
				for _, s := range g.Specs {
					ts := s.(*ast.TypeSpec)
					if st, ok := ts.Type.(*ast.StructType); ok && strings.HasSuffix(ts.Name.Name, "Op") && !hasStageField(st) {
						names = append(names, ts.Name.Name)
					}
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("found no stage constant or operation type in app/: the test must learn where they went")
	}
	var described []string
	for _, s := range peerStages {
		described = append(described, s.names...)
	}
	slices.Sort(names)
	slices.Sort(described)
	if !slices.Equal(names, described) {
		t.Errorf("app/ has the stages %q; the peer's machine describes %q: draw every stage, and only those", names, described)
	}
}

// hasStageField: an operation type with a field named stage has stages of
// its own, named by its stage type's constants.
func hasStageField(st *ast.StructType) bool {
	for _, f := range st.Fields.List {
		for _, n := range f.Names {
			if n.Name == "stage" {
				return true
			}
		}
	}
	return false
}

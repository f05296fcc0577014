package main

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"dht/app"
	"dht/app/state"
	"dht/dataset"
	"dht/diagram"
	"dht/internal/simnet"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/diagrams/ from the scripted runs of TestDesignDiagrams")

const (
	docsDiagrams = "../../docs/diagrams"
	designDoc    = "../../docs/DESIGN.md"
	designData   = "../../dataset/StatsCountry.csv"
	designSeed   = 1
)

var designServer = netip.MustParseAddrPort("192.0.2.1:4000")

// designUsers are the peer processes of every scripted run, at documentation
// addresses (RFC 5737).
var designUsers = []string{"alice", "bob", "carol", "dave"}

func designAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)}), 5000)
}

// designRun is a scripted run in simnet.Sim: the real server and peer
// state machines over a simulated network with a virtual clock and a fixed
// seed.
type designRun struct {
	t   *testing.T
	sim *simnet.Sim
	// inputs counts the lines each user typed; start is the first line of
	// the part the diagram shows, as a --from match.
	inputs map[string]int
	start  *string
	shown  bool
	// trace is the file the run's trace goes to, if any.
	trace string
}

// nextSend is the --from match of the next datagram of type typ that
// process sends: one more than it sent so far, as the trace shows.
func (r designRun) nextSend(process, typ string) string {
	r.t.Helper()
	f, err := os.Open(r.trace)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	evs, err := diagram.Read(f)
	if err != nil {
		r.t.Fatal(err)
	}
	n := 1
	for _, e := range evs {
		if e.Process == process && e.Dir == diagram.DirSend && e.Type == typ {
			n++
		}
	}
	return fmt.Sprintf("%s:%s:%s@%d", process, diagram.DirSend, typ, n)
}

// do types line at user's peer and checks the first line printed.
func (r designRun) do(user, line, want string) []app.Result {
	r.t.Helper()
	r.inputs[user]++
	if r.shown && *r.start == "" {
		*r.start = fmt.Sprintf("%s:event:input@%d", user, r.inputs[user])
	}
	out, err := r.sim.Do(user, line)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(out) == 0 || !strings.HasPrefix(out[0].String(), want) {
		r.t.Fatalf("%s: %q printed %q, want a first line starting %q", user, line, out, want)
	}
	return out
}

func (r designRun) registerAll() {
	for i, u := range designUsers {
		a := designAddr(i)
		r.do(u, fmt.Sprintf("register %s %s %d", u, a.Addr(), a.Port()), "register SUCCESS")
	}
}

// ring lists the members in id order, and the users outside it (a
// killed user is in neither).
func (r designRun) ring() (members, free []string) {
	byID := map[int]string{}
	for _, u := range designUsers {
		if place, err := r.sim.Place(u); err == nil && place.InRing {
			byID[place.ID] = u
		} else if p := r.sim.Peer(u); p != nil && p.Registered() { // nil: killed
			free = append(free, u)
		}
	}
	for i := 0; i < len(byID); i++ {
		members = append(members, byID[i])
	}
	return members, free
}

// designScript is one diagram of docs/DESIGN.md. The whole run is traced
// (so that every note can say what changed), but the diagram starts at the
// first line typed in shown, or at the --from that shown returns (which
// may depend on the run, e.g. on the ring the server chose).
type designScript struct {
	name, title string
	setup       func(r designRun)
	shown       func(r designRun) (from string)
	flags       []string // more flags of dht diagram
}

func setupRing(r designRun) {
	r.registerAll()
	r.do("alice", "setup-dht 3 alice", "setup-dht SUCCESS")
}

var designScripts = []designScript{
	{
		name: "register", title: "register: a name and an address, each used once",
		setup: func(designRun) {},
		shown: func(r designRun) string {
			r.do("alice", "register alice 192.0.2.11 5000", "register SUCCESS")
			r.do("bob", "register alice 192.0.2.12 5000", "register FAILURE")
			r.do("bob", "register bob 192.0.2.12 5000", "register SUCCESS")
			return "" // from the first line typed
		},
	},
	{
		name: "setup-dht", title: "setup-dht 3 alice: set-id, stores round the ring, flush, dht-complete",
		setup: func(r designRun) { r.registerAll() },
		shown: func(r designRun) string {
			r.do("alice", "setup-dht 3 alice", "setup-dht SUCCESS")
			return "" // from the first line typed
		},
	},
	{
		name: "dht-complete", title: "dht-complete: the flush follows the stores round the ring, each node commits, then dht-complete",
		flags: []string{"--acks", "show"}, // the flush waits for the stores' acks
		setup: func(r designRun) { r.registerAll() },
		shown: func(r designRun) string {
			r.do("alice", "setup-dht 3 alice", "setup-dht SUCCESS")
			return "alice:send:flush"
		},
	},
	{
		name: "query-dht", title: "query-dht: walk the ring to the node the hash names",
		setup: setupRing,
		shown: func(r designRun) string {
			_, free := r.ring()
			u := free[0]
			out := r.do(u, "query-dht "+u+" Republic of Zimbabwe", "query-dht SUCCESS")
			if out[0].Answer.Hops != 2 {
				r.t.Fatalf("want a query of 2 hops, got %q: pick another Long Name", out[0])
			}
			r.do(u, "query-dht "+u+" Atlantis", "query-dht FAILURE")
			return "" // from the first line typed
		},
	},
	{
		name: "leave-dht", title: "leave-dht: teardown, reset-id, reset-left/right, rebuild, dht-rebuilt",
		setup: setupRing,
		shown: func(r designRun) string {
			members, _ := r.ring()
			r.do(members[1], "leave-dht "+members[1], "leave-dht SUCCESS")
			return "" // from the first line typed
		},
	},
	{
		name: "dht-rebuilt", title: "dht-rebuilt: the flush is back at the new leader, which reports to the leaver",
		flags: []string{"--acks", "show"},
		setup: setupRing,
		shown: func(r designRun) string {
			members, _ := r.ring()
			r.do(members[1], "leave-dht "+members[1], "leave-dht SUCCESS")
			// The last node of the new ring is the leaver's left neighbour; it
			// forwarded one flush in setup, the second is the rebuild's.
			return members[0] + ":send:flush@2"
		},
	},
	{
		name: "join-dht", title: "join-dht: join to the leader, teardown, reset-id for the larger ring, set-id and reset-right, rebuild, dht-rebuilt",
		setup: setupRing,
		shown: func(r designRun) string {
			_, free := r.ring()
			out := r.do(free[0], "join-dht "+free[0], "join-dht SUCCESS")
			if len(out) != 2 || !strings.HasPrefix(out[1].String(), "dht-rebuilt SUCCESS: joined as id 3 of a ring of 4, led by alice") {
				r.t.Fatalf("join-dht printed %q", out)
			}
			return "" // from the first line typed
		},
	},
	{
		name: "deregister", title: "deregister: only a Free user; its peer then exits",
		setup: setupRing,
		shown: func(r designRun) string {
			members, free := r.ring()
			r.do(members[1], "deregister "+members[1], "deregister FAILURE")
			r.do(free[0], "deregister "+free[0], "deregister SUCCESS")
			return "" // from the first line typed
		},
	},
	{
		name: "teardown-dht", title: "teardown-dht alice: the teardown goes round, teardown-complete",
		setup: setupRing,
		shown: func(r designRun) string {
			r.do("alice", "teardown-dht alice", "teardown-dht SUCCESS")
			return "" // from the first line typed
		},
	},
	{
		name: "teardown-complete", title: "teardown-complete: the teardown is back at the leader, and the torn-downs",
		setup: setupRing,
		shown: func(r designRun) string {
			members, _ := r.ring()
			r.do("alice", "teardown-dht alice", "teardown-dht SUCCESS")
			return members[len(members)-1] + ":send:teardown"
		},
	},
	{
		name: "resume", title: "resume: a member killed (kill -9) and restarted on its file rejoins, takes back its place and table, and answers a query",
		setup: setupRing,
		shown: func(r designRun) string {
			// The member the hash gives queryLongName, so that the query
			// after the resume is answered by it.
			members, free := r.ring()
			name := members[dataset.ID(dataset.Pos(queryLongName), len(members))]
			from := r.nextSend(name, "register") // the rejoin
			out := r.restart(name)
			if len(out) == 0 || !strings.HasPrefix(out[0].String(), "resume SUCCESS: "+name) || !strings.Contains(out[0].String(), "its table taken back") {
				r.t.Fatalf("%s: the resume printed %q", name, out)
			}
			out = r.do(free[0], "query-dht "+free[0]+" "+queryLongName, "query-dht SUCCESS")
			if out[0].Answer.Node != name {
				r.t.Fatalf("the query was answered by %s, want the resumed %s", out[0].Answer.Node, name)
			}
			return from
		},
	},
	{
		name: "heal", title: "heal: a member killed for good is offline after --dead-after, and the server has the ring healed (set-id, stores, flush, healed), then a query",
		setup: setupRing,
		shown: func(r designRun) string {
			members, free := r.ring()
			gone := members[1]
			r.kill(gone)
			r.settleHeal(gone)
			if m, _ := r.ring(); len(m) != len(members)-1 {
				r.t.Fatalf("the ring after the heal is %q", m)
			}
			r.do(free[0], "query-dht "+free[0]+" "+queryLongName, "query-dht SUCCESS")
			return "server:event:heal"
		},
	},
}

// restart is a kill -9 of user name's peer and a new one started on its
// file (simnet.Sim.Restart); it runs the network until the resume is done
// and returns what the new process printed.
func (r designRun) restart(name string) []app.Result {
	r.t.Helper()
	if !r.sim.Restart(name) {
		r.t.Fatalf("%s: nothing to restart", name)
	}
	p := r.sim.Process(name)
	before := len(p.Printed)
	for i := 0; !p.Core.Idle() || r.sim.Busy(); i++ {
		if i == 1_000_000 || !r.sim.Step() {
			r.t.Fatalf("%s never resumed (printed %q; %v)", name, p.Printed[before:], r.sim.Err())
		}
	}
	return slices.Clone(p.Printed[before:])
}

// kill is a kill -9 of user name's peer for good: it sends nothing more,
// and what is sent to it is lost.
func (r designRun) kill(name string) {
	r.sim.Down(r.sim.Process(name).Addr)
	r.sim.Remove(name)
}

// settleHeal runs the network (virtual time: the --dead-after the server
// waits costs nothing) until the server counts the ring healed without
// gone and nothing is in flight.
func (r designRun) settleHeal(gone string) {
	r.t.Helper()
	for i := 0; ; i++ {
		d := r.sim.Server().Snapshot().DHT
		if d.Phase == state.PhaseReady && !slices.Contains(d.Members, gone) && !r.sim.Busy() {
			return
		}
		if i == 1_000_000 || !r.sim.Step() {
			r.t.Fatalf("the ring never healed without %s (DHT %+v; %v)", gone, d, r.sim.Err())
		}
	}
}

// runDesignScript runs sc and writes its trace, as --trace-json would, to
// path. It returns the --from of the diagram.
func runDesignScript(t *testing.T, sc designScript, data []dataset.Record, path string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sim := simnet.New(designSeed, designServer)
	sim.SetTrace(newJSONTrace(f, slog.LevelDebug))
	for i, u := range designUsers {
		sim.AddPeer(u, designAddr(i), data)
	}
	start := ""
	r := designRun{t: t, sim: sim, inputs: map[string]int{}, start: &start, trace: path}
	sc.setup(r)
	r.shown = true
	if from := sc.shown(r); from != "" {
		return from
	}
	return start
}

// TestDesignDiagrams re-runs the scripted run behind every diagram of
// docs/DESIGN.md and draws it with `dht diagram`: a diagram that differs
// from the committed one fails the test, so the document cannot drift from
// the code. go test ./cmd/dht -run TestDesignDiagrams -update rewrites them.
func TestDesignDiagrams(t *testing.T) {
	data, err := dataset.Load(designData)
	if err != nil {
		t.Fatalf("load dataset: %v", err)
	}
	for _, sc := range designScripts {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			trace := filepath.Join(dir, sc.name+".jsonl")
			from := runDesignScript(t, sc, data, trace)
			args := []string{"dht", "diagram", "--title", sc.title,
				"--mermaid", filepath.Join(dir, sc.name+".mmd"), "--svg", filepath.Join(dir, sc.name+".svg")}
			if from != "" {
				args = append(args, "--from", from)
			}
			args = append(append(args, sc.flags...), trace)
			var out, errOut bytes.Buffer
			if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
				t.Fatalf("%q: exit %d: %s", args, code, errOut.String())
			}
			for _, ext := range []string{".mmd", ".svg"} {
				got, err := os.ReadFile(filepath.Join(dir, sc.name+ext))
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, filepath.Join(docsDiagrams, sc.name+ext), got)
			}
		})
	}
}

// queryLongName is the query of the query-dht diagram, whose walk the
// pictures of the ring draw.
const queryLongName = "Republic of Zimbabwe"

// designRing is a picture of the ring in docs/DESIGN.md: the files a
// scripted run leaves, drawn by `dht ring`. run returns the picture's
// title and the flags that draw a query's walk.
type designRing struct {
	name string
	run  func(r designRun) (title string, flags []string)
}

// queryFrom asks for queryLongName as query-dht does and returns the
// member the server made the query start at, read from the answer: the
// answering node's id less the hops.
func queryFrom(r designRun) string {
	r.t.Helper()
	members, free := r.ring()
	out := r.do(free[0], "query-dht "+free[0]+" "+queryLongName, "query-dht SUCCESS")
	id, hops := out[0].Answer.NodeID, out[0].Answer.Hops
	n := len(members)
	return members[((id-hops)%n+n)%n]
}

var designRings = []designRing{
	{
		name: "ring-setup",
		run: func(r designRun) (string, []string) {
			setupRing(r)
			return "the ring after setup-dht 3 alice, and the walk of query-dht's query",
				[]string{"--query", queryLongName, "--from", queryFrom(r)}
		},
	},
	{
		name: "ring-leave",
		run: func(r designRun) (string, []string) {
			setupRing(r)
			from := queryFrom(r)
			members, _ := r.ring()
			leaver := members[1]
			r.do(leaver, "leave-dht "+leaver, "leave-dht SUCCESS")
			if members, _ = r.ring(); !slices.Contains(members, from) {
				from = members[0]
			}
			return fmt.Sprintf("the same ring after leave-dht %s, and the same query", leaver),
				[]string{"--query", queryLongName, "--from", from}
		},
	},
	{
		name: "ring-join",
		run: func(r designRun) (string, []string) {
			setupRing(r)
			from := queryFrom(r)
			_, free := r.ring()
			joiner := free[0]
			r.do(joiner, "join-dht "+joiner, "join-dht SUCCESS")
			return fmt.Sprintf("the same ring after join-dht %s, and the same query", joiner),
				[]string{"--query", queryLongName, "--from", from}
		},
	},
}

// TestDesignRings runs the scripted run behind every picture of the ring
// in docs/DESIGN.md, writes the bbolt files the processes would have, and
// draws them with `dht ring`: a picture that differs from the committed
// one fails the test, and so does a ring whose files disagree.
func TestDesignRings(t *testing.T) {
	data, err := dataset.Load(designData)
	if err != nil {
		t.Fatalf("load dataset: %v", err)
	}
	for _, dr := range designRings {
		t.Run(dr.name, func(t *testing.T) {
			dir := t.TempDir()
			sim := simnet.New(designSeed, designServer)
			for i, u := range designUsers {
				sim.AddPeer(u, designAddr(i), data)
			}
			title, flags := dr.run(designRun{t: t, sim: sim, inputs: map[string]int{}, start: new(string)})
			if err := sim.WriteFiles(dir); err != nil {
				t.Fatal(err)
			}
			peers, err := filepath.Glob(filepath.Join(dir, "dht-peer-*.db"))
			if err != nil || len(peers) == 0 {
				t.Fatalf("no peer files in %s: %v", dir, err)
			}
			svg := filepath.Join(dir, dr.name+".svg")
			args := append([]string{"dht", "ring", "--title", title, "--svg", svg}, flags...)
			args = append(append(args, filepath.Join(dir, "dht-server.db")), peers...)
			var out, errOut bytes.Buffer
			if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
				t.Fatalf("%q: exit %d: %s", args, code, errOut.String())
			}
			t.Logf("dht ring printed:\n%s", out.String())
			if strings.Contains(out.String(), "warning:") {
				t.Errorf("the files of a correct run disagree:\n%s", out.String())
			}
			got, err := os.ReadFile(svg)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join(docsDiagrams, dr.name+".svg"), got)
		})
	}
}

// checkGolden compares got with the committed file at golden, or rewrites
// it with -update.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *updateDocs {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/dht -run 'TestDesign|TestStateDiagrams' -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the code draws now; if the change is meant, rerun with -update and review the picture\n%s",
			golden, firstDiff(string(want), string(got)))
	}
}

// firstDiff shows the first line where want and got differ.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  committed: %s\n  now:       %s", i+1, wl, gl)
		}
	}
	return ""
}

// The design document shows every diagram, and the commands behind them.
func TestDesignDocShowsEveryDiagram(t *testing.T) {
	doc, err := os.ReadFile(designDoc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range designScripts {
		names = append(names, sc.name)
	}
	for _, dr := range designRings {
		names = append(names, dr.name)
	}
	for _, sd := range stateDiagrams {
		names = append(names, sd.name)
	}
	for _, name := range names {
		img := regexp.MustCompile(`!\[[^\]]*\]\(diagrams/` + regexp.QuoteMeta(name) + `\.svg\)`)
		if !img.Match(doc) {
			t.Errorf("docs/DESIGN.md does not show diagrams/%s.svg", name)
		}
	}
	// Every picture in docs/diagrams/ is one a test draws.
	files, err := filepath.Glob(filepath.Join(docsDiagrams, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		name := strings.TrimSuffix(base, filepath.Ext(base))
		if !slices.Contains(names, name) || filepath.Ext(base) == ".mmd" && !slices.ContainsFunc(designScripts, func(sc designScript) bool { return sc.name == name }) {
			t.Errorf("docs/diagrams/%s is drawn by no test: remove it, or add its run", base)
		}
	}
}

const (
	readmeDoc   = "../../README.md"
	sessionPlay = "../../examples/session.play"
	// readmeSessionMark is the comment right above the README's transcript.
	readmeSessionMark = "<!-- The lines of `dht play examples/session.play`"
)

// readmeSession returns the lines of the README's worked session: the code
// block that follows readmeSessionMark.
func readmeSession(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile(readmeDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), readmeSessionMark)
	if !ok {
		t.Fatalf("README.md has no %q above its worked session", readmeSessionMark)
	}
	_, block, ok := strings.Cut(after, "```text\n")
	if ok {
		block, _, ok = strings.Cut(block, "\n```")
	}
	if !ok {
		t.Fatal("README.md: no ```text block after the worked session's comment")
	}
	return strings.Split(block, "\n")
}

var (
	playTyped   = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_-]*)> (.*)$`)
	anyLoopback = regexp.MustCompile(`127\.0\.0\.1 \d+`)
)

// asTerminals turns what play printed into what the users' terminals show,
// in the order typed: USER> LINE becomes the peer's prompt and LINE, and
// play's summary goes. Every line typed must name its user, so that the
// README's one block says whose terminal each command is typed in.
func asTerminals(t *testing.T, out string) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.HasPrefix(l, "# ") {
			continue
		}
		if m := playTyped.FindStringSubmatch(l); m != nil {
			if !slices.Contains(strings.Fields(m[2]), m[1]) {
				t.Errorf("%s types %q, which does not name %s: the README could not say whose terminal it is", m[1], m[2], m[1])
			}
			l = peerPrompt + m[2]
		}
		lines = append(lines, l)
	}
	return lines
}

// TestReadmeSession proves the README's worked session true: play runs
// examples/session.play (the server's choices seeded) with the real server
// and peers, and what it prints must be the README's transcript line for
// line, the ports aside.
func TestReadmeSession(t *testing.T) {
	want := readmeSession(t)
	got := asTerminals(t, playExample(t, sessionPlay, filepath.Join(t.TempDir(), "files")))
	norm := func(lines []string) string {
		return anyLoopback.ReplaceAllString(strings.Join(lines, "\n"), "127.0.0.1 PORT")
	}
	if w, g := norm(want), norm(got); w != g {
		t.Errorf("README.md's worked session is not what dht play examples/session.play prints; make them the same text (committed: README.md; now: play)\n%s",
			firstDiff(w, g))
	}
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dht/dataset"
	"dht/internal/loopback"
)

// The end-to-end tests run the real binary: a server and peers as separate
// processes talking UDP on 127.0.0.1.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the binary the tests built (dhtBinary): its folder,
// outside any test's own, was left in $TMPDIR by every run, 14 MB each.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func dhtBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dht-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dht")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// datasetPath is the repository's copy of the dataset, the one the binary
// embeds.
func datasetPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../dataset/StatsCountry.csv")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freePorts finds n distinct free UDP ports on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ps, err := loopback.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	ports := make([]int, n)
	for i, p := range ps {
		ports[i] = int(p)
	}
	return ports
}

// proc is one dht process with its stdin, and its stdout and stderr as line
// channels.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    chan string
	errs   chan string
	waited chan struct{}
	err    error
}

const lineWait = 60 * time.Second // only a guard against hangs, never a measurement

func startProc(t *testing.T, name, dir string, args ...string) *proc {
	t.Helper()
	return startProcIn(t, name, dir, nil, args...)
}

// startProcIn is startProc with stdin read from a file (a file or a
// terminal) instead of a pipe that send writes to; nil: a pipe.
func startProcIn(t *testing.T, name, dir string, stdin *os.File, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, out: make(chan string, 4096), errs: make(chan string, 1<<16), waited: make(chan struct{})}
	p.cmd = exec.Command(dhtBinary(t), args...)
	p.cmd.Dir = dir
	var err error
	if stdin != nil {
		p.cmd.Stdin = stdin
	} else if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// DHT_E2E_TRACES=DIR keeps every process's stdout and stderr in DIR
	// (one file per process and stream), to read after a failure.
	var tee [2]*os.File
	if d := os.Getenv("DHT_E2E_TRACES"); d != "" {
		for i, s := range []string{"out", "err"} {
			f, err := os.Create(filepath.Join(d, fmt.Sprintf("%s.%s.%d.%s", t.Name(), name, p.cmd.Process.Pid, s)))
			if err != nil {
				t.Fatal(err)
			}
			tee[i] = f
		}
	}
	var wg sync.WaitGroup
	pump := func(r io.Reader, ch chan string) {
		defer wg.Done()
		var f *os.File
		if ch == p.out {
			f = tee[0]
		} else {
			f = tee[1]
		}
		if f != nil {
			defer f.Close()
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if f != nil {
				fmt.Fprintf(f, "%s %s\n", time.Now().Format("15:04:05.000000"), sc.Text())
			}
			select {
			case ch <- sc.Text():
			default: // a full trace channel drops lines rather than block the process
			}
		}
		close(ch)
	}
	wg.Add(2)
	go pump(stdout, p.out)
	go pump(stderr, p.errs)
	go func() {
		wg.Wait()
		p.err = p.cmd.Wait()
		close(p.waited)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	select {
	case <-p.waited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.waited
}

func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: write %q: %v", p.name, line, err)
	}
}

func (p *proc) line() string {
	p.t.Helper()
	select {
	case l, ok := <-p.out:
		if !ok {
			p.t.Fatalf("%s: stdout closed", p.name)
		}
		return l
	case <-time.After(lineWait):
		p.t.Fatalf("%s: no output line", p.name)
	}
	return ""
}

// expect reads the next result line and checks its prefix.
func (p *proc) expect(prefix string) string {
	p.t.Helper()
	l := p.line()
	if !strings.HasPrefix(l, prefix) {
		p.t.Fatalf("%s: got %q, want a line starting %q", p.name, l, prefix)
	}
	return l
}

// do sends a command and checks its first result line.
func (p *proc) do(line, prefix string) string {
	p.t.Helper()
	p.send(line)
	return p.expect(prefix)
}

// waitTrace waits for a stderr line containing s.
func (p *proc) waitTrace(s string) {
	p.t.Helper()
	p.waitTraceWithout(s, "")
}

// waitTraceWithout is waitTrace that fails at a line containing not (if
// not empty) before it, and returns the line.
func (p *proc) waitTraceWithout(s, not string) string {
	p.t.Helper()
	deadline := time.After(lineWait)
	for {
		select {
		case l, ok := <-p.errs:
			if !ok {
				p.t.Fatalf("%s: stderr closed before %q", p.name, s)
			}
			if not != "" && strings.Contains(l, not) {
				p.t.Fatalf("%s: stderr line %q before %q", p.name, l, s)
			}
			if strings.Contains(l, s) {
				return l
			}
		case <-deadline:
			p.t.Fatalf("%s: no trace line with %q", p.name, s)
		}
	}
}

func (p *proc) wait() error {
	p.t.Helper()
	select {
	case <-p.waited:
		return p.err
	case <-time.After(lineWait):
		p.t.Fatalf("%s did not exit", p.name)
	}
	return nil
}

var resultRe = regexp.MustCompile(`^query-dht SUCCESS: found at node ([A-Za-z]+) \(id (\d+)\) after (\d+) hops?$`)

// queryAll asks for every record and checks the node id against the hash
// for a ring of n, and every field; it returns the records found per node.
func queryAll(t *testing.T, p *proc, user string, recs []dataset.Record, n int) map[string]int {
	t.Helper()
	perNode := map[string]int{}
	for _, r := range recs {
		m := resultRe.FindStringSubmatch(p.do("query-dht "+user+" "+r.LongName, "query-dht SUCCESS"))
		if m == nil {
			t.Fatalf("%q: unexpected result line", r.LongName)
		}
		id, _ := strconv.Atoi(m[2])
		if want := dataset.ID(r.Pos(), n); id != want {
			t.Fatalf("%q answered by id %d, want %d", r.LongName, id, want)
		}
		for i, f := range r.Fields() {
			if got, want := p.line(), dataset.Headers[i]+": "+f; got != want {
				t.Fatalf("%q: got %q, want %q", r.LongName, got, want)
			}
		}
		perNode[m[1]]++
	}
	return perNode
}

func ringMembers(setupLine string) []string {
	return strings.Fields(setupLine[strings.LastIndex(setupLine, ": ")+2:])
}

// e2eUsers are the users of the end-to-end tests, registered from
// ports[1:] in order.
var e2eUsers = []string{"alice", "bob", "carol", "dave", "erin"}

// e2eServer starts the binary's server on 127.0.0.1:sport with its file
// server.db in dir, with flags added first, and waits until it listens
// (a server whose trace is silenced is not waited for).
func e2eServer(t *testing.T, dir, sport string, flags ...string) *proc {
	t.Helper()
	s := startProc(t, "server", dir, append(append([]string{"server"}, flags...), "--db", "server.db", "--addr", "127.0.0.1", sport)...)
	if !slices.Contains(flags, "--quiet") {
		s.waitTrace("msg=listening")
	}
	return s
}

// e2ePeers starts a peer for each of e2eUsers, with flags(i) added first,
// and registers it at ports[i+1].
func e2ePeers(t *testing.T, dir, sport string, ports []int, flags func(i int) []string) map[string]*proc {
	t.Helper()
	peers := map[string]*proc{}
	for i, u := range e2eUsers {
		args := append(append([]string{"peer"}, flags(i)...), "--data", datasetPath(t), "127.0.0.1", sport)
		p := startProc(t, u, dir, args...)
		peers[u] = p
		p.do(fmt.Sprintf("register %s 127.0.0.1 %d", u, ports[i+1]), "register SUCCESS")
	}
	return peers
}

// e2eFree is the first of e2eUsers a setup left out of ring.
func e2eFree(t *testing.T, ring []string) string {
	t.Helper()
	for _, u := range e2eUsers {
		if !slices.Contains(ring, u) {
			return u
		}
	}
	t.Fatalf("no Free user outside %v", ring)
	return ""
}

// e2eOutside is e2eUsers a setup left out of ring, in order.
func e2eOutside(ring []string) []string {
	var free []string
	for _, u := range e2eUsers {
		if !slices.Contains(ring, u) {
			free = append(free, u)
		}
	}
	return free
}

// noFlags is e2ePeers' flags for peers with none.
func noFlags(int) []string { return nil }

// e2eSetup gives an end-to-end test a folder, the dataset and six free
// ports (the server's first).
func e2eSetup(t *testing.T) (dir string, recs []dataset.Record, ports []int) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	recs, err := dataset.Load(datasetPath(t))
	if err != nil {
		t.Fatal(err)
	}
	return t.TempDir(), recs, freePorts(t, 6)
}

func TestBinaryEndToEnd(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	startServer := func() *proc { return e2eServer(t, dir, sport) }
	server := startServer()
	users := e2eUsers
	peers := e2ePeers(t, dir, sport, ports, noFlags)
	// FAILURE rules reach the user through the real server.
	peers["bob"].do("register bob 127.0.0.1 "+strconv.Itoa(ports[2]), "register SUCCESS") // a rejoin: the same name from its own address
	peers["bob"].do("setup-dht 9 bob", "setup-dht FAILURE: only 5 users are registered")
	peers["bob"].do("teardown-dht alice", "teardown-dht FAILURE: a request for alice must come from its registered address")
	peers["bob"].do("frobnicate", "frobnicate FAILURE: unknown command")
	// A register that fails, refused by the server (the name is taken) or
	// by the socket (the port is in use), leaves no table file behind.
	elsewhere := t.TempDir()
	mallory := startProc(t, "mallory", elsewhere, "peer", "--data", datasetPath(t), "127.0.0.1", sport)
	mallory.do("register alice 127.0.0.1 "+strconv.Itoa(freePorts(t, 1)[0]), "register FAILURE")
	mallory.do("register zed 127.0.0.1 "+strconv.Itoa(ports[1]), "register FAILURE: cannot bind 127.0.0.1:"+strconv.Itoa(ports[1])+": bind: address already in use (another process has that port: register with another PORT)")
	mallory.do("register zed 198.51.100.1 "+strconv.Itoa(ports[1]), "register FAILURE: cannot bind 198.51.100.1:"+strconv.Itoa(ports[1])+": bind: cannot assign requested address (198.51.100.1 is not an address of this host)")
	// The loopback's broadcast address binds, as a host's would; no answer
	// would come back to it.
	mallory.do("register zed 127.255.255.255 "+strconv.Itoa(ports[1]), "register FAILURE: cannot bind 127.255.255.255:"+strconv.Itoa(ports[1])+": 127.255.255.255 is the broadcast address of lo's network 127.0.0.0/8, not one host's address")
	if files, err := filepath.Glob(filepath.Join(elsewhere, "*")); err != nil || len(files) != 0 {
		t.Fatalf("failed registers left %v (%v)", files, err)
	}
	mallory.stdin.Close()
	if err := mallory.wait(); err != nil {
		t.Fatalf("mallory, never registered, ended its input: %v", err)
	}

	ring := ringMembers(peers["alice"].do("setup-dht 4 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	if len(ring) != 4 || ring[0] != "alice" {
		t.Fatalf("ring %v", ring)
	}
	free := ""
	for _, u := range users {
		if !strings.Contains(" "+strings.Join(ring, " ")+" ", " "+u+" ") {
			free = u
		}
	}
	queryAll(t, peers[free], free, recs, 4)
	peers[free].do("query-dht "+free+" Republic of Nowhere", `query-dht FAILURE: "Republic of Nowhere" not found`)
	// The Long Name may also come on the next line.
	peers[free].send("query-dht " + free)
	peers[free].send("Aruba")
	peers[free].expect("query-dht SUCCESS")
	for range dataset.NumFields {
		peers[free].line()
	}

	// The server is killed and restarted: nothing lost.
	server.kill()
	server = startServer()
	peers[free].do("query-dht "+free+" Aruba", "query-dht SUCCESS")
	for range dataset.NumFields {
		peers[free].line()
	}

	// A middle node leaves, then the leader.
	middle := ring[2]
	peers[middle].do("leave-dht "+middle, "leave-dht SUCCESS")
	peers[middle].expect("dht-rebuilt SUCCESS: new leader " + ring[3])
	counts := queryAll(t, peers[middle], middle, recs, 3)
	checkCounts(t, counts, []string{ring[3], ring[0], ring[1]}, recs)

	leader := ring[3]
	peers[leader].do("leave-dht "+leader, "leave-dht SUCCESS")
	peers[leader].expect("dht-rebuilt SUCCESS: new leader " + ring[0])
	counts = queryAll(t, peers[leader], leader, recs, 2)
	checkCounts(t, counts, []string{ring[0], ring[1]}, recs)

	// A wait in progress survives a server crash: stop the only other member
	// so the teardown stalls, kill the server while it waits for
	// teardown-complete, restart it, let the member go on.
	newLeader, other := ring[0], ring[1]
	pauseProcess(t, peers[other].cmd.Process)
	peers[newLeader].do("teardown-dht "+newLeader, "teardown-dht SUCCESS")
	server.kill()
	server = startServer()
	resumeProcess(t, peers[other].cmd.Process)
	peers[newLeader].expect("teardown-complete SUCCESS")

	// Deregister ends the peer process.
	peers[free].do("deregister "+free, "deregister SUCCESS")
	if err := peers[free].wait(); err != nil {
		t.Fatalf("%s exited with %v after deregister", free, err)
	}

	// A second DHT after teardown; SIGTERM, or SIGHUP (the terminal
	// closed), leaves every table file intact, and the peer exits 0.
	var rest []string
	for _, u := range users {
		if u != free {
			rest = append(rest, u)
		}
	}
	ring2 := ringMembers(peers[rest[0]].do("setup-dht 3 "+rest[0], "setup-dht SUCCESS"))
	peers[rest[0]].expect("dht-complete SUCCESS")
	for i, u := range rest {
		sig := []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP}[i%2]
		if err := peers[u].cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		// Its trace ends saying why.
		why := map[syscall.Signal]string{syscall.SIGTERM: "terminated", syscall.SIGHUP: "hangup"}[sig]
		if l := peers[u].waitTraceWithout(`why="`+why+` signal received"`, ""); !strings.Contains(l, "msg=exit node="+u+" local=127.0.0.1:") {
			t.Fatalf("%s's trace ends %q, want its exit", u, l)
		}
		if err := peers[u].wait(); err != nil {
			t.Fatalf("%s exited with %v after %v", u, err, sig)
		}
	}
	total := 0
	for id, u := range ring2 {
		total += checkPeerFile(t, filepath.Join(dir, "dht-peer-"+u+".db"), u, id, 3)
	}
	if total != len(recs) {
		t.Fatalf("second ring holds %d records, want %d", total, len(recs))
	}
	server.kill()
	out, err := exec.Command(dhtBinary(t), "inspect", "--json", filepath.Join(dir, "server.db")).Output()
	if err != nil {
		t.Fatalf("inspect server: %v", err)
	}
	var srv struct {
		Kind  string `json:"kind"`
		Users []struct {
			Name, State string
		} `json:"users"`
		DHT struct {
			Leader string `json:"leader"`
		} `json:"dht"`
	}
	if err := json.Unmarshal(out, &srv); err != nil || srv.Kind != "server" || len(srv.Users) != 4 || srv.DHT.Leader != rest[0] {
		t.Fatalf("server file: %v %s", err, out)
	}
}

// checkCounts compares records found per node with what the hash says for
// a ring in that order.
func checkCounts(t *testing.T, got map[string]int, ring []string, recs []dataset.Record) {
	t.Helper()
	want := map[string]int{}
	for _, r := range recs {
		want[ring[dataset.ID(r.Pos(), len(ring))]]++
	}
	for _, name := range ring {
		if got[name] != want[name] {
			t.Fatalf("node %s answered %d records, the hash gives it %d (got %v, want %v)", name, got[name], want[name], got, want)
		}
	}
}

// checkPeerFile inspects a stopped peer's file and checks every record sits
// in the slot its Long Name hashes to at the node the hash names.
func checkPeerFile(t *testing.T, path, name string, id, n int) int {
	t.Helper()
	out, err := exec.Command(dhtBinary(t), "inspect", "--json", path).Output()
	if err != nil {
		t.Fatalf("inspect %s: %v", path, err)
	}
	var rep struct {
		Kind     string `json:"kind"`
		Name     string `json:"name"`
		ID       *int   `json:"id"`
		RingSize *int   `json:"ring_size"`
		Slots    []struct {
			Pos     int                 `json:"pos"`
			Records []map[string]string `json:"records"`
		} `json:"slots"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Kind != "peer" || rep.Name != name || rep.ID == nil || *rep.ID != id || rep.RingSize == nil || *rep.RingSize != n {
		t.Fatalf("%s: %s", path, out[:min(len(out), 300)])
	}
	count := 0
	for _, s := range rep.Slots {
		for _, r := range s.Records {
			ln := r["Long Name"]
			if !strings.ContainsRune(ln, '\uFFFD') && (dataset.Pos(ln) != s.Pos || dataset.ID(s.Pos, n) != id) {
				t.Fatalf("%s: %q in slot %d of node %d", path, ln, s.Pos, id)
			}
			count++
		}
	}
	return count
}

// TestBinaryLossy runs every process with --fault-loss 0.2 --fault-dup 0.05:
// a fifth of all datagrams vanish and some arrive twice, yet setup, all 241
// queries, a leave and a teardown complete with every record in its place.
func TestBinaryLossy(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	faults := func(seed int) []string {
		return []string{"--quiet", "--fault-loss", "0.2", "--fault-dup", "0.05", "--fault-seed", strconv.Itoa(seed)}
	}
	e2eServer(t, dir, sport, faults(1)...)
	users := e2eUsers
	peers := e2ePeers(t, dir, sport, ports, func(i int) []string { return append([]string{"--rto", "10ms"}, faults(i+2)...) })
	ring := ringMembers(peers["alice"].do("setup-dht 4 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	free := ""
	for _, u := range users {
		if !strings.Contains(" "+strings.Join(ring, " ")+" ", " "+u+" ") {
			free = u
		}
	}
	checkCounts(t, queryAll(t, peers[free], free, recs, 4), ring, recs)
	peers[ring[1]].do("leave-dht "+ring[1], "leave-dht SUCCESS")
	peers[ring[1]].expect("dht-rebuilt SUCCESS: new leader " + ring[2])
	peers[ring[2]].do("teardown-dht "+ring[2], "teardown-dht SUCCESS")
	peers[ring[2]].expect("teardown-complete SUCCESS")
}

// A peer whose stdout reader has gone (a closed pipe) goes on: results it
// cannot write are dropped, and it keeps serving its commands and its ring,
// here register and then deregister, after which it exits with status 0.
// (os.Stdout would have been killed by SIGPIPE at its first result.)
func TestBinaryPeerOutlivesItsStdoutReader(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 2)
	sport := fmt.Sprint(ports[0])
	srv := e2eServer(t, dir, sport)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dhtBinary(t), "peer", "--quiet", "--db", "alice.db", "127.0.0.1", sport)
	cmd.Dir, cmd.Stdout = dir, w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r.Close() // nobody reads the peer's stdout any more
	fmt.Fprintf(in, "register alice 127.0.0.1 %d\nderegister alice\n", ports[1])
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the peer ended with %v; want status 0 after deregister\n%s", err, stderr.String())
		}
	case <-time.After(lineWait):
		cmd.Process.Kill()
		t.Fatalf("the peer did not exit after deregister\n%s", stderr.String())
	}
	in.Close()
	srv.waitTrace("type=deregister")
}

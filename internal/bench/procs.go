package bench

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"dht/dataset"
	"dht/internal/loopback"
	"dht/internal/rawpipe"
)

// ProcReport is what one run of dht bench --processes measured: every node,
// the server and every querier a dht process of its own, typed at through
// its stdin and read from its stdout, as a user's terminal would. Every
// ratio is to floors measured the same way in the same run. With --runs,
// each figure is the median over the runs.
type ProcReport struct {
	Mode     string `json:"mode"` // "processes"
	Peers    int    `json:"peers"`
	Queriers int    `json:"queriers"`
	Records  int    `json:"records"`
	Dataset  string `json:"dataset"`
	Runs     int    `json:"runs"`
	CPUs     int    `json:"cpus"`

	Floor ProcFloor `json:"floor"`

	Setup    Phase `json:"setup"`
	Leave    Phase `json:"leave"`
	Teardown Phase `json:"teardown"`

	// Single and Concurrent: FloorRatio is the median over queries of
	// latency / (legs × hop), legs = hops + 4 (query-dht, its reply, the
	// query, hops forwards, the answer).
	Single     QueryReport `json:"query_single"`
	Concurrent QueryReport `json:"query_concurrent"`
	// Ahead is Concurrent's queries with every querier's lines typed at
	// once, as a script piped into dht peer types them: each peer has
	// several queries in the ring at once. Its latencies are from the
	// phase's start, so only the rate, the answers and the CPU are shown.
	Ahead QueryReport `json:"query_typed_ahead"`

	// Over the whole run, summed over the processes (each writes its
	// counters when it stops).
	Datagrams      float64 `json:"datagrams"`
	Bytes          float64 `json:"bytes"`
	Retransmits    float64 `json:"retransmits"`
	RetransmitPct  float64 `json:"retransmit_percent"` // of the datagrams sent
	DupsSuppressed float64 `json:"dups_suppressed"`
	GaveUp         float64 `json:"gave_up"`
	// PeakRSSMB is the sum over the processes of each one's peak
	// resident set (VmHWM), 0 where /proc is missing.
	PeakRSSMB float64 `json:"peak_rss_mb_sum"`

	// Spread is [lowest, highest] over the runs of the target figures
	// (nil for one run).
	Spread map[string][2]float64 `json:"spread,omitempty"`
}

// ProcFloor is what the machine does at best between processes, measured
// in the same run.
type ProcFloor struct {
	HopUS   float64 `json:"hop_us"`       // a token round a ring of Peers processes, per hop
	RTTUS   float64 `json:"rtt_us"`       // ping-pong between two processes
	FsyncUS float64 `json:"fdatasync_us"` // one fdatasync of a 4 KiB write, in the folder of the tables
	// ParallelCommitUS is Peers commits at once, each two 4 KiB writes
	// (a page and the meta page) and one fdatasync, as the store commits,
	// to a file of its own, until the last is done: what the nodes'
	// commits in parallel cost on this disk. Shown, in no floor (the
	// floors count one fdatasync for them).
	ParallelCommitUS float64 `json:"parallel_commits_us,omitempty"`
	// PipeUS is a line written to a child's stdin and read back from its
	// stdout: what the driver adds to every command it times. Shown, in no
	// floor.
	PipeUS float64 `json:"pipe_rtt_us"`
	// HopCPUUS is the CPU time a relay of the token ring spends on a hop
	// (woken, read, send, asleep again): the least a datagram costs the
	// machine between processes, which bounds how many queries a second
	// the CPUs can carry.
	HopCPUUS float64 `json:"hop_cpu_us,omitempty"`
}

// Phase is a command's time against its floor: the commits that must
// follow one another on its critical path times the fdatasync floor, plus
// the datagrams on it times the hop floor.
type Phase struct {
	MS        float64 `json:"ms"`
	Commits   int     `json:"serial_commits"`
	Datagrams int     `json:"serial_datagrams"`
	FloorMS   float64 `json:"floor_ms"`
	Ratio     float64 `json:"floor_ratio"`
	// CPUMS is the CPU time the server and the peers spent from the
	// command typed to its result read, summed over them (the leave's and
	// the teardown's over the server and the ring's nodes, the others
	// idle); CPUBoundMS is
	// that over the machine's CPUs: the command cannot take less while
	// they share them. Both 0 where /proc is missing.
	CPUMS      float64 `json:"cpu_ms,omitempty"`
	CPUBoundMS float64 `json:"cpu_bound_ms,omitempty"`
}

// The critical paths the floors count (n: the ring's size before the
// command). Every command waits for the server's commit of its request and
// of its completion; the nodes commit in parallel, so one node's commit
// follows them.
const (
	setupPath = "3 commits (the server's setup-dht, the last node's table, the server's dht-complete); " +
		"n+4 datagrams (setup-dht and its reply, n-1 store hops to the last node, the committed's hop from it to the leader once its commit is done, dht-complete and its reply)"
	teardownPath = "3 commits (the server's teardown-dht, the nodes' emptied tables, in parallel, the server's teardown-complete); " +
		"n+4 datagrams (teardown-dht and its reply, n-1 hops to the last node, the torn-down's hop from it to the leader once its commit is done, teardown-complete and its reply)"
	leavePath = "3 commits (the server's leave-dht, the nodes' new tables, in parallel, the server's dht-rebuilt); " +
		"3n+6 datagrams (leave-dht and its reply, the teardown's n hops, reset-id's n, reset-left/right 1, rebuild-dht 1, n-2 store hops, " +
		"the committed's hop from the last node to the new leader, rebuilt to the leaver, dht-rebuilt and its reply)"
)

func (p *Phase) set(ms float64, commits, datagrams int, f ProcFloor) {
	p.MS, p.Commits, p.Datagrams = ms, commits, datagrams
	p.FloorMS = (float64(commits)*f.FsyncUS + float64(datagrams)*f.HopUS) / 1000
	p.Ratio = p.MS / p.FloorMS
}

// setCPU sets the phase's CPU from the server's and the peers' threads'
// CPU time (cpuMeter) before and after it, on a machine of cpus CPUs.
func (p *Phase) setCPU(before, after []float64, cpus int) {
	ns := cpuDelta(before, after)
	if ns <= 0 || cpus <= 0 {
		return // no /proc here
	}
	p.CPUMS = ns / 1e6
	p.CPUBoundMS = p.CPUMS / float64(cpus)
}

// ProcStats is what a server or peer started with --stats writes when it
// stops: its socket's traffic and its link's counters.
type ProcStats struct {
	Datagrams      uint64 `json:"datagrams"`
	Bytes          uint64 `json:"bytes"`
	Stores         uint64 `json:"stores"`
	Retransmits    uint64 `json:"retransmits"`
	DupsSuppressed uint64 `json:"dups_suppressed"`
	GaveUp         uint64 `json:"gave_up"`
}

// child is one dht process the bench runs, typed at through its stdin.
type child struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	// stderr is the file its stderr goes to, quoted when it fails.
	stderr string
}

// procs are the processes of one run. Stop ends them all; a watchdog kills
// them if a run outlasts benchTimeout, which ends every read.
type procs struct {
	bin, dir string
	mu       sync.Mutex
	all      []*child
	stopped  bool
}

func (ps *procs) start(name string, args ...string) (*child, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.stopped {
		return nil, errors.New("bench: stopped")
	}
	c := &child{name: name, stderr: filepath.Join(ps.dir, name+".stderr")}
	c.cmd = exec.Command(ps.bin, args...)
	c.cmd.Dir = ps.dir
	c.cmd.SysProcAttr = childAttr() // ended with the bench, even by SIGKILL
	errf, err := os.Create(c.stderr)
	if err != nil {
		return nil, err
	}
	defer errf.Close()
	c.cmd.Stderr = errf
	// The pipes are the bench's own, and it reads and writes its ends
	// through the poller with raw system calls (rawpipe), as dht peer
	// does its stdin and stdout: os/exec's pipes are read with Syscall,
	// which wakes this process's sysmon for every line, CPU that 16
	// queriers' lines take from the cluster on the same CPUs.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c.cmd.Stdin, c.cmd.Stdout = inR, outW
	err = c.cmd.Start()
	inR.Close() // the child's ends: it has them now
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("bench: start %s: %w", ps.bin, err)
	}
	c.in, c.out = newEnds(inW, outR)
	ps.all = append(ps.all, c)
	return c, nil
}

// ends are the bench's ends of a child's stdin and stdout: raw pipes where
// rawpipe makes them, the files as they are elsewhere.
type ends struct {
	w      io.Writer
	files  []*os.File
	pipes  []*rawpipe.Pipe
	closed bool
}

func newEnds(in, out *os.File) (io.WriteCloser, *bufio.Reader) {
	e := &ends{w: in, files: []*os.File{in, out}}
	var r io.Reader = out
	if p := rawpipe.Of(in); p != nil {
		e.w = p
		e.pipes = append(e.pipes, p)
	}
	if p := rawpipe.Of(out); p != nil {
		r = p
		e.pipes = append(e.pipes, p)
	}
	return e, bufio.NewReaderSize(r, 64<<10)
}

func (e *ends) Write(b []byte) (int, error) { return e.w.Write(b) }

// Close closes both ends: the child reads the end of its input, and a read
// of its output returns.
func (e *ends) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	for _, p := range e.pipes {
		p.Restore()
	}
	for _, f := range e.files {
		f.Close()
	}
	return nil
}

// stop ends every process: SIGTERM (a peer closes its file cleanly and
// writes its counters), then SIGKILL for any still there after a while.
func (ps *procs) stop() {
	ps.mu.Lock()
	all := ps.all
	ps.stopped = true
	ps.mu.Unlock()
	for _, c := range all {
		c.cmd.Process.Signal(syscall.SIGTERM)
		c.in.Close()
	}
	for _, c := range all {
		done := make(chan struct{})
		go func() {
			c.cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	}
}

// kill ends every process at once (the watchdog, a signal), and starts
// no more.
func (ps *procs) kill() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.stopped = true
	for _, c := range ps.all {
		c.cmd.Process.Kill()
	}
}

// line reads one line of the child's stdout, without its end.
func (c *child) line() (string, error) {
	s, err := c.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("%s: stdout: %w%s", c.name, err, tail(c.stderr))
	}
	return strings.TrimSuffix(s, "\n"), nil
}

// tail is the end of a stderr file, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	if len(b) == 0 {
		return ""
	}
	return "; its stderr ends:\n" + string(b)
}

// followUp is the second result of the commands that have one once the
// first succeeded.
var followUp = map[string]string{"setup-dht": "dht-complete", "leave-dht": "dht-rebuilt", "teardown-dht": "teardown-complete"}

// do types line and returns what the peer printed for it: one result line
// (and a found record's nine lines), or two for the commands with a
// follow-up. A FAILURE is an error.
func (c *child) do(line string) ([]string, error) {
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		return nil, fmt.Errorf("%s: stdin: %w", c.name, err)
	}
	return c.result(line)
}

// result reads what the peer printed for line, as do says.
func (c *child) result(line string) ([]string, error) {
	typed, _, _ := strings.Cut(line, " ")
	var lines []string
	for want := typed; want != ""; {
		l, err := c.line()
		if err != nil {
			return lines, err
		}
		lines = append(lines, l)
		cmd, rest, _ := strings.Cut(l, " ")
		if cmd != want || !strings.HasPrefix(rest, "SUCCESS") {
			return lines, fmt.Errorf("%s: %q printed %q", c.name, line, l)
		}
		if cmd == "query-dht" {
			for range dataset.NumFields {
				f, err := c.line()
				if err != nil {
					return lines, err
				}
				lines = append(lines, f)
			}
		}
		want = ""
		if cmd == typed {
			want = followUp[typed]
		}
	}
	return lines, nil
}

// RunProcesses measures once with every process separate: the floors, then
// setup-dht of a ring of Peers, the queries from one user and from
// Queriers users at once, leave-dht and teardown-dht, all typed at dht
// peer processes of o.Binary.
func RunProcesses(o Options) (r ProcReport, err error) {
	r.Mode, r.Peers, r.Queriers, r.Records, r.Dataset, r.Runs, r.CPUs = "processes", o.Peers, o.Queriers, o.Data.Len(), o.DataName, 1, runtime.NumCPU()
	dir, err := os.MkdirTemp("", "dht-bench-procs-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	ps := &procs{bin: o.Binary, dir: dir}
	defer ps.stop()
	watchdog := time.AfterFunc(benchTimeout, ps.kill)
	defer watchdog.Stop()
	// Stopped from outside: every read ends as the watchdog's do.
	stopKill := context.AfterFunc(o.ctx(), ps.kill)
	defer stopKill()

	if r.Floor.HopUS, r.Floor.HopCPUUS, err = procRingHop(ps, o.Peers, max(2000/o.Peers, 20)); err != nil {
		return r, err
	}
	hop2, _, err := procRingHop(ps, 2, 1000)
	if err != nil {
		return r, err
	}
	r.Floor.RTTUS = 2 * hop2
	if r.Floor.FsyncUS, err = fsyncFloor(dir, 200); err != nil {
		return r, err
	}
	if r.Floor.ParallelCommitUS, err = parallelCommits(dir, o.Peers, 50); err != nil {
		return r, err
	}
	if r.Floor.PipeUS, err = pipeFloor(ps, 1000); err != nil {
		return r, err
	}
	// From here the bench only types at its children and reads them, on
	// one P, as a dht peer runs: with a second, the runtime woke another
	// thread for each reader a pipe made ready, and that thread spun
	// looking for work on the CPUs the cluster runs on.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))

	dataArgs := []string{}
	if o.DataFile != "" {
		dataArgs = []string{"--data", o.DataFile}
	} else if _, ok := o.Data.(dataset.SyntheticSource); ok {
		path := filepath.Join(dir, "records.csv")
		if err := writeCSV(path, o.Data); err != nil {
			return r, err
		}
		dataArgs = []string{"--data", path}
	}
	ports, err := loopback.FreePorts(o.Peers + o.Queriers + 1)
	if err != nil {
		return r, err
	}
	srvPort := strconv.Itoa(int(ports[0]))
	profile := func(name string) []string {
		if o.ProfileDir == "" {
			return nil
		}
		return []string{"--cpuprofile", filepath.Join(o.ProfileDir, name+".pprof")}
	}
	stats := func(name string) string { return filepath.Join(dir, name+".stats") }
	srvArgs := append([]string{"server", "--quiet", "--db", filepath.Join(dir, "dht-server.db"), "--stats", stats("server")}, profile("server")...)
	if _, err := ps.start("server", append(srvArgs, srvPort)...); err != nil {
		return r, err
	}
	if err := awaitBound(ports[0], 10*time.Second); err != nil {
		return r, err
	}
	users := make([]*child, o.Peers+o.Queriers)
	byName := map[string]*child{}
	for i := range users {
		name := userName(i)
		args := []string{"peer", "--quiet", "--db", filepath.Join(dir, "dht-peer-"+name+".db"), "--stats", stats(name)}
		if o.Window > 0 {
			args = append(args, "--window", strconv.Itoa(o.Window))
		}
		args = append(append(append(args, dataArgs...), profile(name)...), loopback.Addr.String(), srvPort)
		if users[i], err = ps.start(name, args...); err != nil {
			return r, err
		}
		byName[name] = users[i]
	}
	for i, u := range users {
		if _, err := u.do(fmt.Sprintf("register %s %s %d", u.name, loopback.Addr, ports[i+1])); err != nil {
			return r, err
		}
	}

	// The server and every peer: what a command's CPU is summed over.
	cluster := []int{}
	for _, c := range ps.all {
		if c.name == "server" || byName[c.name] != nil {
			cluster = append(cluster, c.cmd.Process.Pid)
		}
	}
	meter := newCPUMeter(cluster)
	defer func() { meter.close() }()
	leader := users[0]
	before := meter.read()
	start := time.Now()
	out, err := leader.do(fmt.Sprintf("setup-dht %d %s", o.Peers, leader.name))
	if err != nil {
		return r, err
	}
	n := o.Peers
	r.Setup.set(ms(time.Since(start)), 3, n+4, r.Floor)
	meter.refresh()
	r.Setup.setCPU(before, meter.read(), r.CPUs)
	_, ringText, _ := strings.Cut(out[0], ": ring of ")
	ring := strings.Fields(ringText)
	if len(ring) != n+1 {
		return r, fmt.Errorf("bench: setup-dht printed %q", out[0])
	}
	ring = ring[1:]
	var free []*child
	for _, u := range users {
		if !slices.Contains(ring, u.name) {
			free = append(free, u)
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e))
	order := queryOrder(rng, o.Data.Len(), o.Queries)
	roles := map[string][]int{"bench": {os.Getpid()}}
	for _, c := range ps.all {
		switch {
		case c.name == "server":
			roles["server"] = append(roles["server"], c.cmd.Process.Pid)
		case slices.Contains(ring, c.name):
			roles["nodes"] = append(roles["nodes"], c.cmd.Process.Pid)
		case byName[c.name] != nil:
			roles["queriers"] = append(roles["queriers"], c.cmd.Process.Pid)
		}
	}
	aheadOrder := order
	if o.QueriesAhead > 0 {
		aheadOrder = queryOrder(rng, o.Data.Len(), o.QueriesAhead)
	}
	for _, ph := range []struct {
		rep   *QueryReport
		users []*child
		ahead bool
	}{{&r.Single, free[:1], false}, {&r.Concurrent, free[:o.Queriers], false}, {&r.Ahead, free[:o.Queriers], true}} {
		before := usageOf(roles)
		if ph.ahead {
			*ph.rep, err = procQueryAhead(ph.users, o.Data, aheadOrder)
		} else {
			*ph.rep, err = procQueryPhase(ph.users, o.Data, order, r.Floor.HopUS)
		}
		if err != nil {
			return r, err
		}
		ph.rep.setUsage(before, usageOf(roles))
	}
	if !o.SkipLeave {
		leaver, newLeader := byName[ring[1]], byName[ring[2%len(ring)]]
		// The leave and the teardown are the ring's and the server's.
		meter.close()
		meter = newCPUMeter(slices.Concat(roles["server"], roles["nodes"]))
		before = meter.read()
		start = time.Now()
		if _, err := leaver.do("leave-dht " + leaver.name); err != nil {
			return r, err
		}
		r.Leave.set(ms(time.Since(start)), 3, 3*n+6, r.Floor)
		// Threads started during the leave (rare) are opened after the
		// teardown and count there: the teardown is typed at once.
		after := meter.read()
		r.Leave.setCPU(before, after, r.CPUs)
		start = time.Now()
		if _, err := newLeader.do("teardown-dht " + newLeader.name); err != nil {
			return r, err
		}
		r.Teardown.set(ms(time.Since(start)), 3, (n-1)+4, r.Floor)
		meter.refresh()
		r.Teardown.setCPU(after, meter.read(), r.CPUs)
	}

	for _, c := range ps.all {
		r.PeakRSSMB += childStatusMB(c.cmd.Process.Pid, "VmHWM")
	}
	ps.stop()
	for _, c := range ps.all {
		b, err := os.ReadFile(stats(c.name))
		if err != nil {
			continue // the floors' processes write none
		}
		var s ProcStats
		if err := json.Unmarshal(b, &s); err != nil {
			return r, fmt.Errorf("bench: %s: %w", c.name, err)
		}
		r.Datagrams += float64(s.Datagrams)
		r.Bytes += float64(s.Bytes)
		r.Retransmits += float64(s.Retransmits)
		r.DupsSuppressed += float64(s.DupsSuppressed)
		r.GaveUp += float64(s.GaveUp)
	}
	if r.Datagrams > 0 {
		r.RetransmitPct = 100 * r.Retransmits / r.Datagrams
	}
	return r, nil
}

// awaitBound waits until a process has bound UDP port on 127.0.0.1. It
// does not bind the port to find out (the server could then find it taken
// and exit): it sends a byte there from a connected socket, and the port
// is bound once that no longer comes back refused (an ICMP port
// unreachable) within a short wait. The server drops the byte as not a
// datagram of ours.
func awaitBound(port uint16, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback.Addr, port)))
	if err != nil {
		return fmt.Errorf("bench: probe port %d: %w", port, err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte{0}); err == nil {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			_, err = c.Read(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil // not refused: something listens there
			}
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("bench: the server did not bind port %d within %v", port, limit)
}

// procQueryPhase runs the queries in order, spread over the users (each
// asks one at a time), and checks every answer against the dataset.
func procQueryPhase(users []*child, data dataset.Source, order []int, hopUS float64) (QueryReport, error) {
	q := QueryReport{Queriers: len(users), Queries: len(order)}
	samples := make([][]querySample, len(users))
	found := make([]int, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	start := time.Now()
	for i, u := range users {
		wg.Go(func() {
			for j := i; j < len(order); j += len(users) {
				rec := data.Record(order[j])
				t0 := time.Now()
				out, err := u.do("query-dht " + u.name + " " + rec.LongName)
				us := float64(time.Since(t0)) / float64(time.Microsecond)
				if err != nil {
					errs[i] = err
					return
				}
				hops, ok := checkLines(out, rec)
				if ok {
					found[i]++
				}
				samples[i] = append(samples[i], querySample{us, hops})
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return q, err
	}
	q.summarise(found, samples, elapsed, hopUS, 4)
	return q, nil
}

// procQueryAhead runs the queries spread over the users as a script piped
// into each would type them: all of a user's lines written at once, its
// answers read as they come, in the order typed, and every one checked
// against the dataset.
func procQueryAhead(users []*child, data dataset.Source, order []int) (QueryReport, error) {
	q := QueryReport{Queriers: len(users), Queries: len(order)}
	found, hops := make([]int, len(users)), make([]int, len(users))
	errs := make([]error, 2*len(users))
	var wg sync.WaitGroup
	start := time.Now()
	for i, u := range users {
		var lines []string
		for j := i; j < len(order); j += len(users) {
			lines = append(lines, "query-dht "+u.name+" "+data.Record(order[j]).LongName)
		}
		wg.Go(func() {
			if _, err := io.WriteString(u.in, strings.Join(lines, "\n")+"\n"); err != nil {
				errs[2*i] = fmt.Errorf("%s: stdin: %w", u.name, err)
			}
		})
		wg.Go(func() {
			for k, j := 0, i; j < len(order); k, j = k+1, j+len(users) {
				out, err := u.result(lines[k])
				if err != nil {
					errs[2*i+1] = err
					return
				}
				h, ok := checkLines(out, data.Record(order[j]))
				if ok {
					found[i]++
				}
				hops[i] += h
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return q, err
	}
	for i := range users {
		q.Found += found[i]
		q.MeanHops += float64(hops[i])
	}
	q.MeanHops /= float64(len(order))
	q.PerSecond = float64(len(order)) / elapsed.Seconds()
	return q, nil
}

// cpuUsage is CPU time and context switches summed over processes.
type cpuUsage struct {
	cpuNS, switches, faults float64
}

// usage sums the CPU time (schedstat) and the context switches (status)
// of every thread of the processes pids; a process gone is left out. Linux
// only: elsewhere it is zero, and the report leaves the figures out.
func usage(pids []int) (u cpuUsage) {
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			// After the command's name: state is field 3, minflt 10,
			// majflt 12.
			if _, rest, ok := strings.Cut(string(b), ") "); ok {
				if f := strings.Fields(rest); len(f) > 9 {
					minflt, _ := strconv.ParseFloat(f[7], 64)
					majflt, _ := strconv.ParseFloat(f[9], 64)
					u.faults += minflt + majflt
				}
			}
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
		for _, t := range tasks {
			if b, err := os.ReadFile(filepath.Join(t, "schedstat")); err == nil {
				if f := strings.Fields(string(b)); len(f) > 0 {
					ns, _ := strconv.ParseFloat(f[0], 64)
					u.cpuNS += ns
				}
			}
			b, err := os.ReadFile(filepath.Join(t, "status"))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(line, ":")
				if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
					n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
					u.switches += n
				}
			}
		}
	}
	return u
}

// usageOf is usage of each role's processes.
func usageOf(roles map[string][]int) map[string]cpuUsage {
	u := make(map[string]cpuUsage, len(roles))
	for role, pids := range roles {
		u[role] = usage(pids)
	}
	return u
}

// setUsage sets the phase's CPU time and context switches a query, in
// all and by role.
func (q *QueryReport) setUsage(before, after map[string]cpuUsage) {
	if q.Queries == 0 {
		return
	}
	var cpu, switches, faults float64
	for role, a := range after {
		b := before[role]
		if a.cpuNS == 0 {
			return // no /proc here
		}
		if q.CPUUSByRole == nil {
			q.CPUUSByRole = map[string]float64{}
		}
		q.CPUUSByRole[role] = (a.cpuNS - b.cpuNS) / 1e3 / float64(q.Queries)
		cpu += a.cpuNS - b.cpuNS
		switches += a.switches - b.switches
		faults += a.faults - b.faults
	}
	q.FaultsPerQuery = faults / float64(q.Queries)
	q.CPUUSPerQuery = cpu / 1e3 / float64(q.Queries)
	q.SwitchesPerQuery = switches / float64(q.Queries)
}

// checkLines reports the hop count of a query's printed answer and
// whether it found the record, every field byte for byte.
func checkLines(lines []string, rec dataset.Record) (hops int, ok bool) {
	if len(lines) != 1+dataset.NumFields {
		return 0, false
	}
	_, after, _ := strings.Cut(lines[0], ") after ")
	h, _, _ := strings.Cut(after, " hop")
	hops, err := strconv.Atoi(h)
	if err != nil {
		return 0, false
	}
	for i, f := range rec.Fields() {
		if lines[1+i] != dataset.Headers[i]+": "+f {
			return hops, false
		}
	}
	return hops, true
}

// procRingHop passes a token round a ring of n processes (this one and
// n-1 dht bench-floor relays), laps times, and returns the median time of
// one hop in microseconds (the median lap over n).
func procRingHop(ps *procs, n, laps int) (hopUS, cpuUS float64, err error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback.Addr, 0)))
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	relays := make([]*child, n-1)
	addrs := make([]netip.AddrPort, n-1)
	for i := range relays {
		if relays[i], err = ps.start(fmt.Sprintf("relay%d", i), "bench-floor", "relay"); err != nil {
			return 0, 0, err
		}
		defer relays[i].in.Close()
		l, err := relays[i].line()
		if err != nil {
			return 0, 0, err
		}
		if addrs[i], err = netip.ParseAddrPort(l); err != nil {
			return 0, 0, fmt.Errorf("bench: relay printed %q", l)
		}
	}
	own := netip.MustParseAddrPort(conn.LocalAddr().String())
	for i, r := range relays {
		next := own
		if i+1 < len(relays) {
			next = addrs[i+1]
		}
		if _, err := io.WriteString(r.in, next.String()+"\n"); err != nil {
			return 0, 0, err
		}
	}
	buf := make([]byte, 64)
	per := make([]float64, 0, laps)
	pids := make([]int, len(relays))
	for i, r := range relays {
		pids[i] = r.cmd.Process.Pid
	}
	var before cpuUsage
	for k := range laps + 5 {
		if k == 5 {
			before = usage(pids)
		}
		t0 := time.Now()
		if _, err := conn.WriteToUDPAddrPort(buf[:8], addrs[0]); err != nil {
			return 0, 0, err
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
			return 0, 0, fmt.Errorf("bench: the token did not come back round %d processes: %w", n, err)
		}
		if k >= 5 { // the first laps wake processes that have just started
			per = append(per, float64(time.Since(t0))/float64(time.Microsecond)/float64(n))
		}
	}
	if after := usage(pids); after.cpuNS > 0 {
		cpuUS = (after.cpuNS - before.cpuNS) / 1e3 / float64(laps*len(relays))
	}
	slices.Sort(per)
	return quantile(per, 0.5), cpuUS, nil
}

// pipeFloor is the median time of a line written to a child's stdin and
// read back from its stdout (dht bench-floor echo), in microseconds.
func pipeFloor(ps *procs, rounds int) (float64, error) {
	c, err := ps.start("echo", "bench-floor", "echo")
	if err != nil {
		return 0, err
	}
	defer c.in.Close()
	per := make([]float64, 0, rounds)
	for k := range rounds + 5 {
		t0 := time.Now()
		if _, err := io.WriteString(c.in, "query-dht usera Republic of Somewhere\n"); err != nil {
			return 0, err
		}
		if _, err := c.line(); err != nil {
			return 0, err
		}
		if k >= 5 {
			per = append(per, float64(time.Since(t0))/float64(time.Microsecond))
		}
	}
	slices.Sort(per)
	return quantile(per, 0.5), nil
}

// fsyncFloor is the median time of one fdatasync of a 4 KiB write (a
// bbolt page) in dir, the folder the tables are in, in microseconds; each
// write changes the file's modification time, as a commit's does
// (staleTimes).
func fsyncFloor(dir string, rounds int) (float64, error) {
	f, err := os.Create(filepath.Join(dir, "fsync-floor"))
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	// Written out once: the measured writes overwrite allocated blocks, as
	// a bbolt commit to a grown file does.
	if _, err := f.Write(page); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	per := make([]float64, 0, rounds)
	for i := range rounds {
		if err := staleTimes(f); err != nil {
			return 0, err
		}
		page[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(page, 0); err != nil {
			return 0, err
		}
		if err := fdatasync(f); err != nil {
			return 0, err
		}
		per = append(per, float64(time.Since(t0))/float64(time.Microsecond))
	}
	slices.Sort(per)
	return quantile(per, 0.5), nil
}

// staleTimes sets f's times far in the past, so that the next write
// changes its modification time, as every commit's write does: the
// store's commits come milliseconds apart, and the check before each one
// reads the file's times, after which Linux stamps the next change
// finely. A write that leaves the times as they were (the next one within
// the same tick of the clock, in a loop) spares the fdatasync the inode's
// write, on ext4 without a journal (the disk the bench was measured on) a
// third request to wait for. In a trace of block requests, 4 to 5 of 50
// fdatasyncs in such a loop wrote the inode, and every one with this.
func staleTimes(f *os.File) error {
	old := time.Unix(1, 0)
	return os.Chtimes(f.Name(), old, old)
}

// parallelCommits is the median time n goroutines, each with a file of its
// own, take to write two 4 KiB pages and fdatasync, started together,
// until the last is done. Each fdatasync is a system call of its own
// thread, as the commits of n processes are.
func parallelCommits(dir string, n, rounds int) (float64, error) {
	files := make([]*os.File, n)
	page := make([]byte, 4096)
	for i := range files {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("commit-floor-%d", i)))
		if err != nil {
			return 0, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		// Allocated once, as fsyncFloor's: the page and the meta page.
		if _, err := f.Write(append(page, page...)); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		files[i] = f
	}
	per := make([]float64, 0, rounds)
	errs := make([]error, n)
	for range rounds {
		for _, f := range files {
			if err := staleTimes(f); err != nil {
				return 0, err
			}
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, f := range files {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, len(page))
				<-start
				for k := range 2 {
					buf[0] = byte(k)
					if _, err := f.WriteAt(buf, int64(len(buf)*(1-k))); err != nil {
						errs[i] = err
						return
					}
				}
				if err := fdatasync(f); err != nil {
					errs[i] = err
					return
				}
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		per = append(per, float64(time.Since(t0))/float64(time.Microsecond))
		if err := errors.Join(errs...); err != nil {
			return 0, err
		}
	}
	slices.Sort(per)
	return quantile(per, 0.5), nil
}

// writeCSV writes a dataset as a CSV file dht peer --data reads.
func writeCSV(path string, data dataset.Source) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(bufio.NewWriterSize(f, 1<<16))
	w.Write(dataset.Headers[:])
	for i := range data.Len() {
		fs := data.Record(i).Fields()
		w.Write(fs[:])
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// childStatusMB reads a memory figure of process pid from /proc (0 where
// it is missing).
func childStatusMB(pid int, key string) float64 {
	return statusMB(fmt.Sprintf("/proc/%d/status", pid), key)
}

// MedianProc takes each figure's median over the runs (found: the lowest)
// and the spread of the target figures.
func MedianProc(rs []ProcReport) ProcReport {
	if len(rs) == 1 {
		return rs[0]
	}
	r := rs[0]
	r.Runs = len(rs)
	med := func(get func(*ProcReport) *float64) {
		v := make([]float64, len(rs))
		for i := range rs {
			v[i] = *get(&rs[i])
		}
		slices.Sort(v)
		*get(&r) = v[len(v)/2]
	}
	for _, f := range []func(*ProcReport) *float64{
		func(x *ProcReport) *float64 { return &x.Floor.HopUS },
		func(x *ProcReport) *float64 { return &x.Floor.RTTUS },
		func(x *ProcReport) *float64 { return &x.Floor.FsyncUS },
		func(x *ProcReport) *float64 { return &x.Floor.ParallelCommitUS },
		func(x *ProcReport) *float64 { return &x.Floor.PipeUS },
		func(x *ProcReport) *float64 { return &x.Floor.HopCPUUS },
		func(x *ProcReport) *float64 { return &x.Datagrams },
		func(x *ProcReport) *float64 { return &x.Bytes },
		func(x *ProcReport) *float64 { return &x.Retransmits },
		func(x *ProcReport) *float64 { return &x.RetransmitPct },
		func(x *ProcReport) *float64 { return &x.DupsSuppressed },
		func(x *ProcReport) *float64 { return &x.GaveUp },
		func(x *ProcReport) *float64 { return &x.PeakRSSMB },
	} {
		med(f)
	}
	for _, ph := range []func(*ProcReport) *Phase{
		func(x *ProcReport) *Phase { return &x.Setup },
		func(x *ProcReport) *Phase { return &x.Leave },
		func(x *ProcReport) *Phase { return &x.Teardown },
	} {
		med(func(x *ProcReport) *float64 { return &ph(x).MS })
		med(func(x *ProcReport) *float64 { return &ph(x).FloorMS })
		med(func(x *ProcReport) *float64 { return &ph(x).Ratio })
		med(func(x *ProcReport) *float64 { return &ph(x).CPUMS })
		med(func(x *ProcReport) *float64 { return &ph(x).CPUBoundMS })
	}
	for _, q := range []func(*ProcReport) *QueryReport{
		func(x *ProcReport) *QueryReport { return &x.Single },
		func(x *ProcReport) *QueryReport { return &x.Concurrent },
		func(x *ProcReport) *QueryReport { return &x.Ahead },
	} {
		med(func(x *ProcReport) *float64 { return &q(x).P50US })
		med(func(x *ProcReport) *float64 { return &q(x).P99US })
		med(func(x *ProcReport) *float64 { return &q(x).MaxUS })
		med(func(x *ProcReport) *float64 { return &q(x).PerSecond })
		med(func(x *ProcReport) *float64 { return &q(x).MeanHops })
		med(func(x *ProcReport) *float64 { return &q(x).FloorRatio })
		med(func(x *ProcReport) *float64 { return &q(x).CPUUSPerQuery })
		med(func(x *ProcReport) *float64 { return &q(x).SwitchesPerQuery })
		med(func(x *ProcReport) *float64 { return &q(x).FaultsPerQuery })
		if byRole := q(&r).CPUUSByRole; byRole != nil {
			byRole = maps.Clone(byRole) // r's map is the first run's
			for role := range byRole {
				v := make([]float64, len(rs))
				for i := range rs {
					v[i] = q(&rs[i]).CPUUSByRole[role]
				}
				slices.Sort(v)
				byRole[role] = v[len(v)/2]
			}
			q(&r).CPUUSByRole = byRole
		}
		for i := range rs {
			q(&r).Found = min(q(&r).Found, q(&rs[i]).Found)
		}
	}
	spread := func(get func(*ProcReport) float64) [2]float64 {
		lo, hi := get(&rs[0]), get(&rs[0])
		for i := range rs {
			lo, hi = min(lo, get(&rs[i])), max(hi, get(&rs[i]))
		}
		return [2]float64{lo, hi}
	}
	r.Spread = map[string][2]float64{
		"setup_ms":                     spread(func(x *ProcReport) float64 { return x.Setup.MS }),
		"setup_floor_ratio":            spread(func(x *ProcReport) float64 { return x.Setup.Ratio }),
		"query_single_floor_ratio":     spread(func(x *ProcReport) float64 { return x.Single.FloorRatio }),
		"query_concurrent_per_second":  spread(func(x *ProcReport) float64 { return x.Concurrent.PerSecond }),
		"query_typed_ahead_per_second": spread(func(x *ProcReport) float64 { return x.Ahead.PerSecond }),
		"leave_floor_ratio":            spread(func(x *ProcReport) float64 { return x.Leave.Ratio }),
		"teardown_floor_ratio":         spread(func(x *ProcReport) float64 { return x.Teardown.Ratio }),
	}
	return r
}

// PrintProcReport prints a --processes report as a table: every figure
// with its floor and ratio, and the formulas of the floors.
func PrintProcReport(w io.Writer, r ProcReport) {
	runs := ""
	if r.Runs > 1 {
		runs = fmt.Sprintf(", median of %d runs", r.Runs)
	}
	fmt.Fprintf(w, "dht bench --processes: %d peers, %s, %d records (%s)%s, %s/%s, %d CPUs\n",
		r.Peers, queriers(r.Queriers), r.Records, r.Dataset, runs, runtime.GOOS, runtime.GOARCH, r.CPUs)
	fmt.Fprintf(w, "every node, the server and every querier a dht process, typed at through stdin, read from stdout\n\n")
	spread := func(key, verb string) string {
		v, ok := r.Spread[key]
		if !ok {
			return ""
		}
		return fmt.Sprintf(" (runs "+verb+"–"+verb+")", v[0], v[1])
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "floor\thop (token round a ring of %d processes)\t%.1f µs\n", r.Peers, r.Floor.HopUS)
	if r.Floor.HopCPUUS > 0 {
		fmt.Fprintf(tw, "\tCPU a hop costs a relay of that ring\t%.1f µs\n", r.Floor.HopCPUUS)
	}
	fmt.Fprintf(tw, "\tping-pong between two processes\t%.1f µs\n", r.Floor.RTTUS)
	fmt.Fprintf(tw, "\tfdatasync of a 4 KiB write, the tables' disk\t%.0f µs\n", r.Floor.FsyncUS)
	if r.Floor.ParallelCommitUS > 0 {
		fmt.Fprintf(tw, "\t%d commits at once (2 page writes + fdatasync each, a file each), till the last (in no floor)\t%.0f µs\n", r.Peers, r.Floor.ParallelCommitUS)
	}
	fmt.Fprintf(tw, "\ta line to a process and back (in every command timed, in no floor)\t%.1f µs\n", r.Floor.PipeUS)
	phase := func(name string, p Phase, key string) {
		fmt.Fprintf(tw, "%s\ttime / floor\t%.2f ms / %.2f ms\n", name, p.MS, p.FloorMS)
		fmt.Fprintf(tw, "\tratio\t%.2f%s\n", p.Ratio, spread(key, "%.2f"))
		fmt.Fprintf(tw, "\tfloor = commits × fdatasync + datagrams × hop\t%d × %.0f µs + %d × %.1f µs\n", p.Commits, r.Floor.FsyncUS, p.Datagrams, r.Floor.HopUS)
		if p.CPUMS > 0 {
			fmt.Fprintf(tw, "\tCPU of the server and the peers, and that over the %d CPUs (× the floor)\t%.2f ms, %.2f ms (%.1f)\n", r.CPUs, p.CPUMS, p.CPUBoundMS, p.CPUBoundMS/p.FloorMS)
		}
	}
	phase("setup-dht → dht-complete", r.Setup, "setup_floor_ratio")
	for i, q := range []QueryReport{r.Single, r.Concurrent} {
		name := fmt.Sprintf("query-dht → answer, %d querier", q.Queriers)
		if q.Queriers != 1 {
			name += "s"
		}
		perSecond, ratio := "", ""
		if i == 0 {
			ratio = spread("query_single_floor_ratio", "%.2f")
		} else {
			perSecond = spread("query_concurrent_per_second", "%.0f")
		}
		fmt.Fprintf(tw, "%s\tp50 / p99 / max\t%.0f / %.0f / %.0f µs\n", name, q.P50US, q.P99US, q.MaxUS)
		fmt.Fprintf(tw, "\tqueries per second\t%.0f%s\n", q.PerSecond, perSecond)
		fmt.Fprintf(tw, "\tfound / asked, mean hops\t%d / %d, %.2f\n", q.Found, q.Queries, q.MeanHops)
		fmt.Fprintf(tw, "\tmedian of latency / ((hops + 4) × hop)\t%.2f%s\n", q.FloorRatio, ratio)
		if q.CPUUSPerQuery > 0 {
			fmt.Fprintf(tw, "\tCPU / context switches / page faults a query, every process and the bench\t%.0f µs / %.1f / %.2f\n", q.CPUUSPerQuery, q.SwitchesPerQuery, q.FaultsPerQuery)
			c := q.CPUUSByRole
			fmt.Fprintf(tw, "\tCPU a query: server / ring nodes / queriers / bench\t%.0f / %.0f / %.0f / %.0f µs\n", c["server"], c["nodes"], c["queriers"], c["bench"])
		}
		if i == 1 && r.Floor.HopCPUUS > 0 && q.MeanHops > 0 {
			fmt.Fprintf(tw, "\tat a relay's CPU a datagram, one wake-up each: CPUs / ((hops + 4) × CPU a hop)\t%d / (%.2f × %.1f µs) = %.0f/s\n",
				r.CPUs, q.MeanHops+4, r.Floor.HopCPUUS, float64(r.CPUs)*1e6/((q.MeanHops+4)*r.Floor.HopCPUUS))
		}
	}
	if q := r.Ahead; q.Queries > 0 {
		name := fmt.Sprintf("query-dht → answer, %d querier", q.Queriers)
		if q.Queriers != 1 {
			name += "s"
		}
		fmt.Fprintf(tw, "%s, typed ahead\tqueries per second\t%.0f%s\n", name, q.PerSecond, spread("query_typed_ahead_per_second", "%.0f"))
		fmt.Fprintf(tw, "\t(each querier's lines written at once, as a script's pipe)\t\n")
		fmt.Fprintf(tw, "\tfound / asked, mean hops\t%d / %d, %.2f\n", q.Found, q.Queries, q.MeanHops)
		if q.CPUUSPerQuery > 0 {
			fmt.Fprintf(tw, "\tCPU / context switches / page faults a query, every process and the bench\t%.0f µs / %.1f / %.2f\n", q.CPUUSPerQuery, q.SwitchesPerQuery, q.FaultsPerQuery)
			c := q.CPUUSByRole
			fmt.Fprintf(tw, "\tCPU a query: server / ring nodes / queriers / bench\t%.0f / %.0f / %.0f / %.0f µs\n", c["server"], c["nodes"], c["queriers"], c["bench"])
		}
	}
	if r.Leave.MS > 0 {
		phase("leave-dht → dht-rebuilt", r.Leave, "leave_floor_ratio")
		phase("teardown-dht → teardown-complete", r.Teardown, "teardown_floor_ratio")
	}
	fmt.Fprintf(tw, "whole run, all processes\tdatagrams / bytes sent\t%.0f / %.0f\n", r.Datagrams, r.Bytes)
	fmt.Fprintf(tw, "\tretransmissions (%% of datagrams) / duplicates suppressed / gave up\t%.0f (%.2f%%) / %.0f / %.0f\n", r.Retransmits, r.RetransmitPct, r.DupsSuppressed, r.GaveUp)
	fmt.Fprintf(tw, "\tpeak RSS, summed over the processes\t%.0f MB\n", r.PeakRSSMB)
	tw.Flush()
	fmt.Fprintf(w, "\ncritical paths (n is the ring before the command: %d for setup and leave, %d for the teardown, which follows the leave):\n  setup:    %s\n  teardown: %s\n  leave:    %s\n", r.Peers, r.Peers-1, setupPath, teardownPath, leavePath)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"dht/dataset"
	"dht/internal/bench"
)

// A tiny bench runs every phase and reports every figure; every record
// asked for is found. No timing is checked: the machine decides those.
func TestBenchSmoke(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"dht", "bench", "--peers", "3", "--queriers", "2", "--queries", "30", "--data", datasetPath(t), "--json", "--procs", "3"}
	if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var r bench.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if r.Peers != 3 || r.Queriers != 2 || r.Records != 241 || r.Runs != 1 || r.Procs != 3 {
		t.Errorf("report describes %d peers, %d queriers, %d records, %d runs, GOMAXPROCS %d", r.Peers, r.Queriers, r.Records, r.Runs, r.Procs)
	}
	if got := runtime.GOMAXPROCS(0); got == 3 && runtime.NumCPU() != 3 {
		t.Errorf("the bench left GOMAXPROCS at %d", got)
	}
	for _, q := range []bench.QueryReport{r.Single, r.Concurrent} {
		if q.Queries != 30 || q.Found != 30 {
			t.Errorf("%d queriers: found %d of %d", q.Queriers, q.Found, q.Queries)
		}
		if q.P50US <= 0 || q.P99US < q.P50US || q.MaxUS < q.P99US || q.PerSecond <= 0 || q.FloorRatio <= 0 {
			t.Errorf("query figures %+v", q)
		}
	}
	if r.Floor.OneHopUS <= 0 || r.Floor.RTTUS <= 0 || r.Floor.RunnerHopUS <= 0 || r.Setup.MS <= 0 || r.Setup.RecordHops <= 0 || r.Setup.StoreDatagrams <= 0 ||
		r.LeaveMS <= 0 || r.TeardownMS <= 0 || r.Datagrams <= 0 || r.Bytes <= 0 {
		t.Errorf("report %+v", r)
	}
	if runtime.GOOS == "linux" && (r.PeakAnonMB <= 0 || r.PeakAnonMB > r.PeakRSSMB) {
		t.Errorf("peak anonymous memory %.1f MB, peak RSS %.1f MB", r.PeakAnonMB, r.PeakRSSMB)
	}

	out.Reset()
	args = []string{"dht", "bench", "--peers", "3", "--queriers", "2", "--queries", "30", "--data", datasetPath(t)}
	if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"loopback floor", "setup-dht → dht-complete", "query-dht → answer, 1 querier", "30 / 30", "leave-dht → dht-rebuilt", "peak RSS", "anonymous, without the files"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// The loss sweep finds every record at every loss rate: the links recover
// what the faults drop.
func TestBenchLossSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("a lossy run takes seconds")
	}
	var out, errOut bytes.Buffer
	args := []string{"dht", "bench", "--loss-sweep", "--peers", "3", "--seed", "7", "--data", datasetPath(t), "--json"}
	if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rows []bench.SweepRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if r.Queries != 241 || r.Found != 241 {
			t.Errorf("loss %g: found %d of %d (%q)", r.Loss, r.Found, r.Queries, r.NotFound)
		}
		if r.Loss > 0 && (r.Lost == 0 || r.Retransmits == 0) {
			t.Errorf("loss %g: %d lost, %d retransmitted", r.Loss, r.Lost, r.Retransmits)
		}
	}
}

// A tiny --processes bench runs the server, every node and every querier
// as processes of the built binary, measures its floors, reports every
// figure with its floor and ratio, finds every record asked for, and
// leaves no process behind. No timing is checked.
func TestBenchProcesses(t *testing.T) {
	bin := dhtBinary(t)
	var out, errOut bytes.Buffer
	profiles := t.TempDir()
	args := []string{"dht", "bench", "--processes", "--bin", bin, "--peers", "3", "--queriers", "2", "--queries", "20", "--queries-ahead", "20",
		"--data", datasetPath(t), "--cpuprofile", profiles, "--json"}
	// The bench types at its children on one P, and gives the caller's
	// GOMAXPROCS back.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("the bench left GOMAXPROCS at %d, not the 3 it was given", got)
	}
	var r bench.ProcReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if r.Mode != "processes" || r.Peers != 3 || r.Queriers != 2 || r.Records != 241 || r.Runs != 1 {
		t.Errorf("report describes mode %q, %d peers, %d queriers, %d records, %d runs", r.Mode, r.Peers, r.Queriers, r.Records, r.Runs)
	}
	if f := r.Floor; f.HopUS <= 0 || f.RTTUS <= 0 || f.FsyncUS <= 0 || f.ParallelCommitUS <= 0 || f.PipeUS <= 0 || f.HopCPUUS <= 0 {
		t.Errorf("floors %+v", f)
	}
	for name, p := range map[string]bench.Phase{"setup": r.Setup, "leave": r.Leave, "teardown": r.Teardown} {
		if p.MS <= 0 || p.Commits <= 0 || p.Datagrams <= 0 || p.FloorMS <= 0 || p.Ratio <= 0 {
			t.Errorf("%s: %+v", name, p)
		}
		// What the command cost the server and the peers, and the least
		// time that takes on this machine's CPUs.
		if p.CPUMS <= 0 || math.Abs(p.CPUBoundMS*float64(r.CPUs)-p.CPUMS) > 1e-9*p.CPUMS {
			t.Errorf("%s: CPU %v ms, over %d CPUs %v ms", name, p.CPUMS, r.CPUs, p.CPUBoundMS)
		}
	}
	for i, q := range []bench.QueryReport{r.Single, r.Concurrent, r.Ahead} {
		if q.Queries != 20 || q.Found != 20 {
			t.Errorf("%d queriers: found %d of %d", q.Queriers, q.Found, q.Queries)
		}
		if q.PerSecond <= 0 || q.MeanHops < 0 || q.MeanHops > 2 {
			t.Errorf("query figures %+v", q)
		}
		// Typed ahead, a query's latency is not its own: none is given.
		if ahead := i == 2; ahead != (q.P50US == 0) || !ahead && (q.P99US < q.P50US || q.MaxUS < q.P99US || q.FloorRatio <= 0) {
			t.Errorf("query latencies %+v", q)
		}
		// What the phase cost: CPU in every role (every query wakes the
		// server, a node and its querier, and the bench types it), and
		// their sum.
		sum := 0.0
		for _, role := range []string{"server", "nodes", "queriers", "bench"} {
			if q.CPUUSByRole[role] <= 0 {
				t.Errorf("%d queriers: no CPU for %s: %v", q.Queriers, role, q.CPUUSByRole)
			}
			sum += q.CPUUSByRole[role]
		}
		if q.CPUUSPerQuery <= 0 || q.SwitchesPerQuery <= 0 || math.Abs(sum-q.CPUUSPerQuery) > 1e-6*q.CPUUSPerQuery {
			t.Errorf("%d queriers: CPU %v µs and %v switches a query, by role %v", q.Queriers, q.CPUUSPerQuery, q.SwitchesPerQuery, q.CPUUSByRole)
		}
	}
	if r.Datagrams <= 0 || r.Bytes <= 0 {
		t.Errorf("traffic: %v datagrams, %v bytes", r.Datagrams, r.Bytes)
	}
	// One profile per process of the cluster: the server and five peers.
	if ps, _ := filepath.Glob(filepath.Join(profiles, "*.pprof")); len(ps) != 6 {
		t.Errorf("profiles: %v", ps)
	}
	if left := processesOf(t, bin); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}

	out.Reset()
	args = []string{"dht", "bench", "--processes", "--bin", bin, "--peers", "2", "--queriers", "1", "--queries", "5", "--queries-ahead", "7", "--runs", "2"}
	if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"hop (token round a ring of 2 processes)", "ping-pong between two processes", "fdatasync", "floor = commits × fdatasync + datagrams × hop",
		"setup-dht → dht-complete", "query-dht → answer, 1 querier", "5 / 5", "7 / 7", "leave-dht → dht-rebuilt", "teardown-dht → teardown-complete", "(runs ", "critical paths",
		"CPU a hop costs a relay of that ring", "CPU / context switches / page faults a query", "query-dht → answer, 1 querier, typed ahead", "CPU a query: server / ring nodes / queriers / bench", "at a relay's CPU a datagram, one wake-up each",
		"2 commits at once (2 page writes + fdatasync each, a file each), till the last", "CPU of the server and the peers, and that over the"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// processesOf lists the running processes of the binary bin.
func processesOf(t *testing.T, bin string) []string {
	t.Helper()
	if runtime.GOOS != "linux" {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range ents {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && exe == bin {
			cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return found
}

// A bench stopped from outside (SIGINT, SIGTERM: Options.Ctx) ends its
// processes and removes its files, and gives no figures (a new user's
// review: a SIGTERM left 25 processes running and their folder).
func TestBenchStopsWhenTold(t *testing.T) {
	bin := dhtBinary(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	recs, _, err := dataset.LoadOrEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	o := bench.Options{Peers: 3, Queriers: 2, Queries: 20, QueriesAhead: 20, Seed: 1, Binary: bin,
		Data: dataset.Records(recs), DataName: "the dataset"}

	// Told before it starts: it starts nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.Ctx = ctx
	if _, err := bench.RunProcesses(o); err == nil {
		t.Fatal("RunProcesses ran to the end, stopped before it started")
	}
	if _, err := bench.Run(o); err == nil {
		t.Fatal("Run ran to the end, stopped before it started")
	}
	leftIn(t, tmp)

	// Told while its processes run: they end, and it returns.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	o.Ctx = ctx
	done := make(chan error, 1)
	go func() {
		_, err := bench.RunProcesses(o)
		done <- err
	}()
	var dir string
	for dir == "" {
		select {
		case err := <-done:
			t.Fatalf("RunProcesses returned (%v) before its processes were seen", err)
		default:
		}
		// Its first processes have their stderr files in its folder.
		if m, _ := filepath.Glob(filepath.Join(tmp, "dht-bench-procs-*", "*.stderr")); len(m) > 0 {
			dir = filepath.Dir(m[0])
		} else {
			runtime.Gosched()
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("RunProcesses gave figures, stopped while it ran")
	}
	// No process is left in its folder (every child's working directory).
	if runtime.GOOS == "linux" {
		procs, _ := filepath.Glob("/proc/[0-9]*/cwd")
		for _, p := range procs {
			if cwd, err := os.Readlink(p); err == nil && strings.HasPrefix(cwd, dir) {
				t.Errorf("%s is still running in the bench's folder", filepath.Dir(p))
			}
		}
	}
	leftIn(t, tmp)
}

// leftIn fails the test if a bench left a file or folder in dir.
func leftIn(t *testing.T, dir string) {
	t.Helper()
	if es, err := os.ReadDir(dir); err != nil || len(es) > 0 {
		t.Errorf("the bench left %v in its temporary folder (%v)", es, err)
	}
}

// Every output of a bench is checked, and every input read, before it
// measures anything or makes any file (a new user's review: --scaling
// wrote over a text file, and over a missing folder failed only after the
// minutes of its table; --cpuprofile was made before --data was read).
func TestBenchChecksBeforeItMeasures(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.WriteFile("notes.svg", []byte("my notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runDHT(t, "", "bench", "--scaling", "notes.svg")
	if want := "dht: --scaling notes.svg: the file exists and holds something else, not an SVG image"; code != 2 || out != "" || !strings.HasPrefix(errOut, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, want)
	}
	if b, _ := os.ReadFile("notes.svg"); string(b) != "my notes\n" {
		t.Errorf("notes.svg now holds %q", b)
	}
	code, out, errOut = runDHT(t, "", "bench", "--scaling", "nowhere/s.svg")
	if want := "dht: open nowhere/s.svg: no such file or directory\n"; code != 1 || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, want)
	}
	for _, args := range [][]string{
		{"bench", "--cpuprofile", "new.prof", "--data", "missing.csv"},
		{"bench", "--processes", "--cpuprofile", "profiles", "--data", "missing.csv"},
	} {
		code, out, errOut := runDHT(t, "", args...)
		if code != 1 || out != "" || !strings.Contains(errOut, "missing.csv") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and the missing file named", args, code, out, errOut)
		}
	}
	if es, _ := os.ReadDir("."); len(es) != 1 {
		t.Errorf("the refused benches left %v", es)
	}
}

// A number of queries the bench cannot hold in memory is refused as a
// usage error before anything runs (a review: --queries 4000000000 ended
// in the runtime's "fatal error: out of memory", exit 2 with a stack
// trace, its temporary folder left behind).
func TestBenchRefusesTooManyQueries(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{
		{"bench", "--queries", "10000001", "--data", "missing.csv"},
		{"bench", "--processes", "--bin", "missing-dht", "--queries", "10000001"},
		{"bench", "--processes", "--bin", "missing-dht", "--queries-ahead", "4000000000"},
	} {
		code, out, errOut := runDHT(t, "", args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "must be") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and the limit", args, code, out, errOut)
		}
	}
}

// A CPU profile that cannot be written (a full disk) fails the bench
// (a review: --cpuprofile /dev/full printed the figures with status 0).
func TestBenchProfileWriteFails(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	code, _, errOut := runDHT(t, "", "bench", "--peers", "2", "--queriers", "1", "--queries", "10", "--cpuprofile", "/dev/full")
	if code != 1 || !strings.Contains(errOut, "--cpuprofile /dev/full") {
		t.Errorf("exit %d, stderr %q; want 1 and the profile's write error", code, errOut)
	}
}

// A flag that applies to the other mode only is refused, not ignored (a
// review: --queries-ahead without --processes, and --procs with it, ran
// as if not given).
func TestBenchRefusesAFlagOfTheOtherMode(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--queries-ahead", "100", "--data", "missing.csv"},
		{"bench", "--processes", "--procs", "2", "--bin", "missing-dht"},
	} {
		code, out, errOut := runDHT(t, "", args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "--processes") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, naming --processes", args, code, out, errOut)
		}
	}
}

package bench

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The query order asks every record in turn, each pass shuffled, and a
// last partial pass asks distinct records.
func TestQueryOrder(t *testing.T) {
	if got := queryOrder(rand.New(rand.NewPCG(1, 2)), 0, 10); len(got) != 0 {
		t.Fatalf("no records, 10 queries: %v", got)
	}
	for _, c := range []struct{ records, n int }{{10, 25}, {1000, 30}, {241, 2410}, {5, 5}} {
		order := queryOrder(rand.New(rand.NewPCG(1, 2)), c.records, c.n)
		if len(order) != c.n {
			t.Fatalf("%d records, %d queries: %d asked", c.records, c.n, len(order))
		}
		for start := 0; start < c.n; start += c.records {
			pass := map[int]bool{}
			for _, i := range order[start:min(start+c.records, c.n)] {
				if i < 0 || i >= c.records || pass[i] {
					t.Fatalf("%d records, %d queries: pass from %d asks %d twice or out of range: %v", c.records, c.n, start, i, order)
				}
				pass[i] = true
			}
		}
	}
}

// The scaling figure draws setup and query time against N and setup time
// and peak anonymous memory against the records, each point labelled.
func TestScalingSVG(t *testing.T) {
	byN := []ScalingPoint{{Peers: 2, SetupMS: 6.5, QueryP50US: 80}, {Peers: 8, SetupMS: 11, QueryP50US: 120}}
	byRecords := []ScalingPoint{{Peers: 16, Records: 1000, SetupMS: 40, PeakAnonMB: 17}, {Peers: 16, Records: 100000, SetupMS: 3900, PeakAnonMB: 46}}
	path := t.TempDir() + "/scaling.svg"
	if err := WriteScalingSVG(path, byN, byRecords, "a note"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(b)
	for _, want := range []string{"ring size N (241 records)", "query p50, 1 querier (µs)", "records (synthetic), N = 16",
		"peak anonymous memory (MB)", ">3900<", ">46<", ">17<", "a note"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the figure lacks %q", want)
		}
	}
	var out bytes.Buffer
	PrintScaling(&out, byN, byRecords)
	if !strings.Contains(out.String(), "peak anon MB") || !strings.Contains(out.String(), "100000") {
		t.Errorf("table:\n%s", out.String())
	}
}

// Over several runs the report gives each figure's median, the spread of
// the target figures, and for found the worst run of each query phase on
// its own.
func TestMedianReport(t *testing.T) {
	run := func(setup, single, perSecond float64, foundSingle, foundConc int) Report {
		var r Report
		r.Setup.FloorRatio = setup
		r.Single = QueryReport{Queriers: 1, Queries: 241, Found: foundSingle, FloorRatio: single}
		r.Concurrent = QueryReport{Queriers: 16, Queries: 241, Found: foundConc, PerSecond: perSecond}
		return r
	}
	rs := []Report{
		run(1.9, 2.2, 18000, 200, 241), // a run whose single phase lost records
		run(1.3, 1.6, 25000, 241, 241),
		run(1.5, 1.8, 21000, 241, 239),
	}
	r := Median(rs)
	if r.Runs != 3 || r.Setup.FloorRatio != 1.5 || r.Single.FloorRatio != 1.8 || r.Concurrent.PerSecond != 21000 {
		t.Errorf("medians: runs %d, setup %v, single %v, per second %v; want 3, 1.5, 1.8, 21000",
			r.Runs, r.Setup.FloorRatio, r.Single.FloorRatio, r.Concurrent.PerSecond)
	}
	if r.Single.Found != 200 || r.Concurrent.Found != 239 {
		t.Errorf("found: single %d, concurrent %d; want each phase's worst run, 200 and 239", r.Single.Found, r.Concurrent.Found)
	}
	if r.Spread == nil || r.Spread.SetupRatio != [2]float64{1.3, 1.9} || r.Spread.SingleRatio != [2]float64{1.6, 2.2} ||
		r.Spread.PerSecond != [2]float64{18000, 25000} {
		t.Fatalf("spread %+v", r.Spread)
	}
	var b strings.Builder
	PrintReport(&b, r)
	for _, want := range []string{"1.50 (runs 1.30–1.90)", "1.80 (runs 1.60–2.20)", "21000 (runs 18000–25000)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
	if one := Median(rs[:1]); one.Spread != nil {
		t.Errorf("one run has a spread: %+v", one.Spread)
	}
}

// The floors' files have their times set back before each timed write, so
// that the write changes them, as every commit's write does (and the
// fdatasync writes the inode too, as a commit's does).
func TestFloorWritesChangeTheFileTimes(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "floor"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := staleTimes(f); err != nil {
		t.Fatal(err)
	}
	before, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if !before.ModTime().Equal(time.Unix(1, 0)) {
		t.Fatalf("times set back to %v, want %v", before.ModTime(), time.Unix(1, 0))
	}
	if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	after, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the write left the modification time at %v", after.ModTime())
	}
}

// A command's CPU is what the server and the peers spent on it, and its
// bound that over the machine's CPUs; over runs each is the median, and
// the table gives both with the bound's ratio to the floor. Without /proc
// (no CPU read) the phase has none, and the table leaves the line out.
func TestProcPhaseCPU(t *testing.T) {
	var p Phase
	p.set(8, 3, 12, ProcFloor{FsyncUS: 200, HopUS: 50}) // floor 1.2 ms
	// Three threads read before, one gone by the second reading, one
	// started in between (counted from its start).
	p.setCPU([]float64{1e6, 2e6, 5e6}, []float64{4e6, 9e6, -1, 3e6}, 2)
	if p.CPUMS != 13 || p.CPUBoundMS != 6.5 {
		t.Fatalf("CPU %v ms, bound %v ms; want 13 and 6.5", p.CPUMS, p.CPUBoundMS)
	}
	var none Phase
	none.setCPU(nil, nil, 2)
	if none.CPUMS != 0 || none.CPUBoundMS != 0 {
		t.Fatalf("no /proc: %+v", none)
	}
	runs := make([]ProcReport, 3)
	for i, cpu := range []float64{30, 10, 20} {
		runs[i].CPUs = 2
		runs[i].Setup.set(8, 3, 12, ProcFloor{FsyncUS: 200, HopUS: 50})
		runs[i].Setup.setCPU([]float64{0}, []float64{cpu * 1e6}, 2)
	}
	r := MedianProc(runs)
	if r.Setup.CPUMS != 20 || r.Setup.CPUBoundMS != 10 {
		t.Fatalf("median CPU %v ms, bound %v ms; want 20 and 10", r.Setup.CPUMS, r.Setup.CPUBoundMS)
	}
	var b strings.Builder
	PrintProcReport(&b, r)
	if want := "20.00 ms, 10.00 ms (8.3)"; !strings.Contains(b.String(), want) {
		t.Errorf("the table lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	r.Setup.CPUMS, r.Setup.CPUBoundMS = 0, 0
	PrintProcReport(&b, r)
	if strings.Contains(b.String(), "CPU of the server and the peers") {
		t.Errorf("a CPU line without CPU figures:\n%s", b.String())
	}
}

// The meter reads the CPU time of every thread of the processes it was
// given, through files it keeps open (what it makes of threads started
// or gone between two readings: TestProcPhaseCPU).
func TestCPUMeter(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc")
	}
	m := newCPUMeter([]int{os.Getpid()})
	defer m.close()
	before := m.read()
	if len(before) == 0 || slices.Contains(before, -1) {
		t.Fatalf("readings %v", before)
	}
	// Spend some CPU: hash 16 MiB.
	sum := sha256.Sum256(bytes.Repeat([]byte{1}, 16<<20))
	_ = sum
	m.refresh()
	if got := cpuDelta(before, m.read()); got <= 0 {
		t.Errorf("CPU between the readings %v ns", got)
	}
}

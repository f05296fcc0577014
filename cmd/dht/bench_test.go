package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

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
			t.Errorf("loss %g: found %d of %d", r.Loss, r.Found, r.Queries)
		}
		if r.Loss > 0 && (r.Lost == 0 || r.Retransmits == 0) {
			t.Errorf("loss %g: %d lost, %d retransmitted", r.Loss, r.Lost, r.Retransmits)
		}
	}
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	"dht/app"
	"dht/dataset"
	"dht/internal/bench"
)

func benchCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure setup, queries, leave and teardown against the loopback floor",
		Description: "Runs a real server, --peers ring members and --queriers querying users in this\n" +
			"process, each with its own UDP socket on 127.0.0.1 and its own bbolt file in a\n" +
			"temporary folder, and times every phase. The floor is measured in the same run:\n" +
			"the one-hop latency of a token passed round a ring of --peers sockets, and a\n" +
			"ping-pong round trip. Memory is reported as the peak RSS of the process and the\n" +
			"peak of its anonymous memory (sampled; without the bbolt files' mapped pages).\n" +
			"With --loss every socket drops that fraction of what it sends; --loss-sweep\n" +
			"prints the loss table (0%, 10%, 30%) instead.\n\n" +
			"With --processes the server, every node and every querier is a process of its\n" +
			"own (dht server, dht peer), typed at through its stdin and read from its stdout,\n" +
			"and the floors are measured between processes in the same run: a token round a\n" +
			"ring of --peers processes, a ping-pong between two, one fdatasync on the disk the\n" +
			"tables use. A command's floor is the commits that must follow one another on its\n" +
			"critical path × the fdatasync floor + the datagrams on it × the hop floor.\n" +
			"--cpuprofile is then a folder: one profile per process, NAME.pprof.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "peers", Value: 8, Usage: "ring size N (2-64)"},
			&cli.IntFlag{Name: "queriers", Value: 16, Usage: "concurrent querying users"},
			&cli.IntFlag{Name: "queries", Value: 2410, Usage: "queries in each query phase (each record in turn, shuffled)"},
			&cli.IntFlag{Name: "queries-ahead", Value: 24100, Usage: "with --processes: queries in the phase whose queriers type them all at once (it measures a rate: long enough that filling and draining the queriers' pipelines is a small part of it)"},
			&cli.IntFlag{Name: "records", Usage: "use this many synthetic records of the same shape instead of the dataset"},
			dataFlag("the dataset (without --records)"),
			&cli.IntFlag{Name: "runs", Value: 1, Usage: "repeat the whole bench and report the median of each figure"},
			&cli.Float64Flag{Name: "loss", Usage: "every socket drops this fraction, in [0,1), of the datagrams it sends"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seeds the server's choices, the query order and the loss"},
			&cli.BoolFlag{Name: "loss-sweep", Usage: "run setup and one query per record at 0%, 10% and 30% loss and print that table"},
			&cli.IntFlag{Name: "window", Usage: "most unacknowledged ring messages to one neighbour, 0-1024 (0: the peer's default)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of the table"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the run to this file"},
			&cli.IntFlag{Name: "procs", Value: bench.DefaultProcs(), Usage: "GOMAXPROCS for the run: the whole cluster shares this process's scheduler (see docs/PERFORMANCE.md)"},
			&cli.BoolFlag{Name: "processes", Usage: "run the server, every node and every querier as a dht process of its own (this binary), typed at through stdin, with floors measured between processes"},
			&cli.StringFlag{Name: "bin", Hidden: true, Usage: "the dht binary --processes runs (default: this one)"},
			&cli.StringFlag{Name: "scaling", Usage: "measure setup and query time for N = 2…64 (the dataset) and for 1k…100k synthetic records (N = 16), print the table and draw it as an SVG to this file"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("bench takes no arguments (see 'dht bench --help')")
			}
			o := bench.Options{
				Peers: c.Int("peers"), Queriers: c.Int("queriers"), Queries: c.Int("queries"),
				Loss: c.Float64("loss"), Seed: c.Uint64("seed"), Window: c.Int("window"),
			}
			maxQueriers := maxBenchQueriers
			if c.Bool("processes") {
				maxQueriers = maxProcQueriers
			}
			switch {
			case o.Peers < 2 || o.Peers > app.MaxRing:
				return usagef("--peers must be 2-%d", app.MaxRing)
			case o.Queriers < 1 || o.Queries < 1:
				return usagef("--queriers and --queries must be at least 1")
			case o.Queries > maxBenchQueries:
				return usagef("--queries must be at most %d, got %d", maxBenchQueries, o.Queries)
			case o.Queriers > maxQueriers && c.Bool("processes"):
				return usagef("--queriers must be at most %d with --processes (each is a process), got %d", maxQueriers, o.Queriers)
			case o.Queriers > maxQueriers:
				return usagef("--queriers must be at most %d, got %d", maxQueriers, o.Queriers)
			case !(o.Loss >= 0 && o.Loss < 1): // NaN too
				return usagef("--loss must be in [0,1), got %g", o.Loss)
			case c.Int("runs") < 1:
				return usagef("--runs must be at least 1, got %d", c.Int("runs"))
			case c.Int("records") < 0 || c.Int("records") > maxBenchRecords:
				return usagef("--records must be 0-%d (0: the dataset), got %d", maxBenchRecords, c.Int("records"))
			case c.Int("records") > 0 && c.IsSet("data"):
				return usagef("--records and --data are two datasets: give one")
			case o.Window < 0 || o.Window > 1024:
				return usagef("--window must be 0-1024 (0: the default), got %d", o.Window)
			case c.Int("procs") < 1:
				return usagef("--procs must be at least 1")
			case c.String("scaling") == "-":
				return usagef("--scaling needs a FILE for the SVG: the table goes to stdout")
			case c.IsSet("queries-ahead") && !c.Bool("processes"):
				return usagef("--queries-ahead is a phase of --processes: give --processes too")
			case c.IsSet("procs") && c.Bool("processes"):
				return usagef("--procs sets the scheduler of the in-process cluster: each process of --processes has its own")
			}
			// A signal stops the bench: its cluster or processes end and
			// its files go, and no figures are printed.
			ctx, cancel := signalContext()
			defer cancel()
			o.Ctx = ctx
			out := &checkedWriter{w: e.stdout}
			var err error
			if c.Bool("processes") {
				err = benchProcesses(c, out, o)
			} else {
				err = benchInProcess(c, out, o)
			}
			if ctx.Err() != nil {
				return errors.New("bench: stopped by a signal before it finished: no figures (its processes are ended and its files removed)")
			}
			return out.check(err)
		},
	}
}

// The most records and queriers a bench takes: the largest the figures
// go to (docs/PERFORMANCE.md), with room; more would fail late, on memory or
// on open files.
const (
	maxBenchRecords  = 1_000_000
	maxBenchQueries  = 10_000_000 // each an int of the query order, more in one process
	maxBenchQueriers = 1024
	maxProcQueriers  = 64
)

// benchInProcess is dht bench without --processes.
func benchInProcess(c *cli.Context, stdout io.Writer, o bench.Options) (err error) {
	if c.Bool("loss-sweep") && c.String("scaling") != "" {
		return usagef("--loss-sweep and --scaling are two benches: give one")
	}
	// Every output is checked before the first is made.
	if err := checkOutputs([]output{{"cpuprofile", c.String("cpuprofile"), outProfile}, {"scaling", c.String("scaling"), outSVG}}, c.String("data")); err != nil {
		return err
	}
	if err := benchData(c, &o); err != nil {
		return err
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(c.Int("procs")))
	if path := c.String("cpuprofile"); path != "" {
		f, cerr := os.Create(path)
		if cerr != nil {
			return cerr
		}
		// The profile is written as it is taken, and StopCPUProfile
		// drops a write's error: a full disk would leave a cut profile
		// and status 0.
		pw := &checkedWriter{w: f}
		if err := pprof.StartCPUProfile(pw); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			perr := pw.check(f.Close())
			if err == nil && perr != nil {
				err = fmt.Errorf("--cpuprofile %s: %w", path, perr)
			}
		}()
	}
	if path := c.String("scaling"); path != "" {
		// The SVG's file is opened now, so that a path that cannot be
		// written fails before the minutes the table takes; one made now
		// goes again if the table fails.
		_, statErr := os.Stat(path)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		f.Close()
		byN, byRecords, err := bench.Scaling(o, c.Int("runs"), []int{1000, 3000, 10000, 30000, 100000})
		if err != nil {
			if errors.Is(statErr, fs.ErrNotExist) {
				_ = os.Remove(path)
			}
			return err
		}
		if c.Bool("json") {
			if err := writeJSON(stdout, map[string][]bench.ScalingPoint{"by_peers": byN, "by_records": byRecords}); err != nil {
				return err
			}
		} else {
			bench.PrintScaling(stdout, byN, byRecords)
		}
		note := fmt.Sprintf("each point the median of %d run(s), %d queries; %s/%s, %d CPUs, GOMAXPROCS %d; a setup includes committing every table to disk", c.Int("runs"), o.Queries, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
		return bench.WriteScalingSVG(path, byN, byRecords, note)
	}
	if c.Bool("loss-sweep") {
		rows, err := bench.LossSweep(o)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(stdout, rows)
		}
		bench.PrintSweep(stdout, o, rows)
		return nil
	}
	reps, err := repeat(c.Int("runs"), o, bench.Run)
	if err != nil {
		return err
	}
	r := bench.Median(reps)
	r.Procs = runtime.GOMAXPROCS(0)
	if c.Bool("json") {
		return writeJSON(stdout, r)
	}
	bench.PrintReport(stdout, r)
	return nil
}

// benchProcesses is dht bench --processes.
func benchProcesses(c *cli.Context, stdout io.Writer, o bench.Options) error {
	if c.Bool("loss-sweep") || c.String("scaling") != "" || o.Loss > 0 {
		return usagef("--processes measures no loss and no scaling")
	}
	if o.QueriesAhead = c.Int("queries-ahead"); o.QueriesAhead < 1 || o.QueriesAhead > maxBenchQueries {
		return usagef("--queries-ahead must be 1-%d, got %d", maxBenchQueries, o.QueriesAhead)
	}
	o.Binary = c.String("bin")
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Binary = exe
	}
	if err := benchData(c, &o); err != nil {
		return err
	}
	if dir := c.String("cpuprofile"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		o.ProfileDir = abs
	}
	reps, err := repeat(c.Int("runs"), o, bench.RunProcesses)
	if err != nil {
		return err
	}
	r := bench.MedianProc(reps)
	if c.Bool("json") {
		return writeJSON(stdout, r)
	}
	bench.PrintProcReport(stdout, r)
	return nil
}

// benchData sets o's dataset: --records synthetic records, or --data (the
// embedded dataset without it), which the processes of --processes are
// given too.
func benchData(c *cli.Context, o *bench.Options) error {
	if n := c.Int("records"); n > 0 {
		o.Data, o.DataName = dataset.SyntheticSource{N: n, Seed: o.Seed}, fmt.Sprintf("%d synthetic records", n)
		return nil
	}
	recs, name, err := dataset.LoadOrEmbedded(c.String("data"))
	if err != nil {
		return err
	}
	o.Data, o.DataName = dataset.Records(recs), name
	if path := c.String("data"); path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		o.DataFile = abs
	}
	return nil
}

// repeat runs a bench n times, the seed one higher each run.
func repeat[R any](n int, o bench.Options, run func(bench.Options) (R, error)) ([]R, error) {
	var reps []R
	for range n {
		r, err := run(o)
		if err != nil {
			return nil, err
		}
		reps = append(reps, r)
		o.Seed++
	}
	return reps, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

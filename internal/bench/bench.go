// Package bench measures a whole dht system run in this process (package
// cluster: a real server and real peers on 127.0.0.1, each with its own
// bbolt file): setup, queries from one user and from many, leave and
// teardown, the loss sweep and how cost grows, each against the loopback
// floor measured in the same run. dht bench prints what it measures.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"dht/app"
	"dht/dataset"
	"dht/internal/cluster"
	"dht/internal/loopback"
	"dht/internal/udpio"
)

// Options say what to measure.
type Options struct {
	Peers, Queriers, Queries int
	Window                   int // most unacknowledged ring messages to one neighbour (0: the default)
	Loss                     float64
	Seed                     uint64
	Data                     dataset.Source // synthetic ones made as they are read: the bench holds no dataset
	DataName                 string
	SkipLeave                bool
	// QueriesAhead is how many queries RunProcesses's typed-ahead phase
	// asks (0: Queries).
	QueriesAhead int

	// Binary, if set, is the dht binary whose processes RunProcesses runs.
	Binary string
	// DataFile is the --data the peers of RunProcesses are given (empty:
	// the embedded dataset, or a file the bench writes of synthetic
	// Data).
	DataFile string
	// ProfileDir, if set, gets a CPU profile of every process
	// RunProcesses runs, NAME.pprof.
	ProfileDir string
	// Ctx, done, stops the bench (SIGINT, SIGTERM): its cluster or its
	// processes are ended and its files removed, and it returns an error.
	// Nil: never.
	Ctx context.Context
}

// ctx is o.Ctx, or a context that is never done.
func (o Options) ctx() context.Context {
	if o.Ctx == nil {
		return context.Background()
	}
	return o.Ctx
}

// Report is everything one bench run measured; with --runs, each
// figure is the median over the runs. Times are in microseconds or
// milliseconds as the names say.
type Report struct {
	Peers    int     `json:"peers"`
	Queriers int     `json:"queriers"`
	Records  int     `json:"records"`
	Dataset  string  `json:"dataset"`
	Loss     float64 `json:"loss"`
	Runs     int     `json:"runs"`
	Procs    int     `json:"gomaxprocs"`

	Floor struct {
		OneHopUS float64 `json:"one_hop_us"` // token round a ring of Peers sockets, per hop
		RTTUS    float64 `json:"rtt_us"`     // ping-pong between two sockets
		// The same ring with each socket read and written as the
		// runners do theirs (runnerRingHop); not the floor the
		// ratios use, shown beside it.
		RunnerHopUS float64 `json:"one_hop_runner_io_us"`
	} `json:"floor"`

	// Spread is the lowest and highest of the runs for the figures the
	// targets are about (nil for one run): a median hides how much the
	// machine moved under it.
	Spread *Spread `json:"spread,omitempty"`

	Setup struct {
		MS             float64 `json:"ms"`
		RecordHops     int     `json:"record_hops"`     // ring hops travelled by all records together
		StoreDatagrams float64 `json:"store_datagrams"` // store datagrams sent (records travel several to one)
		FloorRatio     float64 `json:"floor_ratio"`     // ms / (record_hops × one hop)
		Datagrams      float64 `json:"datagrams"`       // every datagram of the setup (set-id, stores, flush, acks, requests)
	} `json:"setup"`

	Single     QueryReport `json:"query_single"`
	Concurrent QueryReport `json:"query_concurrent"`

	LeaveMS    float64 `json:"leave_ms"`
	TeardownMS float64 `json:"teardown_ms"`

	Datagrams      float64 `json:"datagrams"` // sent by every socket over the whole run
	Bytes          float64 `json:"bytes"`
	Retransmits    float64 `json:"retransmits"`
	DupsSuppressed float64 `json:"dups_suppressed"`
	GaveUp         float64 `json:"gave_up"`
	PeakRSSMB      float64 `json:"peak_rss_mb"`
	// PeakAnonMB is the highest anonymous resident memory sampled during
	// the run (see memSampler): PeakRSSMB without the files' mapped pages.
	PeakAnonMB float64 `json:"peak_anon_rss_mb"`
}

// QueryReport is what one query phase measured.
type QueryReport struct {
	Queriers int `json:"queriers"`
	Queries  int `json:"queries"`
	Found    int `json:"found"` // answered SUCCESS with every field as in the dataset
	// The latencies and the ratio are left out where the phase measures
	// none (--processes' typed-ahead phase: only its rate).
	P50US      float64 `json:"p50_us,omitempty"`
	P99US      float64 `json:"p99_us,omitempty"`
	MaxUS      float64 `json:"max_us,omitempty"`
	PerSecond  float64 `json:"per_second"`
	MeanHops   float64 `json:"mean_hops"`
	FloorRatio float64 `json:"floor_ratio,omitempty"` // median over queries of latency / ((hops + 3) × one hop)
	// Between processes: the CPU time and the context switches of every
	// process of the cluster and of the bench itself during the phase,
	// over its queries (what bounds the queries per second).
	CPUUSPerQuery    float64 `json:"cpu_us_per_query,omitempty"`
	SwitchesPerQuery float64 `json:"context_switches_per_query,omitempty"`
	FaultsPerQuery   float64 `json:"page_faults_per_query,omitempty"`
	// CPUUSByRole splits CPUUSPerQuery: server, nodes (the ring's
	// members), queriers (every user outside the ring), bench.
	CPUUSByRole map[string]float64 `json:"cpu_us_per_query_by_role,omitempty"`
}

// DefaultProcs is the bench's GOMAXPROCS: twice the CPUs. The cluster is
// N+Q+1 processes' worth of peers and server in one process, so one
// scheduler: with one P a CPU, two nodes waiting on fsync hold every P (a
// goroutine in a system call keeps its P until the runtime's monitor takes
// it back), and no other node can even learn that a datagram arrived,
// which separate processes would. Far more Ps than CPUs only adds
// scheduling.
func DefaultProcs() int { return max(2, 2*runtime.NumCPU()) }

// benchTimeout bounds a whole run.
const benchTimeout = 10 * time.Minute

// Run measures once: the floor, then setup-dht of a ring of Peers, the
// queries from one user and then from Queriers users at once, leave-dht
// and teardown-dht.
func Run(o Options) (r Report, err error) {
	r.Peers, r.Queriers, r.Records, r.Dataset, r.Loss, r.Runs = o.Peers, o.Queriers, o.Data.Len(), o.DataName, o.Loss, 1
	if r.Floor.OneHopUS, err = ringHop(o.Peers, 2000); err != nil {
		return r, err
	}
	if r.Floor.RTTUS, err = pingPong(2000); err != nil {
		return r, err
	}
	if r.Floor.RunnerHopUS, err = runnerRingHop(o.Peers, max(2000/o.Peers, 20)); err != nil {
		return r, err
	}
	dir, err := os.MkdirTemp("", "dht-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	cl, users, err := startCluster(dir, o, o.Peers+o.Queriers, o.Loss)
	if err != nil {
		return r, err
	}
	mem := startMemSampler()
	defer func() {
		if serr := cl.Stop(); serr != nil && err == nil {
			err = serr
		}
		st := cl.Stats()
		r.Retransmits, r.DupsSuppressed, r.GaveUp = float64(st.Retransmits), float64(st.DupsSuppressed), float64(st.GaveUp)
		r.PeakRSSMB, r.PeakAnonMB = procStatusMB("VmHWM"), mem.stop()
	}()
	t0 := cl.Traffic()
	ctx, cancel := context.WithTimeout(o.ctx(), benchTimeout)
	defer cancel()

	leader := users[0]
	start := time.Now()
	out, err := leader.Must(ctx, fmt.Sprintf("setup-dht %d %s", o.Peers, leader.User))
	if err != nil {
		return r, err
	}
	r.Setup.MS = ms(time.Since(start))
	ring, err := ringOf(out)
	if err != nil {
		return r, err
	}
	t1 := cl.Traffic()
	r.Setup.StoreDatagrams, r.Setup.Datagrams = float64(t1.Stores), float64(t1.Datagrams-t0.Datagrams)
	for i := range o.Data.Len() {
		r.Setup.RecordHops += dataset.ID(o.Data.Record(i).Pos(), o.Peers)
	}
	r.Setup.FloorRatio = r.Setup.MS * 1000 / (float64(r.Setup.RecordHops) * r.Floor.OneHopUS)

	var free []*cluster.Peer
	for _, u := range users {
		if !slices.Contains(ring, u.User) {
			free = append(free, u)
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e))
	order := queryOrder(rng, o.Data.Len(), o.Queries)
	if r.Single, err = queryPhase(ctx, free[:1], o.Data, order, r.Floor.OneHopUS); err != nil {
		return r, err
	}
	if r.Concurrent, err = queryPhase(ctx, free[:o.Queriers], o.Data, order, r.Floor.OneHopUS); err != nil {
		return r, err
	}

	if !o.SkipLeave {
		leaver, newLeader := cl.Peer(ring[1]), cl.Peer(ring[2%len(ring)])
		start = time.Now()
		if _, err := leaver.Must(ctx, "leave-dht "+leaver.User); err != nil {
			return r, err
		}
		r.LeaveMS = ms(time.Since(start))
		start = time.Now()
		if _, err := newLeader.Must(ctx, "teardown-dht "+newLeader.User); err != nil {
			return r, err
		}
		r.TeardownMS = ms(time.Since(start))
	}
	t2 := cl.Traffic()
	r.Datagrams, r.Bytes = float64(t2.Datagrams-t0.Datagrams), float64(t2.Bytes-t0.Bytes)
	return r, nil
}

// startCluster starts a cluster in dir whose users (userName(0), ...)
// have registered, each at a port of its own.
func startCluster(dir string, o Options, users int, loss float64) (*cluster.Cluster, []*cluster.Peer, error) {
	data := o.Data
	cl, err := cluster.Start(cluster.Config{
		Dir: dir, Data: func() (dataset.Source, error) { return data, nil }, Seed: o.Seed, Loss: loss,
		Link: app.LinkConfig{Window: o.Window}, Ctx: o.ctx(),
	})
	if err != nil {
		return nil, nil, err
	}
	ports, err := loopback.FreePorts(users)
	if err != nil {
		cl.Stop()
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(o.ctx(), time.Minute)
	defer cancel()
	ps := make([]*cluster.Peer, users)
	for i := range ps {
		ps[i] = cl.Peer(userName(i))
		if _, err := ps[i].Must(ctx, fmt.Sprintf("register %s %s %d", ps[i].User, loopback.Addr, ports[i])); err != nil {
			cl.Stop()
			return nil, nil, err
		}
	}
	return cl, ps, nil
}

// userName is the name of user i of a bench: letters only, as names must
// be.
func userName(i int) string {
	b := []byte("user")
	var s []byte
	for {
		s = append(s, byte('a'+i%26))
		i /= 26
		if i == 0 {
			break
		}
	}
	for len(s) < 3 {
		s = append(s, 'a')
	}
	for j := len(s) - 1; j >= 0; j-- {
		b = append(b, s[j])
	}
	return string(b)
}

// ringOf is the ring setup-dht built, in id order.
func ringOf(out []app.Result) ([]string, error) {
	for _, r := range out {
		if r.Cmd == app.CmdSetupDHT && r.OK && len(r.Ring) > 0 {
			return r.Ring, nil
		}
	}
	return nil, fmt.Errorf("bench: setup-dht named no ring (printed %q)", out)
}

// queryOrder is n record indexes: every record in turn, each pass shuffled.
func queryOrder(rng *rand.Rand, records, n int) []int {
	if records <= 0 {
		return nil
	}
	order := make([]int, 0, n)
	for len(order)+records <= n {
		order = append(order, rng.Perm(records)...)
	}
	// The rest, distinct, without a permutation of every record: a few
	// queries over many records cost memory for the queries only.
	seen := map[int]bool{}
	for len(order) < n {
		if i := rng.IntN(records); !seen[i] {
			seen[i] = true
			order = append(order, i)
		}
	}
	return order
}

// queryPhase runs the queries in order, spread over the users (each asks
// one at a time), and checks every answer against the dataset.
func queryPhase(ctx context.Context, users []*cluster.Peer, data dataset.Source, order []int, hopUS float64) (QueryReport, error) {
	q := QueryReport{Queriers: len(users), Queries: len(order)}
	samples := make([][]querySample, len(users))
	found := make([]int, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	start := time.Now()
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < len(order); j += len(users) {
				rec := data.Record(order[j])
				t0 := time.Now()
				out, err := u.Do(ctx, "query-dht "+u.User+" "+rec.LongName)
				us := float64(u.PrintedAt().Sub(t0)) / float64(time.Microsecond)
				if err == nil && len(out) == 0 {
					err = fmt.Errorf("%s: query-dht printed nothing", u.User)
				}
				if err != nil {
					errs[i] = err
					return
				}
				hops, ok := checkAnswer(out[0], rec)
				if ok {
					found[i]++
				}
				samples[i] = append(samples[i], querySample{us, hops})
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return q, err
	}
	q.summarise(found, samples, elapsed, hopUS, 3)
	return q, nil
}

// checkAnswer reports the hop count of a query's answer and whether it
// found the record, every field byte for byte.
func checkAnswer(res app.Result, rec dataset.Record) (hops int, ok bool) {
	if res.Cmd != app.CmdQueryDHT || !res.OK || !res.Answer.Answered {
		return 0, false
	}
	return res.Answer.Hops, res.Answer.Record == rec
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ringHop passes a token round a ring of n UDP sockets on 127.0.0.1, each
// read by its own goroutine that writes it on to the next, hops times, and
// returns the median time of one hop in microseconds (median over laps).
func ringHop(n, hops int) (float64, error) {
	conns := make([]*net.UDPConn, n)
	addrs := make([]netip.AddrPort, n)
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		conns[i], addrs[i] = c, netip.MustParseAddrPort(c.LocalAddr().String())
	}
	laps := max(hops/n, 20)
	for i := 1; i < n; i++ {
		go func() {
			buf := make([]byte, 64)
			for {
				k, _, err := conns[i].ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if _, err := conns[i].WriteToUDPAddrPort(buf[:k], addrs[(i+1)%n]); err != nil {
					return
				}
			}
		}()
	}
	buf := make([]byte, 64)
	var per []float64
	for range laps {
		t0 := time.Now()
		if _, err := conns[0].WriteToUDPAddrPort(buf[:8], addrs[1]); err != nil {
			return 0, err
		}
		if _, _, err := conns[0].ReadFromUDPAddrPort(buf); err != nil {
			return 0, err
		}
		per = append(per, float64(time.Since(t0))/float64(time.Microsecond)/float64(n))
	}
	slices.Sort(per)
	return quantile(per, 0.5), nil
}

// pingPong returns the median round trip between two sockets, in
// microseconds.
func pingPong(rounds int) (float64, error) {
	us, err := ringHop(2, rounds*2)
	return 2 * us, err
}

// procStatusMB reads one of the process's memory figures from
// /proc/self/status (VmHWM: the peak resident set; RssAnon: the resident
// memory not backed by files), 0 where /proc is missing.
func procStatusMB(key string) float64 { return statusMB("/proc/self/status", key) }

// statusMB reads one memory figure, in MB, from a /proc/PID/status file, 0
// where it is missing.
func statusMB(path, key string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// memSampler follows the anonymous resident memory (the heap, stacks and
// runtime; not the bbolt files, whose mapped pages the kernel may drop and
// which VmHWM counts) every 10 ms while a run lasts, and keeps its peak:
// the kernel keeps no peak of it. It is a measurement, so a sample missed
// in between is a peak missed, not an error.
type memSampler struct {
	done chan struct{}
	peak chan float64
}

func startMemSampler() *memSampler {
	m := &memSampler{done: make(chan struct{}), peak: make(chan float64)}
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		peak := procStatusMB("RssAnon")
		for {
			select {
			case <-t.C:
				peak = max(peak, procStatusMB("RssAnon"))
			case <-m.done:
				m.peak <- max(peak, procStatusMB("RssAnon"))
				return
			}
		}
	}()
	return m
}

// stop ends the sampling and returns the peak, in MB.
func (m *memSampler) stop() float64 {
	close(m.done)
	return <-m.peak
}

// Spread is [lowest, highest] over the runs.
type Spread struct {
	SetupRatio  [2]float64 `json:"setup_floor_ratio"`
	SingleRatio [2]float64 `json:"query_single_floor_ratio"`
	PerSecond   [2]float64 `json:"query_concurrent_per_second"`
}

// Median takes each figure's median over the runs (the peaks of
// memory: the highest; found: the lowest), and the spread of the target
// figures.
func Median(rs []Report) Report {
	if len(rs) == 1 {
		return rs[0]
	}
	r := rs[0]
	r.Runs = len(rs)
	med := func(get func(*Report) *float64) {
		v := make([]float64, len(rs))
		for i := range rs {
			v[i] = *get(&rs[i])
		}
		slices.Sort(v)
		*get(&r) = v[len(v)/2]
	}
	med(func(x *Report) *float64 { return &x.Floor.OneHopUS })
	med(func(x *Report) *float64 { return &x.Floor.RTTUS })
	med(func(x *Report) *float64 { return &x.Floor.RunnerHopUS })
	med(func(x *Report) *float64 { return &x.Setup.MS })
	med(func(x *Report) *float64 { return &x.Setup.StoreDatagrams })
	med(func(x *Report) *float64 { return &x.Setup.FloorRatio })
	med(func(x *Report) *float64 { return &x.Setup.Datagrams })
	for _, q := range []func(x *Report) *QueryReport{
		func(x *Report) *QueryReport { return &x.Single },
		func(x *Report) *QueryReport { return &x.Concurrent },
	} {
		med(func(x *Report) *float64 { return &q(x).P50US })
		med(func(x *Report) *float64 { return &q(x).P99US })
		med(func(x *Report) *float64 { return &q(x).MaxUS })
		med(func(x *Report) *float64 { return &q(x).PerSecond })
		med(func(x *Report) *float64 { return &q(x).MeanHops })
		med(func(x *Report) *float64 { return &q(x).FloorRatio })
		found := q(&rs[0]).Found
		for i := range rs {
			found = min(found, q(&rs[i]).Found) // the worst run: a lost record must show
		}
		q(&r).Found = found
	}
	spread := func(get func(*Report) float64) [2]float64 {
		lo, hi := get(&rs[0]), get(&rs[0])
		for i := range rs {
			lo, hi = min(lo, get(&rs[i])), max(hi, get(&rs[i]))
		}
		return [2]float64{lo, hi}
	}
	r.Spread = &Spread{
		SetupRatio:  spread(func(x *Report) float64 { return x.Setup.FloorRatio }),
		SingleRatio: spread(func(x *Report) float64 { return x.Single.FloorRatio }),
		PerSecond:   spread(func(x *Report) float64 { return x.Concurrent.PerSecond }),
	}
	med(func(x *Report) *float64 { return &x.LeaveMS })
	med(func(x *Report) *float64 { return &x.TeardownMS })
	med(func(x *Report) *float64 { return &x.Datagrams })
	med(func(x *Report) *float64 { return &x.Bytes })
	med(func(x *Report) *float64 { return &x.Retransmits })
	med(func(x *Report) *float64 { return &x.DupsSuppressed })
	med(func(x *Report) *float64 { return &x.GaveUp })
	for i := range rs {
		r.PeakRSSMB = max(r.PeakRSSMB, rs[i].PeakRSSMB)
		r.PeakAnonMB = max(r.PeakAnonMB, rs[i].PeakAnonMB)
	}
	return r
}

// PrintReport prints a report as the table dht bench shows.
func PrintReport(w io.Writer, r Report) {
	runs := ""
	if r.Runs > 1 {
		runs = fmt.Sprintf(", median of %d runs", r.Runs)
	}
	fmt.Fprintf(w, "dht bench: %d peers, %s, %d records (%s), loss %g%%%s, %s/%s, %d CPUs, GOMAXPROCS %d\n\n",
		r.Peers, queriers(r.Queriers), r.Records, r.Dataset, 100*r.Loss, runs, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), r.Procs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "loopback floor\tone hop (ring of %d sockets)\t%.1f µs\n", r.Peers, r.Floor.OneHopUS)
	fmt.Fprintf(tw, "\tping-pong round trip\t%.1f µs\n", r.Floor.RTTUS)
	fmt.Fprintf(tw, "\tone hop, read and written as the runners do (not used below)\t%.1f µs\n", r.Floor.RunnerHopUS)
	fmt.Fprintf(tw, "setup-dht → dht-complete\ttime\t%.2f ms\n", r.Setup.MS)
	fmt.Fprintf(tw, "\trecord hops / store datagrams\t%d / %.0f\n", r.Setup.RecordHops, r.Setup.StoreDatagrams)
	fmt.Fprintf(tw, "\tsetup / (record hops × one hop)\t%.2f%s\n", r.Setup.FloorRatio, r.runRange(func(s Spread) [2]float64 { return s.SetupRatio }, "%.2f"))
	for i, q := range []QueryReport{r.Single, r.Concurrent} {
		name := fmt.Sprintf("query-dht → answer, %d querier", q.Queriers)
		if q.Queriers != 1 {
			name += "s"
		}
		perSecond, ratio := "", ""
		if i == 0 {
			ratio = r.runRange(func(s Spread) [2]float64 { return s.SingleRatio }, "%.2f")
		} else {
			perSecond = r.runRange(func(s Spread) [2]float64 { return s.PerSecond }, "%.0f")
		}
		fmt.Fprintf(tw, "%s\tp50 / p99 / max\t%.0f / %.0f / %.0f µs\n", name, q.P50US, q.P99US, q.MaxUS)
		fmt.Fprintf(tw, "\tqueries per second\t%.0f%s\n", q.PerSecond, perSecond)
		fmt.Fprintf(tw, "\tfound / asked, mean hops\t%d / %d, %.2f\n", q.Found, q.Queries, q.MeanHops)
		fmt.Fprintf(tw, "\tmedian latency / ((hops + 3) × one hop)\t%.2f%s\n", q.FloorRatio, ratio)
	}
	if r.LeaveMS > 0 {
		fmt.Fprintf(tw, "leave-dht → dht-rebuilt\ttime\t%.2f ms\n", r.LeaveMS)
		fmt.Fprintf(tw, "teardown-dht → teardown-complete\ttime\t%.2f ms\n", r.TeardownMS)
	}
	fmt.Fprintf(tw, "whole run\tdatagrams / bytes sent\t%.0f / %.0f\n", r.Datagrams, r.Bytes)
	fmt.Fprintf(tw, "\tretransmissions / duplicates suppressed / gave up\t%.0f / %.0f / %.0f\n", r.Retransmits, r.DupsSuppressed, r.GaveUp)
	fmt.Fprintf(tw, "\tpeak RSS (whole process) / anonymous, without the files\t%.0f / %.0f MB\n", r.PeakRSSMB, r.PeakAnonMB)
	tw.Flush()
}

// runRange formats a target figure's spread over the runs, " (runs lo–hi)",
// or nothing for one run.
func (r Report) runRange(get func(Spread) [2]float64, verb string) string {
	if r.Spread == nil {
		return ""
	}
	v := get(*r.Spread)
	return fmt.Sprintf(" (runs "+verb+"–"+verb+")", v[0], v[1])
}

// SweepRow is one loss rate of --loss-sweep.
type SweepRow struct {
	Loss           float64 `json:"loss"`
	Sent           uint64  `json:"datagrams_sent"` // handed to the sockets, including those the loss then dropped
	Lost           uint64  `json:"datagrams_lost"`
	Retransmits    uint64  `json:"retransmits"`
	DupsSuppressed uint64  `json:"dups_suppressed"`
	GaveUp         uint64  `json:"gave_up"`
	SetupMS        float64 `json:"setup_ms"`
	QueriesMS      float64 `json:"queries_ms"`
	Queries        int     `json:"queries"`
	Found          int     `json:"found"`
	// NotFound is the first line of the first few results that were not
	// the record asked for.
	NotFound []string `json:"not_found,omitempty"`
}

// LossSweep runs, at each loss rate, a setup and one query per record from
// one querier, and counts what the links did.
func LossSweep(o Options) ([]SweepRow, error) {
	var rows []SweepRow
	for _, loss := range []float64{0, 0.1, 0.3} {
		if err := o.ctx().Err(); err != nil {
			return rows, err
		}
		row, err := sweepOnce(o, loss)
		if err != nil {
			return rows, fmt.Errorf("loss %g: %w", loss, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func sweepOnce(o Options, loss float64) (row SweepRow, err error) {
	row.Loss = loss
	dir, err := os.MkdirTemp("", "dht-bench-")
	if err != nil {
		return row, err
	}
	defer os.RemoveAll(dir)
	cl, users, err := startCluster(dir, o, o.Peers+1, loss)
	if err != nil {
		return row, err
	}
	t0 := cl.Traffic()
	ctx, cancel := context.WithTimeout(o.ctx(), benchTimeout)
	defer cancel()
	leader := users[0]
	var querier *cluster.Peer
	start := time.Now()
	out, err := leader.Must(ctx, fmt.Sprintf("setup-dht %d %s", o.Peers, leader.User))
	if err == nil {
		row.SetupMS = ms(time.Since(start))
		var ring []string
		ring, err = ringOf(out)
		for _, u := range users {
			if !slices.Contains(ring, u.User) {
				querier = u
			}
		}
	}
	if err == nil {
		start = time.Now()
		for i := range o.Data.Len() {
			rec := o.Data.Record(i)
			var res []app.Result
			if res, err = querier.Do(ctx, "query-dht "+querier.User+" "+rec.LongName); err != nil {
				break
			}
			row.Queries++
			if len(res) > 0 {
				if _, ok := checkAnswer(res[0], rec); ok {
					row.Found++
				} else if len(row.NotFound) < 5 {
					line, _, _ := strings.Cut(res[0].String(), "\n")
					row.NotFound = append(row.NotFound, line)
				}
			}
		}
		row.QueriesMS = ms(time.Since(start))
	}
	t1 := cl.Traffic()
	if serr := cl.Stop(); err == nil {
		err = serr
	}
	st := cl.Stats()
	row.Sent, row.Lost = t1.Datagrams-t0.Datagrams+t1.Lost-t0.Lost, t1.Lost-t0.Lost
	row.Retransmits, row.DupsSuppressed, row.GaveUp = st.Retransmits, st.DupsSuppressed, st.GaveUp
	return row, err
}

// PrintSweep prints the loss sweep as a table.
func PrintSweep(w io.Writer, o Options, rows []SweepRow) {
	fmt.Fprintf(w, "dht bench --loss-sweep: %d peers, 1 querier, %d records (%s), seed %d\n\n", o.Peers, o.Data.Len(), o.DataName, o.Seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "loss\tsent\tlost\tretransmits\tdups suppressed\tgave up\tsetup ms\tqueries ms\tfound\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%g%%\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%d/%d\t\n", 100*r.Loss, r.Sent, r.Lost, r.Retransmits, r.DupsSuppressed, r.GaveUp, r.SetupMS, r.QueriesMS, r.Found, r.Queries)
	}
	tw.Flush()
}

// runnerRingHop passes a token round a ring of n sockets on 127.0.0.1,
// each read and written as the runners read and write theirs (udpio: the
// batch reader that waits without a read that finds nothing, the batch
// writer), for laps laps, and returns the median time of one hop in
// microseconds (the median lap over n): the floor of the runners' own I/O,
// beside ringHop's, read through package net.
func runnerRingHop(n, laps int) (float64, error) {
	conns := make([]udpio.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := udpio.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0))
		if err != nil {
			return 0, err
		}
		conns = append(conns, c)
	}
	per := make([]float64, 0, laps)
	first := make(chan error, 1) // the first socket's reader, when the laps are done
	var wg sync.WaitGroup
	for i, c := range conns {
		ms := make([]udpio.Message, 64)
		for j := range ms {
			ms[j].Buf = make([]byte, 64)
		}
		out := []udpio.Message{{Buf: []byte("token"), Addr: conns[(i+1)%n].LocalAddr()}}
		wg.Go(func() {
			var t0 time.Time
			var werr error
			if i == 0 {
				t0 = time.Now()
				if _, err := c.WriteBatch(out); err != nil {
					first <- err
					return
				}
			}
			err := c.ReadBatches(ms, func(lot []udpio.Message) (bool, bool) {
				for _, m := range lot {
					if i == 0 {
						now := time.Now()
						per = append(per, float64(now.Sub(t0))/float64(time.Microsecond)/float64(n))
						if len(per) == laps {
							return false, false
						}
						t0 = now
					}
					out[0].Buf = m.Buf[:m.N]
					if _, werr = c.WriteBatch(out); werr != nil {
						return false, false
					}
				}
				return true, false
			})
			if i == 0 {
				first <- errors.Join(werr, err)
			}
		})
	}
	err := <-first
	for _, c := range conns {
		c.Close() // ends the other readers
	}
	conns = nil
	wg.Wait()
	if err != nil {
		return 0, err
	}
	slices.Sort(per)
	return per[len(per)/2], nil
}

// querySample is one query's latency and hop count.
type querySample struct {
	us   float64
	hops int
}

// summarise fills q from the queriers' counts of records found and their
// samples: the latency quantiles, the rate over elapsed, the mean hops,
// and the median of each latency over (hops + legs) hops of hopUS, legs
// being the datagrams a query takes beside its forwards.
func (q *QueryReport) summarise(found []int, samples [][]querySample, elapsed time.Duration, hopUS float64, legs int) {
	var lat, ratio []float64
	hops := 0
	for i := range samples {
		q.Found += found[i]
		for _, s := range samples[i] {
			lat = append(lat, s.us)
			ratio = append(ratio, s.us/(float64(s.hops+legs)*hopUS))
			hops += s.hops
		}
	}
	slices.Sort(lat)
	slices.Sort(ratio)
	q.P50US, q.P99US, q.MaxUS = quantile(lat, 0.5), quantile(lat, 0.99), lat[len(lat)-1]
	q.PerSecond = float64(q.Queries) / elapsed.Seconds()
	q.MeanHops = float64(hops) / float64(len(lat))
	q.FloorRatio = quantile(ratio, 0.5)
}

// queriers is n queriers, in words.
func queriers(n int) string {
	if n == 1 {
		return "1 querier"
	}
	return fmt.Sprintf("%d queriers", n)
}

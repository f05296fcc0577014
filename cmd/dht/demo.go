package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"dht/app"
	"dht/dataset"
	"dht/internal/cluster"
	"dht/internal/loopback"
)

// demoNames are the users of a demo, in order; more than these get
// generated names.
var demoNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "xavier", "yvonne", "zoe"}

func demoName(i int) string {
	if i < len(demoNames) {
		return demoNames[i]
	}
	// letters only: peerba, peerbb, ...
	i -= len(demoNames)
	return "peer" + string(rune('b'+i/26)) + string(rune('a'+i%26))
}

func demoCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "start a server and a ring on 127.0.0.1 and narrate a session",
		Description: "Starts a server and --peers peers in this process, all on 127.0.0.1, and runs a\n" +
			"narrated session: register, setup-dht of a ring of all peers but one, queries from\n" +
			"the one left out (with the node that answered and the hop count), that user joining\n" +
			"the ring, a member leaving, teardown, and a last ring left standing. The bbolt files\n" +
			"are kept for 'dht inspect' in --dir, or with --keep. With --keep-running it then\n" +
			"serves until Ctrl-C, so that 'dht peer' in other terminals can register with the\n" +
			"server and query the ring (its files are kept then).",
		Flags: append([]cli.Flag{
			dataFlag("the dataset the leader spreads round the ring"),
			&cli.IntFlag{Name: "peers", Value: 5, Usage: fmt.Sprintf("how many peers (3 to %d)", app.MaxRing+1)},
			&cli.UintFlag{Name: "port", Usage: "the server's UDP port on 127.0.0.1", DefaultText: "any free port"},
			&cli.BoolFlag{Name: "keep-running", Usage: "keep the server and the last ring running until Ctrl-C"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed the server's choices (ring members, the node a query starts at), for a repeatable demo", DefaultText: "from the clock"},
			&cli.BoolFlag{Name: "trace", Usage: "write the datagram trace of every process to stderr"},
		}, workDirFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("demo takes no arguments (see 'dht demo --help')")
			}
			n := c.Int("peers")
			if n < 3 || n > app.MaxRing+1 {
				return usagef("--peers must be 3 to %d, got %d", app.MaxRing+1, n)
			}
			if c.Uint("port") > 65535 {
				return usagef("--port must be 0 to 65535")
			}
			// One loader: the narration counts its records, the peers load
			// from it (and read the file again, parsing it only if changed).
			loader := &dataset.Loader{Path: c.String("data")}
			recs, dataName, err := loader.Load()
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			wd, err := openWorkDir(c, "dht-demo-")
			if err != nil {
				return err
			}
			if c.Bool("keep-running") {
				wd.keep = true // peers started by hand may keep their files there
			}
			seed := c.Uint64("seed")
			if seed == 0 {
				seed = uint64(time.Now().UnixNano())
			}
			var trace io.Writer
			if c.Bool("trace") {
				trace = e.stderr
			}
			ctx, cancel := signalContext()
			defer cancel()
			cl, err := cluster.Start(cluster.Config{Dir: wd.path, Data: loaderData(loader), Seed: seed, Port: uint16(c.Uint("port")), Log: clusterTrace(trace), Ctx: ctx})
			if err != nil {
				wd.done()
				return err
			}
			out := &checkedWriter{w: e.stdout}
			d := &demo{cl: cl, out: out, recs: recs, data: dataName, dataFlag: c.String("data"), seed: seed, keep: wd.keep}
			err = d.run(n, c.Bool("keep-running"))
			if serr := cl.Stop(); err == nil && serr != nil {
				err = serr
			}
			where, derr := wd.done()
			if err == nil && derr == nil {
				d.say("\nThe peers have stopped, closing their files with their tables intact; %s.", where)
			}
			if err == nil {
				err = derr
			}
			return out.check(err)
		},
	}
}

type demo struct {
	cl   *cluster.Cluster
	out  io.Writer
	recs []dataset.Record
	data string // the dataset's name, for people
	// dataFlag is --data as given ("" for the embedded dataset), for the
	// command it suggests.
	dataFlag string
	seed     uint64
	keep     bool // the files stay after the demo
	step     int
}

const demoTimeout = 3 * time.Minute

func (d *demo) say(format string, a ...any) {
	fmt.Fprintf(d.out, format+"\n", a...)
}

func (d *demo) section(format string, a ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n== %d. %s\n", d.step, fmt.Sprintf(format, a...))
}

// do types a line at a peer, prints it and what came back, and insists
// on the outcome the narration relies on.
func (d *demo) do(user, line, want string) ([]app.Result, error) {
	fmt.Fprintf(d.out, "%s> %s\n", user, line)
	ctx, cancel := context.WithTimeoutCause(context.Background(), demoTimeout, fmt.Errorf("no result within %v", demoTimeout))
	defer cancel()
	printed, err := d.cl.Peer(user).Do(ctx, line)
	for _, r := range printed {
		fmt.Fprintln(d.out, r.String())
	}
	if err != nil {
		return printed, fmt.Errorf("demo: %s> %s: %w", user, line, err)
	}
	if got := playOutcome(printed); want != "" && got != want {
		return printed, fmt.Errorf("demo: %s> %s: expected %s", user, line, want)
	}
	return printed, nil
}

func (d *demo) run(n int, keep bool) error {
	cl := d.cl
	d.say("dht demo: a server and %d peers in this process, all on 127.0.0.1 (seed %d).", n, d.seed)
	d.say("Lines typed at a peer are shown as USER> LINE, followed by what the peer printed.")
	d.say("The bbolt files are in %s", cl.Dir())

	d.section("The server listens on %s", cl.Server())
	d.say("It keeps the registry in %s/dht-server.db.", cl.Dir())

	ports, err := loopback.FreePorts(n)
	if err != nil {
		return err
	}
	users := make([]string, n)
	for i := range users {
		users[i] = demoName(i)
	}
	d.section("%d users register, each peer binding its own UDP port", n)
	for i, u := range users {
		if _, err := d.do(u, fmt.Sprintf("register %s 127.0.0.1 %d", u, ports[i]), "SUCCESS"); err != nil {
			return err
		}
	}

	leader := users[0]
	d.section("%s builds a ring of %d; the server picks the other members at random", leader, n-1)
	printed, err := d.do(leader, fmt.Sprintf("setup-dht %d %s", n-1, leader), "SUCCESS")
	if err != nil {
		return err
	}
	ring := demoRing(printed)
	if len(ring) != n-1 {
		return fmt.Errorf("demo: setup-dht built no ring of %d (printed %q)", n-1, printed)
	}
	d.say("%s read the %d records of %s.", leader, len(d.recs), d.data)
	d.say("It sent set-id to each member; then every record went round the ring, hop by hop, to")
	d.say("the node its Long Name hashes to: id = (sum of the Long Name's bytes mod 353) mod %d.", n-1)
	d.say("dht-complete went to the server once every node had committed its table to disk.")

	free := ""
	for _, u := range users {
		if !slices.Contains(ring, u) {
			free = u
		}
	}
	d.section("%s, the one user outside the ring, asks for records", free)
	d.say("The server names a random member; the query walks right until the node that holds the key.")
	for _, r := range demoQueries(d.recs, len(ring), rand.New(rand.NewPCG(d.seed, 1))) {
		if _, err := d.do(free, "query-dht "+free+" "+r.LongName, "SUCCESS"); err != nil {
			return err
		}
	}
	if _, err := d.do(free, "query-dht "+free+" Kingdom of Atlantis", "FAILURE"); err != nil {
		return err
	}
	if _, err := d.do(ring[1], "query-dht "+ring[1]+" Aruba", "FAILURE"); err != nil {
		return err
	}

	if len(ring) < app.MaxRing {
		d.section("%s joins the ring", free)
		d.say("The leader, %s, tears the ring down keeping neighbours, renumbers it for %d (every id stays),", leader, len(ring)+1)
		d.say("places %s last, between %s and itself, and spreads the records over the larger ring.", free, ring[len(ring)-1])
		if _, err := d.do(free, "join-dht "+free, "SUCCESS"); err != nil {
			return err
		}
	} else {
		d.section("%s cannot join: a ring has at most %d members", free, app.MaxRing)
		if _, err := d.do(free, "join-dht "+free, "FAILURE"); err != nil {
			return err
		}
	}

	leaver := ring[len(ring)/2]
	d.section("%s leaves the ring", leaver)
	d.say("Teardown round the ring (tables cleared, neighbours kept), reset-id renumbering from the right")
	d.say("neighbour, reset-left/reset-right to close the gap, then rebuild-dht: the new leader spreads")
	d.say("the records over the smaller ring.")
	printed, err = d.do(leaver, "leave-dht "+leaver, "SUCCESS")
	if err != nil {
		return err
	}
	newLeader := demoNewLeader(printed)
	if newLeader == "" {
		return fmt.Errorf("demo: leave-dht named no new leader (printed %q)", printed)
	}
	if _, err := d.do(leaver, "query-dht "+leaver+" Aruba", "SUCCESS"); err != nil {
		return err
	}

	d.section("%s, the leader now, tears the ring down", newLeader)
	if _, err := d.do(newLeader, "teardown-dht "+newLeader, "SUCCESS"); err != nil {
		return err
	}

	why := "set up again after the teardown"
	switch {
	case keep:
		why = "left standing for you to use"
	case d.keep:
		why = "left standing so the files have something to show"
	}
	d.section("A last ring of %d, %s", n-1, why)
	if _, err := d.do(leader, fmt.Sprintf("setup-dht %d %s", n-1, leader), "SUCCESS"); err != nil {
		return err
	}

	if d.keep {
		d.section("Look at the files")
		if keep {
			d.say("once this demo has stopped (each process holds its own file while it runs):")
		}
		for _, f := range cl.Files() {
			d.say("  dht inspect %s", f)
		}
		d.say("  dht ring --svg ring.svg %s", strings.Join(cl.Files(), " "))
	}
	if !keep {
		return nil
	}
	d.say("\nThe server and the ring keep running until Ctrl-C. From another terminal:")
	data := ""
	if d.dataFlag != "" {
		data = "--data " + d.dataFlag + " "
	}
	d.say("  dht peer %s--db %s %s %d", data, filepath.Join(cl.Dir(), "dht-peer-you.db"), cl.Server().Addr(), cl.Server().Port())
	d.say("and type, e.g.:")
	d.say("  register you 127.0.0.1 7001")
	d.say("  query-dht you Aruba")
	return d.keepRunning()
}

// keepRunning waits for SIGINT or SIGTERM; a server that fails ends the
// wait too.
func (d *demo) keepRunning() error {
	if err := d.cl.Wait(); err != nil {
		return err
	}
	d.say("Stopping.")
	return nil
}

// demoRing is the ring setup-dht built, leader first.
func demoRing(printed []app.Result) []string {
	for _, r := range printed {
		if r.Cmd == app.CmdSetupDHT && r.OK {
			return r.Ring
		}
	}
	return nil
}

// demoNewLeader is the leader of the ring a leave-dht rebuilt.
func demoNewLeader(printed []app.Result) string {
	for _, r := range printed {
		if r.Cmd == app.CmdDHTRebuilt && r.OK {
			return r.NewLeader
		}
	}
	return ""
}

// demoQueries picks up to three records held by different nodes of a ring
// of n, so the hop counts differ.
func demoQueries(recs []dataset.Record, n int, rng *rand.Rand) []dataset.Record {
	perm := rng.Perm(len(recs))
	seen := map[int]bool{}
	var out []dataset.Record
	for _, i := range perm {
		id := dataset.ID(recs[i].Pos(), n)
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, recs[i])
		if len(out) == 3 {
			break
		}
	}
	return out
}

package app_test

import (
	"cmp"
	"flag"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"dht/app"
	"dht/app/state"
	"dht/dataset"
	"dht/internal/simnet"
)

var seedFlag = flag.Uint64("seed", 0, "replay the simulations with this seed only")

var records = app.Records

// simServer is where the simulated server listens.
var simServer = netip.MustParseAddrPort("10.0.0.1:4000")

// simNet is simnet.Sim for the tests: it fails the test on the first
// error, with the seed to replay it (-seed), and checks the invariants of a
// ring. Loss, Dup, Delay, RestartEvery, Down/Up and Stats are Sim's.
type simNet struct {
	*simnet.Sim
	t testing.TB
}

// newSim builds a simulation seeded with seed, the server at simServer.
func newSim(t testing.TB, seed uint64) *simNet {
	return &simNet{Sim: simnet.New(seed, simServer), t: t}
}

// check fails the test if the simulation went wrong.
func (s *simNet) check() {
	s.t.Helper()
	if err := s.Err(); err != nil {
		s.t.Fatalf("seed %d: %v", s.Seed(), err)
	}
}

// addPeer creates a peer process (not yet registered) for user name at
// 10.0.0.x:5000.
func (s *simNet) addPeer(name string, data []dataset.Record) *simnet.Process {
	s.AddPeer(name, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + len(s.Names()))}), 5000), data)
	return s.Process(name)
}

// input types a line at a peer.
func (s *simNet) input(name, line string) {
	s.t.Helper()
	s.Input(name, line)
	s.check()
}

// step delivers the next packet or fires the next timer. It reports false
// when nothing is left to do.
func (s *simNet) step() bool {
	s.t.Helper()
	ok := s.Step()
	s.check()
	return ok
}

// do types line at peer name and runs the network until that peer is idle
// again and the ring has settled (acks of the last messages); it returns
// what the peer printed for the line, as stdout shows each result.
func (s *simNet) do(name, line string) []string {
	s.t.Helper()
	out, err := s.Do(name, line)
	if err != nil {
		s.t.Fatalf("seed %d: %v", s.Seed(), err)
	}
	return texts(out)
}

// texts is each result as stdout shows it.
func texts(rs []app.Result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

// mustDo is do that expects the first printed line to start with want.
func (s *simNet) mustDo(name, line, want string) []string {
	s.t.Helper()
	out := s.do(name, line)
	if len(out) == 0 || !strings.HasPrefix(out[0], want) {
		s.t.Fatalf("seed %d: %s: %q printed %q, want a first line starting %q", s.Seed(), name, line, out, want)
	}
	return out
}

// checkRing verifies the invariants of a complete ring: one cycle in id
// order, every record exactly once, in the file of the node and the slot
// the hash names, found by that node's lookup, and each file's place in the
// ring equal to the node's.
func (s *simNet) checkRing(data []dataset.Record) {
	s.t.Helper()
	type node struct {
		*simnet.Process
		place state.Identity // in memory
	}
	var ring []node
	for _, name := range s.Server().Snapshot().DHT.Members {
		p := s.Process(name)
		ring = append(ring, node{p, app.Identity(p.Core)})
	}
	slices.SortFunc(ring, func(a, b node) int { return cmp.Compare(a.place.ID, b.place.ID) })
	n := len(ring)
	if n == 0 {
		s.t.Fatalf("seed %d: no ring", s.Seed())
	}
	for i, p := range ring {
		if !p.place.InRing || p.place.ID != i || p.place.N != n {
			s.t.Fatalf("seed %d: %s has id %d of %d (in a ring: %v), want %d of %d", s.Seed(), p.Name, p.place.ID, p.place.N, p.place.InRing, i, n)
		}
		if p.place.Right.Addr != ring[(i+1)%n].Addr || p.place.Left.Addr != ring[(i+n-1)%n].Addr {
			s.t.Fatalf("seed %d: %s's neighbours are %s/%s, not a ring in id order", s.Seed(), p.Name, p.place.Left, p.place.Right)
		}
	}
	total := 0
	for _, p := range ring {
		id, recs, err := p.Table.Load()
		if err != nil {
			s.t.Fatal(err)
		}
		total += len(recs)
		for _, r := range recs {
			if owner := dataset.ID(r.Pos(), n); owner != p.place.ID {
				s.t.Fatalf("seed %d: %s (id %d) holds %q, which belongs at id %d", s.Seed(), p.Name, p.place.ID, r.LongName, owner)
			}
		}
		if p.Core.Unsettled() {
			s.t.Fatalf("seed %d: %s has records not committed", s.Seed(), p.Name)
		}
		if !id.InRing || id.ID != p.place.ID || id.N != n {
			s.t.Fatalf("seed %d: %s's file says in-ring %v id %d/%d; memory says %d/%d", s.Seed(), p.Name, id.InRing, id.ID, id.N, p.place.ID, n)
		}
		if id.Left.Addr != p.place.Left.Addr || id.Right.Addr != p.place.Right.Addr {
			s.t.Fatalf("seed %d: %s's file says neighbours %v/%v; memory says %v/%v", s.Seed(), p.Name, id.Left, id.Right, p.place.Left, p.place.Right)
		}
	}
	if total != len(data) {
		s.t.Fatalf("seed %d: the ring holds %d records, want %d", s.Seed(), total, len(data))
	}
	for _, r := range data {
		owner := ring[dataset.ID(r.Pos(), n)]
		got, ok, err := app.Lookup(owner.Core, r.LongName)
		if err != nil || !ok || got != r {
			s.t.Fatalf("seed %d: %q missing or different at %s", s.Seed(), r.LongName, owner.Name)
		}
	}
	// Server view agrees with the ring.
	st := s.Server().Snapshot()
	if st.DHT.Phase != state.PhaseReady || len(st.DHT.Members) != n || st.DHT.Leader != ring[0].Name {
		s.t.Fatalf("seed %d: server DHT %+v disagrees with ring led by %s of %d", s.Seed(), st.DHT, ring[0].Name, n)
	}
}

func seeds(t *testing.T, n int) []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

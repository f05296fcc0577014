package app

import (
	"cmp"
	"flag"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"dht/app/state"
	"dht/dataset"
)

var seedFlag = flag.Uint64("seed", 0, "replay the simulations with this seed only")

const realData = "../dataset/StatsCountry.csv"

var (
	loadOnce    sync.Once
	realRecords []dataset.Record
	realErr     error
)

func records(t testing.TB) []dataset.Record {
	t.Helper()
	loadOnce.Do(func() { realRecords, realErr = dataset.Load(realData) })
	if realErr != nil {
		t.Fatalf("load dataset: %v", realErr)
	}
	return realRecords
}

// simNet is Sim for the tests: it fails the test on the first error, with
// the seed to replay it (-seed), and checks the invariants of a ring. Loss,
// Dup, Delay, RestartEvery, Down/Up and Stats are Sim's.
type simNet struct {
	*Sim
	t testing.TB
}

// newSim builds a simulation seeded with seed, the server at 10.0.0.1:4000.
func newSim(t testing.TB, seed uint64) *simNet {
	return &simNet{Sim: NewSim(seed, netip.MustParseAddrPort("10.0.0.1:4000")), t: t}
}

// check fails the test if the simulation went wrong.
func (s *simNet) check() {
	s.t.Helper()
	if s.err != nil {
		s.t.Fatalf("seed %d: %v", s.seed, s.err)
	}
}

// addPeer creates a peer process (not yet registered) for user name at
// 10.0.0.x:5000.
func (s *simNet) addPeer(name string, data []dataset.Record) *simProc {
	s.AddPeer(name, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + len(s.procs))}), 5000), data)
	return s.procs[name]
}

// input types a line at a peer.
func (s *simNet) input(name, line string) {
	s.t.Helper()
	s.Sim.input(s.procs[name], line)
	s.check()
}

// step delivers the next packet or fires the next timer. It reports false
// when nothing is left to do.
func (s *simNet) step() bool {
	s.t.Helper()
	ok := s.Sim.step()
	s.check()
	return ok
}

// do types line at peer name and runs the network until that peer is idle
// again and the ring has settled (acks of the last messages); it returns
// what the peer printed for the line.
func (s *simNet) do(name, line string) []string {
	s.t.Helper()
	out, err := s.Do(name, line)
	if err != nil {
		s.t.Fatalf("seed %d: %v", s.seed, err)
	}
	return out
}

// mustDo is do that expects the first printed line to start with want.
func (s *simNet) mustDo(name, line, want string) []string {
	s.t.Helper()
	out := s.do(name, line)
	if len(out) == 0 || !strings.HasPrefix(out[0], want) {
		s.t.Fatalf("seed %d: %s: %q printed %q, want a first line starting %q", s.seed, name, line, out, want)
	}
	return out
}

// checkRing verifies the invariants of a complete ring: one cycle in id
// order, every record exactly once, in the file of the node and the slot
// the hash names, found by that node's lookup, and each file's place in the
// ring equal to the node's.
func (s *simNet) checkRing(data []dataset.Record) {
	s.t.Helper()
	var ring []*simProc
	for _, name := range s.server.Snapshot().DHT.Members {
		ring = append(ring, s.procs[name])
	}
	slices.SortFunc(ring, func(a, b *simProc) int { return cmp.Compare(a.core.id, b.core.id) })
	n := len(ring)
	if n == 0 {
		s.t.Fatalf("seed %d: no ring", s.seed)
	}
	for i, p := range ring {
		if p.core.id != i || p.core.n != n {
			s.t.Fatalf("seed %d: %s has id %d of %d, want %d of %d", s.seed, p.name, p.core.id, p.core.n, i, n)
		}
		if p.core.right.Addr != ring[(i+1)%n].addr || p.core.left.Addr != ring[(i+n-1)%n].addr {
			s.t.Fatalf("seed %d: %s's neighbours are %s/%s, not a ring in id order", s.seed, p.name, p.core.left, p.core.right)
		}
	}
	total := 0
	for _, p := range ring {
		id, recs, err := p.store.Load()
		if err != nil {
			s.t.Fatal(err)
		}
		total += len(recs)
		for _, r := range recs {
			if owner := dataset.ID(r.Pos(), n); owner != p.core.id {
				s.t.Fatalf("seed %d: %s (id %d) holds %q, which belongs at id %d", s.seed, p.name, p.core.id, r.LongName, owner)
			}
		}
		if len(p.core.uncommitted) != 0 {
			s.t.Fatalf("seed %d: %s has %d records not committed", s.seed, p.name, len(p.core.uncommitted))
		}
		if !id.InRing || id.ID != p.core.id || id.N != n {
			s.t.Fatalf("seed %d: %s's file says in-ring %v id %d/%d; memory says %d/%d", s.seed, p.name, id.InRing, id.ID, id.N, p.core.id, n)
		}
		if id.Left.Addr != p.core.left.Addr || id.Right.Addr != p.core.right.Addr {
			s.t.Fatalf("seed %d: %s's file says neighbours %v/%v; memory says %v/%v", s.seed, p.name, id.Left, id.Right, p.core.left, p.core.right)
		}
	}
	if total != len(data) {
		s.t.Fatalf("seed %d: the ring holds %d records, want %d", s.seed, total, len(data))
	}
	for _, r := range data {
		owner := ring[dataset.ID(r.Pos(), n)]
		got, ok, err := owner.core.lookup(r.LongName)
		if err != nil || !ok || got != r {
			s.t.Fatalf("seed %d: %q missing or different at %s", s.seed, r.LongName, owner.name)
		}
	}
	// Server view agrees with the ring.
	st := s.server.Snapshot()
	if st.DHT.Phase != state.PhaseReady || len(st.DHT.Members) != n || st.DHT.Leader != ring[0].name {
		s.t.Fatalf("seed %d: server DHT %+v disagrees with ring led by %s of %d", s.seed, st.DHT, ring[0].name, n)
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

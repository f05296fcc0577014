package app

import (
	"cmp"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"dht/dataset"
	"dht/store"
	"dht/wire"
)

var seedFlag = flag.Uint64("seed", 0, "replay the simulations with this seed only")

const realData = "../../shared/data/StatsCountry.csv"

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

// simNet runs a server and peers over a simulated network: virtual clock,
// seeded loss, duplication and delay (reordering). Every datagram is encoded
// and decoded by package wire on its way.
type simNet struct {
	t      testing.TB
	seed   uint64
	rng    *rand.Rand
	now    time.Time
	loss   float64
	dup    float64
	delay  time.Duration // max extra delay; random delays reorder
	seq    uint64
	queue  []simPkt
	server *Server
	sstore *store.MemServer
	saddr  netip.AddrPort
	peers  map[string]*simPeer
	byAddr map[netip.AddrPort]*simPeer
	// restartEvery > 0 crashes the server every that many steps: a new
	// Server is built from what it persisted, and datagrams in flight to it
	// are lost.
	restartEvery int
	steps        int
	restarts     int
	// counters
	sent, dropped, duplicated int
	down                      map[netip.AddrPort]bool
}

type simPkt struct {
	at   time.Time
	seq  uint64
	from netip.AddrPort
	to   netip.AddrPort
	data []byte
}

type simPeer struct {
	name  string
	addr  netip.AddrPort
	core  *Peer
	store *store.MemPeer
	out   []string
}

func newSim(t testing.TB, seed uint64, data []dataset.Record) *simNet {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &simNet{
		t: t, seed: seed, rng: rng,
		now:    time.Unix(1_700_000_000, 0),
		sstore: store.NewMemServer(),
		saddr:  netip.MustParseAddrPort("10.0.0.1:4000"),
		peers:  map[string]*simPeer{},
		byAddr: map[netip.AddrPort]*simPeer{},
		down:   map[netip.AddrPort]bool{},
	}
	s.server = NewServer(ServerConfig{Rand: rand.New(rand.NewPCG(seed, 1)), OpTimeout: time.Minute}, store.ServerState{}, nil)
	_ = data
	return s
}

// addPeer creates a peer process (not yet registered) for user name at
// 10.0.0.x:5000.
func (s *simNet) addPeer(name string, data []dataset.Record) *simPeer {
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + len(s.peers))}), 5000)
	p := &simPeer{name: name, addr: addr, store: store.NewMemPeer()}
	p.core = NewPeer(PeerConfig{
		Server:   s.saddr,
		LoadData: func() ([]dataset.Record, error) { return data, nil },
		Rand:     rand.New(rand.NewPCG(s.seed, uint64(len(s.peers))+100)),
	})
	s.peers[name] = p
	s.byAddr[addr] = p
	return p
}

func (s *simNet) exec(from netip.AddrPort, p *simPeer, outs []Output) {
	for len(outs) > 0 {
		o := outs[0]
		outs = outs[1:]
		switch o := o.(type) {
		case Send:
			b, err := wire.Append(nil, o.ID, o.Flags, o.Msg)
			if err != nil {
				s.t.Fatalf("encode %T: %v", o.Msg, err)
			}
			s.transmit(from, o.To, b)
		case Print:
			p.out = append(p.out, o.Line)
		case PersistServer:
			if err := s.sstore.Save(o.State, o.Reply); err != nil {
				s.t.Fatal(err)
			}
		case PersistPeer:
			if err := p.store.Apply(o.Batch); err != nil {
				s.t.Fatal(err)
			}
		case Bind:
			var err error
			if o.Addr != p.addr {
				err = fmt.Errorf("sim: %s may only bind %s", p.name, p.addr)
			}
			outs = append(p.core.Bound(s.now, o.Addr, err), outs...)
		case Event, Exit:
		}
	}
}

func (s *simNet) transmit(from, to netip.AddrPort, b []byte) {
	s.sent++
	if s.rng.Float64() < s.loss {
		s.dropped++
		return
	}
	n := 1
	if s.rng.Float64() < s.dup {
		n = 2
		s.duplicated++
	}
	for range n {
		d := 20 * time.Microsecond
		if s.delay > 0 {
			d += time.Duration(s.rng.Int64N(int64(s.delay)))
		}
		s.seq++
		s.queue = append(s.queue, simPkt{at: s.now.Add(d), seq: s.seq, from: from, to: to, data: slices.Clone(b)})
	}
}

// input types a line at a peer.
func (s *simNet) input(name, line string) {
	p := s.peers[name]
	s.exec(p.addr, p, p.core.Input(s.now, line))
}

// step delivers the next packet or fires the next timer. It reports false
// when nothing is left to do.
func (s *simNet) step() bool {
	next := time.Time{}
	kind := 0 // 1 packet, 2 server timer, 3 peer timer
	var tp *simPeer
	if len(s.queue) > 0 {
		i := s.earliest()
		next, kind = s.queue[i].at, 1
	}
	if at, ok := s.server.NextDeadline(); ok && (kind == 0 || at.Before(next)) {
		next, kind = at, 2
	}
	for _, name := range s.names() {
		p := s.peers[name]
		if at, ok := p.core.NextDeadline(); ok && (kind == 0 || at.Before(next)) {
			next, kind, tp = at, 3, p
		}
	}
	if kind == 0 {
		return false
	}
	if next.After(s.now) {
		s.now = next
	}

	switch kind {
	case 1:
		i := s.earliest()
		pkt := s.queue[i]
		s.queue = slices.Delete(s.queue, i, i+1)
		s.deliver(pkt)
	case 2:
		s.exec(s.saddr, nil, s.server.Tick(s.now))
	case 3:
		s.exec(tp.addr, tp, tp.core.Tick(s.now))
	}
	if s.steps++; s.restartEvery > 0 && s.steps%s.restartEvery == 0 {
		s.restartServer()
	}
	return true
}

// restartServer is a SIGKILL and restart of the server on the same file.
func (s *simNet) restartServer() {
	st, replies, err := s.sstore.Load()
	if err != nil {
		s.t.Fatal(err)
	}
	s.server = NewServer(ServerConfig{Rand: rand.New(rand.NewPCG(s.seed, uint64(s.steps))), OpTimeout: time.Minute}, st, replies)
	s.queue = slices.DeleteFunc(s.queue, func(p simPkt) bool { return p.to == s.saddr })
	s.restarts++
}

func (s *simNet) earliest() int {
	best := 0
	for i, p := range s.queue {
		b := s.queue[best]
		if p.at.Before(b.at) || p.at.Equal(b.at) && p.seq < b.seq {
			best = i
		}
	}
	return best
}

func (s *simNet) names() []string {
	names := make([]string, 0, len(s.peers))
	for n := range s.peers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *simNet) deliver(pkt simPkt) {
	if s.down[pkt.to] {
		return
	}
	h, m, err := wire.Decode(pkt.data)
	if err != nil {
		s.t.Fatalf("decode: %v", err)
	}
	if pkt.to == s.saddr {
		s.exec(s.saddr, nil, s.server.Step(s.now, pkt.from, h, m))
		return
	}
	p := s.byAddr[pkt.to]
	if p == nil || !p.core.bound || p.core.exited {
		return
	}
	s.exec(p.addr, p, p.core.Step(s.now, pkt.from, h, m))
}

// do types line at peer name and runs the network until that peer is idle
// again; it returns what the peer printed for the line.
func (s *simNet) do(name, line string) []string {
	s.t.Helper()
	p := s.peers[name]
	before := len(p.out)
	s.input(name, line)
	limit := s.now.Add(5 * time.Minute)
	for !p.core.Idle() {
		if !s.step() || s.now.After(limit) {
			s.t.Fatalf("seed %d: %s: %q did not finish (printed %q)", s.seed, name, line, p.out[before:])
		}
	}
	// Let the ring settle (acks of the last messages).
	s.drain()
	return p.out[before:]
}

// drain runs until no packet is in flight and no retransmission is due.
func (s *simNet) drain() {
	for i := 0; i < 1_000_000; i++ {
		busy := len(s.queue) > 0
		for _, p := range s.peers {
			if _, ok := p.core.link.deadline(); ok {
				busy = true
			}
		}
		if !busy || !s.step() {
			return
		}
	}
	s.t.Fatalf("seed %d: network never settled", s.seed)
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
// order, every record exactly once at the node and slot the hash names, and
// each table equal to what its file holds.
func (s *simNet) checkRing(data []dataset.Record) {
	s.t.Helper()
	var ring []*simPeer
	for _, name := range s.server.Snapshot().DHT.Members {
		ring = append(ring, s.peers[name])
	}
	slices.SortFunc(ring, func(a, b *simPeer) int { return cmp.Compare(a.core.id, b.core.id) })
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
		total += p.core.Count()
		id, recs, err := p.store.Load()
		if err != nil {
			s.t.Fatal(err)
		}
		if !id.InRing || id.ID != p.core.id || id.N != n || len(recs) != p.core.Count() {
			s.t.Fatalf("seed %d: %s's file says in-ring %v id %d/%d with %d records; memory says %d/%d with %d", s.seed, p.name, id.InRing, id.ID, id.N, len(recs), p.core.id, n, p.core.Count())
		}
	}
	if total != len(data) {
		s.t.Fatalf("seed %d: the ring holds %d records, want %d", s.seed, total, len(data))
	}
	for _, r := range data {
		owner := ring[dataset.ID(r.Pos(), n)]
		got, ok := owner.core.Lookup(r.LongName)
		if !ok || got != r {
			s.t.Fatalf("seed %d: %q missing or different at %s", s.seed, r.LongName, owner.name)
		}
	}
	// Server view agrees with the ring.
	st := s.server.Snapshot()
	if st.DHT.Phase != store.PhaseReady || len(st.DHT.Members) != n || st.DHT.Leader != ring[0].name {
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

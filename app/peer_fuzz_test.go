package app

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/store"
	"dht/wire"
)

var (
	fzSelf   = wire.Member{Name: "bob", Addr: netip.MustParseAddrPort("10.0.0.2:5000")}
	fzLeft   = wire.Member{Name: "alice", Addr: netip.MustParseAddrPort("10.0.0.1:5000")}
	fzRight  = wire.Member{Name: "carol", Addr: netip.MustParseAddrPort("10.0.0.3:5000")}
	fzServer = netip.MustParseAddrPort("10.0.0.100:4000")
	fzOther  = netip.MustParseAddrPort("10.6.6.6:666")
	fzFrom   = []netip.AddrPort{fzLeft.Addr, fzRight.Addr, fzServer, fzOther}
)

// fuzzPeer is bob, id 1 of a ring of 3, holding a few records.
func fuzzPeer() *Peer {
	p := NewPeer(PeerConfig{Server: fzServer, Rand: rand.New(rand.NewPCG(1, 1)),
		LoadData: func() (dataset.Source, error) {
			return dataset.Records{{LongName: "Aruba", CountryCode: "ABW"}, {LongName: "Kingdom of Spain"}}, nil
		}})
	p.self, p.bound, p.registered = fzSelf, true, true
	id := state.Identity{InRing: true, ID: 1, N: 3,
		Left: fzLeft, Right: fzRight}
	table := store.NewMemPeer()
	if err := table.Apply(state.Batch{Identity: &id, Put: []dataset.Record{{LongName: "Republic of Albania", CountryCode: "ALB"}}}); err != nil {
		panic(err)
	}
	p.SetTable(table)
	// Its place in the ring, as its file holds it.
	p.inRing, p.id, p.n, p.neighbours = true, id.ID, id.N, true
	p.left, p.right = fzLeft, fzRight
	giveCredentials(p)
	return p
}

// tableRecords counts the records in the file of a peer fuzzPeer built.
func tableRecords(t *testing.T, p *Peer) int {
	t.Helper()
	_, recs, err := p.table.(*store.MemPeer).Load()
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// FuzzPeerSteps feeds a peer in a ring any sequence of datagrams from its
// neighbours, the server and a stranger, with ticks in between: no panic,
// and everything it sends encodes. A datagram is signed as its sender
// would sign it (the key of the ring, the server's secret, a querier's
// token) unless its selector byte has bit 0x40: the fuzzer cannot forge a
// tag, and unsigned it would never pass the peer's check of it.
func FuzzPeerSteps(f *testing.F) {
	msgs := []wire.Message{
		wire.SetID{ID: 1, N: 3, Left: fzLeft, Right: fzRight},
		wire.SetID{ID: 7, N: 0, Left: fzLeft, Right: fzRight},
		wire.Store{N: 3, Records: []wire.Record{{3: "Aruba"}, {3: "Kingdom of Spain"}}},
		wire.Store{N: 0, Records: []wire.Record{{3: "x"}}},
		wire.Flush{Leader: "alice", N: 3},
		wire.Flush{Leader: "bob", N: 3},
		wire.Query{ReqID: 9, Querier: wire.Member{Name: "zed", Addr: fzOther}, LongName: "Aruba"},
		wire.Query{ReqID: 9, Querier: wire.Member{Name: "zed", Addr: fzOther}, Hops: 65535, LongName: "Republic of Albania"},
		wire.QueryResult{ReqID: 9, Found: false, Node: "carol"},
		wire.Teardown{Origin: "alice", KeepNeighbours: true},
		wire.Teardown{Origin: "bob"},
		wire.ResetID{Origin: "alice", ID: 0, N: 2},
		wire.ResetID{Origin: "alice", ID: 9, N: 0},
		wire.ResetLeft{Left: fzRight},
		wire.ResetRight{Right: fzLeft},
		wire.RebuildDHT{Leaver: fzLeft},
		wire.Rebuilt{OK: true, NewLeader: "carol"},
		wire.Reply{OK: true, Members: []wire.Member{fzSelf, fzRight}},
		wire.Ack{},
		wire.Register{Name: "x", Addr: fzOther},
		wire.Join{Joiner: wire.Member{Name: "zed", Addr: fzOther}, N: 3},
		wire.Rebuilt{Reason: "refused", NewLeader: "alice"},
	}
	var seed []byte
	for i, m := range msgs {
		b, err := wire.Append(nil, uint32(i+1), 0, m)
		if err != nil {
			f.Fatal(err)
		}
		seed = append(seed, byte(i%4), byte(len(b)>>8), byte(len(b)))
		seed = append(seed, b...)
		f.Add(append([]byte{byte(i % 4), byte(len(b) >> 8), byte(len(b))}, b...))
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzPeer()
		now := time.Unix(1_700_000_000, 0)
		check := func(outs []Output) {
			for _, o := range outs {
				switch o := o.(type) {
				case Send:
					if _, err := wire.Append(nil, o.ID, o.Flags, o.Msg); err != nil {
						t.Fatalf("peer sends a message that does not encode: %v (%+v)", err, o.Msg)
					}
				case PersistPeer:
					if id := o.Batch.Identity; id != nil {
						if err := id.Check(); err != nil {
							t.Fatalf("peer saves an identity its file would be refused for: %v", err)
						}
					}
				}
			}
		}
		for len(data) >= 3 {
			sel := data[0]
			from := fzFrom[int(sel)%len(fzFrom)]
			tick := sel&0x80 != 0
			n := int(binary.BigEndian.Uint16(data[1:3]))
			data = data[3:]
			if n > len(data) {
				n = len(data)
			}
			dg := data[:n]
			data = data[n:]
			if tick {
				now = now.Add(time.Duration(n) * 10 * time.Millisecond)
				check(p.Tick(now))
			}
			h, m, err := wire.Decode(dg)
			if err != nil {
				continue
			}
			if sel&0x40 != 0 {
				check(p.Step(now, from, h, m))
			} else {
				check(stepSigned(p, now, from, h, m))
			}
		}
		check(p.Input(now, "query-dht bob Aruba"))
		check(p.Tick(now.Add(time.Hour)))
	})
}

// Ring messages that name no real place in a ring, or an invalid member,
// are dropped unacknowledged and change nothing. Each is signed as its
// sender would sign it, so that it reaches the check it names (unsigned,
// every one was dropped by the check of its tag, whatever it held: a
// review); one is not, for that check.
func TestPeerDropsInvalidRingMessages(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bad := wire.Member{Name: "x1", Addr: fzOther}
	zero := wire.Member{Name: "zed", Addr: netip.MustParseAddrPort("0.0.0.0:5")}
	tests := []struct {
		name     string
		from     netip.AddrPort
		msg      wire.Message
		unsigned bool
		why      string // the drop's reason
	}{
		{"set-id of a ring of 0", fzOther, wire.SetID{ID: 7, N: 0, Left: fzLeft, Right: fzRight}, false, "set-id 7 of 0 is not a place in a ring"},
		{"set-id id 0 (the leader's own)", fzOther, wire.SetID{ID: 0, N: 3, Left: fzLeft, Right: fzRight}, false, "set-id 0 of 3 is not a place in a ring"},
		{"set-id id beyond the ring", fzOther, wire.SetID{ID: 3, N: 3, Left: fzLeft, Right: fzRight}, false, "set-id 3 of 3 is not a place in a ring"},
		{"set-id ring over MaxRing", fzOther, wire.SetID{ID: 1, N: MaxRing + 1, Left: fzLeft, Right: fzRight}, false, fmt.Sprintf("set-id 1 of %d is not a place in a ring", MaxRing+1)},
		{"set-id with an invalid neighbour name", fzOther, wire.SetID{ID: 1, N: 3, Left: bad, Right: fzRight}, false, "set-id names an invalid neighbour"},
		{"reset-id of a ring of 0", fzLeft.Addr, wire.ResetID{Origin: "alice", ID: 0, N: 0}, false, "reset-id 0 of 0 is not a place in a ring"},
		{"reset-id id beyond the ring", fzLeft.Addr, wire.ResetID{Origin: "alice", ID: 4, N: 2}, false, "reset-id 4 of 2 is not a place in a ring"},
		{"reset-left to an unspecified address", fzLeft.Addr, wire.ResetLeft{Left: zero}, false, "reset-left names an invalid neighbour"},
		{"reset-right from the left", fzLeft.Addr, wire.ResetRight{Right: fzLeft}, false, "not from the right neighbour"},
		{"query for an invalid querier", fzLeft.Addr, wire.Query{ReqID: 1, Querier: zero, Hops: 1, LongName: "Aruba"}, false, "query names an invalid querier"},
		{"query from its querier that claims hops", fzOther, wire.Query{ReqID: 1, Querier: wire.Member{Name: "erin", Addr: fzOther}, Hops: 1, LongName: "Aruba"}, false, "forwarded query not from the left neighbour"},
		{"store from a stranger", fzOther, wire.Store{N: 3, Records: []wire.Record{{3: "Aruba"}}}, false, "not from the left neighbour"},
		{"join not from the joiner it names", fzLeft.Addr, wire.Join{Joiner: wire.Member{Name: "zed", Addr: fzOther}, N: 3}, false, "not from the joiner it names"},
		{"join for an invalid joiner", fzOther, wire.Join{Joiner: zero, N: 3}, false, "not from the joiner it names"},
		{"a store unsigned", fzLeft.Addr, wire.Store{N: 3, Records: []wire.Record{{3: "Aruba"}}}, true, "not signed with this peer's ring"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fuzzPeer()
			before := p.identity()
			h := wire.Header{Type: tt.msg.Type(), ID: 42}
			var outs []Output
			if tt.unsigned {
				outs = p.Step(now, tt.from, h, tt.msg)
			} else {
				outs = stepSigned(p, now, tt.from, h, tt.msg)
			}
			var why []string
			for _, o := range outs {
				ev, isEvent := o.(Event)
				if !isEvent {
					t.Fatalf("output %T %+v, want only a trace event", o, o)
				}
				why = append(why, ev.Msg)
			}
			if len(why) != 1 || !strings.Contains(why[0], tt.why) {
				t.Fatalf("traced %q, want it dropped: %s", why, tt.why)
			}
			if after := p.identity(); after != before || tableRecords(t, p) != 1 || len(p.uncommitted) != 0 {
				t.Fatalf("state changed: %+v -> %+v, %d records on file, %d to commit", before, after, tableRecords(t, p), len(p.uncommitted))
			}
		})
	}
}

// The server's notice that it took a later sequence number of this user's
// (a FAILURE naming it) moves the peer's numbers only when signed with the
// user's secret: an unsigned FAILURE, which anyone who learnt a request's
// id can send from the server's address, fails the request and does no
// more (an attacker's review: a forged 2^64-2 moved the user's numbers to
// the top, where the next wrapped to 0, below every number the server had
// taken, and the user could never be heard again, not even to deregister).
func TestOnlyASignedFailureMovesThePeersSequenceNumbers(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	asked := func(p *Peer) (uint32, uint64) {
		t.Helper()
		for _, o := range p.Input(now, "query-dht bob Aruba") {
			if s, ok := o.(Send); ok && s.To == fzServer {
				return s.ID, p.cred.seq
			}
		}
		t.Fatal("no request sent")
		return 0, 0
	}
	forged := wire.Reply{Reason: "sequence number behind the last one taken", Epoch: math.MaxUint64 - 1}

	p := fuzzPeer()
	id, seq := asked(p)
	p.Step(now, fzServer, wire.Header{Type: wire.TypeReply, ID: id}, forged)
	if p.cred.seq != seq {
		t.Fatalf("an unsigned FAILURE moved the sequence number from %d to %d", seq, p.cred.seq)
	}

	p = fuzzPeer()
	id, seq = asked(p)
	behind := forged
	behind.Epoch = seq + 1000
	var again uint64
	for _, o := range stepSigned(p, now, fzServer, wire.Header{Type: wire.TypeReply, ID: id, Seq: seq}, behind) {
		if s, ok := o.(Send); ok && s.To == fzServer {
			again = p.cred.seq
		}
	}
	if again <= behind.Epoch {
		t.Fatalf("the server's signed notice of %d: asked again at %d; want above it", behind.Epoch, again)
	}

	if got := nextSeq(math.MaxUint64, now); got != math.MaxUint64 {
		t.Fatalf("nextSeq(2^64-1) = %d; want no wrap", got)
	}
}

// A copy of a ring message already taken is acknowledged again, so that
// its sender stops, and is traced as a drop (the runner then traces its
// receipt at the debug level, and a flood of such drops is summarised),
// its ack as a quiet send: a captured copy sent again and again, from any
// source, cost two trace lines a copy, without end (an attacker's review).
func TestACopyOfARingMessageIsAcknowledgedQuietly(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := fuzzPeer()
	st := wire.Store{N: 3, Records: []wire.Record{{3: "Aruba", 0: "ABW"}}}
	h := wire.Header{Type: wire.TypeStore, ID: 77}
	stepSigned(p, now, fzLeft.Addr, h, st)
	p.Tick(now)
	outs := stepSigned(p, now, fzLeft.Addr, h, st)
	ev, ok := firstOutput(outs).(Event)
	if !ok || !ev.Drop || ev.Level != slog.LevelInfo || !strings.Contains(ev.Msg, "a copy of a message already taken") {
		t.Fatalf("a copy: first output %#v; want a drop at the info level", firstOutput(outs))
	}
	var ack *Send
	for _, o := range append(outs, p.Tick(now)...) {
		if s, ok := o.(Send); ok {
			if _, isAck := s.Msg.(wire.Ack); isAck && s.To == fzLeft.Addr {
				ack = &s
			}
		}
	}
	if ack == nil || !ack.Quiet {
		t.Fatalf("a copy's ack: %+v; want one, quiet", ack)
	}
}

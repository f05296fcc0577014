package app

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/store"
	"dht/wire"
)

// ringNode is a peer in the middle of a ring of 8 (id 3), as a store or a
// query finds it: the hot path of a ring hop through the core.
func ringNode(tb testing.TB) *Peer {
	tb.Helper()
	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:4000")})
	p.self = wire.Member{Name: "carol", Addr: netip.MustParseAddrPort("10.0.0.13:5000")}
	p.bound, p.registered = true, true
	p.inRing, p.id, p.n, p.neighbours = true, 3, 8, true
	p.left = wire.Member{Name: "bob", Addr: netip.MustParseAddrPort("10.0.0.12:5000")}
	p.right = wire.Member{Name: "dave", Addr: netip.MustParseAddrPort("10.0.0.14:5000")}
	giveCredentials(p) // every datagram is signed and verified, as in a ring
	return p
}

// signed is the datagram sg signs for to, as a neighbour or a querier
// sends it.
func signed(tb testing.TB, sg signer, to netip.AddrPort, id uint32, flags wire.Flags, m wire.Message) []byte {
	tb.Helper()
	b, err := sg.send(to, id, flags, m).Append(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// encodeAll encodes every Send as the runner does, into a reused buffer.
func encodeAll(tb testing.TB, outs []Output, buf []byte) []byte {
	for _, o := range outs {
		if s, ok := o.(Send); ok {
			var err error
			if buf, err = s.Append(buf[:0]); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return buf
}

// BenchmarkRingHopQuery is a query's first attempt passing a node: decode
// the datagram, step the core, encode what it forwards.
func BenchmarkRingHopQuery(b *testing.B) {
	p := ringNode(b)
	var name string
	for _, r := range records(b) {
		if dataset.ID(r.Pos(), 8) != 3 {
			name = r.LongName
			break
		}
	}
	q := wire.Query{ReqID: 9, Querier: wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}, Hops: 2, LongName: name}
	dg := signed(b, p.tokenSigner(q.Querier.Addr).as(q.Querier.Addr), p.self.Addr, 77, wire.FlagNoAck, q)
	buf := make([]byte, 0, wire.MaxDatagram)
	now := time.Unix(1e9, 0)
	batch := make([]Datagram, 1)
	b.ReportAllocs()
	for b.Loop() {
		h, m, err := wire.Decode(dg)
		if err != nil {
			b.Fatal(err)
		}
		batch[0] = Datagram{From: p.left.Addr, Header: h, Msg: m}
		buf = encodeAll(b, p.StepBatch(now, batch), buf)
	}
}

// BenchmarkRingHopStore is a full store datagram passing a node that keeps
// none of it: decode, step, encode the forward, and the ack it earns once
// the next node acknowledges the forward.
func BenchmarkRingHopStore(b *testing.B) {
	p := ringNode(b)
	st := wire.Store{N: 8}
	size := wire.StoreOverhead
	for _, r := range records(b) {
		f := r.Fields()
		if dataset.ID(r.Pos(), 8) == 3 || size+wire.RecordLen(f) > wire.MaxMessage {
			continue
		}
		st.Records = append(st.Records, f)
		size += wire.RecordLen(f)
	}
	buf := make([]byte, 0, wire.MaxDatagram)
	now := time.Unix(1e9, 0)
	batch := make([]Datagram, 1)
	id := uint32(0)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		id++
		dg, err := p.link.sg.as(p.left.Addr).send(p.self.Addr, id, 0, st).Append(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
		h, m, err := wire.Decode(dg)
		if err != nil {
			b.Fatal(err)
		}
		batch[0] = Datagram{From: p.left.Addr, Header: h, Msg: m}
		outs := p.StepBatch(now, batch)
		var fwd uint32
		for _, o := range outs {
			if s, ok := o.(Send); ok && s.To == p.right.Addr {
				fwd = s.ID
			}
		}
		buf = encodeAll(b, outs, buf)
		ack, err := p.link.sg.as(p.right.Addr).send(p.self.Addr, fwd, 0, wire.Ack{}).Append(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
		if h, m, err = wire.Decode(ack); err != nil {
			b.Fatal(err)
		}
		batch[0] = Datagram{From: p.right.Addr, Header: h, Msg: m}
		if outs := p.StepBatch(now, batch); p.link.backlog(p.right.Addr) != 0 {
			b.Fatalf("the forward was not acknowledged: %v", outs)
		}
	}
}

// BenchmarkQueryAtOwner is a query's first attempt reaching the node that
// holds the record: decode, step the core, read the record from the node's
// bbolt file, encode the answer to the querier.
func BenchmarkQueryAtOwner(b *testing.B) {
	p := ringNode(b)
	db, err := store.OpenPeer(filepath.Join(b.TempDir(), "carol.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var mine []dataset.Record
	for _, r := range records(b) {
		if dataset.ID(r.Pos(), 8) == 3 {
			mine = append(mine, r)
		}
	}
	if err := db.Apply(state.Batch{Put: mine}); err != nil {
		b.Fatal(err)
	}
	p.SetTable(db)
	querier := wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	dgs := make([][]byte, len(mine))
	for i, r := range mine {
		dgs[i] = signed(b, p.tokenSigner(querier.Addr).as(querier.Addr), p.self.Addr, uint32(i+1), wire.FlagNoAck, wire.Query{ReqID: 9, Querier: querier, Hops: 2, LongName: r.LongName})
	}
	buf := make([]byte, 0, wire.MaxDatagram)
	now := time.Unix(1e9, 0)
	batch := make([]Datagram, 1)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		h, m, err := wire.Decode(dgs[i%len(dgs)])
		if err != nil {
			b.Fatal(err)
		}
		batch[0] = Datagram{From: p.left.Addr, Header: h, Msg: m}
		outs := p.StepBatch(now, batch)
		if len(outs) != 1 {
			b.Fatalf("outputs %v", outs)
		}
		buf = encodeAll(b, outs, buf)
		i++
	}
}

// BenchmarkQueryAnswered is the querier taking its answer: decode the
// result, step the core, which prints the record.
func BenchmarkQueryAnswered(b *testing.B) {
	rec := records(b)[17]
	res := wire.QueryResult{ReqID: 9, Found: true, Node: "carol", NodeID: 3, Hops: 2, LongName: rec.LongName, Record: rec.Fields()}
	token := signer{seq: fzEpoch, key: wire.Key{0x7a}} // the server's token for this query
	server := netip.MustParseAddrPort("10.0.0.1:4000")
	p := NewPeer(PeerConfig{Server: server})
	p.self = wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	owner := netip.MustParseAddrPort("10.0.0.13:5000")
	dg := signed(b, token.as(owner), p.self.Addr, 1, wire.FlagNoAck, res)
	p.bound, p.registered = true, true
	now := time.Unix(1e9, 0)
	batch := make([]Datagram, 1)
	b.ReportAllocs()
	for b.Loop() {
		// The query in flight, as queryOp.ask leaves it.
		q := &queryOp{stage: queryWalking, longName: rec.LongName, to: owner, reqID: 9, sg: token}
		q.tries.start(now, time.Second)
		p.walks = append(p.walks[:0], &walk{q: q})
		h, m, err := wire.Decode(dg)
		if err != nil {
			b.Fatal(err)
		}
		batch[0] = Datagram{From: owner, Header: h, Msg: m}
		outs := p.StepBatch(now, batch)
		if len(outs) != 1 {
			b.Fatalf("outputs %v", outs)
		}
		if _, ok := outs[0].(Result); !ok {
			b.Fatalf("output %v", outs[0])
		}
	}
}

// BenchmarkLeaderSendsStores is a leader of a ring of 8 starting a store
// round of the dataset: the records ordered by owner, packed into stores,
// each signed and encoded as the runner does, up to the window; the rest of
// the round's sends follow as acks come.
func BenchmarkLeaderSendsStores(b *testing.B) {
	data := dataset.Records(records(b))
	buf := make([]byte, 0, wire.MaxDatagram)
	now := time.Unix(1e9, 0)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p := ringNode(b)
		p.id = 0
		b.StartTimer()
		outs := p.startPopulate(now, nil, data, nil)
		sends := 0
		for _, o := range outs {
			if s, ok := o.(Send); ok {
				var err error
				if buf, err = s.Append(buf[:0]); err != nil {
					b.Fatal(err)
				}
				sends++
			}
		}
		if sends < 10 {
			b.Fatalf("the leader sent %d datagrams", sends)
		}
	}
}

// BenchmarkQuerierCycle is a querier's whole part of one query, as a
// script typing queries ahead drives it: the line typed, the server's reply
// to its query-dht (the query goes into the ring), the owner's answer, and
// the result as stdout shows it; every datagram decoded, checked, signed
// and encoded as the runner does.
func BenchmarkQuerierCycle(b *testing.B) {
	rec := records(b)[17]
	q := newQuerier(&testing.T{})
	token := signer{seq: fzEpoch, key: q.token}
	secret := signer{seq: 1, key: fzSecret}
	line := "query-dht erin " + rec.LongName
	buf := make([]byte, 0, wire.MaxDatagram)
	batch := make([]Datagram, 1)
	var text []byte
	step := func(from netip.AddrPort, d []byte) []Output {
		h, m, err := wire.Decode(d)
		if err != nil {
			b.Fatal(err)
		}
		batch[0] = Datagram{From: from, Header: h, Msg: m}
		return q.p.StepBatch(q.now, batch)
	}
	b.ReportAllocs()
	for b.Loop() {
		outs := q.p.Input(q.now, line)
		buf = encodeAll(b, outs, buf)
		asks, _ := q.sent(outs)
		reply := wire.Reply{OK: true, Members: []wire.Member{{Name: "bob", Addr: q.member}}, KeyEpoch: fzEpoch, Key: q.token}
		outs = step(q.server, signed(b, secret, q.p.self.Addr, asks[0], 0, reply))
		buf = encodeAll(b, outs, buf)
		_, walks := q.sent(outs)
		res := wire.QueryResult{ReqID: walks[rec.LongName], Found: true, Node: "carol", NodeID: 3, Hops: 2, LongName: rec.LongName, Record: rec.Fields()}
		for _, o := range step(q.member, signed(b, token.as(q.member), q.p.self.Addr, 1, wire.FlagNoAck, res)) {
			if r, ok := o.(Result); ok {
				text = r.AppendText(text[:0])
			}
		}
		if len(text) == 0 {
			b.Fatal("no result")
		}
	}
}

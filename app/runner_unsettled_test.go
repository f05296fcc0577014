package app

import (
	"strings"
	"testing"
	"time"

	"dht/dataset"
	"dht/internal/udpio"
	"dht/store"
	"dht/wire"
)

// A commit refused while more records wait to be committed than one commit
// takes (the runner reads on, unsettled, rather than settle) ends the
// command in progress with its line, as one refused once settled does (a
// review: the unsettled path stopped the runner without a line for the
// query-dht typed).
func TestCommitRefusedWhileUnsettledEndsTheCommandInProgress(t *testing.T) {
	for _, c := range []struct {
		name   string
		stores int
	}{{"unsettled", ownChunk/4 + 1}, {"settled", 1}} {
		t.Run(c.name, func(t *testing.T) { commitRefusedAmidStores(t, c.stores) })
	}
}

// commitRefusedAmidStores types a query at a ring node whose disk is
// full, then gives it, in one read, a store of its own record, the flush
// (whose commit the disk refuses) and stores stores more.
func commitRefusedAmidStores(t *testing.T, stores int) {
	n := udpio.NewNet()
	p := ringNode(t)
	conn, err := n.Listen(p.self.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out := &lineWriter{}
	r := &PeerRunner{Core: p, Out: out}
	stop := r.start()
	r.ep = newEndpoint(conn, r.log, nil, &r.Traffic, time.Now)
	r.store = failingPeerStore{store.NewMemPeer()}
	now := time.Now()
	r.mu.Lock()
	r.handle(p.Input(now, "query-dht carol Aruba"))
	r.mu.Unlock()
	var mine wire.Record
	for _, rec := range records(t) {
		if dataset.ID(rec.Pos(), 8) == 3 {
			mine = rec.Fields()
			break
		}
	}
	var in []datagram
	id := uint32(100)
	mk := func(m wire.Message) {
		id++
		b, err := p.link.sg.as(p.left.Addr).send(p.self.Addr, id, 0, m).Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		h, msg, err := wire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, datagram{from: p.left.Addr, h: h, msg: msg})
	}
	mk(wire.Store{N: 8, Records: []wire.Record{mine}})
	mk(wire.Flush{Leader: "alice", Round: 1, Epoch: fzEpoch})
	for k := 0; k < stores; k++ {
		st := wire.Store{N: 8}
		for j := 0; j < 4; j++ {
			st.Records = append(st.Records, mine)
		}
		mk(st)
	}
	unsettled := stores > 1
	if ok, _ := r.onDatagrams(r.ep, in); unsettled && ok || p.Unsettled() != unsettled {
		t.Fatalf("onDatagrams went on %v, unsettled %v; want unsettled %v, and stopped if so", ok, p.Unsettled(), unsettled)
	}
	stop(nil)
	const want = "query-dht FAILURE: the peer stopped: cannot commit the file (registration, place and table), stopping: write dht-peer-carol.db: no space left on device"
	if !out.has(want) {
		t.Errorf("printed %q; want a line starting %q", out.text.String(), want)
	}
	select {
	case err := <-r.quit:
		if err == nil || !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("the runner stopped with %v; want the commit's ENOSPC", err)
		}
	default:
		t.Error("the runner did not stop")
	}
}

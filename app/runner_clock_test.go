package app

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dht/app/state"
	"dht/internal/loopback"
	"dht/internal/udpio"
	"dht/store"
	"dht/wire"
)

// A register's request is timed from when it is sent, after the table
// file is open and the socket bound: a file slow to open (a slow disk;
// here a clock that moves a minute while it opens) must neither have the
// request sent again at once nor fail it before the server could answer.
// The runner's turn is driven directly, so that nothing races the check.
func TestRegisterTimedFromItsSend(t *testing.T) {
	ports, err := loopback.FreePorts(2) // the peer's, and a server nobody runs
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1_700_000_000, 0) // under r.mu: moves only while the file opens
	now := func() time.Time { return clock }
	dir := t.TempDir()
	r := &PeerRunner{
		Core: NewPeer(PeerConfig{
			Server: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[1]),
			Rand:   rand.New(rand.NewPCG(1, 2)),
		}),
		OpenStore: func(name string) (PeerStore, error) {
			clock = clock.Add(time.Minute)
			return store.OpenPeer(filepath.Join(dir, "dht-peer-"+name+".db"))
		},
	}
	r.Now = now
	defer r.start()(nil) // what Run sets up before its first turn

	r.mu.Lock()
	r.handle(r.Core.Input(now(), fmt.Sprintf("register slow 127.0.0.1 %d", ports[0])))
	at, ok := r.Core.NextDeadline()
	opened, sent := clock, r.Core.Stats().Sent
	r.stopped = true // the socket's reader takes no turn from here on
	ep, st := r.ep, r.store
	r.mu.Unlock()
	if ep != nil {
		ep.conn.Close()
	}
	if st != nil {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}

	if ep == nil || st == nil {
		t.Fatal("the register bound no socket or opened no file")
	}
	if sent != 1 {
		t.Fatalf("%d datagrams sent, want the register once", sent)
	}
	if !ok || !at.After(opened) {
		t.Fatalf("the request's next deadline is %v (set: %v), before the file was open at %v: it was timed from before the file opened", at, ok, opened)
	}
}

// slowPeerStore is a table whose commits take clock time.
type slowPeerStore struct {
	PeerStore
	took func()
}

func (s slowPeerStore) Apply(b state.Batch) error {
	s.took()
	return s.PeerStore.Apply(b)
}

// A commit the runner makes is time the peer reads nothing: acks that
// came meanwhile wait unread, so the ring messages waiting for them are
// sent again that much later, not by a tick that comes before the acks
// are read (one did, after the long commits of 64 nodes at once, and sent
// their stores again).
func TestCommitPostponesRetransmissions(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	p := ringNode(t)
	r := &PeerRunner{Core: p, Now: func() time.Time { return clock }}
	defer r.start()(nil)
	const took = 200 * time.Millisecond
	r.store = slowPeerStore{PeerStore: store.NewMemPeer(), took: func() { clock = clock.Add(took) }}
	p.link.send(clock, p.right.Addr, wire.Store{N: 2}, tagNone, false)
	due, ok := p.link.deadline()
	if !ok {
		t.Fatal("nothing in flight")
	}
	r.mu.Lock()
	_, err := r.exec([]Output{PersistPeer{Batch: state.Batch{}}})
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if moved, _ := p.link.deadline(); moved.Sub(due) != took {
		t.Fatalf("after a commit of %v the store's timeout moved %v", took, moved.Sub(due))
	}
	if out, _ := p.link.tick(due); len(out) != 0 {
		t.Fatalf("at its old timeout, right after the commit: %v sent again; want nothing", out)
	}
	if out, _ := p.link.tick(due.Add(took)); len(out) != 1 {
		t.Fatalf("%v later: %d sent again; want the store", took, len(out))
	}
}

// lineWriter is an Out that says whether a line was written yet.
type lineWriter struct {
	mu   sync.Mutex
	text strings.Builder
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text.Write(b)
}

func (w *lineWriter) has(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Contains(w.text.String(), s)
}

// A Tidy commit lets the results queued before it be written first: a
// peer runs on one P, and its commits keep that P for as long as the disk
// takes (raw system calls), so without a turn for the printer the line
// would wait for the disk. Here on one P, the commit checks that the line
// is out when it starts.
func TestTidyCommitComesAfterTheResults(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	out := &lineWriter{}
	r := &PeerRunner{Core: ringNode(t), Out: out}
	defer r.start()(nil)
	const line = "dht-rebuilt SUCCESS: new leader carol"
	var printedFirst, committed bool
	r.store = slowPeerStore{PeerStore: store.NewMemPeer(), took: func() { printedFirst, committed = out.has(line), true }}
	r.mu.Lock()
	_, err := r.exec([]Output{Result{Cmd: CmdDHTRebuilt, OK: true, NewLeader: "carol"}, PersistPeer{Tidy: true}})
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !committed || !printedFirst {
		t.Fatalf("committed %v, the result written before the commit began %v; want both", committed, printedFirst)
	}
}

// failingPeerStore is a table whose disk is full.
type failingPeerStore struct{ PeerStore }

func (failingPeerStore) Apply(state.Batch) error {
	return &os.PathError{Op: "write", Path: "dht-peer-carol.db", Err: syscall.ENOSPC}
}

// A commit the disk refuses stops the peer as a crash would, and says so:
// what was queued before the commit (the acks of what came) goes out, and
// nothing after it does (the committed that would claim the records are
// on disk, the result), so no node is told of a table that is not there.
func TestCommitRefusedStopsThePeer(t *testing.T) {
	n := udpio.NewNet()
	p := ringNode(t)
	right, err := n.Listen(p.right.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer right.Close()
	conn, err := n.Listen(p.self.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := &PeerRunner{Core: p}
	defer r.start()(nil)
	r.ep = newEndpoint(conn, r.log, nil, &r.Traffic, time.Now)
	r.store = failingPeerStore{store.NewMemPeer()}
	ack := Send{To: p.right.Addr, ID: 7, Msg: wire.Ack{}}
	committed := Send{To: p.right.Addr, ID: 8, Msg: wire.Committed{Leader: "alice", Round: 1}}
	r.mu.Lock()
	exit, err := r.exec([]Output{ack, PersistPeer{Batch: state.Batch{}}, committed, Result{Cmd: CmdSetupDHT}})
	r.mu.Unlock()
	if exit || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "cannot commit the file (registration, place and table), stopping") || !strings.Contains(err.Error(), "start it again on the same --db") {
		t.Fatalf("exec = %v, %v; want the commit's ENOSPC, saying the peer stops and how to resume", exit, err)
	}
	if got := r.Traffic.Datagrams.Load(); got != 1 {
		t.Fatalf("%d datagrams sent; want the ack queued before the commit, and nothing after it", got)
	}
	var types []wire.Type
	_ = right.ReadBatches([]udpio.Message{{Buf: make([]byte, wire.MaxDatagram+1)}}, func(lot []udpio.Message) (bool, bool) {
		for _, m := range lot {
			if _, msg, err := wire.Decode(m.Buf[:m.N]); err == nil {
				types = append(types, msg.Type())
			}
		}
		return len(lot) > 0, true
	})
	if len(types) != 1 || types[0] != wire.TypeAck {
		t.Fatalf("the right neighbour got %v; want the ack alone", types)
	}
}

// failedFileStore is a table whose commits fail with err.
type failedFileStore struct {
	PeerStore
	err error
}

func (f failedFileStore) Apply(state.Batch) error { return f.err }

// A file gone from under the peer, or one bbolt finds damaged in a commit,
// stops it too, without the advice to start again on the same file, which
// holds nothing any more, or may not hold what it reported done (an
// operator's review: after another program wrote the file, an
// acknowledged register was gone at the restart), and without the word
// that what it reported done is on disk.
func TestCommitOnAGoneOrDamagedFileStopsThePeer(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("store: dht-peer-carol.db was deleted while in use: %w", store.ErrGone),
		fmt.Errorf("store: file dht-peer-carol.db is damaged: bbolt failed on it: page 4 already freed: %w", store.ErrDamaged),
	} {
		p := ringNode(t)
		r := &PeerRunner{Core: p}
		stop := r.start()
		r.store = failedFileStore{store.NewMemPeer(), err}
		r.mu.Lock()
		_, got := r.exec([]Output{PersistPeer{Batch: state.Batch{}}})
		r.mu.Unlock()
		stop(nil)
		if !errors.Is(got, errors.Unwrap(err)) || !strings.Contains(got.Error(), "cannot commit the file (registration, place and table), stopping") ||
			strings.Contains(got.Error(), "is on disk") || strings.Contains(got.Error(), "same --db") {
			t.Errorf("exec = %v; want %v, saying the peer stops, and neither that its work is on disk nor to resume from the file", got, errors.Unwrap(err))
		}
	}
}

// A commit the disk refuses stops the peer, and the command typed and not
// yet answered still gets its line, saying why (SPEC §5: each command
// yields one line): an operator's review saw a setup's leader exit with
// the reason on stderr only, its dht-complete never printed.
func TestCommitRefusedEndsTheCommandInProgress(t *testing.T) {
	out := &lineWriter{}
	p := ringNode(t)
	r := &PeerRunner{Core: p, Out: out}
	stop := r.start()
	r.store = failingPeerStore{store.NewMemPeer()}
	r.mu.Lock()
	r.handle(p.Input(time.Now(), "leave-dht carol"))
	r.handle([]Output{PersistPeer{Batch: state.Batch{}}})
	r.mu.Unlock()
	stop(nil)
	const want = "leave-dht FAILURE: the peer stopped: cannot commit the file (registration, place and table), stopping: write dht-peer-carol.db: no space left on device"
	if !out.has(want) {
		t.Fatalf("printed %q; want a line starting %q", out.text.String(), want)
	}
	if err := <-r.quit; !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("the runner stopped with %v; want the commit's ENOSPC", err)
	}
}

// So does a resume whose result followed the commit the disk refused,
// and a heal this node leads (a chaos review, disks filled: a restart
// that stopped so printed no resume line, a heal's leader no heal line,
// both only the reason on stderr). A query's answer that followed it is
// printed as it was: the commit was not its.
func TestCommitRefusedStillSaysWhatFollowedIt(t *testing.T) {
	out := &lineWriter{}
	p := ringNode(t)
	p.healing = &healLead{epoch: 9, members: []wire.Member{p.self, p.right}}
	r := &PeerRunner{Core: p, Out: out}
	stop := r.start()
	r.store = failingPeerStore{store.NewMemPeer()}
	r.mu.Lock()
	r.handle([]Output{PersistPeer{Batch: state.Batch{}}, Result{Cmd: CmdResume, OK: true, Reason: "carol 10.0.0.3:5000 Free"},
		// Lines typed after it, which the commit was not for (a review:
		// they became "help FAILURE: the peer stopped…", and an unknown
		// command's line lost its word).
		Result{Cmd: CmdHelp, OK: true, Reason: "the list"}, Result{Cmd: CmdUnknown, Word: "bogus", Reason: "unknown command (type help for the list)"}})
	r.mu.Unlock()
	stop(nil)
	const why = ": the peer stopped: cannot commit the file (registration, place and table), stopping: write dht-peer-carol.db: no space left on device"
	for _, want := range []string{"resume FAILURE" + why, "heal FAILURE" + why} {
		if !out.has(want) {
			t.Errorf("printed %q; want a line starting %q", out.text.String(), want)
		}
	}
	for _, want := range []string{"help SUCCESS", "bogus FAILURE: unknown command (type help for the list)"} {
		if !out.has(want) {
			t.Errorf("printed %q; want a line starting %q, as it was", out.text.String(), want)
		}
	}
	if strings.Contains(out.text.String(), "resume SUCCESS") {
		t.Errorf("printed %q: a resume SUCCESS whose commit the disk refused", out.text.String())
	}
}
